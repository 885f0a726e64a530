"""The shortest chain that learns: toy data -> split -> GRM SFT (swift sft) -> held-out pairs in both orders.

The toy label follows from the image (``proxy_grm.toy.colour_task``) and the stub teacher's critiques
carry the colour they saw, so what SFT can learn first is the evidence: a rubric that names the image's
colour. This chain (the demo's own stage code, at the settings that learned it) asserts that on pairs no
stage saw. A label flipped in the split sends the teacher's blind-spot pairs (yellow images with a wide green
band, read as green) to SFT instead of the others, and a lost image leaves nothing to read the colour from:
either way the rubric names the right colour at about chance. The verdict (the number that followed that
colour where the eval lists the responses' colours) forms much later: at the learning run's settings (steps of
4 rows, constant lr 1e-3), this chain's 323 rows left it at 50% at steps 500, 1,000, ..., 2,500, and the
learning run's 1,000 rows reach 70% at step 1,500 and 100% at 3,000, about an hour on 2 cores: the learning run
measures it (README, "Does it learn?"), this test does not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import REPO_ROOT
from proxy_grm.demo import heldout, pipeline

HELDOUT_PAIRS = 40


@pytest.mark.slow
def test_grm_sft_rubrics_name_the_colour_of_held_out_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    for name, value in pipeline.pixel_env().items():
        monkeypatch.setenv(name, value)
    config = pipeline.DemoConfig(out_dir=tmp_path, teacher="stub", pairs_per_source=192, sft_steps=200,
                                 sft_learning_rate="2e-3", sft_warmup_ratio="0.05", sft_gradient_accumulation=2,
                                 repo=REPO_ROOT)
    model = pipeline.build_model(config)
    data = pipeline.prepare_with_stub_teacher(config, pipeline.make_sources(config))
    assert data.split.written["grm_sft"] >= 200
    grm = pipeline.sft(config, "scripts/sft/train_grm_sft.sh", model.model, tmp_path / "data" / "grm_sft.jsonl",
                       "grm_sft", config.sft_steps)
    pairs = heldout.write_pairs(tmp_path / "heldout" / "pairs.jsonl", HELDOUT_PAIRS, seed=0)
    accuracy = heldout.grm_accuracy(config.python, Path(pairs.questions), grm.checkpoint,
                                    tmp_path / "heldout" / "answers.jsonl", tmp_path / "heldout.log",
                                    config.grm_max_new_tokens)
    # SFT saw no image of the hard slice (the teacher's blind spot, the banded yellows): the other images carry
    # the figure (chance: one in five colours).
    assert accuracy.evidence_other is not None and accuracy.evidence_other >= 0.75, accuracy
