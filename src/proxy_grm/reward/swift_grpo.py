"""``compute_score`` as an ms-swift GRPO reward function (the CPU / alternative trainer of stage C.2).

ms-swift builds a registered reward class as ``Cls(args=trainer_args)`` and calls it with the
completions first and every dataset column as an aligned list (``data_source``, ``reward_model``,
``extra_info`` of the verl RL parquet, plus ``trainer_state``). An async ``__call__`` runs under
``asyncio.run``, a new event loop per call, so the proxy clients of that loop are closed before it
returns. ``ms_swift/proxy_grm_reward.py`` registers this class under the name ``proxy_grm``.

ms-swift has no reward-kwargs field, so the settings verl takes from
``reward.custom_reward_function.reward_kwargs`` come here as one JSON object in
``$PROXY_GRM_REWARD_KWARGS``, read on every call and resolved by the same ``resolve_settings``.

ms-swift logs one number per reward function; verl logs every key of the reward dict. To keep
the parts (accuracy, proxy, format, rubric share, proxy calls and failures), each call appends
one line per rollout to ``<output_dir>/reward_parts.jsonl`` (its step, parts, completion and the pair's
``image``, so a reader can check a rubric against the image it judged); ``summarise_steps`` gives the
per-step summary (``step_summary``: means, and counts of proxy calls and failures).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from proxy_grm.datafiles import DataFileError, append_jsonl, iter_jsonl
from proxy_grm.reward.proxy_client import close_pools
from proxy_grm.reward.score import compute_score
from proxy_grm.reward.score_parts import SCORE_KEYS
from proxy_grm.reward.step_metrics import step_summary

REWARD_KWARGS_ENV = "PROXY_GRM_REWARD_KWARGS"
PARTS_FILE = "reward_parts.jsonl"


def reward_kwargs_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The reward kwargs in ``$PROXY_GRM_REWARD_KWARGS`` (a JSON object; unset: none).

    >>> reward_kwargs_from_env({"PROXY_GRM_REWARD_KWARGS": '{"mode": "explicit_additive"}'})
    {'mode': 'explicit_additive'}
    """
    raw = (os.environ if env is None else env).get(REWARD_KWARGS_ENV, "").strip()
    if not raw:
        return {}
    try:
        kwargs = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"${REWARD_KWARGS_ENV} is not JSON ({error}): {raw[:200]!r}") from None
    if not isinstance(kwargs, dict):
        raise ValueError(f"${REWARD_KWARGS_ENV} must be a JSON object, got {raw[:200]!r}")
    return kwargs


def _ground_truth(reward_model: Any, index: int) -> Any:
    if not isinstance(reward_model, Mapping) or "ground_truth" not in reward_model:
        raise ValueError(f"rollout {index}: column 'reward_model' must be {{'style', 'ground_truth'}} "
                         f"(the verl RL parquet's), got {reward_model!r:.200}")
    return reward_model["ground_truth"]


class SwiftProxyGRMReward:
    """The Proxy-GRM reward for ``swift rlhf --rlhf_type grpo --reward_funcs proxy_grm``."""

    def __init__(self, args: Any = None, **_: Any):
        output_dir = getattr(args, "output_dir", None)
        self.parts_file = Path(output_dir) / PARTS_FILE if output_dir else None

    async def __call__(self, completions: Sequence[str], data_source: Sequence[str],
                       reward_model: Sequence[Any], extra_info: Sequence[Any], trainer_state: Any = None,
                       **_: Any) -> list[float]:
        reward_kwargs = reward_kwargs_from_env()
        try:
            parts = await asyncio.gather(*(
                compute_score(source, completion, _ground_truth(model, i), info, **reward_kwargs)
                for i, (completion, source, model, info) in enumerate(
                    zip(completions, data_source, reward_model, extra_info, strict=True))))
        finally:
            await close_pools()
        # The rollouts of a step are generated before the trainer counts that step.
        step = getattr(trainer_state, "global_step", None)
        self._log(None if step is None else step + 1, completions, parts, extra_info)
        return [p["score"] for p in parts]

    def _log(self, step: int | None, completions: Sequence[str], parts: list[dict[str, float]],
             extra_info: Sequence[Any]) -> None:
        if self.parts_file is None:
            return
        with append_jsonl(self.parts_file) as out:
            out.write(*({"step": step, **part, "completion": completion, "image": _image_path(info)}
                        for completion, part, info in zip(completions, parts, extra_info)))


def _image_path(extra_info: Any) -> str | None:
    """The image path a row names (the RL parquet's ``extra_info.image``); anything else is not logged."""
    image = extra_info.get("image") if isinstance(extra_info, Mapping) else None
    return image if isinstance(image, str) else None


def summarise_steps(parts_file: Path) -> list[dict[str, float]]:
    """Per training step: ``step_summary`` of its rollouts (means, and counts of proxy calls and failures)."""
    by_step: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for lineno, row in iter_jsonl(parts_file):
        try:
            by_step[int(row["step"])].append({key: row[key] for key in SCORE_KEYS})
        except (KeyError, TypeError, ValueError):
            raise DataFileError(f"{parts_file}:{lineno}: not a reward-parts line") from None
    return [{"step": step, **step_summary(rows)} for step, rows in sorted(by_step.items())]
