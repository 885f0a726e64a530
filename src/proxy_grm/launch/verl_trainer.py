"""verl's v1 trainer, with no rollout lost in silence and each step's reward parts in its metrics.

**No silent drop.** verl 0.9.1's v1 agent loop runs each prompt's rollouts and, when one raises (in the
agent loop or in the reward function), logs it, tags the group ``failure`` and stores nothing for that
rollout (``verl/trainer/ppo/v1/agent_loop_tq.py``, ``_run_prompt`` / ``_agent_loop_postprocess``); the
replay buffer then samples the group anyway and pads the missing trajectories downstream
(``verl/trainer/ppo/v1/replay_buffer.py``: "failed groups remain sampleable ... unless
``sync_refill_failed_groups``"); the run stops only when no trajectory at all survives. With the proxy
failing, the rollouts that hold a rubric vanish and the rubric-less ones (p = -1, no call) train: a
biased step that looks normal. ``RolloutGuard`` wraps the replay buffer's ``sample``, the point where
verl hands the trainer a step's rollouts before any of them is used, and stops the run when

- fewer rollouts came back than the step asked for (``train_batch_size x rollout.n``): the line says how
  many and where verl logged why;
- the proxy failed for any rollout under ``on_failure=raise`` (the default): our reward function records
  the failure instead of raising (``reward.score.verl_compute_score``), so the line names the replica(s)
  and the count. Under ``score_as_release`` such rollouts train with p = 0 and are counted in
  ``reward_parts/proxy_failed``;
- verl's sampler is about to drop failed groups and generate others in their place, which it does in the
  async trainer modes (``ReplayBufferAsync``) and with ``sync_refill_failed_groups=True``: the step would
  come back full and the loss unseen (``failed_groups_error``, on the buffer's ``_evict_terminal_groups``).

**Reward parts per step.** verl logs a step's scores, advantages and lengths
(``PPOTrainer._compute_metrics``, verl/trainer/ppo/v1/trainer_base.py) but none of the other keys the
reward function returns: those reach only validation metrics and rollout dumps. ``RewardPartMetrics``
reads the step's rollouts' ``extra_fields["reward_extra_info"]`` from the TransferQueue, where verl's
agent loop put them, and logs ``reward_parts/<key>`` (``step_summary``).

``TaskRunner`` is verl's ``TaskRunnerV1`` (verl/trainer/main_ppo.py) except that, while it runs, the
trainer registered for ``trainer.v1.trainer_mode`` (any of verl's) is that class plus both mixins. The
mode keeps its name, so every check verl makes on it still holds. It runs in its own Ray actor process,
the only one that builds the trainer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import ray
import transfer_queue as tq
from omegaconf import DictConfig, OmegaConf
from verl.trainer.main_ppo import TaskRunnerV1
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, PPOTrainer, get_trainer_cls

from proxy_grm.reward.settings import ROUTER_KWARG, resolve_settings
from proxy_grm.reward.step_metrics import step_summary

METRIC_PREFIX = "reward_parts/"
TRAIN_PARTITION = "train"
VERL_ROUTER_NAME = "verl-reward-model-router"  # how a failure names the pool's router (PROXY_MODE=pool)


class RolloutsLostError(RuntimeError):
    """A training step came back short of rollouts, or the proxy could not judge some of them."""


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


def session_count(keys: Sequence[str]) -> int:
    """Rollouts among trajectory keys ``{uid}_{session}_{index}`` (a multi-turn session stores several).

    >>> session_count(["a_0_0", "a_0_1", "a_1_0", "b_0_0"])
    3
    """
    return len({key.rsplit("_", 1)[0] for key in keys})


def check_step(step: int, expected: int, keys: Sequence[str], infos: Sequence[Mapping[str, Any]],
               endpoints: Sequence[str], stop_on_proxy_failure: bool) -> None:
    """Raise ``RolloutsLostError`` for a step verl must not train on (see the module docstring)."""
    lost = expected - session_count(keys)
    if lost > 0:
        raise RolloutsLostError(
            f"step {step}: {lost} of {expected} rollouts came back without a reward; verl drops a rollout whose "
            "agent loop or reward function raised (logged by the agent-loop worker as 'Error in _run_prompt', "
            "verl/trainer/ppo/v1/agent_loop_tq.py) and would train on the rest, so the run stops before this "
            "step's update")
    failed = Counter(int(info.get("proxy_failed_replica", 0)) for info in infos if info.get("proxy_failed"))
    if failed and stop_on_proxy_failure:
        def name(replica: int) -> str:
            return endpoints[replica - 1] if 0 < replica <= len(endpoints) else f"replica #{replica}"

        where = ", ".join(f"{name(replica)}: {count}" for replica, count in sorted(failed.items()))
        raise RolloutsLostError(
            f"step {step}: the proxy could not judge {sum(failed.values())} of {expected} rollouts after its "
            f"retries ({where}); on_failure=raise stops the run before this step's update "
            "(reward_kwargs.on_failure=score_as_release trains on with proxy reward 0, counted in "
            "reward_parts/proxy_failed)")


def failed_groups_error(step: int, groups: int, rollout_n: int) -> RolloutsLostError:
    """The error that stops the run on failed groups that verl's sampler would evict and replace.

    Under ``trainer.v1.trainer_mode`` ``colocate_async`` / ``separate_async`` (``ReplayBufferAsync``), or
    ``sync_refill_failed_groups=True``, verl drops every group with a failed rollout and generates new prompts in
    its place (``verl/trainer/ppo/v1/replay_buffer.py``, ``_evict_terminal_groups``): the step never comes back
    short, so ``check_step`` cannot see the loss, and a reward that always fails refills forever.
    """
    return RolloutsLostError(
        f"step {step}: {groups} prompt group(s) (up to {groups * rollout_n} rollouts) came back with a failed "
        "rollout; verl's sampler would drop them and generate others in their place (async trainer modes, "
        "sync_refill_failed_groups), hiding a failing agent loop or reward function, so the run stops here. "
        "Why each failed is logged by the agent-loop worker as 'Error in _run_prompt' "
        "(verl/trainer/ppo/v1/agent_loop_tq.py)")


class RolloutGuard:
    """Mixin for a verl v1 trainer: the replay buffer's training samples are checked by ``check_step``."""

    config: DictConfig

    def _build_replay_buffer(self) -> Any:
        buffer = super()._build_replay_buffer()  # type: ignore[misc]
        sample = buffer.sample
        rollout_n = int(self.config.actor_rollout_ref.rollout.n)
        endpoints, stop_on_proxy_failure = self._proxy_failure_policy()

        def checked_sample(global_steps: int, partition_id: str, batch_size: int) -> tuple[Any, dict]:
            batch, metrics = sample(global_steps=global_steps, partition_id=partition_id, batch_size=batch_size)
            if partition_id == TRAIN_PARTITION:
                check_step(global_steps, batch_size * rollout_n, batch.keys, rollout_reward_infos(batch),
                           endpoints, stop_on_proxy_failure)
            return batch, metrics

        buffer.sample = checked_sample
        evict = buffer._evict_terminal_groups

        def checked_evict(global_steps: int, partition_id: str, eviction_reasons: tuple) -> tuple:
            failed = eviction_reasons[2]  # verl's (stale, dapo, failed, dapo_counts)
            if failed and partition_id == TRAIN_PARTITION:
                raise failed_groups_error(global_steps, len(failed), rollout_n)
            return evict(global_steps, partition_id, eviction_reasons)

        buffer._evict_terminal_groups = checked_evict
        return buffer

    def _proxy_failure_policy(self) -> tuple[tuple[str, ...], bool]:
        """The proxy URLs and whether a proxy failure stops the run, from the reward kwargs verl was given."""
        reward_fn = self.config.reward.get("custom_reward_function") or {}
        raw = reward_fn.get("reward_kwargs") or {}  # a DictConfig from Hydra, a dict from code that builds one
        kwargs = OmegaConf.to_container(raw, resolve=True) if OmegaConf.is_config(raw) else dict(raw)
        if self.config.reward.reward_model.enable:  # the router starts later, in the reward loop: name it so
            kwargs[ROUTER_KWARG] = VERL_ROUTER_NAME  # type: ignore[index]
        settings = resolve_settings(kwargs)  # type: ignore[arg-type]
        return settings.proxy_endpoints, settings.use_proxy and settings.on_failure == "raise"


class RewardPartMetrics:
    """Mixin for a verl v1 trainer: ``reward_parts/<key>`` in every training step's metrics."""

    def _compute_metrics(self, batch: Any, metrics: dict, timing_raw: dict, global_steps: int, epoch: int) -> None:
        super()._compute_metrics(batch, metrics, timing_raw, global_steps, epoch)  # type: ignore[misc]
        infos = rollout_reward_infos(batch)
        if infos:
            metrics.update({METRIC_PREFIX + key: value for key, value in step_summary(infos).items()})


def with_reward_accounting(trainer_cls: type[PPOTrainer]) -> type[PPOTrainer]:
    """``trainer_cls`` plus ``RolloutGuard`` and ``RewardPartMetrics`` (same name: logs read as verl's)."""
    return type(trainer_cls.__name__, (RolloutGuard, RewardPartMetrics, trainer_cls), {"__module__": __name__})


@contextmanager
def reward_accounting_for(mode: str) -> Iterator[type[PPOTrainer]]:
    """Within the block, ``get_trainer_cls(mode)`` gives the mode's trainer plus both mixins."""
    base = get_trainer_cls(mode)  # an unknown mode fails here, with verl's own message
    TRAINER_REGISTRY[mode] = with_reward_accounting(base)
    try:
        yield TRAINER_REGISTRY[mode]
    finally:
        TRAINER_REGISTRY[mode] = base


@ray.remote
class TaskRunner(TaskRunnerV1.__ray_actor_class__):
    """verl's v1 task runner; its trainer stops on lost rollouts and logs the reward parts per step."""

    def run(self, config: DictConfig) -> None:
        with reward_accounting_for(config.trainer.v1.trainer_mode):
            super().run(config)
