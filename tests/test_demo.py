"""The toy pipeline (README command 1) at an even smaller size: every stage, then a rerun that reuses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO_ROOT
from proxy_grm.data import split

STAGES = ["model", "sources", "data_vllm_teacher", "data_stub_teacher", "data", "sft_grm", "sft_proxy",
          "heldout_pairs", "heldout_sft", "heldout_proxy", "rewards", "grpo", "heldout_grpo", "eval_sft", "eval_grpo",
          "fluency_sft", "fluency_grpo", "transfer"]


def _demo(out: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "proxy_grm.demo", "--out", str(out), "--pairs-per-source", "6",
            "--sft-steps", "2", "--eval-pairs", "6", "--fluency-pairs", "1", "--rollout-groups", "2",
            "--max-new-tokens", "16", "--grpo-steps", "1", "--grpo-prompts-per-step", "1", "--grpo-generations", "2",
            "--heldout-pairs", "4", "--heldout-hard-pairs", "2", "--proxy-backend", "transformers", "--eval-backend",
            "transformers", *extra]
    return subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)


@pytest.mark.slow
def test_demo_runs_every_stage_then_reuses_them(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = _demo(out)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert sorted(p.stem for p in (out / "stages").glob("*.json")) == sorted(STAGES)
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted(
        ["grm_sft.jsonl", "proxy_sft.jsonl", "proxy_rl.parquet", "grm_rl.parquet", split.SUMMARY_FILE])

    report = (out / "report.md").read_text()
    for section in ("## Stages", "## Data", "## SFT", "## Protocol fluency", "## Rewards through verl's reward loop",
                    "## GRPO", "## Evaluation (sft", "## Evaluation (grpo", "## Rubric transfer"):
        assert section in report, section
    rewards = json.loads((out / "stages" / "rewards.json").read_text())["result"]
    assert len(rewards["modes"]) == 11
    # Two SFT steps teach no rubric, so the proxy may not be called here (test_grpo_swift.py checks the calls).
    assert all(mode["proxy_failures"] == 0 for mode in rewards["modes"].values())
    grpo = json.loads((out / "stages" / "grpo.json").read_text())["result"]
    assert [step["step"] for step in grpo["steps"]] == [1] and grpo["steps"][0]["rollouts"] == 2
    for plot in ("reward_modes.png", "grpo_rewards.png"):
        assert (out / "plots" / plot).stat().st_size > 0, plot
    vllm_teacher = json.loads((out / "stages" / "data_vllm_teacher.json").read_text())["result"]
    assert vllm_teacher["split"]["categories"].get("unparseable", 0) > 0

    figures = json.loads((out / "results.json").read_text())
    assert figures["heldout_pairs"] == 4 and figures["heldout_extra_hard_pairs"] == 2
    assert 0 <= figures["grm_sft_overall"] <= 1 and 0 <= figures["grm_sft_hard"] <= 1
    assert set(figures["targets_met"]) >= {"grm_sft_overall", "proxy_counterfactual_rubric"}
    assert "## Does it learn? Held-out toy pairs" in report and "leaking" in report
    # The GRPO evidence per step: the share of rollouts whose rubric names the image's true colour.
    assert "rubric names the colour" in report and len(figures["grpo_rubric_names_colour_by_step"]) == 1
    assert grpo["steps"][0]["rubric_names_colour"] is not None  # every rollout's image was read

    again = _demo(out)
    assert again.returncode == 0, again.stderr[-4000:]
    assert again.stdout.count(": reused") == len(STAGES)

    # Reuse follows what a stage depends on: other GRPO settings rerun GRPO and what reads its checkpoint only.
    changed = _demo(out, "--grpo-learning-rate", "2e-4")
    assert changed.returncode == 0, changed.stderr[-4000:]
    rerun = {"grpo", "heldout_grpo", "eval_grpo", "fluency_grpo", "transfer"}
    assert changed.stdout.count(": reused") == len(STAGES) - len(rerun), changed.stdout
    assert changed.stdout.count("running it again") == len(rerun)


def test_a_failing_stage_is_named(tmp_path: Path) -> None:
    # No pairs: the data stage fails, naming itself and the cause from its log.
    result = subprocess.run([sys.executable, "-m", "proxy_grm.demo", "--out", str(tmp_path / "demo"), "--teacher",
                             "stub", "--pairs-per-source", "0"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "demo failed: stage 'data_stub_teacher'" in result.stderr, result.stderr
    assert "no pairs survived conversion and filtering" in result.stderr, result.stderr
