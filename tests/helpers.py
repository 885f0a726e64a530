"""Plain names the test modules share (fixtures live in ``conftest.py``, which pytest imports itself)."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
RL_PYTHON = REPO_ROOT / ".venv-rl" / "bin" / "python"  # verl 0.9.1 + vLLM 0.24.0 (requirements/rl-cpu.txt)
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


# rubric_leak: (rubric, the reason's kind or None). Content criteria, numbered items, weights and counts are
# not leaks; naming a response by its position or the winner is.
RUBRIC_LEAKS = [
    ("<rubric>1. Colour accuracy (40%)\n2. Completeness (60%)</rubric>", None),
    ("<rubric>The response mentions two dogs (50%); the response names the colour red (50%)</rubric>", None),
    ("<rubric>Does the answer name the colour? Item 1: object count, item 2: colour</rubric>", None),
    ("<rubric>The first criterion weighs more than the second criterion</rubric>", None),
    ("<rubric>A 2 px border; responses of 1 or 2 sentences; both responses; the responses' length</rubric>", None),
    ("<rubric>Which option is correct: option 2 (the blue car) matches the image (100%)</rubric>", None),
    ("<rubric>Criterion 1 is more important than criterion 2 (70% / 30%)</rubric>", None),
    ("<rubric>Accuracy of the answer 2.5 kg (100%)</rubric>", None),
    ("<rubric>Response 2 is more accurate (100%)</rubric>", "response by number"),
    ("<rubric>Chatbot 1 names the colour</rubric>", "response by number"),
    ("<rubric>answer #1 is correct</rubric>", "response by number"),
    ("<rubric>RESPONSE2 wins</rubric>", "response by number"),
    ("<rubric>the second answer wins</rubric>", "response by order"),
    ("<rubric>The first response is better on colour</rubric>", "response by order"),
    ("<rubric>the latter one is right</rubric>", "response by order"),
    ("<rubric>Colour (100%) <answer>2</answer></rubric>", "answer tag"),
    ("<rubric>see <quote_1> for the colour</rubric>", "position tag"),
    ("<rubric>Overall, 2 is better.</rubric>", "a number as the winner"),
    ("<rubric>Winner: 1</rubric>", "a number as the winner"),
    ("<rubric>1 wins on colour</rubric>", "a number as the winner"),
]
