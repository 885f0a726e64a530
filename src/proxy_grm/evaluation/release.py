"""The Proxy-GRM release's eval behaviour: its three verdict parsers and three scoring scripts.

Verdicts: each generation script reads the critique its own way (below).
Scores: same categories (quirks included: VL-RewardBench's case-sensitive id
match sends ``RLAIF-V``/``RLHF-V`` items to "general"), same number formats,
same printed lines, same text file next to the input. Used by ``--protocol
release`` so a run can be compared with the paper's table; the default protocol
is in ``scoring`` and ``proxy_grm.parsing``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy_grm.datafiles import iter_jsonl
from proxy_grm.evaluation.answers import release_correct, require
from proxy_grm.evaluation.benchmarks import MM_RLHF_KEYWORDS, multimodal_rewardbench_category
from proxy_grm.parsing import answer_span

_ANY_DIGIT = re.compile(r"[12]")
# The MM-RLHF script's fallback, without DOTALL: the first "1"/"2" with no other
# one after it on the same line, i.e. the last digit of the first line holding one.
_LAST_DIGIT_OF_A_LINE = re.compile(r"[12](?!.*[12])")


def _last_digit(critic: str) -> int | None:
    digits = _ANY_DIGIT.findall(critic)
    return int(digits[-1]) if digits else None


def vl_rewardbench_verdict(critic: str) -> int | None:
    """``vl_reward_bench.py``: an ``<answer>`` holding exactly one of 1/2, else the last 1/2 anywhere.

    >>> vl_rewardbench_verdict("<answer>1 or 2</answer>")
    2
    """
    span = answer_span(critic)
    if span is not None and ("1" in span) != ("2" in span):
        return 1 if "1" in span else 2
    return _last_digit(critic)


def multimodal_rewardbench_verdict(critic: str) -> int | None:
    """``multimodal_reward_bench.py``: an ``<answer>`` equal to "1"/"2", else the last 1/2 anywhere.

    >>> multimodal_rewardbench_verdict("<answer>Response 1</answer> (not 2)")
    2
    """
    span = answer_span(critic)
    if span in ("1", "2"):
        return int(span)
    return _last_digit(critic)


def mm_rlhf_verdict(critic: str) -> int | None:
    """``mmrlhf_reward_bench.py``: an ``<answer>`` equal to "1"/"2", else its line-bound fallback.

    >>> mm_rlhf_verdict("Chatbot 1 is vague\\nso 2 wins")
    1
    """
    span = answer_span(critic)
    if span in ("1", "2"):
        return int(span)
    match = _LAST_DIGIT_OF_A_LINE.search(critic)
    return int(match.group(0)) if match else None


VERDICT_PARSERS: dict[str, Callable[[str], int | None]] = {
    "vl_rewardbench": vl_rewardbench_verdict,
    "multimodal_rewardbench": multimodal_rewardbench_verdict,
    "mm_rlhf_rewardbench": mm_rlhf_verdict,
}


@dataclass
class ReleaseOutput:
    """What a release scorer prints, what it writes and where, and the numbers behind them."""

    printed: list[str]
    written: list[str]
    text_file: Path
    metrics: dict[str, Any]


def _accuracy(correct: int, total: int) -> float:
    return correct / total if total else 0.0


def _vl_category(data_id: str) -> str:
    if "mmmu" in data_id or "mathverse" in data_id:
        return "reasoning"
    if "hallucination" in data_id or "rlhf" in data_id or "rlaif" in data_id:
        return "hallucination"
    return "general"


def vl_rewardbench(path: Path) -> ReleaseOutput:
    """``get_acc_vl_reward_bench.py``: three fixed categories, micro and macro, ``<stem>_acc.txt``."""
    categories = ("reasoning", "hallucination", "general")
    counts = {c: [0, 0] for c in categories}
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        tally = counts[_vl_category(str(require(row, "id", where)))]
        tally[0] += int(release_correct(row, where))
        tally[1] += 1
    accuracy = {c: _accuracy(*counts[c]) for c in categories}
    correct, total = sum(c for c, _ in counts.values()), sum(n for _, n in counts.values())
    micro, macro = _accuracy(correct, total), sum(accuracy.values()) / len(categories)
    lines = []
    for category in categories:
        lines += [f"Category: {category}", f"  Samples: {counts[category][1]}",
                  f"  Accuracy: {accuracy[category]:.4f}"]
    lines += [f"Average Accuracy (Micro): {micro:.4f}", f"Macro Accuracy: {macro:.4f}"]
    metrics = {"rows": total, "correct": correct, "overall": micro, "per_category": accuracy, "macro": macro,
               "counts": {c: {"correct": counts[c][0], "total": counts[c][1]} for c in categories}}
    return ReleaseOutput(lines, lines, path.with_name(path.stem + "_acc.txt"), metrics)


def _mm_category(row: dict[str, Any]) -> str:
    return multimodal_rewardbench_category(row, fields=("Category",))


def multimodal_rewardbench(path: Path) -> ReleaseOutput:
    """``get_acc_multimodal_reward_bench.py``: ``all`` then categories by name, ``<stem>_results.txt``.

    Its "macro" averages over every shown key, ``all`` included; only the text
    file carries the micro and macro lines.
    """
    outcomes: dict[str, list[int]] = defaultdict(list)
    for lineno, row in iter_jsonl(path):
        correct = int(release_correct(row, f"{path}:{lineno}"))
        outcomes["all"].append(correct)
        outcomes[_mm_category(row)].append(correct)
    keys = ["all"] + sorted(k for k in outcomes if k != "all")
    printed = [f"acc {k}: {sum(outcomes[k])} / {len(outcomes[k])} = {_accuracy(sum(outcomes[k]), len(outcomes[k])):.6f}"
               for k in keys]
    correct, total = sum(outcomes["all"]), len(outcomes["all"])
    shown = [_accuracy(sum(outcomes[k]), len(outcomes[k])) for k in keys if outcomes[k]]
    macro = sum(shown) / len(shown) if shown else 0.0
    written = printed + [f"Overall (Micro): {correct} / {total} = {_accuracy(correct, total):.6f}",
                         f"Overall (Macro over shown groups): {macro:.6f}"]
    categories = keys[1:]
    metrics = {"rows": total, "correct": correct, "overall": _accuracy(correct, total), "macro": macro,
               "per_category": {k: _accuracy(sum(outcomes[k]), len(outcomes[k])) for k in categories},
               "counts": {k: {"correct": sum(outcomes[k]), "total": len(outcomes[k])} for k in categories}}
    return ReleaseOutput(printed, written, path.with_name(path.stem + "_results.txt"), metrics)


def _mm_rlhf_category(row: dict[str, Any]) -> str | None:
    media = (row.get("image") or row.get("video") or "").lower()
    return next((keyword for keyword in MM_RLHF_KEYWORDS if keyword in media), None)


def mm_rlhf_rewardbench(path: Path) -> ReleaseOutput:
    """``get_acc_mmrlhf_reward_bench.py``: Acc and ACC+ per id group, ``<path minus .jsonl>_result.txt``.

    A group's category comes from its first row; a group without one counts only overall.
    """
    groups: dict[str, list[bool]] = defaultdict(list)
    group_category: dict[str, str | None] = {}
    for lineno, row in iter_jsonl(path):
        group = str(row.get("id", ""))
        groups[group].append(release_correct(row, f"{path}:{lineno}"))
        group_category.setdefault(group, _mm_rlhf_category(row))
    stats = {c: [0, 0, 0, 0] for c in (*MM_RLHF_KEYWORDS, None)}  # correct, samples, all-correct ids, ids
    overall = [0, 0, 0, 0]
    for group, outcomes in groups.items():
        for tally in (stats[group_category[group]], overall):
            tally[0] += sum(outcomes)
            tally[1] += len(outcomes)
            tally[2] += int(all(outcomes))
            tally[3] += 1
    lines = ["Category-wise Metrics:"]
    for keyword in MM_RLHF_KEYWORDS:
        correct, samples, perfect, ids = stats[keyword]
        lines += [f"Category: {keyword}", f"  Accuracy: {_accuracy(correct, samples):.4f}",
                  f"  ACC+: {_accuracy(perfect, ids):.4f}", f"  Total Samples: {samples}", f"  Total IDs: {ids}"]
    correct, samples, perfect, ids = overall
    lines += ["", "Overall Metrics:", f"Overall Accuracy: {_accuracy(correct, samples):.4f}",
              f"Overall ACC+: {_accuracy(perfect, ids):.4f}", f"Total Samples: {samples}", f"Total IDs: {ids}"]
    metrics = {
        "rows": samples, "correct": correct, "overall": _accuracy(correct, samples),
        "acc_plus": _accuracy(perfect, ids), "question_ids": ids,
        "per_category": {k: _accuracy(stats[k][0], stats[k][1]) for k in MM_RLHF_KEYWORDS},
        "acc_plus_per_category": {k: _accuracy(stats[k][2], stats[k][3]) for k in MM_RLHF_KEYWORDS},
        "counts": {k: {"correct": stats[k][0], "total": stats[k][1]} for k in MM_RLHF_KEYWORDS},
    }
    text_file = Path(path.with_suffix("").as_posix() + "_result.txt")
    return ReleaseOutput(lines, lines, text_file, metrics)


SCORERS: dict[str, Callable[[Path], ReleaseOutput]] = {
    "vl_rewardbench": vl_rewardbench,
    "multimodal_rewardbench": multimodal_rewardbench,
    "mm_rlhf_rewardbench": mm_rlhf_rewardbench,
}
