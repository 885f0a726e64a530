"""One scorer for the three benchmarks, under two protocols.

``authors`` (default) follows each benchmark's own definitions (categories,
macro, Acc+) with an explicit policy for unparseable verdicts. ``release``
reproduces the Proxy-GRM release's scoring scripts line for line (their
category quirks included) so a number can be compared with the paper's table.
Both return the same metrics dictionary; accuracies are fractions.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

from proxy_grm.evaluation import release
from proxy_grm.datafiles import iter_jsonl
from proxy_grm.evaluation.answers import AnswersFileError, label_of, verdict_of
from proxy_grm.evaluation.benchmarks import Benchmark, Unparsed

AUTHORS = "authors"
RELEASE = "release"
PROTOCOLS = (AUTHORS, RELEASE)
GUESS_SEED = 123  # the seed of Multimodal RewardBench's official random guess


@dataclass
class ScoredRow:
    """One answers row as the authors' protocol sees it; ``correct`` is None when excluded."""

    group: str
    category: str
    unparsed: bool
    correct: bool | None
    consistent: bool | None


def _fraction(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _position_consistent(row: dict[str, Any], verdict: int | None, where: str) -> bool | None:
    """With both orders scored: did the model pick the same response in both? None otherwise."""
    if "verdict_swapped" not in row:
        return None
    swapped = row["verdict_swapped"]
    if swapped not in (1, 2, None):
        raise AnswersFileError(f"{where}: field 'verdict_swapped' must be 1, 2 or null, got {swapped!r}")
    return verdict is not None and swapped is not None and swapped == 3 - verdict


def scored_rows(benchmark: Benchmark, path: Path, policy: Unparsed, guess_seed: int) -> list[ScoredRow]:
    """Each row's category, parse state and correctness under ``policy``.

    Guesses are the official Multimodal RewardBench scorer's: one
    ``random.Random(guess_seed)``, one ``random()`` per unparsed row in file
    order, below 0.5 meaning the first response shown ("A"). A score is thus
    reproducible from the file alone, and equal to the official one.
    """
    rng = random.Random(guess_seed)
    scored = []
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        label, verdict = label_of(row, where), verdict_of(row, where)
        consistent = _position_consistent(row, verdict, where)
        unparsed = verdict is None
        if unparsed and policy is Unparsed.GUESS:
            verdict = 1 if rng.random() < 0.5 else 2
        correct = None if unparsed and policy is Unparsed.EXCLUDE else verdict == label
        scored.append(ScoredRow(str(row.get("id", "")), benchmark.categorise(row), unparsed, correct, consistent))
    if not scored:
        raise AnswersFileError(f"{path}: no rows to score")
    return scored


def _ordered_categories(benchmark: Benchmark, seen: set[str]) -> list[str]:
    """The benchmark's categories (even without rows: accuracy None), then any others, sorted."""
    return list(benchmark.categories) + sorted(seen - set(benchmark.categories))


def authors_metrics(benchmark: Benchmark, path: Path, policy: Unparsed | None = None,
                    guess_seed: int = GUESS_SEED) -> dict[str, Any]:
    """Metrics as the benchmark's authors define them; ``policy`` None means the benchmark's default."""
    chosen_policy = policy or benchmark.default_unparsed
    rows = scored_rows(benchmark, path, chosen_policy, guess_seed)
    included = [r for r in rows if r.correct is not None]
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"correct": 0, "total": 0})
    for row in included:
        counts[row.category]["total"] += 1
        counts[row.category]["correct"] += int(bool(row.correct))
    categories = _ordered_categories(benchmark, {r.category for r in rows})
    per_category = {c: _fraction(counts[c]["correct"], counts[c]["total"]) for c in categories}
    correct = sum(bool(r.correct) for r in included)
    metrics: dict[str, Any] = {
        "benchmark": benchmark.name,
        "protocol": AUTHORS,
        "unparsed_policy": chosen_policy.value,
        "unparsed_policy_is_default": policy is None or policy is benchmark.default_unparsed,
        "rows": len(rows),
        "scored": len(included),
        "unparsed": sum(r.unparsed for r in rows),
        "correct": correct,
        "overall": _fraction(correct, len(included)),
        "per_category": per_category,
        "counts": {c: dict(counts[c]) for c in categories},
        "macro": _fraction_mean([a for a in per_category.values() if a is not None]),
    }
    if chosen_policy is Unparsed.GUESS:
        metrics["guess_seed"] = guess_seed
    if benchmark.grouped:
        metrics.update(_acc_plus(rows, categories))
    consistency = [r.consistent for r in rows if r.consistent is not None]
    if consistency:
        metrics["position_consistency"] = _fraction(sum(consistency), len(consistency))
        metrics["pairs_in_both_orders"] = len(consistency)
    return metrics


def _fraction_mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _acc_plus(rows: list[ScoredRow], categories: list[str]) -> dict[str, Any]:
    """Acc+: share of question ids whose scored pairs are all correct.

    An id's category is its first row's; ids with every pair excluded drop out.
    """
    groups: dict[str, list[ScoredRow]] = defaultdict(list)
    for row in rows:
        groups[row.group].append(row)
    per_category: dict[str, list[bool]] = defaultdict(list)
    overall = []
    for members in groups.values():
        kept = [m.correct for m in members if m.correct is not None]
        if kept:
            overall.append(all(kept))
            per_category[members[0].category].append(all(kept))
    return {
        "acc_plus": _fraction(sum(overall), len(overall)),
        "acc_plus_per_category": {c: _fraction(sum(per_category[c]), len(per_category[c])) for c in categories},
        "question_ids": len(overall),
    }


def release_metrics(benchmark: Benchmark, path: Path) -> tuple[dict[str, Any], release.ReleaseOutput]:
    """The release's printed lines and text file, plus the same numbers as a metrics dictionary."""
    output = release.SCORERS[benchmark.name](path)
    unparsed = 0
    for lineno, row in iter_jsonl(path):
        unparsed += verdict_of(row, f"{path}:{lineno}") is None
    metrics: dict[str, Any] = {
        "benchmark": benchmark.name,
        "protocol": RELEASE,
        "unparsed_policy": "release",
        "unparsed_policy_is_default": True,
        "unparsed": unparsed,
        **output.metrics,
    }
    return metrics, output


@dataclass(frozen=True)
class BothOrders:
    """Verdicts right over each pair shown in both orders: a constant verdict scores exactly half."""

    pairs: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return _fraction(self.correct, 2 * self.pairs)


def both_orders_accuracy(path: Path, keep: Callable[[dict[str, Any]], bool] = lambda row: True) -> BothOrders:
    """Score an answers file written with ``--both-orders`` (rows ``keep`` accepts); unparsed counts wrong."""
    pairs = correct = 0
    for lineno, row in iter_jsonl(path):
        if not keep(row):
            continue
        where = f"{path}:{lineno}"
        if "verdict_swapped" not in row:
            raise AnswersFileError(f"{where}: no 'verdict_swapped': generate with --both-orders")
        label, verdict = label_of(row, where), verdict_of(row, where)
        _position_consistent(row, verdict, where)  # validates verdict_swapped
        pairs += 1
        correct += (verdict == label) + (row["verdict_swapped"] == 3 - label)
    return BothOrders(pairs, correct)
