"""The demo's settings: its sizes and toy training settings (``DemoConfig``, every field a flag), the learning
run's preset, and the fixed values every stage shares (split sizes, image budget, held-out pair order)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy_grm.pixels import MAX_PIXELS_ENV, MIN_PIXELS_ENV
from proxy_grm.toy.tiny_model import TINY_MAX_PIXELS, TINY_MIN_PIXELS


@dataclass
class DemoConfig:
    """Sizes and the toy-only training settings (the launchers keep the release's defaults)."""

    out_dir: Path
    # ~25 GRM-SFT rows: trained on 11, the tiny GRM wrote 1/16 well-formed critiques on new prompts.
    pairs_per_source: int = 24
    teacher: str = "both"  # vllm | stub | both: which teacher feeds the training sets (stub when both)
    # The tiny random model learns the output formats from a few rows only at a high learning
    # rate, a long warm-up and many epochs (the release: lr 5e-6, warm-up 5%, 1 epoch, on a
    # pretrained 7B). With the release's 5% warm-up the first steps at lr 5e-3 set it back.
    sft_steps: int = 100
    proxy_sft_steps: int = 0  # 0: --sft-steps; the proxy's verdict needs more steps than the GRM's to form
    sft_learning_rate: str = "5e-3"
    sft_warmup_ratio: str = "0.15"
    sft_gradient_accumulation: int = 1
    sft_batch_size: int = 2
    # ms-swift's defaults; the learning run (docs/toy.md, "Does it learn?") takes a constant lr and no weight
    # decay, with which the probe learned the verdict (a decaying lr or weight decay 0.1 stopped it).
    sft_lr_scheduler: str = "cosine"
    sft_weight_decay: str = "0.1"
    proxy_backend: str = "vllm"
    eval_backend: str = "transformers"
    eval_pairs: int = 16
    # Held-out toy pairs (the first ones of --heldout-pairs) the protocol-fluency check prompts with; GRPO
    # trains on the whole hard pool (the teacher's blind spot, one image in 20: 5 GRM-RL rows at 24 pairs per
    # source).
    fluency_pairs: int = 4
    rollout_groups: int = 4
    max_new_tokens: int = 48
    grpo_steps: int = 4
    grpo_prompts_per_step: int = 2
    grpo_generations: int = 4
    grpo_learning_rate: str = "1e-4"
    # The launcher's default. An SFT checkpoint trained to a low loss samples nearly the same critique at 1.0;
    # GRPO learns only where a group's rollouts differ.
    grpo_temperature: str = "1.0"
    heldout_pairs: int = 40
    # About 1 drawn pair in 20 is in the teacher's blind spot (2 of 40): these more pairs, all from it, let
    # the hard slice (where GRPO trains) be measured on more than a few.
    heldout_hard_pairs: int = 16
    heldout_seed: int = 0
    ablation: bool = False
    # The checkout whose scripts and environments every stage runs (the demo runs from its root).
    repo: Path = field(default_factory=Path.cwd)

    @property
    def python(self) -> str:
        return sys.executable

    @property
    def vllm_python(self) -> Path:
        return self.repo / ".venv-vllm" / "bin" / "python"

    @property
    def proxy_steps(self) -> int:
        return self.proxy_sft_steps or self.sft_steps

    @property
    def grm_max_new_tokens(self) -> int:
        """A GRM critique (rubric, eval, answer) is about three times a proxy's."""
        return self.max_new_tokens * 3

    def path(self, *parts: str) -> Path:
        return self.out_dir.joinpath(*parts)


# The learning run (``--learning-run``; docs/toy.md, "Does it learn?"; tests/test_toy_learns.py): the stub teacher on
# 1,024 pairs per source, steps of 4 rows at a constant lr 1e-3 without weight decay (with ms-swift's decaying lr
# or weight decay 0.1 the probe's verdict stayed at chance), 2,000 GRM-SFT steps (1,500 left the verdict at 70%,
# 3,000 left GRPO nothing to learn on the hard slice), 4,000 Proxy-SFT steps, then 24 GRPO steps and the ablation.
LEARNING_RUN: dict[str, Any] = {
    "teacher": "stub", "pairs_per_source": 1024, "sft_steps": 2000, "proxy_sft_steps": 4000,
    "sft_learning_rate": "1e-3", "sft_warmup_ratio": "0.0333", "sft_batch_size": 4,
    "sft_lr_scheduler": "constant_with_warmup", "sft_weight_decay": "0", "grpo_steps": 24, "ablation": True,
}


# The most rows the split writes to each training set (``scripts/prepare_data.sh``'s ``*_SIZE``): the learning
# run's 1,024 pairs per source fill the SFT sets.
SPLIT_SIZES: dict[str, int] = {"grm_sft": 1000, "proxy_sft": 1000, "proxy_rl": 250, "grm_rl": 1000}


# The seed of the held-out eval's per-row order swap (``--seed``): the fluency check shows each pair as it did.
HELDOUT_ORDER_SEED = 0


def pixel_env() -> dict[str, str]:
    """The one image budget for every stage, inside the tiny processor's range (``proxy_grm.pixels``)."""
    return {MAX_PIXELS_ENV: str(TINY_MAX_PIXELS), MIN_PIXELS_ENV: str(TINY_MIN_PIXELS)}
