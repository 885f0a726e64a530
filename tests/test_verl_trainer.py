"""The reward parts reach verl's per-step metrics: read from a real TransferQueue on a local Ray.

The rollouts are stored as verl's agent loop stores them (``list_of_dict_to_tensordict`` of
fields with ``extra_fields["reward_extra_info"]``, verl/trainer/ppo/v1/agent_loop_tq.py), with
the reward function's own output, and read back by the trainer mixin the launcher runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import ray
import torch
import transfer_queue as tq
from omegaconf import OmegaConf

from proxy_grm.reward import compute_score
from proxy_grm.verl_trainer import (TaskRunner, reward_part_metrics_for, rollout_reward_infos,
                                    with_reward_part_metrics)

pytestmark = pytest.mark.slow

PAIR = {"question": "What colour is the box?", "chosen": "Red.", "rejected": "Blue.", "image": "box.png",
        "answer": "1"}
GOOD = "<rubric>\n1. Colour (100%)\n</rubric>\n<eval>Response 1 names it.</eval>\n<answer>1</answer>"


@pytest.fixture(scope="module")
def transfer_queue() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tq.init(OmegaConf.create({"backend": {"storage_backend": "SimpleStorage",
                                              "SimpleStorage": {"total_storage_size": 64, "num_data_storage_units": 1}}}))
        yield
        tq.close()
    finally:
        ray.shutdown()


def reward_parts(solution: str) -> dict[str, float]:
    """What verl's reward loop gets from our reward function for one rollout (no proxy: format and accuracy)."""
    return asyncio.run(compute_score("benchmark", solution, "1", PAIR, use_proxy=False))


def put_step(keys: list[str], infos: list[dict[str, Any]], padding: list[bool]) -> Any:
    """Store rollouts the way verl's agent loop does; the step's ``KVBatchMeta`` as the trainer holds it."""
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    fields = [{"prompts": torch.tensor([1, 2, 3]), "extra_fields": {"reward_extra_info": info, "min_global_steps": 1}}
              for info in infos]
    tags = [{"status": "success", "is_padding": pad} for pad in padding]
    tq.kv_batch_put(keys=keys, fields=list_of_dict_to_tensordict(fields), tags=tags, partition_id="train")
    return tq.KVBatchMeta(keys=keys, tags=tags, partition_id="train")


class VerlMetrics:
    """Stands in for verl's ``_compute_metrics`` (which needs a trained step's tensors): one metric of its own."""

    def _compute_metrics(self, batch: Any, metrics: dict, timing_raw: dict, global_steps: int, epoch: int) -> None:
        metrics["critic/score/mean"] = 0.25


def test_step_metrics_hold_the_reward_parts(transfer_queue: None) -> None:
    good, bad = reward_parts(GOOD), reward_parts("no tags at all")
    batch = put_step(["u0_0_0", "u0_1_0", "u0_2_0"], [good, bad, good], padding=[False, False, True])
    assert rollout_reward_infos(batch) == [good, bad], "padding rows are not counted"

    trainer = with_reward_part_metrics(VerlMetrics)()
    metrics: dict[str, float] = {}
    trainer._compute_metrics(batch, metrics, {}, global_steps=1, epoch=0)
    assert metrics["critic/score/mean"] == 0.25, "verl's own metrics stay"
    assert metrics["reward_parts/rollouts"] == 2
    assert metrics["reward_parts/score"] == pytest.approx((good["score"] + bad["score"]) / 2)
    assert metrics["reward_parts/well_formatted"] == 0.5 and metrics["reward_parts/verdict_correct"] == 0.5
    assert (metrics["reward_parts/proxy_called"], metrics["reward_parts/proxy_retries"]) == (0, 0)
    tq.kv_clear(keys=batch.keys, partition_id="train")


def test_the_task_runner_swaps_the_configured_trainer_in_its_own_process(transfer_queue: None) -> None:
    from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls

    with reward_part_metrics_for("sync") as trainer_cls:
        assert get_trainer_cls("sync") is trainer_cls and issubclass(trainer_cls, PPOTrainerSync)
    assert get_trainer_cls("sync") is PPOTrainerSync, "restored after the run"

    # In the actor, ``run`` is ours and the registry is verl's: an unknown mode fails with verl's message
    # before anything starts.
    runner = TaskRunner.remote()
    config = OmegaConf.create({"trainer": {"v1": {"trainer_mode": "nope"}}})
    with pytest.raises(ray.exceptions.RayTaskError, match="Unknown trainer 'nope'. Available trainers: .*sync"):
        ray.get(runner.run.remote(config))
    ray.kill(runner)
