"""verl's v1 trainer, with each training step's reward parts in the step's metrics.

verl 0.9.1 logs a step's scores, advantages and lengths (``PPOTrainer._compute_metrics``,
verl/trainer/ppo/v1/trainer_base.py) but none of the other keys the reward function returns:
those reach only validation metrics and rollout dumps. Proxy-GRM's reward returns the parts a
run is watched by (accuracy, proxy and format rewards, proxy calls, failures and retries), so
``RewardPartMetrics`` adds them: after verl's own metrics it reads the step's rollouts'
``extra_fields["reward_extra_info"]`` from the TransferQueue, where verl's agent loop put them
(verl/trainer/ppo/v1/agent_loop_tq.py), and logs ``reward_parts/<key>`` (``step_summary``).

``TaskRunner`` is verl's ``TaskRunnerV1`` (verl/trainer/main_ppo.py) except that, while it runs,
the trainer registered for ``trainer.v1.trainer_mode`` (any of verl's) is that class plus
``RewardPartMetrics``. The mode keeps its name, so every check verl makes on it still holds. It
runs in its own Ray actor process, the only one that builds the trainer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray
import transfer_queue as tq
from omegaconf import DictConfig
from verl.trainer.main_ppo import TaskRunnerV1
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, PPOTrainer, get_trainer_cls

from proxy_grm.reward.step_metrics import step_summary

METRIC_PREFIX = "reward_parts/"


def rollout_reward_infos(batch: Any) -> list[dict[str, Any]]:
    """The reward function's extra keys for each real (not padding) rollout of a step's ``KVBatchMeta``."""
    keys = [key for key, tag in zip(batch.keys, batch.tags, strict=True) if not tag.get("is_padding", False)]
    if not keys:
        return []
    data = tq.kv_batch_get(keys=keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
    # A NonTensorStack or a tensordict LinkedList (a list), depending on the stored values.
    stored = data["extra_fields"]
    rows = stored.tolist() if hasattr(stored, "tolist") else list(stored)
    return [(fields.get("reward_extra_info") or {}) if isinstance(fields, dict) else {} for fields in rows]


class RewardPartMetrics:
    """Mixin for a verl v1 trainer: ``reward_parts/<key>`` in every training step's metrics."""

    def _compute_metrics(self, batch: Any, metrics: dict, timing_raw: dict, global_steps: int, epoch: int) -> None:
        super()._compute_metrics(batch, metrics, timing_raw, global_steps, epoch)  # type: ignore[misc]
        infos = rollout_reward_infos(batch)
        if infos:
            metrics.update({METRIC_PREFIX + key: value for key, value in step_summary(infos).items()})


def with_reward_part_metrics(trainer_cls: type[PPOTrainer]) -> type[PPOTrainer]:
    """``trainer_cls`` plus ``RewardPartMetrics`` (same name, so logs and errors read as verl's)."""
    return type(trainer_cls.__name__, (RewardPartMetrics, trainer_cls), {"__module__": __name__})


@contextmanager
def reward_part_metrics_for(mode: str) -> Iterator[type[PPOTrainer]]:
    """Within the block, ``get_trainer_cls(mode)`` gives the mode's trainer plus ``RewardPartMetrics``."""
    base = get_trainer_cls(mode)  # an unknown mode fails here, with verl's own message
    TRAINER_REGISTRY[mode] = with_reward_part_metrics(base)
    try:
        yield TRAINER_REGISTRY[mode]
    finally:
        TRAINER_REGISTRY[mode] = base


@ray.remote
class TaskRunner(TaskRunnerV1.__ray_actor_class__):
    """verl's v1 task runner; its trainer logs the reward parts per step."""

    def run(self, config: DictConfig) -> None:
        with reward_part_metrics_for(config.trainer.v1.trainer_mode):
            super().run(config)
