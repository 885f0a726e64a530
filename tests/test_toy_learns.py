"""The shortest chain that learns: toy data -> split -> GRM SFT (swift sft) -> held-out pairs in both orders.

The toy label follows from the image (``proxy_grm.toy.colour_task``) and the stub teacher's critiques carry the
colour they saw, then its verdict (the number that followed that colour where the eval lists the responses'
colours). This chain (the demo's own stage code, at the learning run's SFT settings, ``pipeline.LEARNING_SFT``)
asserts both on pairs no stage saw, each judged as shown and swapped, so a constant verdict scores exactly 50%.
A label flipped in the split sends the teacher's blind-spot pairs (yellow images with a wide green band, read as
green) to SFT instead of the others, and a lost image leaves nothing to read the colour from: either way the
rubric names the right colour at about chance and the verdict follows it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import REPO_ROOT
from proxy_grm.demo import heldout, pipeline

HELDOUT_PAIRS = 40


@pytest.mark.slow
def test_grm_sft_judges_held_out_pairs_above_chance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    for name, value in pipeline.pixel_env().items():
        monkeypatch.setenv(name, value)
    config = pipeline.DemoConfig(out_dir=tmp_path, teacher="stub", pairs_per_source=192, repo=REPO_ROOT,
                                 **pipeline.LEARNING_SFT)
    model = pipeline.build_model(config)
    data = pipeline.prepare_with_stub_teacher(config, pipeline.make_sources(config))
    assert data.split.written["grm_sft"] >= 200
    grm = pipeline.sft(config, "scripts/sft/train_grm_sft.sh", model.model, tmp_path / "data" / "grm_sft.jsonl",
                       "grm_sft", config.sft_steps)
    pairs = heldout.write_pairs(tmp_path / "heldout" / "pairs.jsonl", HELDOUT_PAIRS, seed=0)
    accuracy = heldout.grm_accuracy(config.python, Path(pairs.questions), grm.checkpoint,
                                    tmp_path / "heldout" / "answers.jsonl", tmp_path / "heldout.log",
                                    config.grm_max_new_tokens)
    # SFT saw no image of the hard slice (the teacher's blind spot, the banded yellows, 2 of the 40 pairs): the
    # other images carry the figures. Chance: one colour in five for the rubric, 50% for the verdict.
    assert accuracy.evidence_other is not None and accuracy.evidence_other >= 0.75, accuracy
    assert accuracy.overall >= 0.75, accuracy
