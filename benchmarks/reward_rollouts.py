"""The rollouts the reward benchmarks score: verl-style rows (a GRM rollout and its pair) of two shapes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from PIL import Image

from proxy_grm.messages import chat_messages
from proxy_grm.parsing import extract_rubric
from proxy_grm.prompts import proxy_prompt
from proxy_grm.reward.score import proxy_payload

Row = dict[str, Any]


def uniform_rollouts(count: int, image_dir: Path) -> list[Row]:
    """``count`` distinct short rollouts on four small images (no shared prefix worth caching)."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]
    images = []
    for index, colour in enumerate(colours):
        path = image_dir / f"image_{index}.png"
        Image.new("RGB", (64 + 16 * index, 48 + 8 * index), colour).save(path)
        images.append(str(path))
    rows = []
    for index in range(count):
        label = 1 + index % 2
        rubric = (f"<rubric>\n1. Colour accuracy ({40 + index % 30}%)\n2. Completeness ({60 - index % 30}%)\n"
                  "<justify>The question asks about colour.</justify>\n</rubric>")
        red, green = f"Object {index} is red.", f"Object {index} is green."
        rows.append({
            "data_source": "benchmark",
            "solution_str": f"{rubric}\n<eval>Response {label} names the colour.</eval>\n<answer>{label}</answer>",
            "ground_truth": str(label),
            "extra_info": {"question": f"What colour is object {index}?", "image": images[index % len(images)],
                           "response_1": red if label == 1 else green, "response_2": green if label == 1 else red},
        })
    return rows


WORDS = ("the image shows a red box on a wooden table near the window while bright light falls across "
         "its left side and the answer should name colour shape position and count of every object").split()


def filler(tokenizer: Any, tokens: int, rng: random.Random) -> str:
    """Text of exactly ``tokens`` tokens of the proxy's tokenizer (real lengths, whatever its vocabulary)."""
    ids = tokenizer.encode(" ".join(rng.choices(WORDS, k=tokens)), add_special_tokens=False)[:tokens]
    return tokenizer.decode(ids)


def stream_order(pairs: int, group_size: int, rng: random.Random, spread: float = 3.0) -> list[tuple[int, int]]:
    """(pair, rollout) in the order verl's agent loop finishes and scores them.

    Pair p's rollouts start together and finish at p + U(0, spread) (in units of one pair's
    rollout time): a group's rollouts arrive close together, neighbouring groups interleave.
    """
    finish = [(pair + rng.uniform(0, spread), pair, rollout) for pair in range(pairs) for rollout in range(group_size)]
    return [(pair, rollout) for _, pair, rollout in sorted(finish)]


def grpo_rollouts(tokenizer: Any, image_dir: Path, pairs: int, group_size: int, response_tokens: int,
                  rubric_tokens: int, image_side: int, seed: int) -> list[Row]:
    """A GRPO step's rows: ``pairs`` pairs x ``group_size`` rollouts, in streaming order.

    A pair's rollouts share the image, the question and both responses and differ in the rubric, which
    comes last in the proxy prompt.
    """
    rng = random.Random(seed)
    groups = []
    for pair in range(pairs):
        image = image_dir / f"pair_{seed}_{pair}.png"
        Image.new("RGB", (image_side, image_side), (rng.randrange(256), rng.randrange(256), 90)).save(image)
        groups.append({"question": f"Question {pair}: {filler(tokenizer, 30, rng)}?",
                       "response_1": filler(tokenizer, response_tokens, rng),
                       "response_2": filler(tokenizer, response_tokens, rng), "image": str(image)})
    rows = []
    for pair, rollout in stream_order(pairs, group_size, rng):
        label = str(1 + pair % 2)
        rubric = f"<rubric>\n{rollout}. {filler(tokenizer, rubric_tokens, rng)}\n</rubric>"
        rows.append({"data_source": "benchmark", "ground_truth": label, "extra_info": groups[pair],
                     "solution_str": f"{rubric}\n<eval>Response {label} is better.</eval>\n<answer>{label}</answer>"})
    return rows


def release_payloads(rows: list[Row]) -> list[dict[str, Any]]:
    """The proxy service's request bodies for these rows, as the reward builds them."""
    return [proxy_payload(row["extra_info"], row["ground_truth"], extract_rubric(row["solution_str"]),
                          row["data_source"]) for row in rows]


def proxy_conversations(payloads: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The proxy service's prompts for these payloads, built as the service builds them."""
    return [chat_messages(proxy_prompt(p["question"], p["chosen"], p["rejected"], p["rubric"]), image=p["image"])
            for p in payloads]
