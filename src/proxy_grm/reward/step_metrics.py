"""One training step's reward parts as the numbers a reader wants in the training log.

Both GRPO trainers use it: verl (``proxy_grm.launch.verl_trainer``, logged as ``reward_parts/<key>``)
and ms-swift (``swift_grpo.summarise_steps``, the demo's per-step table). Rates and rewards are
means over the step's rollouts; the proxy's calls, failures, truncated critiques and retries are
counts, so a proxy that starts failing shows up as a number that grows, not a mean that drifts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

COUNT_KEYS = ("proxy_called", "proxy_failed", "proxy_truncated")
NOT_SUMMARISED = frozenset({"proxy_failed_replica"})  # an index into proxy_url: the trainer's guard reads it


def step_summary(parts: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per key: the mean over rollouts, or the sum for ``COUNT_KEYS``; plus ``proxy_retries`` and ``rollouts``.

    Every numeric key the reward function returned but ``NOT_SUMMARISED`` is kept (a key some rollouts lack is averaged
    over those that have it). ``proxy_retries`` counts the HTTP attempts beyond each call's first.

    >>> step_summary([{"score": 1.0, "proxy_called": 1.0, "proxy_attempts": 3.0},
    ...               {"score": 0.0, "proxy_called": 1.0, "proxy_attempts": 1.0}])
    {'rollouts': 2.0, 'proxy_attempts': 2.0, 'proxy_called': 2.0, 'score': 0.5, 'proxy_retries': 2.0}
    """
    values: dict[str, list[float]] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in NOT_SUMMARISED:
                values.setdefault(key, []).append(float(value))
    summary = {"rollouts": float(len(parts))}
    for key, column in sorted(values.items()):
        summary[key] = sum(column) if key in COUNT_KEYS else sum(column) / len(column)
    if "proxy_attempts" in values:
        summary["proxy_retries"] = sum(max(attempts - 1.0, 0.0) for attempts in values["proxy_attempts"])
    return summary
