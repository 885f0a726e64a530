"""The GPU requirement files resolve for Linux x86_64 / CPython 3.12 against the package index, and the
flash-attn wheel the RL file names is the one verl's own fsdp extra pins, built for the pinned torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from helpers import REPO_ROOT
from proxy_grm.launch.checks import pinned_requirements

NODE = {"python_version": "3.12", "platform_machine": "x86_64", "sys_platform": "linux"}
UNREACHABLE = ("Failed to fetch", "dns error", "Connection refused", "error sending request", "timed out")


def uv_compile(requirements: Path, tmp_path: Path) -> str:
    """``uv pip compile`` for a GPU node: the index alone (no local configuration), CPython 3.12, manylinux x86_64.

    The flash-attn line is a direct wheel URL (a release-page download, not the index): it is checked apart.
    """
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert uv, "uv is missing: bash scripts/setup_env.sh cpu"
    index_only = tmp_path / requirements.name
    index_only.write_text("".join(line + "\n" for line in requirements.read_text().splitlines()
                                  if not line.startswith(("flash-attn @", "-e"))))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    result = subprocess.run([uv, "pip", "compile", "--no-config", "--python-version", "3.12", "--python-platform",
                             "x86_64-manylinux_2_28", str(index_only)], capture_output=True, text=True, timeout=600,
                            env={**env, "UV_CACHE_DIR": str(tmp_path / "uv-cache")})
    if result.returncode != 0 and any(sign in result.stderr for sign in UNREACHABLE):
        pytest.skip(f"the package index is unreachable: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def resolved(lock: str) -> dict[str, str]:
    """Resolved versions by canonical name (uv writes ``transferqueue`` for ``TransferQueue``)."""
    return {canonicalize_name(line.split("==")[0]): line.split("==")[1].split()[0] for line in lock.splitlines()
            if "==" in line and not line.startswith("#")}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["requirements_rl.txt", "requirements_sft.txt"])
def test_gpu_requirements_resolve_to_their_pins(name: str, tmp_path: Path) -> None:
    path = REPO_ROOT / name
    versions = resolved(uv_compile(path, tmp_path))
    for pin in pinned_requirements(path, NODE):
        if pin.name == "flash-attn":
            continue
        want = next(spec.version for spec in pin.specifier)
        have = versions.get(canonicalize_name(pin.name))
        assert have == want, f"{name}: {pin.name} resolves to {have}, pins {want}"


def test_flash_attn_wheel_matches_verl_and_the_pinned_torch() -> None:
    """verl[vllm] does not bring flash-attn; the RL file adds the version verl's fsdp extra pins."""
    line = next(line for line in (REPO_ROOT / "requirements_rl.txt").read_text().splitlines()
                if line.startswith("flash-attn @"))
    wheel = Requirement(line).url.rsplit("/", 1)[-1]
    version, local = wheel.split("-")[1].split("+")
    verl_requires = [Requirement(r) for r in metadata.requires("verl")]
    vllm_extra = [r.name for r in verl_requires if r.marker and r.marker.evaluate({"extra": "vllm"})]
    assert "flash-attn" not in vllm_extra
    verl_flash = next(r for r in verl_requires if r.name == "flash-attn")
    assert str(verl_flash.specifier) == f"=={version}"
    torch_pin = next(r for r in pinned_requirements(REPO_ROOT / "requirements_rl.txt", NODE) if r.name == "torch")
    torch_minor = ".".join(next(iter(torch_pin.specifier)).version.split(".")[:2])
    assert local == f"cu130torch{torch_minor}", "the wheel is built for another torch or CUDA than the pins"
    assert "-cp312-cp312-linux_x86_64" in wheel and 'python_version == "3.12"' in line
