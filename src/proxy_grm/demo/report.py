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
    if results.get("data_stub_teacher"):
        lines += ["The deterministic teacher prefers the response with more words (right on about 60% of the "
                  "generated pairs); its pairs where that rule is wrong form the hard GRM-RL pool, as a real "
                  "teacher's mistakes do.", ""]
    published = results.get("data")
    if published:
        lines += ["Training sets used by the later stages (`data/`): "
                  + ", ".join(f"`{name}` {rows} rows" for name, rows in published["rows"].items()), ""]
    return lines


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _sft(results: dict[str, dict[str, Any]], config: Any) -> list[str]:
    rows = []
    for key, name in (("sft_grm", "GRM cold start"), ("sft_proxy", "Proxy-SFT")):
        if key in results:
            r = results[key]
            rows.append([name, r["steps"], _loss(r["first_loss"]), _loss(r["last_loss"]), f"`{r['checkpoint']}`"])
    return ["## SFT (ms-swift, CPU)", "",
            f"Toy settings (the demo's, not the launchers' release defaults): {config.sft_steps} steps, "
            f"learning rate {config.sft_learning_rate} with {float(config.sft_warmup_ratio):.0%} warm-up, batch 2, many epochs over a few rows: enough for a "
            "random 20M-parameter model to learn the output formats.", "",
            *_table(["stage", "steps", "first loss", "last loss", "checkpoint"], rows)]


def _fluency(results: dict[str, dict[str, Any]]) -> list[str]:
    rows, examples = [], []
    for tag in ("sft", "grpo"):
        f = results.get(f"fluency_{tag}")
        if not f:
            continue
        rows.append([tag, f"{f['grm_well_formed']}/{f['grm_outputs']} ({_pct(_ratio(f['grm_well_formed'], f['grm_outputs']))})",
                     f"{f['grm_with_rubric']}",
                     f"{f['proxy_well_formed']}/{f['proxy_judged']} ({_pct(_ratio(f['proxy_well_formed'], f['proxy_judged']))})",
                     f["proxy_plus"], f["proxy_minus"],
                     f"{f['fixture_well_formed']}/{f['fixture_outputs']} ({_pct(_ratio(f['fixture_well_formed'], f['fixture_outputs']))})"])
        for example in f["examples"][:1]:
            examples += [f"{tag} GRM rubric -> proxy critique (judgement {example['reward']}):", "",
                         "```", example["rubric"], "---", example["critique"], "```", ""]
    if not rows:
        return []
    return ["## Protocol fluency on held-out prompts", "",
            "The GRM critiques held-out pairs (the last GRM-RL rows: neither SFT nor GRPO trained on them; greedy); "
            "well-formed = the release's format check `<rubric>..</rubric><eval>..</eval><answer>1|2</answer>`. "
            "The proxy then judges each of those pairs by the GRM's own rubric, as in GRPO; well-formed = "
            "`<think>..</think><answer>1|2</answer>`; +1 = it picked the labelled response. Last column: the same "
            "format check on the GRM's critiques of the benchmark fixtures (other question and response styles, "
            "from the evaluation stages).", "",
            *_table(["GRM checkpoint", "GRM well-formed", "with a rubric", "proxy well-formed", "proxy +1",
                     "proxy -1", "GRM well-formed (fixtures)"], rows), *examples]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _grpo(result: dict[str, Any], plots: Path) -> list[str]:
    steps = result["steps"]
    rows = [[int(s["step"]), int(s["rollouts"]), f"{s['score']:.3f}", f"{s['accuracy_reward']:.3f}",
             f"{s['proxy_reward']:.3f}", f"{s['format_reward']:.3f}", _pct(s["has_rubric"]),
             int(s["proxy_called"]), int(s["proxy_failed"])] for s in steps]
    _line_chart(steps, plots / "grpo_rewards.png")
    return ["## GRPO (ms-swift on CPU, the CPU / alternative trainer for stage C.2)", "",
            "`scripts/rl/train_proxy_grm_swift.sh` ran `swift rlhf --rlhf_type grpo` from the GRM-SFT checkpoint on "
            "`grm_rl.parquet` less the rows held out for the fluency check; each rollout was scored by `compute_score` (`ms_swift/proxy_grm_reward.py`), which "
            "sent its rubric to the proxy service. Per step, means over the step's rollouts (proxy calls and failures: counts):", "",
            *_table(["step", "rollouts", "reward", "accuracy a'", "proxy p'", "format", "with rubric",
                     "proxy calls", "proxy failures"], rows),
            f"Weights updated: {result['tensors_changed']} of {result['tensors']} tensors differ from the SFT "
            f"checkpoint (`{result['checkpoint']}`; per-rollout parts in `{result['parts_file']}`).", "",
            "![GRPO reward per step](plots/grpo_rewards.png)", ""]


def _rewards(result: dict[str, Any], plots: Path) -> list[str]:
    modes = result["modes"]
    rows = [[name, f"{m['mean_score']:.3f}", f"{m['mean_accuracy_reward']:.3f}", f"{m['mean_proxy_reward']:.3f}",
             f"{m['mean_format_reward']:.3f}", int(m["proxy_calls"]), int(m["proxy_failures"])] for name, m in modes.items()]
    sample_rows = [[s["kind"], s["uid"][:10], s["label"], int(s["verdict_correct"]), int(s["well_formatted"]),
                    int(s["proxy_called"]), int(s["proxy_judgement"])] for s in result["samples"]]
    _bar_chart({name: m["mean_score"] for name, m in modes.items()}, "mean GRPO reward per aggregation mode",
               plots / "reward_modes.png")
    return ["## Rewards through verl's reward loop", "",
            f"{result['groups']} GRPO groups x 3 rollouts = {result['rollouts']} rollouts, each scored by "
            "`verl/proxy_grm_reward.py:compute_score` inside verl's `RewardLoopWorker`, with the proxy service "
            "judging each rubric over HTTP. Per group: the SFT'd GRM's own rollout, that rollout with its verdict "
            "flipped, and that rollout without its rubric.", "",
            *_table(["mode", "mean score", "mean a'", "mean p'", "mean format", "proxy calls", "failures"], rows),
            "Rollouts (judgement = the proxy's p before aggregation; 0 = not called):", "",
            *_table(["rollout", "pair", "label", "verdict ok", "format ok", "proxy called", "judgement"],
                    sample_rows),
            "![reward per mode](plots/reward_modes.png)", ""]


def _eval(tag: str, results: dict[str, Any], plots: Path) -> list[str]:
    rows = []
    for benchmark, r in results.items():
        m = r["metrics"]
        extra = f"macro {_pct(m.get('macro'))}" if "macro" in m and "acc_plus" not in m else (
            f"Acc+ {_pct(m.get('acc_plus'))}" if "acc_plus" in m else "")
        rows.append([benchmark, _pct(m.get("overall")), extra, m.get("unparsed"), m.get("unparsed_policy"),
                     f"`{r['table']}`"])
        if Path(r["plot"]).exists():
            shutil.copy2(r["plot"], plots / f"eval_{tag}_{benchmark}.png")
    return [f"## Evaluation ({tag} GRM checkpoint, benchmark fixtures)", "",
            *_table(["benchmark", "overall", "more", "unparsed", "policy", "table"], rows),
            "A tiny model that learned the format, not the task: these numbers show the pipeline runs, not a result.",
            "", *[f"![{b}](plots/eval_{tag}_{b}.png)" for b in results], ""]


def _transfer(results: dict[str, Any]) -> list[str]:
    rows = [[name, s.get("pairs"), s.get("skipped_no_rubric"), _pct(s.get("with_rubric", {}).get("accuracy")),
             _pct(s.get("without_rubric", {}).get("accuracy"))] for name, s in results.items()]
    return ["## Rubric transfer (proxy service as the second evaluator)", "",
            "The proxy judges each pair of the GRM's eval answers twice: with the GRM's rubric and with a neutral "
            "one.", "",
            *_table(["GRM answers", "pairs with a rubric", "skipped: no rubric", "with rubric", "without"], rows)]


def _line_chart(steps: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    x = [s["step"] for s in steps]
    for key, label in (("score", "reward"), ("accuracy_reward", "accuracy a'"), ("proxy_reward", "proxy p'"),
                       ("format_reward", "format"), ("has_rubric", "share with a rubric")):
        ax.plot(x, [s[key] for s in steps], marker="o", label=label)
    ax.set_xlabel("GRPO step")
    ax.set_title("GRM GRPO on CPU: mean reward and its parts per step")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
             "Every stage ran through the same scripts and modules a GPU run uses, on a tiny Qwen2.5-VL built "
             "offline and generated data. The toy checkpoints learn the protocol's formats, so the GRM's rubric "
             "reaches the proxy, the proxy's verdict becomes a reward and GRPO updates the GRM with it; they "
             "learn nothing about images.", "",
             *_stages(records, total_s), *_data(results), *_sft(results, config), *_fluency(results)]
    if "rewards" in results:
        lines += _rewards(results["rewards"], plots)
    if "grpo" in results:
        lines += _grpo(results["grpo"], plots)
    for tag in ("sft", "grpo"):
        if f"eval_{tag}" in results:
            lines += _eval(tag, results[f"eval_{tag}"], plots)
    if "transfer" in results:
        lines += _transfer(results["transfer"])
    report = config.out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
