"""The shortest chain that learns: toy data -> split -> GRM SFT (swift sft) -> held-out pairs in both orders.

The toy label follows from the image (``proxy_grm.toy.colour_task``) and the stub teacher's critiques carry the
colour they saw, then their verdict: the number that followed that colour where the eval lists the responses'
colours. This chain is the learning run's GRM half (``demo.config.LEARNING_RUN``: the demo's own stage code, 1,024
pairs per source, 2,000 steps of 4 rows, two threads: 26 minutes on 2 cores), and it asserts both the evidence
and the verdict on pairs no stage saw, each judged as shown and swapped, so a constant verdict scores exactly
50%. Shorter chains did not learn the verdict: the learning run's rows gave 70% at step 1,500, and 323 rows
(192 pairs per source) stayed at 50% at steps 500 to 2,500. A label flipped in the split sends the teacher's
blind-spot pairs (yellow images with a wide green band, read as green) to SFT instead of the others, and a lost
image leaves nothing to read the colour from: either way the rubric names the right colour at about chance.

The whole chain is marked ``learning``: ``bash scripts/test.sh`` (and CI) runs its data half, which already fails
on a flipped label, and leaves the SFT and held-out half to ``bash scripts/test.sh -m learning`` (docs/development.md,
"The learning check"), which took 26 minutes on 2 idle cores and 50 on 2 slower ones: more than half of CI's time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import REPO_ROOT
from proxy_grm.demo import heldout, pipeline
from proxy_grm.demo.config import LEARNING_RUN, SPLIT_SIZES, DemoConfig, pixel_env

HELDOUT_PAIRS = 40


def learning_run_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[DemoConfig, Path]:
    """The learning run's sources through the stub teacher and the split; its config and the GRM-SFT set.

    A label flipped in the split stops here: only the blind-spot pairs (read as green) would count as teacher
    correct, 92 GRM-SFT rows instead of a full set of 1,000 (checked by hand with the flip put in).
    """
    monkeypatch.chdir(REPO_ROOT)
    for name, value in pixel_env().items():
        monkeypatch.setenv(name, value)
    config = DemoConfig(out_dir=tmp_path, repo=REPO_ROOT, **LEARNING_RUN)
    data = pipeline.prepare_with_stub_teacher(config, pipeline.make_sources(config))
    assert data.split.written["grm_sft"] == SPLIT_SIZES["grm_sft"]  # a full set: 1,000 rows
    return config, tmp_path / "data" / "grm_sft.jsonl"


@pytest.mark.slow
def test_the_learning_runs_split_fills_the_grm_sft_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chain's data half, in every test run: the label-flip check of the split, in about a minute."""
    learning_run_data(tmp_path, monkeypatch)


@pytest.mark.learning
def test_grm_sft_judges_held_out_pairs_above_chance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, grm_sft_set = learning_run_data(tmp_path, monkeypatch)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # swift sft alone on the machine: both cores (0.74 s a step)
    model = pipeline.build_model(config)
    grm = pipeline.sft(config, "scripts/sft/train_grm_sft.sh", model.model, grm_sft_set, "grm_sft", config.sft_steps)
    pairs = heldout.write_pairs(tmp_path / "heldout" / "pairs.jsonl", HELDOUT_PAIRS, seed=0)
    accuracy = heldout.grm_accuracy(config.python, Path(pairs.questions), grm.checkpoint,
                                    tmp_path / "heldout" / "answers.jsonl", tmp_path / "heldout.log",
                                    config.grm_max_new_tokens)
    # SFT saw no image of the hard slice (the teacher's blind spot, 2 of the 40 pairs): the other pairs carry the
    # figures. Chance: one colour in five for the rubric, 50% for the verdict. The learning run: 100% and 100%.
    assert accuracy.evidence_other is not None and accuracy.evidence_other >= 0.75, accuracy
    assert accuracy.other is not None and accuracy.other >= 0.75, accuracy
