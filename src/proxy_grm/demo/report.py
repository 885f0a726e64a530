"""``<out>/report.md`` and ``<out>/plots/``: what the demo ran, its counts, timings and tables."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from proxy_grm.demo.stages import StageRecord


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def _stages(records: list[StageRecord], total_s: float) -> list[str]:
    rows = [[i, r.title, f"{r.seconds:.1f}", "reused" if r.reused else "ran"] for i, r in enumerate(records, 1)]
    return ["## Stages", "", *_table(["#", "stage", "seconds", "this run"], rows),
            f"Wall time of this run: {total_s:.1f} s (reused stages cost nothing).", ""]


def _data(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["## Data", ""]
    sources = results.get("sources")
    if sources:
        lines += ["Generated sources (released shapes), convertible rows per source: "
                  + ", ".join(f"{k} {v}" for k, v in sources["good_rows"].items())
                  + f"; plus {sources['rows_to_skip']} rows built to be skipped.", ""]
    for key, title in (("data_vllm_teacher", "vLLM teacher (tiny random model)"),
                       ("data_stub_teacher", "deterministic teacher server")):
        prepared = results.get(key)
        if not prepared:
            continue
        pairs, split = prepared["pairs"], prepared["split"]
        skipped = {reason: sum(by.values()) for reason, by in pairs["skipped"].items()}
        removed = {rule: sum(by.values()) for rule, by in pairs["removed"].items()}
        lines += [f"### {title}", "",
                  f"- rows read {sum(pairs['read'].values())}, kept {sum(pairs['kept'].values())}",
                  f"- skipped (cannot convert): {skipped or 'none'}",
                  f"- removed by filters: {removed or 'none'}",
                  f"- teacher verdicts: {split['categories']} (wrong and unparseable go to the hard pool)",
                  f"- training sets written: {split['written']}", ""]
        if key == "data_vllm_teacher":
            lines += ["The tiny random model writes no parseable critique, so every pair is routed to the hard "
                      "(GRM-RL) pool, as the pipeline routes a real teacher's unparseable answers.", ""]
    published = results.get("data")
    if published:
        lines += ["Training sets used by the later stages (`data/`): "
                  + ", ".join(f"`{name}` {rows} rows" for name, rows in published["rows"].items()), ""]
    return lines


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _sft(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for key, name in (("sft_grm", "GRM cold start"), ("sft_proxy", "Proxy-SFT")):
        if key in results:
            r = results[key]
            rows.append([name, r["steps"], _loss(r["first_loss"]), _loss(r["last_loss"]), f"`{r['checkpoint']}`"])
    return ["## SFT (ms-swift, CPU)", "", *_table(["stage", "steps", "first loss", "last loss", "checkpoint"], rows)]


def _rewards(result: dict[str, Any], plots: Path) -> list[str]:
    modes = result["modes"]
    rows = [[name, f"{m['mean_score']:.3f}", f"{m['mean_accuracy_reward']:.3f}", f"{m['mean_proxy_reward']:.3f}",
             f"{m['mean_format_reward']:.3f}", int(m["proxy_calls"]), int(m["proxy_failures"])] for name, m in modes.items()]
    sample_rows = [[s["kind"], s["uid"][:10], s["label"], int(s["verdict_correct"]), int(s["well_formatted"]),
                    int(s["proxy_called"]), int(s["proxy_judgement"])] for s in result["samples"]]
    _bar_chart({name: m["mean_score"] for name, m in modes.items()}, "mean GRPO reward per aggregation mode",
               plots / "reward_modes.png")
    return ["## Rewards through verl's reward loop", "",
            f"{result['groups']} GRPO groups x 4 rollouts = {result['rollouts']} rollouts, each scored by "
            "`verl/proxy_grm_reward.py:compute_score` inside verl's `RewardLoopWorker`, with the proxy service "
            "judging each rubric over HTTP. Per group: the SFT'd GRM's own rollout, the teacher's critique, "
            "that critique with its verdict flipped, and that critique without its rubric.", "",
            *_table(["mode", "mean score", "mean a'", "mean p'", "mean format", "proxy calls", "failures"], rows),
            "Rollouts (judgement = the proxy's p before aggregation; 0 = not called):", "",
            *_table(["rollout", "pair", "label", "verdict ok", "format ok", "proxy called", "judgement"],
                    sample_rows),
            "![reward per mode](plots/reward_modes.png)", ""]


def _eval(results: dict[str, Any], plots: Path) -> list[str]:
    rows = []
    for benchmark, r in results.items():
        m = r["metrics"]
        extra = f"macro {_pct(m.get('macro'))}" if "macro" in m and "acc_plus" not in m else (
            f"Acc+ {_pct(m.get('acc_plus'))}" if "acc_plus" in m else "")
        rows.append([benchmark, _pct(m.get("overall")), extra, m.get("unparsed"), m.get("unparsed_policy"),
                     f"`{r['table']}`"])
        if Path(r["plot"]).exists():
            shutil.copy2(r["plot"], plots / f"eval_{benchmark}.png")
    return ["## Evaluation (GRM cold-start checkpoint, benchmark fixtures)", "",
            *_table(["benchmark", "overall", "more", "unparsed", "policy", "table"], rows),
            "A random tiny model mostly writes no verdict: these numbers show the pipeline runs, not a result.",
            "", *[f"![{b}](plots/eval_{b}.png)" for b in results], ""]


def _transfer(results: dict[str, Any]) -> list[str]:
    rows = [[name, s.get("pairs"), s.get("skipped_no_rubric"), _pct(s.get("with_rubric", {}).get("accuracy")),
             _pct(s.get("without_rubric", {}).get("accuracy"))] for name, s in results.items()]
    return ["## Rubric transfer (proxy service as the second evaluator)", "",
            "The proxy judges each pair twice: with the rubric from the answers file and with a neutral one. "
            "The toy GRM writes no rubric, so its rows are skipped; `teacher_critiques` uses the teacher's "
            "rubrics on the training pairs.", "",
            *_table(["answers", "pairs with a rubric", "skipped: no rubric", "with rubric", "without"], rows)]


def _bar_chart(values: dict[str, float], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(list(values), list(values.values()), color="#4477aa")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(config: Any, records: list[StageRecord], total_s: float) -> Path:
    plots = config.out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    results = {record.name: record.result for record in records}
    lines = ["# Proxy-GRM toy pipeline report", "",
             "Every stage ran through the same scripts and modules a GPU run uses, on a tiny random "
             "Qwen2.5-VL and generated data. The numbers prove the plumbing, not the method.", "",
             *_stages(records, total_s), *_data(results), *_sft(results)]
    if "rewards" in results:
        lines += _rewards(results["rewards"], plots)
    if "eval" in results:
        lines += _eval(results["eval"], plots)
    if "transfer" in results:
        lines += _transfer(results["transfer"])
    report = config.out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
