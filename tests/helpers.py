"""Plain names the test modules share (fixtures live in ``conftest.py``, which pytest imports itself)."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
REWARD_FILE = REPO_ROOT / "verl" / "proxy_grm_reward.py"


def is_running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# The release's eval script behind each benchmark; ``tests/fixtures/release_eval/`` holds a verbatim copy
# of each script's ``system_prompt`` literal and ``make_conv``.
RELEASE_EVAL_SCRIPTS = {
    "vl_rewardbench": "vl_reward_bench",
    "multimodal_rewardbench": "multimodal_reward_bench",
    "mm_rlhf_rewardbench": "mmrlhf_reward_bench",
}


def release_make_conv(benchmark: str) -> Callable[..., str]:
    """The release script's own ``make_conv``, over its ``system_prompt`` as its source writes it.

    The literal is read with ``ast.literal_eval`` and the function compiled from the copied source, so a
    transcription error can hide only in the verbatim copy, which is checked by eye against the release.
    """
    path = REPO_ROOT / "tests" / "fixtures" / "release_eval" / f"{RELEASE_EVAL_SCRIPTS[benchmark]}.py.txt"
    module = ast.parse(path.read_text(), filename=str(path))
    (prompt,) = [node.value for node in module.body if isinstance(node, ast.Assign)
                 and [target.id for target in node.targets if isinstance(target, ast.Name)] == ["system_prompt"]]
    (function,) = [node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == "make_conv"]
    namespace: dict[str, Any] = {"system_prompt": ast.literal_eval(prompt)}
    exec(compile(ast.Module([function], type_ignores=[]), str(path), "exec"), namespace)
    return namespace["make_conv"]


def release_system_prompt(benchmark: str) -> str:
    """The release script's ``system_prompt`` value (the text before the pair)."""
    return release_make_conv(benchmark).__globals__["system_prompt"]
