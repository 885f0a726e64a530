"""The learning run's targets: the bounds its figures (``report.learning_figures``, ``results.json``) are judged
against, in one place apart from the report that prints them."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

# Figure -> (comparison, bound), on held-out pairs in both orders. GRPO's reward must rise ("above"); on the hard
# slice GRPO must only hold its own ("at or above").
TARGETS: dict[str, tuple[str, float]] = {
    "grm_sft_overall": (">=", 0.75), "proxy_teacher_rubric": (">=", 0.90),
    "proxy_counterfactual_rubric": ("<=", 0.25), "proxy_grm_minus_no_rubric": (">=", 0.15),
    "grpo_last_minus_first_quarter_reward": (">", 0.0), "grpo_minus_sft_hard": (">=", 0.0)}
COMPARISONS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, ">": operator.gt}


def targets_met(figures: dict[str, Any]) -> dict[str, bool | None]:
    """Each target: met, not met, or None where its figure was not run."""
    return {name: None if figures.get(name) is None else COMPARISONS[comparison](figures[name], bound)
            for name, (comparison, bound) in TARGETS.items()}
