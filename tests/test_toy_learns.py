"""The shortest chain that learns: toy data -> split -> GRM SFT (swift sft) -> held-out pairs in both orders.

The toy label follows from the image (``colour_task``), so a label flipped in the split, a pair shown to the
trainer in another order than its label says, or an image lost on the way leaves the GRM at chance (50%:
every pair is judged as shown and swapped). The chain is the demo's own stage code at a smaller size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import REPO_ROOT
from proxy_grm.demo import heldout, pipeline

SFT_STEPS = 300
HELDOUT_PAIRS = 40


@pytest.mark.slow
def test_grm_sft_judges_held_out_toy_pairs_above_chance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    for name, value in pipeline.pixel_env().items():
        monkeypatch.setenv(name, value)
    config = pipeline.DemoConfig(out_dir=tmp_path, teacher="stub", pairs_per_source=96, sft_steps=SFT_STEPS,
                                 repo=REPO_ROOT)
    model = pipeline.build_model(config)
    data = pipeline.prepare_with_stub_teacher(config, pipeline.make_sources(config))
    assert data["split"]["written"]["grm_sft"] >= 100
    grm = pipeline.sft(config, "scripts/sft/train_grm_sft.sh", model["model"], tmp_path / "data" / "grm_sft.jsonl",
                       "grm_sft")
    pairs = heldout.write_pairs(tmp_path / "heldout" / "pairs.jsonl", HELDOUT_PAIRS, seed=0)
    accuracy = heldout.grm_accuracy(config.python, Path(pairs["questions"]), grm["checkpoint"],
                                    tmp_path / "heldout" / "answers.jsonl", tmp_path / "heldout.log",
                                    config.grm_max_new_tokens)
    # SFT saw no pair of the hard slice (the teacher's blind spot): the other colours carry the figure.
    assert accuracy["other"] >= 0.75, accuracy
    assert accuracy["overall"] >= 0.65, accuracy
