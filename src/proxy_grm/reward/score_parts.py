"""What the reward function returns for one rollout: the score verl trains on and the parts it is made of.

A module of its own: verl loads ``score.py`` by path, outside the package's import machinery, and a class
defined there cannot be resolved by name (``dataclasses`` and ``typing`` look its module up in ``sys.modules``).
"""

from __future__ import annotations

from typing import TypedDict


class ScoreParts(TypedDict):
    """Each value a float, so verl's reward loop, ms-swift's GRPO log and ``reward_parts/*`` read them alike."""

    score: float  # verl's reward: accuracy + proxy + format - leak penalty
    accuracy_reward: float  # a, after the aggregation mode
    proxy_reward: float  # p, after the aggregation mode
    format_reward: float
    verdict_correct: float  # the rollout's verdict matches the label (before the mode)
    well_formatted: float
    proxy_judgement: float  # 1 / 0 / -1: the proxy picked the labelled response / another / no rubric
    has_rubric: float
    proxy_called: float
    proxy_failed: float
    proxy_failed_replica: float  # 1-based index of the replica that failed, 0 when none did
    proxy_attempts: float
    proxy_truncated: float  # the proxy's critique hit its length cap
    rubric_leak: float  # the rubric names the verdict outright
    proxy_consistent: float  # both orders agreed (proxy_check=swap)


SCORE_KEYS: tuple[str, ...] = tuple(ScoreParts.__annotations__)
