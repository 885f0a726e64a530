"""The three benchmarks as small specs: categories, official unparsed rule, reported numbers.

Facts behind each choice are in the docstrings; the shared scorer and runner do
the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Unparsed(str, Enum):
    """What an unparseable verdict counts as when scoring (authors' protocol)."""

    WRONG = "wrong"
    EXCLUDE = "exclude"
    GUESS = "guess"


class Order(str, Enum):
    """Which response is shown first.

    RANDOM: a seeded coin per row (``--seed`` and the row index), recorded as
    ``reverse``; the VL-RewardBench authors shuffle (their first response is the
    preferred one in ~99.6% of items), MM-RLHF-RewardBench rows have no shown
    order (only chosen/rejected), and the release swaps at random.
    ORIGINAL: the order of the benchmark's released file (the converters record
    it as ``chosen_first``), as the Multimodal RewardBench authors score.
    """

    RANDOM = "random"
    ORIGINAL = "original"


@dataclass(frozen=True)
class Benchmark:
    """One pairwise benchmark.

    ``categorise(row)`` gives a row's category under the benchmark authors'
    definition; ``grouped`` marks benchmarks scored per question id too (Acc+).
    ``release_unparsed_rewards`` is what the release's generation wrote for an
    unparsed verdict, so release scorers read our files the same way.
    ``default_order`` is the benchmark authors' pair order (``--order``'s
    default under our protocol). ``generate_script`` and ``score_script`` are
    the release's entry points for it, relative to the repo root.
    """

    name: str
    title: str
    categorise: Callable[[dict[str, Any]], str]
    categories: tuple[str, ...]
    default_unparsed: Unparsed
    default_unparsed_reason: str
    release_unparsed_rewards: tuple[int, int]
    reported: dict[str, float]
    reported_metric: str
    generate_script: str
    score_script: str
    default_order: Order
    grouped: bool = False


def vl_rewardbench_category(row: dict[str, Any]) -> str:
    """VL-RewardBench category from the id prefix, case-insensitive (the authors' split).

    >>> vl_rewardbench_category({"id": "RLAIF-V-123"})
    'hallucination'
    >>> vl_rewardbench_category({"id": "mathverse_9"})
    'reasoning'
    """
    data_id = str(row.get("id", "")).lower()
    if data_id.startswith(("rlaif", "rlhf", "hallucination")):
        return "hallucination"
    if data_id.startswith(("mathverse", "mmmu")):
        return "reasoning"
    return "general"


def multimodal_rewardbench_category(row: dict[str, Any], fields: tuple[str, ...] = ("Category", "category")) -> str:
    """Multimodal RewardBench category, with the authors' safety and reasoning splits.

    The released categories are ``open_generation/correctness_task``,
    ``open_generation/preference_task``, ``knowledge``, ``reasoning``, ``safety``
    and ``vqa``. The category is read from the first of ``fields`` present (the
    release's scorer reads ``Category`` only).

    >>> multimodal_rewardbench_category({"id": "pairs_3", "Category": "safety"})
    'safety/bias'
    >>> multimodal_rewardbench_category({"id": "humaneval_1", "Category": "Reasoning"})
    'reasoning/coding'
    """
    category = str(next((row[f] for f in fields if f in row), "unknown")).lower()
    data_id = str(row.get("id", "")).lower()
    if category == "safety":
        return "safety/bias" if data_id.startswith("pairs") else "safety/toxicity"
    if category == "reasoning":
        return "reasoning/math" if data_id.startswith("math") else "reasoning/coding"
    return category


MM_RLHF_KEYWORDS = ("mcq", "long", "short", "safety", "video")


def mm_rlhf_category(row: dict[str, Any]) -> str:
    """MM-RLHF-RewardBench category: the first keyword found in the media path, else ``other``.

    >>> mm_rlhf_category({"image": "data/Long/1.jpg"})
    'long'
    """
    media = str(row.get("image") or row.get("video") or "").lower()
    return next((keyword for keyword in MM_RLHF_KEYWORDS if keyword in media), "other")


# Proxy-GRM and peers as reported in the paper (percent), for the report's chart.
VL_REWARDBENCH = Benchmark(
    name="vl_rewardbench",
    title="VL-RewardBench",
    categorise=vl_rewardbench_category,
    categories=("hallucination", "reasoning", "general"),
    default_unparsed=Unparsed.EXCLUDE,
    default_unparsed_reason="the official VL-RewardBench scorer drops unparseable verdicts",
    release_unparsed_rewards=(0, 0),
    reported={"Proxy-GRM": 75.22, "R1-Reward": 71.92, "UnifiedReward-Think": 73.8, "IXC-2.5-Reward": 65.8},
    reported_metric="overall accuracy",
    generate_script="eval/vl_reward_bench.py",
    score_script="eval/get_acc_vl_reward_bench.py",
    default_order=Order.RANDOM,
)

MULTIMODAL_REWARDBENCH = Benchmark(
    name="multimodal_rewardbench",
    title="Multimodal RewardBench",
    categorise=multimodal_rewardbench_category,
    categories=("open_generation/correctness_task", "open_generation/preference_task", "knowledge",
                "reasoning/math", "reasoning/coding", "safety/bias", "safety/toxicity", "vqa"),
    default_unparsed=Unparsed.GUESS,
    default_unparsed_reason="the official Multimodal RewardBench scorer replaces it by a random guess, seed 123",
    release_unparsed_rewards=(0, 1),
    reported={"Proxy-GRM": 85.62, "R1-Reward": 82.2, "UnifiedReward-Think": 84.4, "IXC-2.5-Reward": 66.6},
    reported_metric="overall accuracy",
    generate_script="eval/multimodal_reward_bench.py",
    score_script="eval/get_acc_multimodal_reward_bench.py",
    default_order=Order.ORIGINAL,
)

MM_RLHF_REWARDBENCH = Benchmark(
    name="mm_rlhf_rewardbench",
    title="MM-RLHF-RewardBench",
    categorise=mm_rlhf_category,
    categories=MM_RLHF_KEYWORDS,
    default_unparsed=Unparsed.WRONG,
    default_unparsed_reason="MM-RLHF-RewardBench counts ties as wrong",
    release_unparsed_rewards=(0, 1),
    reported={"Proxy-GRM": 82.94, "R1-Reward": 80.59, "UnifiedReward-Think": 81.18, "IXC-2.5-Reward": 71.18},
    reported_metric="Acc",
    generate_script="eval/mmrlhf_reward_bench.py",
    score_script="eval/get_acc_mmrlhf_reward_bench.py",
    default_order=Order.RANDOM,
    grouped=True,
)

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (VL_REWARDBENCH, MULTIMODAL_REWARDBENCH, MM_RLHF_REWARDBENCH)}
