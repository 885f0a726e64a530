"""Writing a metrics dictionary out: JSON, a Markdown table, a bar chart beside the paper's numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from proxy_grm.evaluation.benchmarks import Benchmark


def output_paths(answers_file: Path) -> dict[str, Path]:
    """``<answers stem>_metrics.{json,md,png}`` next to the answers file."""
    stem = answers_file.with_name(answers_file.stem + "_metrics")
    return {suffix: stem.with_suffix(f".{suffix}") for suffix in ("json", "md", "png")}


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def markdown_table(benchmark: Benchmark, metrics: dict[str, Any]) -> str:
    """Per-category rows, then overall (and macro / Acc+), then the paper's reported numbers."""
    acc_plus = metrics.get("acc_plus_per_category")
    header = "| category | correct | total | accuracy (%) |" + (" Acc+ (%) |" if acc_plus else "")
    rule = "|---|---:|---:|---:|" + ("---:|" if acc_plus else "")
    rows = [f"### {benchmark.title} ({metrics['protocol']} protocol)", "", header, rule]
    for category, accuracy in metrics["per_category"].items():
        count = metrics["counts"][category]
        cells = f"| {category} | {count['correct']} | {count['total']} | {_percent(accuracy)} |"
        rows.append(cells + (f" {_percent(acc_plus.get(category))} |" if acc_plus else ""))
    scored = metrics.get("scored", metrics["rows"])
    overall = f"| **overall** | {metrics['correct']} | {scored} | {_percent(metrics['overall'])} |"
    rows.append(overall + (f" {_percent(metrics['acc_plus'])} |" if acc_plus else ""))
    if "macro" in metrics:
        rows.append(f"| macro | | | {_percent(metrics['macro'])} |" + (" |" if acc_plus else ""))
    rows += ["", f"Unparseable verdicts: {metrics['unparsed']} of {metrics['rows']} "
                 f"(policy: {metrics['unparsed_policy']})."]
    if "position_consistency" in metrics:
        rows.append(f"Position consistency: {_percent(metrics['position_consistency'])}% "
                    f"over {metrics['pairs_in_both_orders']} pairs scored in both orders.")
    reported = ", ".join(f"{name} {value:.2f}" for name, value in benchmark.reported.items())
    rows.append(f"Reported in the paper ({benchmark.reported_metric}, %): {reported}.")
    return "\n".join(rows) + "\n"


def bar_chart(benchmark: Benchmark, metrics: dict[str, Any], path: Path) -> None:
    """Left: our accuracy per category. Right: our overall beside the paper's reported models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Every category keeps its bar; one with no scored pair (all excluded) is drawn empty and marked n/a.
    categories = list(metrics["per_category"])
    accuracies = [metrics["per_category"][c] for c in categories]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    left.bar(categories, [0.0 if a is None else 100 * a for a in accuracies], color="tab:blue")
    left.set_title(f"{benchmark.title}: ours per category")
    left.set_ylabel("accuracy (%)")
    left.set_ylim(0, 100)
    left.tick_params(axis="x", rotation=30)
    names = ["ours", *benchmark.reported]
    values = [100 * (metrics["overall"] or 0.0), *benchmark.reported.values()]
    right.bar(names, values, color=["tab:blue"] + ["tab:gray"] * len(benchmark.reported))
    right.set_title(f"{benchmark.reported_metric}: ours vs. paper")
    right.set_ylim(0, 100)
    right.tick_params(axis="x", rotation=30)
    for axis in (left, right):
        for index, bar in enumerate(axis.patches):
            if (axis is left and accuracies[index] is None) or (axis is right and index == 0
                                                                  and metrics["overall"] is None):
                axis.annotate("n/a", (bar.get_x() + bar.get_width() / 2, 2), ha="center", va="bottom", fontsize=8)
                continue
            axis.annotate(f"{bar.get_height():.1f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="bottom", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(benchmark: Benchmark, metrics: dict[str, Any], answers_file: Path) -> dict[str, Path]:
    """Write the JSON, Markdown and PNG next to the answers file; return their paths."""
    paths = output_paths(answers_file)
    paths["json"].write_text(json.dumps({**metrics, "reported_in_paper": benchmark.reported}, indent=2) + "\n",
                             encoding="utf-8")
    paths["md"].write_text(markdown_table(benchmark, metrics), encoding="utf-8")
    bar_chart(benchmark, metrics, paths["png"])
    return paths
