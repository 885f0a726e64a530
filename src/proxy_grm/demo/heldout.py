"""Does each trained stage learn the toy task? Held-out toy pairs, each judged in both orders.

The pairs come from ``colour_task.write_heldout`` (image keys and a seed no stage drew), so no stage saw them.
Every pair is judged as shown and swapped, so a model that always answers the same scores exactly 50%.

- GRM: the release's eval entry point with ``--both-orders``, scored by ``scoring.both_orders_accuracy``,
  overall and on the hard slice (the teacher's blind spot, which SFT never saw and GRPO trains on); and its
  evidence: the share of its critiques whose rubric names the image's true colour (chance: one in five).
- GRPO: per step, the same evidence share over the step's rollouts (``rollout_evidence_by_step``; the true
  colour read from each rollout's image).
- Proxy: the proxy service judges each pair with five rubrics: the stub teacher's own (its blind spot
  included), the rule's (the true colour in the teacher's template), the GRM's (from its answers file), a
  neutral one (no evidence), and a counterfactual one (the wrong response's colour). A proxy that judges by
  the rubric follows the counterfactual one to the wrong response.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from proxy_grm.datafiles import iter_jsonl
from proxy_grm.demo.config import HELDOUT_ORDER_SEED
from proxy_grm.demo.results import GrmHeldout, HeldoutPairs, ProxyHeldout
from proxy_grm.evaluation.rubric_transfer import TransferItem
from proxy_grm.evaluation.scoring import both_orders_accuracy
from proxy_grm.pairs import show
from proxy_grm.toy.colour_task import RULE, write_heldout

RUBRICS = ("teacher", "rule", "grm", "none", "counterfactual")


def write_pairs(out: Path, pairs: int, seed: int, hard_pairs: int = 0) -> HeldoutPairs:
    questions = write_heldout(out, pairs, seed, hard_pairs)
    hard = sum(bool(row["hard"]) for _, row in iter_jsonl(questions) if SLICES["overall"](row))
    return HeldoutPairs(questions=str(questions), pairs=pairs, hard=hard, extra_hard=hard_pairs, seed=seed, rule=RULE)


def grm_accuracy(python: str, questions: Path, checkpoint: str, answers: Path, log: Path,
                 max_new_tokens: int) -> GrmHeldout:
    """Generate the GRM's verdicts on the held-out pairs in both orders and score them."""
    from proxy_grm.demo.stages import run_logged

    answers.unlink(missing_ok=True)
    run_logged([python, "eval/vl_reward_bench.py", "--model-path", checkpoint, "--question-file", str(questions),
                "--answers-file", str(answers), "--backend", "transformers", "--max-new-tokens", str(max_new_tokens),
                "--dtype", "float32", "--both-orders", "--order", "random", "--seed", str(HELDOUT_ORDER_SEED)], log,
               dict(os.environ), "eval/vl_reward_bench.py --both-orders")
    return GrmHeldout(answers=str(answers), **{slice_: both_orders_accuracy(answers, keep).accuracy
                                               for slice_, keep in SLICES.items()},
                      **{f"evidence_{slice_}": rubric_evidence(answers, keep) for slice_, keep in SLICES.items()})


def shown_item(index: int, row: dict[str, Any], reverse: bool) -> TransferItem:
    """A held-out question row as the pair a model sees, dispreferred first when ``reverse``; no rubric yet."""
    shown = show(row["chosen"], row["rejected"], reverse)
    return TransferItem(index, row["prompt"], shown.response_1, shown.response_2, row["image"], shown.label, "")


def shown_pairs(questions: Path, count: int) -> list[TransferItem]:
    """The first ``count`` pairs of a held-out question file, each the way round ``grm_accuracy``'s eval showed it
    first (its seeded order)."""
    from proxy_grm.evaluation.runner import seeded_reversed

    return [shown_item(index, row, seeded_reversed(HELDOUT_ORDER_SEED, index))
            for index, (_, row) in zip(range(count), iter_jsonl(questions))]


def evidence_share(critiques: Iterable[tuple[str, str]]) -> float | None:
    """The share of ``(critique, true colour)`` whose rubric names that colour; None for no critique.

    A critique without a rubric names nothing, whatever its other text says.

    >>> evidence_share([("<rubric>It is red.</rubric>", "red"), ("red, no rubric", "red")])
    0.5
    """
    from proxy_grm.parsing import extract_rubric
    from proxy_grm.toy.colour_task import named_colour

    named = [named_colour(extract_rubric(critique) or "") == colour for critique, colour in critiques]
    return sum(named) / len(named) if named else None


def rubric_evidence(answers: Path, keep: Callable[[dict], bool]) -> float | None:
    """The share of the GRM's critiques (both orders of each kept row) whose rubric names the image's true
    colour: what SFT can learn from the image before it learns the comparison. None when no row is kept."""
    return evidence_share((critique, row["colour"]) for _, row in iter_jsonl(answers) if keep(row)
                          for critique in (row["critic"], row["critic_swapped"]))


def rollout_evidence_by_step(parts_file: Path) -> dict[int, float | None]:
    """Per GRPO step, the share of its rollouts whose rubric names the image's true colour.

    ``parts_file``: ms-swift's ``reward_parts.jsonl`` (``reward.swift_grpo``), one line per rollout with its
    ``step``, ``completion`` and the pair's ``image`` path. The reward never sees the toy task, so the colour is
    read here from the image (``colour_task.true_colour``, the rule's ground truth). A rollout without a readable
    image is left out; a step with none is None.
    """
    from proxy_grm.images import ImageLoadError, load_image
    from proxy_grm.toy.colour_task import true_colour

    colours: dict[str, str | None] = {}

    def colour_of(image: object) -> str | None:
        if not isinstance(image, str) or not image:
            return None
        if image not in colours:
            try:
                colours[image] = true_colour(load_image(image))
            except ImageLoadError:
                colours[image] = None
        return colours[image]

    by_step: dict[int, list[tuple[str, str]]] = defaultdict(list)
    steps: set[int] = set()
    for _, row in iter_jsonl(parts_file):
        step = int(row["step"])
        steps.add(step)
        colour = colour_of(row.get("image"))
        if colour is not None:
            by_step[step].append((str(row.get("completion", "")), colour))
    return {step: evidence_share(by_step[step]) for step in sorted(steps)}


# The pairs of each figure. The extra hard pairs (``write_heldout(hard_pairs=)``) count on the hard slice only:
# overall figures keep the drawn mix.
SLICES: dict[str, Callable[[dict], bool]] = {"overall": lambda row: not row.get("extra_hard", False),
                                             "hard": lambda row: bool(row["hard"]),
                                             "other": lambda row: not row["hard"]}


def _rubric(colour: str | None) -> str:
    from proxy_grm.toy.teacher_stub import stub_rubric

    return stub_rubric(colour or "unknown")


def proxy_accuracy(proxy_url: str, answers: Path) -> ProxyHeldout:
    """The proxy's accuracy over both orders of each held-out pair, per rubric (``RUBRICS``)."""
    from proxy_grm.evaluation.rubric_transfer import NEUTRAL_RUBRIC, ProxyEvaluator
    from proxy_grm.images import load_image
    from proxy_grm.parsing import extract_rubric
    from proxy_grm.toy.colour_task import named_colour, seen_colour

    items: list[TransferItem] = []
    other_slice: list[bool] = []  # the pair is off the teacher's blind spot (SLICES["other"])
    rubrics: dict[str, list[str]] = {kind: [] for kind in RUBRICS}
    grm_rubrics = 0
    for index, (_, row) in enumerate(iter_jsonl(answers)):
        if not SLICES["overall"](row):
            continue  # an extra hard pair: the proxy's figures keep the drawn mix
        seen = seen_colour(load_image(row["image"]))
        for reverse, critique in ((row["reverse"], row["critic"]), (not row["reverse"], row["critic_swapped"])):
            items.append(shown_item(index, row, reverse))
            other_slice.append(SLICES["other"](row))
            grm = extract_rubric(critique)
            grm_rubrics += grm is not None
            rubrics["teacher"].append(_rubric(seen))
            rubrics["rule"].append(_rubric(row["colour"]))
            rubrics["grm"].append(grm or NEUTRAL_RUBRIC)
            rubrics["none"].append(NEUTRAL_RUBRIC)
            rubrics["counterfactual"].append(_rubric(named_colour(row["rejected"])))
    evaluator = ProxyEvaluator(proxy_url)
    accuracy: dict[str, float] = {}
    other: dict[str, float | None] = {}
    for kind in RUBRICS:
        right = [v == item.answer for v, item in zip(evaluator.judge(items, rubrics[kind]), items)]
        accuracy[kind] = sum(right) / len(items)
        off_blind_spot = [r for r, keep in zip(right, other_slice) if keep]
        other[kind] = sum(off_blind_spot) / len(off_blind_spot) if off_blind_spot else None
    return ProxyHeldout(judged=len(items), grm_rubrics=grm_rubrics, other=other, **accuracy)
