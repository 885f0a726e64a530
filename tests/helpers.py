"""Plain names the test modules share (fixtures live in ``conftest.py``, which pytest imports itself)."""

from __future__ import annotations

from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
REWARD_FILE = REPO_ROOT / "verl" / "proxy_grm_reward.py"


def is_running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
