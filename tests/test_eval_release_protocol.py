"""``--protocol release`` builds what the release's eval scripts build, and ``--order`` picks the pair order.

The reference is the release's own ``make_conv`` (compiled from a verbatim copy
in ``tests/fixtures/release_eval/``) and its remaining steps restated here
(``release_inputs``): their messages (the image path, or 32 frame paths picked
with ``numpy.linspace`` from the sorted folder), ``apply_chat_template``,
``process_vision_info(messages, return_video_kwargs=True)`` and one processor
call. Our runner's rows must give the same text and the same model tensors
(the video's ``second_per_grid_ts`` is checked against the release's pinned
transformers, see the test).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import release_make_conv
from proxy_grm.evaluation import release
from proxy_grm.evaluation.benchmarks import BENCHMARKS, Order
from proxy_grm.evaluation.cli import generate_main, score_main
from proxy_grm.evaluation.runner import RunConfig, answer_rows, load_questions, shown_reversed
from proxy_grm.toy.benchmark_fixtures import make_benchmark_fixture

PAIRS = 8
TENSORS = ("input_ids", "attention_mask", "pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw")


def release_inputs(processor: Any, row: dict[str, Any], qs: str) -> dict[str, Any]:
    """The processor inputs the release's generation scripts build for one row."""
    from qwen_vl_utils import process_vision_info

    if row.get("image"):
        media = {"type": "image", "image": row["image"]}
    else:
        folder = Path(row["video"])
        frames = sorted(str(folder / name) for name in os.listdir(folder))
        media = {"type": "video", "video": [frames[j] for j in np.linspace(0, len(frames) - 1, 32, dtype=int)]}
    messages = [{"role": "user", "content": [media, {"type": "text", "text": qs}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    images, videos, _ = process_vision_info(messages, return_video_kwargs=True)
    return processor(text=[text], images=images or None, videos=videos or None, padding=True, return_tensors="pt")


class CapturingGenerator:
    """Our transformers backend with ``model.generate`` replaced by a recorder (no tokens generated)."""

    def __init__(self, model_dir: Path):
        from proxy_grm.generation import TransformersGenerator

        self.inner = TransformersGenerator(model_dir, dtype="float32")
        self.captured: list[dict[str, Any]] = []

        def generate(**kwargs: Any) -> Any:
            self.captured.append(kwargs)
            return kwargs["input_ids"]

        self.inner.model.generate = generate

    def generate(self, batch: list, max_new_tokens: int) -> list[str]:
        return [f"  <answer>{i % 2 + 1}</answer>\n" for i, _ in enumerate(self.inner.generate(batch, max_new_tokens))]


@pytest.fixture(scope="module")
def capturing(tiny_model_dir: Path) -> CapturingGenerator:
    return CapturingGenerator(tiny_model_dir)


@pytest.mark.parametrize("benchmark", sorted(BENCHMARKS))
def test_release_text_and_model_inputs_equal_the_release(tmp_path, capturing, benchmark):
    """Same ``qs`` character for character, same token ids and vision tensors (images and video)."""
    questions_file = make_benchmark_fixture(tmp_path, benchmark, PAIRS)
    questions = load_questions(questions_file)
    config = RunConfig(BENCHMARKS[benchmark], questions_file, tmp_path / "answers.jsonl", seed=3,
                       protocol="release")
    indices = [0, 1, PAIRS - 1]  # the MM-RLHF fixture's last row is a video
    for index in indices:
        capturing.captured.clear()
        (row,) = answer_rows(config, [index], questions, capturing)
        question = questions[index]
        first, second = ((question["rejected"], question["chosen"]) if row["reverse"]
                         else (question["chosen"], question["rejected"]))
        assert row["qs"] == release_make_conv(benchmark)(question["prompt"], first, second)
        assert row["critic"] == "<answer>1</answer>"  # stripped, as the release does
        ours, theirs = capturing.captured[0], release_inputs(capturing.inner.processor, question, row["qs"])
        assert ours["input_ids"].tolist() == theirs["input_ids"].tolist()
        for name in TENSORS:
            assert (name in ours) == (name in theirs), name
            if name in theirs:
                assert ours[name].shape == theirs[name].shape and bool((ours[name] == theirs[name]).all()), name
    if benchmark == "mm_rlhf_rewardbench":
        assert "pixel_values_videos" in ours, "the last MM-RLHF fixture row is a video"
        # The video's temporal positions: the release's pinned transformers (4.57.1) computes
        # temporal_patch_size / 2.0 when no fps reaches the processor, as in its script; transformers 5
        # falls back to another fps there, so the reference is the 4.57.1 value, not ``theirs``.
        assert ours["second_per_grid_ts"].tolist() == [2 / 2.0]


@pytest.mark.parametrize(("benchmark", "critic", "verdict"), [
    ("vl_rewardbench", "<answer>1 or 2</answer>", 2),
    ("vl_rewardbench", "<answer> Response 1 </answer>", 1),
    ("vl_rewardbench", "Chatbot 1 fails.\nChatbot 2 wins", 2),
    ("vl_rewardbench", "no digit at all", None),
    ("multimodal_rewardbench", "<answer>2</answer>", 2),
    ("multimodal_rewardbench", "<answer>Response 1</answer> not 2", 2),
    ("multimodal_rewardbench", "<answer>1 or 2</answer>", 2),
    ("mm_rlhf_rewardbench", "<answer>1</answer>", 1),
    ("mm_rlhf_rewardbench", "<answer>1 or 2</answer>", 2),
    ("mm_rlhf_rewardbench", "Chatbot 1 and 2 differ; 1 is vague\nso 2 wins", 1),  # no DOTALL: the first line's last
    ("mm_rlhf_rewardbench", "<answer>\n1\n</answer>", 1),
    ("mm_rlhf_rewardbench", "none", None),
])
def test_release_verdict_parsers(benchmark, critic, verdict):
    assert release.VERDICT_PARSERS[benchmark](critic) == verdict


@pytest.mark.parametrize(("benchmark", "unparsed_rewards"), [
    ("vl_rewardbench", [0, 0]), ("multimodal_rewardbench", [0, 1]), ("mm_rlhf_rewardbench", [0, 1])])
def test_release_rows_carry_the_release_fields(tmp_path, benchmark, unparsed_rewards):
    class Fixed:
        def generate(self, batch: list, max_new_tokens: int) -> list[str]:
            return ["no verdict here"] * len(batch)

    questions_file = make_benchmark_fixture(tmp_path, benchmark, 4)
    config = RunConfig(BENCHMARKS[benchmark], questions_file, tmp_path / "a.jsonl", protocol="release")
    rows = answer_rows(config, [0, 1], load_questions(questions_file), Fixed())
    assert all({"qs", "critic", "rewards", "reverse"} <= set(r) for r in rows)
    assert [r["rewards"] for r in rows] == [unparsed_rewards] * 2 and rows[0]["verdict"] is None


def test_release_answers_file_scores_as_the_release(tmp_path, capsys):
    """A release-protocol answers file (fake model) through the release scorer, lines as the release prints."""
    class Alternating:
        def generate(self, batch: list, max_new_tokens: int) -> list[str]:
            return [f"<answer>{1 + i % 2}</answer>" for i in range(len(batch))]

    questions_file = make_benchmark_fixture(tmp_path, "vl_rewardbench", PAIRS)
    config = RunConfig(BENCHMARKS["vl_rewardbench"], questions_file, tmp_path / "a.jsonl", protocol="release")
    rows = answer_rows(config, list(range(PAIRS)), load_questions(questions_file), Alternating())
    config.answers_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = score_main("vl_rewardbench", ["--file_path", str(config.answers_file), "--protocol", "release",
                                            "--no-report"])
    correct = sum((r["rewards"][0] < r["rewards"][1]) if r["reverse"] else (r["rewards"][0] > r["rewards"][1])
                  for r in rows)
    assert metrics["correct"] == correct
    assert capsys.readouterr().out.splitlines()[-1].startswith("Macro Accuracy: ")


@pytest.mark.parametrize(("benchmark", "protocol", "order", "expected"), [
    ("vl_rewardbench", "authors", None, Order.RANDOM),
    ("mm_rlhf_rewardbench", "authors", None, Order.RANDOM),
    ("multimodal_rewardbench", "authors", None, Order.ORIGINAL),
    ("multimodal_rewardbench", "release", None, Order.RANDOM),
    ("vl_rewardbench", "release", Order.ORIGINAL, Order.ORIGINAL),
    ("multimodal_rewardbench", "authors", Order.RANDOM, Order.RANDOM),
])
def test_order_defaults(tmp_path, benchmark, protocol, order, expected):
    config = RunConfig(BENCHMARKS[benchmark], tmp_path / "q", tmp_path / "a", protocol=protocol, order=order)
    assert config.pair_order is expected


def test_original_order_follows_the_released_file(tmp_path):
    config = RunConfig(BENCHMARKS["multimodal_rewardbench"], tmp_path / "q", tmp_path / "a")
    assert shown_reversed(config, {"chosen_first": False}, 0) is True
    assert shown_reversed(config, {"chosen_first": True}, 1) is False
    assert shown_reversed(config, {}, 2) is False  # no recorded order: as given, chosen first
    seeded = RunConfig(BENCHMARKS["multimodal_rewardbench"], tmp_path / "q", tmp_path / "a", order=Order.RANDOM)
    orders = [shown_reversed(seeded, {"chosen_first": True}, i) for i in range(32)]
    assert len(set(orders)) == 2 and orders == [shown_reversed(seeded, {}, i) for i in range(32)]


def test_order_and_protocol_flags(tmp_path, capsys):
    questions = make_benchmark_fixture(tmp_path, "vl_rewardbench", 4)
    base = ["--model-path", "unused", "--question-file", str(questions), "--answers-file", str(tmp_path / "a.jsonl")]
    with pytest.raises(SystemExit):
        generate_main("vl_rewardbench", [*base, "--protocol", "release", "--verdict-fallback", "last_digit"])
    assert "--verdict-fallback applies to the authors protocol" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        generate_main("vl_rewardbench", [*base, "--order", "sorted"])
    assert "invalid choice: 'sorted'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, max_pixels", [
    (["--protocol", "release"], 16384 * 28 * 28),
    (["--protocol", "release", "--max-pixels", str(64 * 28 * 28)], 64 * 28 * 28),
    ([], 1003520),
])
def test_release_protocol_keeps_the_release_eval_image_cap(argv: list[str], max_pixels: int, monkeypatch) -> None:
    from proxy_grm.evaluation.cli import eval_pixel_budget, generate_parser

    monkeypatch.delenv("MAX_PIXELS", raising=False)
    args = generate_parser(BENCHMARKS["vl_rewardbench"]).parse_args(
        ["--model-path", "m", "--question-file", "q", "--answers-file", "a", *argv])
    assert eval_pixel_budget(args).max_pixels == max_pixels
