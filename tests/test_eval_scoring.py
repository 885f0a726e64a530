"""The three scorers on crafted answers files: both protocols, all unparsed policies.

Expected numbers and the release's printed lines are worked out by hand from the
benchmark facts (categories, metrics, the release scripts' formats).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from proxy_grm.evaluation.cli import score_main

REPO_ROOT = Path(__file__).resolve().parents[1]


def row(data_id: str, reverse: bool, verdict: int | None, unparsed_rewards=(0, 0), **fields) -> dict:
    rewards = list(unparsed_rewards) if verdict is None else ([1, 0] if verdict == 1 else [0, 1])
    return {"id": data_id, "reverse": reverse, "verdict": verdict, "rewards": rewards, **fields}


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# VL-RewardBench: correct / wrong / unparsed per category (authors' split in comments).
VL_ROWS = [
    row("RLAIF-V-1", False, 1),             # hallucination, correct (release: "general")
    row("RLHF-V-2", True, 2),               # hallucination, correct (release: "general")
    row("hallucination_pope_3", False, 2),  # hallucination, wrong
    row("mathverse_4", True, 1),            # reasoning, wrong
    row("mmmu_5", False, None),             # reasoning, unparsed (label 1)
    row("mmmu_5", True, 2),                 # reasoning, correct (repeated id)
    row("wildvision_7", False, 1),          # general, correct
    row("vlfeedback_8", True, None),        # general, unparsed (label 2)
]

MM_ROWS = [
    row("pairs_1", False, 1, Category="safety"),                  # safety/bias, correct
    row("toxic_2", True, 1, Category="Safety"),                   # safety/toxicity, wrong
    row("math_3", True, 2, Category="reasoning"),                 # reasoning/math, correct
    row("code_4", False, None, (0, 1), Category="reasoning"),     # reasoning/coding, unparsed (label 1)
    row("vqa_5", True, None, (0, 1), Category="vqa"),             # vqa, unparsed (label 2)
    row("k_6", False, 1, Category="knowledge"),                   # correct
    row("gc_7", False, 2, Category="open_generation/correctness_task"),  # wrong
    row("gp_8", True, 2, Category="open_generation/preference_task"),    # correct
    row("k_9", True, 2, Category="knowledge"),                    # correct
]

RLHF_ROWS = [
    row("q1", False, 1, image="data/mcq/1.jpg"),
    row("q1", True, 2, image="data/mcq/1.jpg"),
    row("q2", False, 1, image="data/Long/2.jpg"),
    row("q2", False, None, (0, 1), image="data/Long/2.jpg"),      # unparsed, label 1
    row("q3", True, 1, image="short/3.png"),                      # wrong
    row("q4", True, None, (0, 1), video="videos/clip4"),          # unparsed, label 2
    row("q4", False, 1, video="videos/clip4"),
    row("q5", False, 1, image="safety/5.jpg"),
    row("q6", False, 2, image="misc/6.jpg"),                      # wrong, no category
]


@pytest.mark.parametrize(
    ("policy", "overall", "per_category", "macro"),
    [
        ("wrong", 4 / 8, {"hallucination": 2 / 3, "reasoning": 1 / 3, "general": 1 / 2}, 1 / 2),
        ("exclude", 4 / 6, {"hallucination": 2 / 3, "reasoning": 1 / 2, "general": 1.0}, 13 / 18),
        # The official guess (seed 123, random() < 0.5 means 1) says 1 twice: right for label 1, wrong for 2.
        ("guess", 5 / 8, {"hallucination": 2 / 3, "reasoning": 2 / 3, "general": 1 / 2}, 11 / 18),
    ],
)
def test_vl_rewardbench_authors(tmp_path, capsys, policy, overall, per_category, macro):
    answers = write(tmp_path / "vl.jsonl", VL_ROWS)
    metrics = score_main("vl_rewardbench", ["--file_path", str(answers), "--unparsed", policy])
    assert metrics["overall"] == pytest.approx(overall)
    assert metrics["per_category"] == pytest.approx(per_category)
    assert metrics["macro"] == pytest.approx(macro)
    assert metrics["unparsed"] == 2 and metrics["unparsed_policy"] == policy
    saved = json.loads((tmp_path / "vl_metrics.json").read_text())
    assert {"protocol", "unparsed_policy", "unparsed", "overall", "per_category", "macro"} <= set(saved)
    assert saved["protocol"] == "authors"
    assert (tmp_path / "vl_metrics.png").read_bytes().startswith(b"\x89PNG")
    assert "| hallucination |" in (tmp_path / "vl_metrics.md").read_text()
    out = capsys.readouterr().out
    assert "Unparseable verdicts: 2 of 8" in out and f"policy: {policy} (" in out


def test_vl_rewardbench_default_policy_is_stated(tmp_path, capsys):
    metrics = score_main("vl_rewardbench", ["--file_path", str(write(tmp_path / "vl.jsonl", VL_ROWS))])
    assert metrics["unparsed_policy"] == "exclude" and metrics["unparsed_policy_is_default"]
    assert "policy: exclude (the default for VL-RewardBench: the official" in capsys.readouterr().out


VL_RELEASE_LINES = """Category: reasoning
  Samples: 3
  Accuracy: 0.3333
Category: hallucination
  Samples: 1
  Accuracy: 0.0000
Category: general
  Samples: 4
  Accuracy: 0.7500
Average Accuracy (Micro): 0.5000
Macro Accuracy: 0.3611
"""


def test_vl_rewardbench_release_entry_point(tmp_path):
    """The eval script itself: stdout and the text file are exactly the release's lines."""
    answers = write(tmp_path / "run.jsonl", VL_ROWS)
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "eval/get_acc_vl_reward_bench.py"), "--file_path", str(answers),
         "--protocol", "release"], capture_output=True, text=True, check=True)
    assert result.stdout == VL_RELEASE_LINES
    assert (tmp_path / "run_acc.txt").read_text() == VL_RELEASE_LINES
    assert "unparseable verdicts: 2 of 8" in result.stderr
    saved = json.loads((tmp_path / "run_metrics.json").read_text())
    assert saved["protocol"] == "release" and saved["macro"] == pytest.approx(13 / 36)


MM_RELEASE_PRINTED = """acc all: 6 / 9 = 0.666667
acc knowledge: 2 / 2 = 1.000000
acc open_generation/correctness_task: 0 / 1 = 0.000000
acc open_generation/preference_task: 1 / 1 = 1.000000
acc reasoning/coding: 0 / 1 = 0.000000
acc reasoning/math: 1 / 1 = 1.000000
acc safety/bias: 1 / 1 = 1.000000
acc safety/toxicity: 0 / 1 = 0.000000
acc vqa: 1 / 1 = 1.000000
"""
MM_RELEASE_FILE = MM_RELEASE_PRINTED + """Overall (Micro): 6 / 9 = 0.666667
Overall (Macro over shown groups): 0.629630
"""


def test_multimodal_rewardbench_release(tmp_path, capsys):
    answers = write(tmp_path / "mm.jsonl", MM_ROWS)
    metrics = score_main("multimodal_rewardbench", ["--file_path", str(answers), "--protocol", "release"])
    assert capsys.readouterr().out == MM_RELEASE_PRINTED
    assert (tmp_path / "mm_results.txt").read_text() == MM_RELEASE_FILE
    assert metrics["overall"] == pytest.approx(6 / 9)  # the unparsed [0, 1] row counts when reversed


@pytest.mark.parametrize(("policy", "overall", "coding", "vqa"),
                         [("wrong", 5 / 9, 0.0, 0.0), ("exclude", 5 / 7, None, None), ("guess", 6 / 9, 1.0, 0.0)])
def test_multimodal_rewardbench_authors(tmp_path, capsys, policy, overall, coding, vqa):
    answers = write(tmp_path / "mm.jsonl", MM_ROWS)
    metrics = score_main("multimodal_rewardbench", ["--file_path", str(answers), "--unparsed", policy])
    assert metrics["overall"] == pytest.approx(overall)
    assert metrics["per_category"]["reasoning/coding"] == coding
    assert metrics["per_category"]["vqa"] == vqa
    assert metrics["per_category"]["safety/bias"] == 1.0 and metrics["per_category"]["safety/toxicity"] == 0.0
    assert metrics["unparsed"] == 2


def test_multimodal_rewardbench_default_is_seeded_guess(tmp_path, capsys):
    answers = write(tmp_path / "mm.jsonl", MM_ROWS)
    metrics = score_main("multimodal_rewardbench", ["--file_path", str(answers), "--no-report"])
    assert metrics["unparsed_policy"] == "guess" and metrics["guess_seed"] == 123
    assert metrics == score_main("multimodal_rewardbench", ["--file_path", str(answers), "--no-report"])
    assert list(metrics["per_category"])[:2] == ["open_generation/correctness_task", "open_generation/preference_task"]
    assert metrics["per_category"]["open_generation/preference_task"] == 1.0


def test_multimodal_rewardbench_guess_is_the_official_draw(tmp_path, capsys):
    """The official scorer: ``random.seed(123)``, then per unparsed row in file order
    ``'A' if random.random() < 0.5 else 'B'`` (A: the first response shown)."""
    import random

    rows = [row(f"vqa_{i}", bool(i % 3 == 0), None if i % 2 else 1, (0, 1), Category="vqa") for i in range(40)]
    random.seed(123)
    official = sum(
        (1 if random.random() < 0.5 else 2) == (2 if r["reverse"] else 1) if r["verdict"] is None
        else r["verdict"] == (2 if r["reverse"] else 1)
        for r in rows)
    metrics = score_main("multimodal_rewardbench",
                         ["--file_path", str(write(tmp_path / "mm.jsonl", rows)), "--no-report"])
    assert metrics["correct"] == official and metrics["unparsed"] == 20


MM_RLHF_RELEASE_LINES = """Category-wise Metrics:
Category: mcq
  Accuracy: 1.0000
  ACC+: 1.0000
  Total Samples: 2
  Total IDs: 1
Category: long
  Accuracy: 0.5000
  ACC+: 0.0000
  Total Samples: 2
  Total IDs: 1
Category: short
  Accuracy: 0.0000
  ACC+: 0.0000
  Total Samples: 1
  Total IDs: 1
Category: safety
  Accuracy: 1.0000
  ACC+: 1.0000
  Total Samples: 1
  Total IDs: 1
Category: video
  Accuracy: 1.0000
  ACC+: 1.0000
  Total Samples: 2
  Total IDs: 1

Overall Metrics:
Overall Accuracy: 0.6667
Overall ACC+: 0.5000
Total Samples: 9
Total IDs: 6
"""


def test_mm_rlhf_release(tmp_path, capsys):
    answers = write(tmp_path / "rlhf.jsonl", RLHF_ROWS)
    score_main("mm_rlhf_rewardbench", ["--file_path", str(answers), "--protocol", "release"])
    assert capsys.readouterr().out == MM_RLHF_RELEASE_LINES
    assert (tmp_path / "rlhf_result.txt").read_text() == MM_RLHF_RELEASE_LINES


@pytest.mark.parametrize(("policy", "acc", "acc_plus", "video"),
                         [("wrong", 5 / 9, 2 / 6, 0.5), ("exclude", 5 / 7, 4 / 6, 1.0), ("guess", 6 / 9, 3 / 6, 0.5)])
def test_mm_rlhf_authors(tmp_path, capsys, policy, acc, acc_plus, video):
    answers = write(tmp_path / "rlhf.jsonl", RLHF_ROWS)
    metrics = score_main("mm_rlhf_rewardbench", ["--file_path", str(answers), "--unparsed", policy])
    assert metrics["overall"] == pytest.approx(acc)
    assert metrics["acc_plus"] == pytest.approx(acc_plus)
    assert metrics["per_category"]["video"] == video
    assert metrics["per_category"]["other"] == 0.0  # no keyword in the path
    assert metrics["question_ids"] == 6
    saved = json.loads((tmp_path / "rlhf_metrics.json").read_text())
    assert "acc_plus" in saved and saved["unparsed"] == 2


def test_position_consistency(tmp_path, capsys):
    rows = [dict(row("a", False, 1), verdict_swapped=2),   # same response both times
            dict(row("b", True, 2), verdict_swapped=2),    # follows the position
            dict(row("c", False, 1), verdict_swapped=None)]
    metrics = score_main("vl_rewardbench", ["--file_path", str(write(tmp_path / "b.jsonl", rows)), "--no-report"])
    assert metrics["position_consistency"] == pytest.approx(1 / 3)
    assert metrics["pairs_in_both_orders"] == 3


def test_release_files_without_verdict_field(tmp_path, capsys):
    """Answers written by the release itself: the verdict is read back from ``rewards``."""
    rows = [{"id": "x", "rewards": [1, 0], "reverse": False}, {"id": "y", "rewards": [0, 0], "reverse": True}]
    metrics = score_main("vl_rewardbench", ["--file_path", str(write(tmp_path / "r.jsonl", rows)), "--no-report"])
    assert metrics["unparsed"] == 1 and metrics["overall"] == 1.0


def test_bad_input_names_file_and_line(tmp_path, capsys):
    answers = write(tmp_path / "bad.jsonl", [row("a", False, 1), {"id": "b", "reverse": False}])
    with pytest.raises(SystemExit):
        score_main("vl_rewardbench", ["--file_path", str(answers)])
    assert f"{answers}:2: missing field 'rewards'" in capsys.readouterr().err


def test_unparsed_flag_rejected_with_release_protocol(tmp_path, capsys):
    answers = write(tmp_path / "a.jsonl", VL_ROWS)
    with pytest.raises(SystemExit):
        score_main("vl_rewardbench", ["--file_path", str(answers), "--protocol", "release", "--unparsed", "wrong"])
    assert "--unparsed applies to the authors protocol" in capsys.readouterr().err
