"""The held-out figures: a critique's evidence is its rubric's colour, counted over both orders of a pair."""

from __future__ import annotations

import json
from pathlib import Path

from proxy_grm.demo.heldout import SLICES, rubric_evidence
from proxy_grm.toy.teacher_stub import stub_rubric


def _row(colour: str, hard: bool, said: str, said_swapped: str) -> dict:
    return {"colour": colour, "hard": hard, "critic": f"{stub_rubric(said)}\n<answer>1</answer>",
            "critic_swapped": f"{stub_rubric(said_swapped)}\n<answer>1</answer>"}


def test_rubric_evidence_counts_both_orders_per_slice(tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    rows = [_row("red", False, "red", "blue"), _row("blue", False, "blue", "blue"),
            _row("yellow", True, "green", "green")]
    answers.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert rubric_evidence(answers, SLICES["other"]) == 3 / 4
    assert rubric_evidence(answers, SLICES["hard"]) == 0.0
    assert rubric_evidence(answers, SLICES["overall"]) == 3 / 6


def test_a_critique_without_a_rubric_names_no_colour(tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"colour": "red", "hard": False, "critic": "red <answer>1</answer>",
                                   "critic_swapped": "<rubric>red</rubric>"}) + "\n")
    assert rubric_evidence(answers, SLICES["overall"]) == 1 / 2
