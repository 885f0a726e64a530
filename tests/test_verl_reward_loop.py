"""verl 0.9's own reward loop (``RewardLoopWorker``, no Ray, CPU) over a hand-built
batch of GRPO rollouts, with our ``compute_score`` loaded by path from the trainer
config and talking to a real local proxy server; then verl's GRPO advantages.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

from proxy_grm.reward import SCORE_KEYS
from helpers import REWARD_FILE

from proxy_grm.demo.verl_loop import Rollout, rollout_batch, score_rollouts, trainer_config

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


def expected_advantages() -> np.ndarray:
    scores = np.array([score for *_, score in ROLLOUTS])
    uids = np.array([uid for uid, *_ in ROLLOUTS])
    result = np.empty_like(scores)
    for uid in set(uids):
        group = scores[uids == uid]
        result[uids == uid] = (group - group.mean()) / (group.std(ddof=1) + 1e-6)
    return result


def test_reward_loop_scores_and_grpo_advantages(tiny_model_dir: Path, stub_url: str) -> None:
    config = trainer_config(tiny_model_dir, {"proxy_url": stub_url, "mode": "implicit_graded_correct"}, REWARD_FILE)
    rollouts = [Rollout(uid, text, label, {**PAIR, "answer": label}, "rlaif_v") for uid, label, text, _ in ROLLOUTS]
    result = score_rollouts(config, rollouts)

    infos = result.components
    assert all(tuple(info) == SCORE_KEYS for info in infos)
    assert result.scores == [score for *_, score in ROLLOUTS]
    assert [info["proxy_called"] for info in infos] == [1, 1, 1, 0, 1, 1, 1, 1]
    assert [info["proxy_judgement"] for info in infos] == [1, -1, 1, -1, 1, 1, 1, 1]
    assert all(info["proxy_reward"] == 0 for info in infos), "implicit mode: no proxy term"
    assert len(httpx.get(f"{stub_url}/received").json()) == 7
    assert [info["format_reward"] for info in infos] == [0.5, 0.5, 0.5, 0.0, 0.5, 0.5, 0.5, 0.5]
    # verl's GRPO advantage (what ray_trainer.compute_advantage calls for adv_estimator=grpo)
    assert np.allclose(result.advantages, expected_advantages(), atol=1e-5)
    assert result.advantages[4:] == [0.0] * 4, "a group with equal scores has no advantage"


def test_batch_masks_padding(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rollouts = [Rollout("a", text, label, {**PAIR, "answer": label}) for _, label, text, _ in ROLLOUTS[:2]]
    data = rollout_batch(tokenizer, rollouts)
    prompt_len = data.batch["prompts"].size(1)
    lengths = data.batch["attention_mask"][:, prompt_len:].sum(dim=1).tolist()
    assert lengths == [len(tokenizer.encode(r.text)) for r in rollouts]
