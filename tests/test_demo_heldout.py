"""The held-out figures: a critique's evidence is its rubric's colour, counted over both orders of a pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy_grm.datafiles import iter_jsonl
from proxy_grm.demo import stages
from proxy_grm.demo.heldout import SLICES, grm_accuracy, proxy_accuracy, rubric_evidence, shown_pairs
from proxy_grm.evaluation.benchmarks import VL_REWARDBENCH, Order
from proxy_grm.evaluation.cli import generate_parser
from proxy_grm.evaluation.runner import RunConfig, shown_reversed
from proxy_grm.images import DATA_URI_PREFIX
from proxy_grm.toy.colour_task import COLOURS, draw_image, in_blind_spot, write_heldout
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


def test_the_proxy_is_scored_per_rubric_overall_and_off_the_blind_spot(tmp_path: Path) -> None:
    """Through the real proxy app, judging by the rubric's words (the stub's ``--gullible``): the teacher's
    rubric is right off its blind spot and wrong on it (it names the wrong response's colour there)."""
    import base64

    from reward_stub_proxy import start_stub

    rows = []
    for key, distractor in ((0, "blue"), (2, "red"), (3, "green")):  # red, blue, banded yellow images
        colour = list(COLOURS)[key % len(COLOURS)]
        image = f"{DATA_URI_PREFIX}png;base64,{base64.b64encode(draw_image(key)).decode()}"
        rows.append({"image": image, "prompt": "What colour fills most of this image?", "colour": colour,
                     "chosen": f"It is mostly {colour}.", "rejected": f"It is mostly {distractor}.", "reverse": False,
                     **_row(colour, in_blind_spot(key), colour, colour)})
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps(row) + "\n" for row in rows))
    server, base = start_stub(tmp_path, "--gullible")
    try:
        result = proxy_accuracy(base, answers)
    finally:
        server.stop()
    assert result.judged == 6 and result.grm_rubrics == 6
    assert (result.teacher, result.other["teacher"]) == (4 / 6, 1.0)
    assert result.rule == result.grm == result.other["rule"] == 1.0
    assert result.counterfactual == result.other["counterfactual"] == 0.0


def test_the_fluency_check_shows_each_pair_as_the_held_out_eval_did(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``shown_pairs`` (the fluency check's prompts) against the order of the eval ``grm_accuracy`` runs, read from
    the flags it passes: a seed or order changed on one side only fails here."""
    questions = write_heldout(tmp_path / "pairs.jsonl", 8, seed=0)
    argv: list[str] = []

    def capture(command: list[str], *_: object) -> None:
        argv.extend(command)
        raise InterruptedError  # the eval itself is not run

    monkeypatch.setattr(stages, "run_logged", capture)
    with pytest.raises(InterruptedError):
        grm_accuracy("python", questions, "ckpt", tmp_path / "answers.jsonl", tmp_path / "log", 8)
    args = generate_parser(VL_REWARDBENCH).parse_args(argv[2:])
    config = RunConfig(VL_REWARDBENCH, questions, args.answers_file, seed=args.seed,
                       order=Order(args.order) if args.order else None)
    rows = [row for _, row in iter_jsonl(questions)]
    eval_order = [shown_reversed(config, row, index) for index, row in enumerate(rows)]
    assert len(set(eval_order)) == 2  # both ways round occur, so the comparison can fail
    pairs = shown_pairs(questions, 8)
    assert [pair.answer == 2 for pair in pairs] == eval_order
    assert [(pair.response_1, pair.response_2) for pair in pairs] == [
        (row["rejected"], row["chosen"]) if reverse else (row["chosen"], row["rejected"])
        for row, reverse in zip(rows, eval_order)]
    assert len(shown_pairs(questions, 3)) == 3
