"""The trainer the launchers run, against verl's own code on a real TransferQueue on a local Ray.

- Reward parts reach the per-step metrics: rollouts stored as verl's agent loop stores them
  (``list_of_dict_to_tensordict`` of fields with ``extra_fields["reward_extra_info"]``,
  verl/trainer/ppo/v1/agent_loop_tq.py), read back by the trainer mixin.
- No rollout is lost in silence: verl's v1 agent-loop worker (``AgentLoopWorkerTQ._run_prompt``, its real
  postprocess and reward call into a real ``RewardLoopWorker`` loading our reward file) runs a step whose
  proxy is down, verl's own ``ReplayBuffer`` samples it, and the guard stops the step naming the URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import ray
import torch
import transfer_queue as tq
from omegaconf import OmegaConf, open_dict

from helpers import REWARD_FILE
from proxy_grm.demo.verl_loop import trainer_config
from proxy_grm.launch.verl_trainer import (RolloutsLostError, TaskRunner, check_step, reward_accounting_for,
                                           rollout_reward_infos, with_reward_accounting)
from proxy_grm.reward import compute_score
from proxy_grm.reward.proxy_client import close_pools
from proxy_grm.toy.servers import free_port

pytestmark = pytest.mark.slow

PAIR = {"question": "What colour is the box?", "chosen": "Red.", "rejected": "Blue.", "image": "box.png",
        "answer": "1"}
GOOD = "<rubric>\n1. Colour (100%)\n</rubric>\n<eval>Response 1 names it.</eval>\n<answer>1</answer>"


@pytest.fixture(scope="module")
def transfer_queue() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        storage = {"total_storage_size": 64, "num_data_storage_units": 1}
        tq.init(OmegaConf.create({"backend": {"storage_backend": "SimpleStorage", "SimpleStorage": storage}}))
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

    trainer = with_reward_accounting(VerlMetrics)()
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

    with reward_accounting_for("sync") as trainer_cls:
        assert get_trainer_cls("sync") is trainer_cls and issubclass(trainer_cls, PPOTrainerSync)
    assert get_trainer_cls("sync") is PPOTrainerSync, "restored after the run"

    # In the actor, ``run`` is ours and the registry is verl's: an unknown mode fails with verl's message
    # before anything starts.
    runner = TaskRunner.remote()
    config = OmegaConf.create({"trainer": {"v1": {"trainer_mode": "nope"}}})
    with pytest.raises(ray.exceptions.RayTaskError, match="Unknown trainer 'nope'. Available trainers: .*sync"):
        ray.get(runner.run.remote(config))
    ray.kill(runner)


# ---- no silent drop: a step whose proxy is down, through verl's agent loop and replay buffer -------------

NO_RUBRIC = "<eval>no rubric here</eval><answer>1</answer>"
SESSIONS = (GOOD, GOOD, NO_RUBRIC, NO_RUBRIC)  # per prompt: two rollouts call the proxy, two do not


class LocalHandle:
    """Stands in for the Ray handle of a reward loop worker: ``handle.compute_score.remote(data)`` awaited."""

    def __init__(self, worker: Any):
        self.compute_score = type("Method", (), {"remote": staticmethod(worker.compute_score)})


def run_step_through_verls_agent_loop(config: Any, prompts: int) -> None:
    """verl's ``AgentLoopWorkerTQ._run_prompt`` for each prompt; each session's rollout text comes from
    ``SESSIONS`` and goes through verl's own ``_agent_loop_postprocess`` (reward, TransferQueue put)."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput
    from verl.experimental.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopWorkerTQ

    reward_worker = RewardLoopWorker(config)
    tokenizer = reward_worker.input_tokenizer
    agent = object.__new__(AgentLoopWorkerTQ.__ray_actor_class__)
    agent.config, agent.processor, agent.mm_processor_kwargs = config, None, None
    agent.distillation_enabled, agent.reward_loop_worker_handles = False, [LocalHandle(reward_worker)]

    async def one_session(sampling_params: dict, trajectory: dict, *, agent_name: str, trace: bool,
                          **kwargs: Any) -> None:
        response = tokenizer.encode(SESSIONS[kwargs["session_id"]])
        output = AgentLoopOutput(prompt_ids=tokenizer.encode("Which response is better?"), response_ids=response,
                                 response_mask=[1] * len(response), metrics=AgentLoopMetrics(),
                                 extra_fields={"min_global_steps": 1, "max_global_steps": 1})
        await agent._agent_loop_postprocess(output, trajectory["validate"], **kwargs)

    agent._run_agent_loop = one_session

    async def step() -> None:
        uids = [f"prompt{index}" for index in range(prompts)]
        tq.kv_batch_put(keys=uids, partition_id="train",
                        tags=[{"is_prompt": True, "status": "pending", "global_steps": 1} for _ in uids])
        try:
            await asyncio.gather(*(agent._run_prompt(
                {"uid": uid, "data_source": "rlaif_v", "reward_model": {"style": "rule", "ground_truth": "1"},
                 "extra_info": dict(PAIR), "global_steps": 1, "index": index, "agent_name": "single_turn_agent"},
                {}, trajectory={"validate": False}) for index, uid in enumerate(uids)))
        finally:
            await close_pools()

    reward_worker.loop.run_until_complete(step())


def guarded_buffer(config: Any, mode: str = "sync") -> Any:
    """verl's replay buffer as our trainer builds it (``_build_replay_buffer`` of verl's trainer + guard)."""
    from verl.trainer.ppo.v1 import get_trainer_cls

    trainer = object.__new__(with_reward_accounting(get_trainer_cls(mode)))
    trainer.config, trainer.trainer_mode = config, mode
    return trainer._build_replay_buffer()


def clear_train_partition() -> None:
    keys = list((tq.kv_list(partition_id="train") or {}).get("train", {}))
    if keys:
        tq.kv_clear(keys=keys, partition_id="train")


@pytest.fixture
def step_config(tiny_model_dir: Any) -> Any:
    def make(reward_file: Any, **reward_kwargs: Any) -> Any:
        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every call fails at once
        kwargs = {"proxy_url": dead, "max_retries": 0, "backoff_s": 0.01, "timeout_s": 2, **reward_kwargs}
        return dead, trainer_config(tiny_model_dir, kwargs, reward_file,
                                    overrides=["actor_rollout_ref.rollout.n=4", "data.train_batch_size=2"])

    yield make
    clear_train_partition()


def test_verl_alone_would_train_on_a_step_whose_proxy_rollouts_vanished(transfer_queue: None, step_config: Any) -> None:
    """The failure the guard exists for: with a reward function that raises, verl samples 4 of 8 rollouts."""
    from proxy_grm.reward import score

    _, config = step_config(score.__file__)  # compute_score: raises on a dead proxy
    run_step_through_verls_agent_loop(config, prompts=2)
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

    batch, _ = ReplayBuffer("sync", config.trainer.v1.get("sync", {}), None, "drop", {}, poll_interval=0.1,
                            refill_fn=lambda n: None, train_batch_size=2, gen_batch_size=2).sample(
        global_steps=1, partition_id="train", batch_size=2)
    infos = rollout_reward_infos(batch)
    assert len(batch.keys) == 4 and [info["has_rubric"] for info in infos] == [0.0] * 4, \
        "only the rubric-less rollouts survived, and verl hands them to the update"
    with pytest.raises(RolloutsLostError, match=r"step 1: 4 of 8 rollouts came back without a reward"):
        check_step(1, 8, batch.keys, infos, (), stop_on_proxy_failure=True)


def test_a_dead_proxy_stops_the_step_before_the_update_naming_the_url(transfer_queue: None,
                                                                     step_config: Any) -> None:
    dead, config = step_config(REWARD_FILE)  # what the launchers pass: verl_compute_score
    run_step_through_verls_agent_loop(config, prompts=2)
    buffer = guarded_buffer(config)
    buffer.poll_interval = 0.1
    with pytest.raises(RolloutsLostError,
                       match=rf"step 1: the proxy could not judge 4 of 8 rollouts .*\({dead}/get_reward_mllm: 4\)"):
        buffer.sample(global_steps=1, partition_id="train", batch_size=2)


def test_verls_async_sampler_would_drop_and_refill_the_failed_groups(transfer_queue: None, step_config: Any) -> None:
    """What the async modes do with a reward function that raises: the failed groups go and new prompts are
    asked for in their place, so a step comes back full and the loss is seen nowhere but a metric."""
    from verl.trainer.ppo.v1.replay_buffer import ReplayBufferAsync

    from proxy_grm.reward import score

    _, config = step_config(score.__file__)
    run_step_through_verls_agent_loop(config, prompts=2)
    refills: list[int] = []

    def refill(count: int) -> None:
        refills.append(count)
        raise StopIteration  # verl would generate `count` new prompts and wait for them

    buffer = ReplayBufferAsync("colocate_async", {}, None, "drop", {}, poll_interval=0.1, refill_fn=refill,
                               train_batch_size=2, gen_batch_size=2)
    with pytest.raises(StopIteration):
        buffer.sample(global_steps=1, partition_id="train", batch_size=2)
    assert refills == [2]


@pytest.mark.parametrize("mode", ["colocate_async", "separate_async"])
def test_failed_groups_stop_an_async_trainer_instead_of_being_refilled(transfer_queue: None, step_config: Any,
                                                                       mode: str) -> None:
    from proxy_grm.reward import score

    _, config = step_config(score.__file__)  # compute_score raises on a dead proxy: verl fails those groups
    run_step_through_verls_agent_loop(config, prompts=2)
    buffer = guarded_buffer(config, mode)
    buffer.poll_interval = 0.1
    with pytest.raises(RolloutsLostError, match=r"step 1: 2 prompt group\(s\) \(up to 8 rollouts\) came back with "
                                                r"a failed rollout; verl's sampler would drop them"):
        buffer.sample(global_steps=1, partition_id="train", batch_size=2)


def test_the_guard_reads_reward_kwargs_that_are_a_plain_dict(transfer_queue: None, step_config: Any) -> None:
    """verl run without our launchers: no reward_kwargs (``{}``, falsy), or a config built from plain dicts."""
    from verl.trainer.ppo.v1 import PPOTrainerSync

    _, config = step_config(REWARD_FILE)
    trainer = object.__new__(with_reward_accounting(PPOTrainerSync))
    trainer.config = OmegaConf.merge(config, {"reward": {"reward_model": {"enable": True}}})
    with open_dict(trainer.config):
        trainer.config.reward.custom_reward_function.reward_kwargs = {}
    assert trainer._proxy_failure_policy() == (("http://verl-reward-model-router",), True)


def test_score_as_release_trains_on_and_counts_the_failures(transfer_queue: None, step_config: Any) -> None:
    _, config = step_config(REWARD_FILE, on_failure="score_as_release")
    run_step_through_verls_agent_loop(config, prompts=2)
    buffer = guarded_buffer(config)
    buffer.poll_interval = 0.1
    batch, _ = buffer.sample(global_steps=1, partition_id="train", batch_size=2)
    infos = rollout_reward_infos(batch)
    assert len(batch.keys) == 8
    assert sorted(info["proxy_failed"] for info in infos) == [0.0] * 4 + [1.0] * 4
    assert sorted(info["proxy_failed_replica"] for info in infos) == [0.0] * 4 + [1.0] * 4


@pytest.mark.parametrize(("keys", "infos", "stop", "message"), [
    (["a_0_0", "a_1_0"], [{}, {}], True, None),
    (["a_0_0", "a_0_1", "a_1_0"], [{}, {}, {}], True, None),  # a multi-turn session stores two outputs
    (["a_0_0"], [{}], True, "1 of 2 rollouts came back without a reward"),
    (["a_0_0", "a_1_0"], [{"proxy_failed": 1.0, "proxy_failed_replica": 2.0}, {}], True,
     r"could not judge 1 of 2 rollouts after its retries \(http://b/get_reward_mllm: 1\)"),
    (["a_0_0", "a_1_0"], [{"proxy_failed": 1.0, "proxy_failed_replica": 2.0}, {}], False, None),
])
def test_check_step(keys: list[str], infos: list[dict[str, float]], stop: bool, message: str | None) -> None:
    endpoints = ("http://a/get_reward_mllm", "http://b/get_reward_mllm")
    if message is None:
        check_step(3, 2, keys, infos, endpoints, stop)
    else:
        with pytest.raises(RolloutsLostError, match=message):
            check_step(3, 2, keys, infos, endpoints, stop)
