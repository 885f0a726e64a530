"""Rubric transfer: items from a GRM answers file, judged by the real proxy service, with and without rubrics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from proxy_grm.evaluation.cli import transfer_main
from proxy_grm.toy.servers import free_port
from proxy_grm.evaluation.rubric_transfer import (
    NEUTRAL_RUBRIC,
    EvaluatorError,
    ProxyEvaluator,
    TransferInputs,
    TransferItem,
    run_transfer,
    transfer_items,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CRITIQUE = ("<rubric>\n1. Colour accuracy (70%)\n2. Brevity (30%)\n<justify>colour matters</justify>\n</rubric>"
            "<eval>...</eval><answer>{verdict}</answer>")


def answers_file(tmp_path: Path) -> Path:
    image = tmp_path / "red.png"
    Image.new("RGB", (56, 56), "red").save(image)
    rows = [
        {"id": "a", "prompt": "Colour?", "chosen": "Red.", "rejected": "Blue.", "image": str(image),
         "reverse": False, "row_index": 0, "critic": CRITIQUE.format(verdict=1)},
        {"id": "a", "prompt": "Colour again?", "chosen": "Red!", "rejected": "Green.", "image": str(image),
         "reverse": True, "row_index": 1, "critic": CRITIQUE.format(verdict=2)},
        {"id": "b", "prompt": "Shape?", "chosen": "Square.", "rejected": "Circle.", "image": str(image),
         "reverse": False, "row_index": 2, "critic": "<eval>no rubric</eval><answer>1</answer>"},
        {"id": "c", "prompt": "Clip?", "chosen": "x", "rejected": "y", "video": str(tmp_path),
         "reverse": False, "row_index": 3, "critic": CRITIQUE.format(verdict=1)},
    ]
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_items_follow_the_grm_order_and_strip_justify(tmp_path):
    inputs = transfer_items(answers_file(tmp_path))
    assert (inputs.no_rubric, inputs.video_rows, len(inputs.items)) == (1, 1, 2)
    first, second = inputs.items
    assert (first.response_1, first.response_2, first.answer) == ("Red.", "Blue.", 1)
    assert (second.response_1, second.response_2, second.answer) == ("Green.", "Red!", 2)
    assert first.rubric == "<rubric>\n1. Colour accuracy (70%)\n2. Brevity (30%)\n</rubric>"


class RubricFollower:
    """An evaluator that is right exactly when it gets a real rubric (accounting check only)."""

    def judge(self, items: list[TransferItem], rubrics: list[str]) -> list[int | None]:
        return [None if rubric == NEUTRAL_RUBRIC else item.answer for item, rubric in zip(items, rubrics)]


def test_accuracy_with_and_without_rubric(tmp_path):
    summary, rows = run_transfer(transfer_items(answers_file(tmp_path)), RubricFollower(), lambda _: None)
    assert summary["with_rubric"] == {"accuracy": 1.0, "correct": 2, "unparsed": 0}
    assert summary["without_rubric"] == {"accuracy": 0.0, "correct": 0, "unparsed": 2}
    assert summary["gain"] == 1.0 and len(rows) == 2


def test_unreachable_proxy_is_an_error_naming_the_url(tmp_path):
    evaluator = ProxyEvaluator(f"http://127.0.0.1:{free_port()}", retries=1, timeout_s=2)
    with pytest.raises(EvaluatorError, match=r"get_reward_mllm_batch: ConnectError: .* \(after 2 attempts\)"):
        evaluator.judge(transfer_items(answers_file(tmp_path)).items, ["<rubric>x</rubric>"] * 2)


@pytest.mark.slow
def test_transfer_through_the_real_proxy_service(tmp_path, tiny_model_dir, start_server, capsys):
    port = free_port()
    server = start_server([sys.executable, str(REPO_ROOT / "proxy/proxy.py"), "--model-path", str(tiny_model_dir),
                           "--backend", "transformers", "--dtype", "float32", "--port", str(port),
                           "--max-new-tokens", "8"], f"http://127.0.0.1:{port}/health")
    answers = answers_file(tmp_path)
    summary = transfer_main(["--answers-file", str(answers), "--evaluator", "proxy",
                             "--url", f"http://127.0.0.1:{port}", "--batch-size", "1"])
    assert summary["pairs"] == 2
    for condition in ("with_rubric", "without_rubric"):
        result = summary[condition]
        assert result["correct"] + result["unparsed"] <= 2
    saved = json.loads((tmp_path / "answers_rubric_transfer.json").read_text())
    assert saved["neutral_rubric"] == NEUTRAL_RUBRIC
    assert len((tmp_path / "answers_rubric_transfer.jsonl").read_text().splitlines()) == 2
    assert "/get_reward_mllm_batch" in server.log_tail(20000)
    assert "with the GRM's rubric" in capsys.readouterr().out


class PositionFollower:
    """Picks the response a rubric names by position ("Response k"), else judges right (a gullible evaluator)."""

    def judge(self, items: list[TransferItem], rubrics: list[str]) -> list[int | None]:
        return [int(rubric[rubric.index("Response ") + 9]) if "Response " in rubric else item.answer
                for item, rubric in zip(items, rubrics)]


def test_leak_rate_and_both_orders_show_a_gain_that_comes_from_a_leak():
    def item(index: int, rubric: str, answer: int) -> TransferItem:
        return TransferItem(index, "What colour?", "Red.", "Blue.", "i.png", answer, rubric)

    inputs = TransferInputs([item(0, "<rubric>Response 1 is better (100%)</rubric>", 1),
                             item(1, "<rubric>Names the colour blue (100%)</rubric>", 2)], 0, 0)
    summary, rows = run_transfer(inputs, PositionFollower(), lambda _: None)
    assert summary["with_rubric"]["accuracy"] == 1.0, "as shown, the leak looks like a perfect rubric"
    assert summary["with_rubric_swapped"] == {"accuracy": 0.5, "correct": 1, "unparsed": 0}
    assert summary["with_rubric_both_orders"] == {"accuracy": 0.5, "correct": 1}
    assert (summary["rubric_leaks"], summary["leak_rate"]) == (1, 0.5)
    assert summary["with_rubric_no_leak"] == {"accuracy": 1.0, "correct": 1, "unparsed": 0}
    assert [row["rubric_leak"] is not None for row in rows] == [True, False]
    assert [row["verdict_with_rubric_swapped"] for row in rows] == [1, 1]
