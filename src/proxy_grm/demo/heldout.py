"""Does each trained stage learn the toy task? Held-out toy pairs, each judged in both orders.

The pairs come from ``colour_task.write_heldout`` (image keys and a seed no stage drew), so no stage saw them.
Every pair is judged as shown and swapped, so a model that always answers the same scores exactly 50%.

- GRM: the release's eval entry point with ``--both-orders``, scored by ``scoring.both_orders_accuracy``,
  overall and on the hard slice (the teacher's blind spot, which SFT never saw and GRPO trains on); and its
  evidence: the share of its critiques whose rubric names the image's true colour (chance: one in five).
- Proxy: the proxy service judges each pair with five rubrics: the stub teacher's own (its blind spot
  included), the rule's (the true colour in the teacher's template), the GRM's (from its answers file), a
  neutral one (no evidence), and a counterfactual one (the wrong response's colour). A proxy that judges by
  the rubric follows the counterfactual one to the wrong response.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy_grm.datafiles import iter_jsonl
from proxy_grm.evaluation.scoring import both_orders_accuracy
from proxy_grm.toy.colour_task import RULE, write_heldout

RUBRICS = ("teacher", "rule", "grm", "none", "counterfactual")


def write_pairs(out: Path, pairs: int, seed: int) -> dict[str, Any]:
    questions = write_heldout(out, pairs, seed)
    hard = sum(bool(row["hard"]) for _, row in iter_jsonl(questions))
    return {"questions": str(questions), "pairs": pairs, "hard": hard, "seed": seed, "rule": RULE}


def grm_accuracy(python: str, questions: Path, checkpoint: str, answers: Path, log: Path,
                 max_new_tokens: int) -> dict[str, Any]:
    """Generate the GRM's verdicts on the held-out pairs in both orders and score them."""
    from proxy_grm.demo.pipeline import run_logged

    answers.unlink(missing_ok=True)
    run_logged([python, "eval/vl_reward_bench.py", "--model-path", checkpoint, "--question-file", str(questions),
                "--answers-file", str(answers), "--backend", "transformers", "--max-new-tokens", str(max_new_tokens),
                "--dtype", "float32", "--both-orders"], log, dict(os.environ), "eval/vl_reward_bench.py --both-orders")
    return {"answers": str(answers), **{slice_: both_orders_accuracy(answers, keep).accuracy
                                        for slice_, keep in SLICES.items()},
            **{f"evidence_{slice_}": rubric_evidence(answers, keep) for slice_, keep in SLICES.items()}}


def rubric_evidence(answers: Path, keep: Callable[[dict], bool]) -> float | None:
    """The share of the GRM's critiques (both orders of each kept row) whose rubric names the image's true
    colour: what SFT can learn from the image before it learns the comparison. None when no row is kept."""
    from proxy_grm.parsing import extract_rubric
    from proxy_grm.toy.colour_task import named_colour

    named = [named_colour(extract_rubric(critique) or "") == row["colour"]
             for _, row in iter_jsonl(answers) if keep(row) for critique in (row["critic"], row["critic_swapped"])]
    return sum(named) / len(named) if named else None


SLICES: dict[str, Callable[[dict], bool]] = {"overall": lambda row: True, "hard": lambda row: bool(row["hard"]),
          "other": lambda row: not row["hard"]}


def _rubric(colour: str | None) -> str:
    from proxy_grm.toy.teacher_stub import stub_rubric

    return stub_rubric(colour or "unknown")


def proxy_accuracy(proxy_url: str, answers: Path) -> dict[str, Any]:
    """The proxy's accuracy over both orders of each held-out pair, per rubric (``RUBRICS``)."""
    from proxy_grm.evaluation.rubric_transfer import NEUTRAL_RUBRIC, ProxyEvaluator, TransferItem
    from proxy_grm.images import load_image
    from proxy_grm.pairs import show
    from proxy_grm.parsing import extract_rubric
    from proxy_grm.toy.colour_task import named_colour, seen_colour

    items: list[TransferItem] = []
    rubrics: dict[str, list[str]] = {kind: [] for kind in RUBRICS}
    grm_rubrics = 0
    for index, (_, row) in enumerate(iter_jsonl(answers)):
        seen = seen_colour(load_image(row["image"]))
        for reverse, critique in ((row["reverse"], row["critic"]), (not row["reverse"], row["critic_swapped"])):
            shown = show(row["chosen"], row["rejected"], reverse)
            items.append(TransferItem(index, row["prompt"], shown.response_1, shown.response_2, row["image"],
                                      shown.label, ""))
            grm = extract_rubric(critique)
            grm_rubrics += grm is not None
            rubrics["teacher"].append(_rubric(seen))
            rubrics["rule"].append(_rubric(row["colour"]))
            rubrics["grm"].append(grm or NEUTRAL_RUBRIC)
            rubrics["none"].append(NEUTRAL_RUBRIC)
            rubrics["counterfactual"].append(_rubric(named_colour(row["rejected"])))
    evaluator = ProxyEvaluator(proxy_url)
    result: dict[str, Any] = {"judged": len(items), "grm_rubrics": grm_rubrics}
    for kind in RUBRICS:
        verdicts = evaluator.judge(items, rubrics[kind])
        result[kind] = sum(v == item.answer for v, item in zip(verdicts, items)) / len(items)
    return result
