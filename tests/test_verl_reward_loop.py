"""verl 0.9's own reward loop (``RewardLoopWorker``, no Ray, CPU) over a hand-built
batch of GRPO rollouts, with our ``compute_score`` loaded by path from the trainer
config and talking to a real local proxy server; then verl's GRPO advantages.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from conftest import REPO_ROOT
from reward_stub_proxy import start_stub

from proxy_grm.reward import SCORE_KEYS
from proxy_grm.reward.proxy_client import close_pools

REWARD_FILE = REPO_ROOT / "verl" / "proxy_grm_reward.py"
PAIR = {"question": "Which caption fits?", "chosen": "a cat", "rejected": "a dog", "image": "img/cat.png"}

# (group uid, label, rollout, expected score under implicit_graded_correct: a' + 0.5 f)
ROLLOUTS = [
    ("a", "1", "<rubric>PICK1 60%<justify>j</justify></rubric>\n<eval>e</eval>\n<answer>1</answer>", 1.5 + 0.5),
    ("a", "1", "<rubric>PICK2</rubric><eval>e</eval><answer>1</answer>", 0.5 + 0.5),
    ("a", "1", "<rubric>PICK1</rubric><eval>e</eval><answer>2</answer>", -1.0 + 0.5),
    ("a", "1", "<eval>no rubric</eval><answer>1</answer>", 0.5),
    ("b", "2", "<rubric>PICK2</rubric><eval>e</eval><answer>2</answer>", 2.0),
    ("b", "2", "<rubric>PICK2 x</rubric><eval>f</eval><answer>2</answer>", 2.0),
    ("b", "2", "<rubric>PICK2 y</rubric><eval>g</eval><answer>2</answer>", 2.0),
    ("b", "2", "<rubric>PICK2 z</rubric><eval>h</eval><answer>2</answer>", 2.0),
]


@pytest.fixture(scope="module")
def stub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, base = start_stub(tmp_path_factory.mktemp("stub"))
    yield base
    server.stop()


def trainer_config(model_dir: Path, proxy_url: str):
    """verl's real trainer config (Hydra compose), with our reward function plugged in."""
    import verl
    from hydra import compose, initialize_config_dir

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(config_name="ppo_trainer", overrides=[
            f"actor_rollout_ref.model.path={model_dir}",
            f"reward.custom_reward_function.path={REWARD_FILE}",
            "reward.custom_reward_function.name=compute_score",
            f"+reward.custom_reward_function.reward_kwargs.proxy_url={proxy_url}",
            "+reward.custom_reward_function.reward_kwargs.mode=implicit_graded_correct",
        ])


def rollout_batch(tokenizer, prompt_len: int = 6, response_len: int = 48):
    """A DataProto shaped like a rollout step: left-padded prompts, right-padded responses."""
    from verl import DataProto

    size = len(ROLLOUTS)
    prompts = torch.full((size, prompt_len), tokenizer.pad_token_id)
    responses = torch.full((size, response_len), tokenizer.pad_token_id)
    attention = torch.zeros((size, prompt_len + response_len), dtype=torch.long)
    for row, (_, _, text, _) in enumerate(ROLLOUTS):
        prompt_ids = tokenizer.encode("Which is better?")[-prompt_len:]
        response_ids = tokenizer.encode(text)
        assert len(response_ids) <= response_len
        prompts[row, prompt_len - len(prompt_ids):] = torch.tensor(prompt_ids)
        responses[row, : len(response_ids)] = torch.tensor(response_ids)
        attention[row, prompt_len - len(prompt_ids): prompt_len + len(response_ids)] = 1
    objects = lambda values: np.array(values, dtype=object)  # noqa: E731
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": attention,
                 "input_ids": torch.cat([prompts, responses], dim=1)},
        non_tensors={
            "data_source": objects(["rlaif_v"] * size),
            "reward_model": objects([{"style": "rule", "ground_truth": label} for _, label, _, _ in ROLLOUTS]),
            "extra_info": objects([{**PAIR, "answer": label} for _, label, _, _ in ROLLOUTS]),
            "uid": objects([uid for uid, _, _, _ in ROLLOUTS]),
        },
    )


def expected_advantages() -> np.ndarray:
    scores = np.array([score for *_, score in ROLLOUTS])
    uids = np.array([uid for uid, *_ in ROLLOUTS])
    result = np.empty_like(scores)
    for uid in set(uids):
        group = scores[uids == uid]
        result[uids == uid] = (group - group.mean()) / (group.std(ddof=1) + 1e-6)
    return result


def test_reward_loop_scores_and_grpo_advantages(tiny_model_dir: Path, stub_url: str) -> None:
    from verl.experimental.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    worker = RewardLoopWorker(trainer_config(tiny_model_dir, stub_url))
    data = rollout_batch(worker.input_tokenizer)
    try:
        outputs = worker.loop.run_until_complete(worker.compute_score_batch(data))
    finally:
        worker.loop.run_until_complete(close_pools())

    infos = [output["reward_extra_info"] for output in outputs]
    assert all(tuple(info) == SCORE_KEYS for info in infos)
    assert [output["reward_score"] for output in outputs] == [score for *_, score in ROLLOUTS]
    assert [info["proxy_called"] for info in infos] == [1, 1, 1, 0, 1, 1, 1, 1]
    assert [info["proxy_judgement"] for info in infos] == [1, -1, 1, -1, 1, 1, 1, 1]
    assert all(info["proxy_reward"] == 0 for info in infos), "implicit mode: no proxy term"
    assert len(httpx.get(f"{stub_url}/received").json()) == 7
    # what the reward loop manager builds for logging: one array per key
    stacked = {key: np.array([info[key] for info in infos]) for key in infos[0]}
    assert stacked["format_reward"].tolist() == [0.5, 0.5, 0.5, 0.0, 0.5, 0.5, 0.5, 0.5]

    # the trainer's GRPO step (ray_trainer.compute_advantage calls exactly this for adv_estimator=grpo)
    token_level_rewards = worker.reward_manager.assemble_rm_scores(data, [o["reward_score"] for o in outputs])
    prompt_len = data.batch["prompts"].size(1)
    mask = data.batch["attention_mask"][:, prompt_len:].bool()
    advantages, _ = compute_grpo_outcome_advantage(token_level_rewards, mask.float(), data.non_tensor_batch["uid"])
    assert torch.all(advantages[~mask] == 0)
    for row, expected in enumerate(expected_advantages()):
        assert torch.allclose(advantages[row][mask[row]], torch.tensor(expected, dtype=advantages.dtype), atol=1e-5)
    assert torch.all(advantages[4:] == 0), "a group with equal scores has no advantage"
