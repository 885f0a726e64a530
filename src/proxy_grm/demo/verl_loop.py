"""Score rollouts through verl 0.9's own reward loop, outside a Ray cluster (a demo and test harness).

verl's ``RewardLoopWorker`` can be built as a plain object on CPU: it loads our
``compute_score`` by path from the trainer config exactly as GRPO training does,
so the demo and the tests exercise the real reward path, then verl's GRPO
advantage on the scores. Training itself never imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Rollout:
    """One policy sample: its GRPO group, text, label and the pair the proxy needs."""

    uid: str
    text: str
    label: str
    extra_info: dict[str, Any]
    data_source: str = "proxy_grm"


@dataclass
class ScoredRollouts:
    scores: list[float]
    components: list[dict[str, float]]
    advantages: list[float]


def trainer_config(model_path: Path, reward_kwargs: dict[str, Any], reward_file: Path | None = None,
                   overrides: Sequence[str] = ()) -> Any:
    """verl's real trainer config (Hydra compose of ppo_trainer.yaml) with our reward plugged in.

    ``reward_file`` is the file verl loads ``compute_score`` from: the repo's ``verl/proxy_grm_reward.py``
    (what a launcher passes), or by default the installed ``proxy_grm.reward.score`` module.
    """
    import verl
    from hydra import compose, initialize_config_dir

    from proxy_grm.reward import score

    reward_file = reward_file or Path(score.__file__)

    def hydra_value(value: Any) -> str:
        if isinstance(value, (list, tuple)):
            return "[" + ",".join(str(item) for item in value) + "]"
        return str(value).lower() if isinstance(value, bool) else str(value)

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    reward_overrides = [f"+reward.custom_reward_function.reward_kwargs.{key}={hydra_value(value)}"
                        for key, value in reward_kwargs.items()]
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(config_name="ppo_trainer", overrides=[
            f"actor_rollout_ref.model.path={model_path}",
            f"reward.custom_reward_function.path={reward_file}",
            "reward.custom_reward_function.name=compute_score",
            *reward_overrides,
            *overrides,
        ])


def rollout_batch(tokenizer: Any, rollouts: Sequence[Rollout], prompt: str = "Which response is better?") -> Any:
    """A ``DataProto`` shaped like a rollout step: left-padded prompts, right-padded responses."""
    import torch
    from verl import DataProto

    prompt_ids = tokenizer.encode(prompt)
    response_ids = [tokenizer.encode(rollout.text) or [tokenizer.pad_token_id] for rollout in rollouts]
    size, prompt_len, response_len = len(rollouts), len(prompt_ids), max(len(ids) for ids in response_ids)
    prompts = torch.full((size, prompt_len), tokenizer.pad_token_id)
    responses = torch.full((size, response_len), tokenizer.pad_token_id)
    attention = torch.zeros((size, prompt_len + response_len), dtype=torch.long)
    for row, ids in enumerate(response_ids):
        prompts[row] = torch.tensor(prompt_ids)
        responses[row, : len(ids)] = torch.tensor(ids)
        attention[row, : prompt_len + len(ids)] = 1

    def objects(values: list[Any]) -> np.ndarray:
        return np.array(values, dtype=object)

    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": attention,
                 "input_ids": torch.cat([prompts, responses], dim=1)},
        non_tensors={
            "data_source": objects([rollout.data_source for rollout in rollouts]),
            "reward_model": objects([{"style": "rule", "ground_truth": rollout.label} for rollout in rollouts]),
            "extra_info": objects([dict(rollout.extra_info) for rollout in rollouts]),
            "uid": objects([rollout.uid for rollout in rollouts]),
        },
    )


def score_rollouts(config: Any, rollouts: Sequence[Rollout],
                   reward_router_address: str | None = None) -> ScoredRollouts:
    """Run verl's reward loop over the rollouts, then verl's GRPO advantage per group.

    ``reward_router_address``: the router of verl's reward-model pool, as ``RewardLoopManager`` hands it to each
    worker (``reward.reward_model.enable``; the pool itself needs Ray and GPUs, so the caller starts one).
    """
    from verl.experimental.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    from proxy_grm.reward.proxy_client import close_pools

    worker = RewardLoopWorker(config, reward_router_address)
    data = rollout_batch(worker.input_tokenizer, rollouts)
    try:
        outputs = worker.loop.run_until_complete(worker.compute_score_batch(data))
    finally:
        worker.loop.run_until_complete(close_pools())
    scores = [float(output["reward_score"]) for output in outputs]
    token_rewards = worker.reward_manager.assemble_rm_scores(data, scores)
    prompt_len = data.batch["prompts"].size(1)
    mask = data.batch["attention_mask"][:, prompt_len:].float()
    advantages, _ = compute_grpo_outcome_advantage(token_rewards, mask, data.non_tensor_batch["uid"])
    return ScoredRollouts(
        scores=scores,
        components=[{key: float(value) for key, value in output["reward_extra_info"].items()} for output in outputs],
        advantages=[float(advantages[row, 0]) for row in range(len(rollouts))],
    )
