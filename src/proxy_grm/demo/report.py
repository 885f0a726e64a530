"""``<out>/report.md`` and ``<out>/plots/``: what the demo ran, its counts, timings and tables.

The stages' results arrive typed (``DemoResults``, one model per stage): the report reads their fields, so a
field renamed in a stage fails where the results are gathered, and ``results.json`` is built from them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from proxy_grm.demo.config import DemoConfig
from proxy_grm.demo.heldout import RUBRICS
from proxy_grm.demo.results import DemoResults, Evaluation, GrpoStep, PreparedData, RewardLoop, RubricTransfer
from proxy_grm.demo.stages import StageRecord
from proxy_grm.demo.targets import TARGETS, targets_met
from proxy_grm.toy.colour_task import BLIND_AS, BLIND_COLOUR, RULE


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


def _data(results: DemoResults) -> list[str]:
    lines = ["## Data", ""]
    sources = results.sources
    if sources:
        lines += ["Generated sources (released shapes), convertible rows per source: "
                  + ", ".join(f"{k} {v}" for k, v in sources.good_rows.items())
                  + f"; plus {sources.rows_to_skip} rows built to be skipped.", ""]
    teachers: tuple[tuple[PreparedData | None, str], ...] = (
        (results.data_vllm_teacher, "vLLM teacher (tiny random model)"),
        (results.data_stub_teacher, "deterministic teacher server"))
    for prepared, title in teachers:
        if not prepared:
            continue
        pairs, split = prepared.pairs, prepared.split
        skipped = {reason: sum(by.values()) for reason, by in pairs.skipped.items()}
        removed = {rule: sum(by.values()) for rule, by in pairs.removed.items()}
        lines += [f"### {title}", "",
                  f"- rows read {sum(pairs.read.values())}, kept {sum(pairs.kept.values())}",
                  f"- skipped (cannot convert): {skipped or 'none'}",
                  f"- removed by filters: {removed or 'none'}",
                  f"- teacher verdicts: {split.categories} (wrong and unparseable go to the hard pool)",
                  f"- training sets written: {split.written}", ""]
        if prepared is results.data_vllm_teacher:
            lines += ["The tiny random model writes no parseable critique, so every pair is routed to the hard "
                      "(GRM-RL) pool, as the pipeline routes a real teacher's unparseable answers.", ""]
    if results.data_stub_teacher:
        lines += [f"The toy task's rule: {RULE}. The deterministic teacher judges by it from the image it "
                  f"decodes, so it is wrong exactly on the {BLIND_COLOUR} images with a wide {BLIND_AS} band: they "
                  "form the hard GRM-RL pool (GRPO's data), as a real teacher's mistakes do, and GRM-SFT never sees "
                  f"one (it sees the other {BLIND_COLOUR} ones).", ""]
    published = results.data
    if published:
        lines += ["Training sets used by the later stages (`data/`): "
                  + ", ".join(f"`{name}` {rows} rows" for name, rows in published.rows.items()), ""]
    return lines


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _sft(results: DemoResults, config: DemoConfig) -> list[str]:
    rows = []
    for r, name in ((results.sft_grm, "GRM cold start"), (results.sft_proxy, "Proxy-SFT")):
        if r is not None:
            rows.append([name, r.steps, _loss(r.first_loss), _loss(r.last_loss), f"`{r.checkpoint}`"])
    return ["## SFT (ms-swift, CPU)", "",
            f"Toy settings (the demo's, not the launchers' release defaults): {config.sft_steps} steps "
            f"({config.proxy_steps} for the proxy), "
            f"learning rate {config.sft_learning_rate} with {float(config.sft_warmup_ratio):.0%} warm-up, "
            f"{config.sft_lr_scheduler} schedule, weight decay {config.sft_weight_decay}, "
            f"{config.sft_batch_size * config.sft_gradient_accumulation} rows per step, "
            "many epochs over a few rows (the release: lr 5e-6, 1 epoch, on a pretrained 7B).", "",
            *_table(["stage", "steps", "first loss", "last loss", "checkpoint"], rows)]


def _fluency(results: DemoResults) -> list[str]:
    rows, examples = [], []
    for tag, f in (("sft", results.fluency_sft), ("grpo", results.fluency_grpo)):
        if not f:
            continue
        rows.append([tag, _count(f.grm_well_formed, f.grm_outputs), f"{f.grm_with_rubric}",
                     _count(f.proxy_well_formed, f.proxy_judged), f.proxy_plus, f.proxy_minus,
                     _count(f.fixture_well_formed, f.fixture_outputs)])
        for example in f.examples[:1]:
            examples += [f"{tag} GRM rubric -> proxy critique (judgement {example.reward:g}):", "",
                         "```", example.rubric, "---", example.critique, "```", ""]
    if not rows:
        return []
    return ["## Protocol fluency on held-out prompts", "",
            "The GRM critiques held-out pairs (the first held-out toy pairs, each in its seeded order: no stage "
            "trained on them; greedy); "
            "well-formed = the release's format check `<rubric>..</rubric><eval>..</eval><answer>1|2</answer>`. "
            "The proxy then judges each of those pairs by the GRM's own rubric, as in GRPO; well-formed = "
            "`<think>..</think><answer>1|2</answer>`; +1 = it picked the labelled response. Last column: the same "
            "format check on the GRM's critiques of the benchmark fixtures (other question and response styles, "
            "from the evaluation stages).", "",
            *_table(["GRM checkpoint", "GRM well-formed", "with a rubric", "proxy well-formed", "proxy +1",
                     "proxy -1", "GRM well-formed (fixtures)"], rows), *examples]


def _count(part: int, whole: int) -> str:
    """``part/whole (pct)``, the way every count of outputs is shown."""
    return f"{part}/{whole} ({_pct(part / whole if whole else None)})"


def _grpo(results: DemoResults, plots: Path, config: DemoConfig) -> list[str]:
    result = results.grpo
    assert result is not None  # write_report calls this only when GRPO ran
    steps = result.steps
    rows = [[s.step, s.rollouts, f"{s.score:.3f}", f"{s.accuracy_reward:.3f}", f"{s.proxy_reward:.3f}",
             f"{s.format_reward:.3f}", _pct(s.has_rubric), _pct(s.rubric_names_colour), _pct(s.rubric_leak),
             s.proxy_called, s.proxy_failed] for s in steps]
    curves = {"with the proxy reward": steps}
    ablation = []
    if results.grpo_no_proxy is not None:
        other = results.grpo_no_proxy.steps
        curves["without (ablation)"] = other
        ablation = ["Ablation (the same GRPO, seed and steps, rewarded by accuracy and format only), per step: mean "
                    "reward " + ", ".join(f"{s.score:.3f}" for s in other) + "; rubric names the colour "
                    + ", ".join(_pct(s.rubric_names_colour) for s in other) + ".", ""]
    _line_chart(curves, plots / "grpo_rewards.png")
    return ["## GRPO (ms-swift on CPU, the CPU / alternative trainer for stage C.2)", "",
            "`scripts/rl/train_proxy_grm_swift.sh` ran `swift rlhf --rlhf_type grpo` from the GRM-SFT checkpoint on "
            "`grm_rl.parquet` (the hard pool); each rollout was scored "
            "by `compute_score` (`ms_swift/proxy_grm_reward.py`), which sent its rubric to the proxy service. Per "
            "step, means over the step's rollouts (rubric names the colour: the right evidence, the image's true "
            "colour, read from each rollout's image; chance one in five; leaking: the rubric names a response by "
            "position or as the winner, `parsing.rubric_leak`; proxy calls and failures: counts). Toy settings: "
            f"{config.grpo_prompts_per_step} prompts x {config.grpo_generations} rollouts per step, learning rate "
            f"{config.grpo_learning_rate}, temperature {config.grpo_temperature}, no KL term:", "",
            *_table(["step", "rollouts", "reward", "accuracy a'", "proxy p'", "format", "with rubric",
                     "rubric names the colour", "leaking", "proxy calls", "proxy failures"], rows),
            f"Weights updated: {result.tensors_changed} of {result.tensors} tensors differ from the SFT "
            f"checkpoint (`{result.checkpoint}`; per-rollout parts in `{result.parts_file}`).", "",
            *ablation, "![GRPO reward per step](plots/grpo_rewards.png)", ""]


def quarter_means(steps: list[GrpoStep]) -> tuple[float | None, float | None]:
    """Mean reward over the first and the last quarter of the steps (at least one step each)."""
    if not steps:
        return None, None
    k = max(1, len(steps) // 4)
    return (sum(s.score for s in steps[:k]) / k, sum(s.score for s in steps[-k:]) / k)


def _rewards(result: RewardLoop, plots: Path) -> list[str]:
    modes = result.modes
    rows = [[name, f"{m.mean_score:.3f}", f"{m.mean_accuracy_reward:.3f}", f"{m.mean_proxy_reward:.3f}",
             f"{m.mean_format_reward:.3f}", m.proxy_calls, m.proxy_failures] for name, m in modes.items()]
    sample_rows = [[s.kind, s.uid[:10], s.label, int(s.verdict_correct), int(s.well_formatted), int(s.proxy_called),
                    int(s.proxy_judgement)] for s in result.samples]
    _bar_chart({name: m.mean_score for name, m in modes.items()}, "mean GRPO reward per aggregation mode",
               plots / "reward_modes.png")
    return ["## Rewards through verl's reward loop", "",
            f"{result.groups} GRPO groups x 3 rollouts = {result.rollouts} rollouts, each scored by "
            "`verl/proxy_grm_reward.py:compute_score` inside verl's `RewardLoopWorker`, with the proxy service "
            "judging each rubric over HTTP. Per group: the SFT'd GRM's own rollout, that rollout with its verdict "
            "flipped, and that rollout without its rubric.", "",
            *_table(["mode", "mean score", "mean a'", "mean p'", "mean format", "proxy calls", "failures"], rows),
            "Rollouts (judgement = the proxy's p before aggregation; 0 = not called):", "",
            *_table(["rollout", "pair", "label", "verdict ok", "format ok", "proxy called", "judgement"],
                    sample_rows),
            "![reward per mode](plots/reward_modes.png)", ""]


def _eval(tag: str, result: Evaluation, plots: Path) -> list[str]:
    rows = []
    for benchmark, r in result.benchmarks.items():
        m = r.metrics
        # Grouped benchmarks report Acc+ (their scorer writes the field); the others their macro average.
        extra = f"Acc+ {_pct(m.acc_plus)}" if "acc_plus" in m.model_fields_set else (
            f"macro {_pct(m.macro)}" if "macro" in m.model_fields_set else "")
        rows.append([benchmark, _pct(m.overall), extra, m.unparsed, m.unparsed_policy, f"`{r.table}`"])
        if Path(r.plot).exists():
            shutil.copy2(r.plot, plots / f"eval_{tag}_{benchmark}.png")
    return [f"## Evaluation ({tag} GRM checkpoint, benchmark fixtures)", "",
            *_table(["benchmark", "overall", "more", "unparsed", "policy", "table"], rows),
            "The benchmark fixtures are not the toy task (their responses name shapes the tiny model never learned "
            "to judge): these numbers show the eval path runs end to end; the held-out section measures learning.",
            "", *[f"![{b}](plots/eval_{tag}_{b}.png)" for b in result.benchmarks], ""]


def _transfer(result: RubricTransfer) -> list[str]:
    rows = [[name, s.pairs, s.skipped_no_rubric, _pct(s.with_rubric.accuracy), _pct(s.without_rubric.accuracy)]
            for name, s in result.summaries.items()]
    return ["## Rubric transfer (proxy service as the second evaluator)", "",
            "The proxy judges each pair of the GRM's eval answers twice: with the GRM's rubric and with a neutral "
            "one.", "",
            *_table(["GRM answers", "pairs with a rubric", "skipped: no rubric", "with rubric", "without"], rows)]


def learning_figures(results: DemoResults) -> dict[str, Any]:
    """The figures a later run is compared on (``results.json``): names say what each is; None = not run."""
    figures: dict[str, Any] = {"rule": RULE}
    pairs = results.heldout_pairs
    figures.update(heldout_pairs=pairs and pairs.pairs, heldout_hard_pairs=pairs and pairs.hard,
                   heldout_extra_hard_pairs=pairs and pairs.extra_hard, heldout_seed=pairs and pairs.seed, chance=0.5)
    for tag, grm in (("sft", results.heldout_sft), ("grpo", results.heldout_grpo),
                     ("grpo_no_proxy", results.heldout_grpo_no_proxy)):
        for slice_, accuracy, evidence in (("overall", grm and grm.overall, grm and grm.evidence_overall),
                                           ("hard", grm and grm.hard, grm and grm.evidence_hard),
                                           ("other", grm and grm.other, grm and grm.evidence_other)):
            figures[f"grm_{tag}_{slice_}"] = accuracy
            figures[f"grm_{tag}_rubric_names_colour_{slice_}"] = evidence
    proxy = results.heldout_proxy
    for kind in RUBRICS:
        figures[f"proxy_{kind}_rubric"] = proxy and getattr(proxy, kind)
        figures[f"proxy_{kind}_rubric_other"] = proxy and proxy.other.get(kind)
    for name, run in (("grpo", results.grpo), ("grpo_no_proxy", results.grpo_no_proxy)):
        first, last = quarter_means(run.steps if run else [])
        figures[f"{name}_first_quarter_reward"], figures[f"{name}_last_quarter_reward"] = first, last
        # Per step: the share of rollouts whose rubric names the image's true colour (None: no readable image).
        figures[f"{name}_rubric_names_colour_by_step"] = [s.rubric_names_colour for s in run.steps] if run else None
    figures["proxy_grm_minus_no_rubric"] = _minus(figures["proxy_grm_rubric"], figures["proxy_none_rubric"])
    figures["grpo_last_minus_first_quarter_reward"] = _minus(figures["grpo_last_quarter_reward"],
                                                             figures["grpo_first_quarter_reward"])
    figures["grpo_minus_sft_hard"] = _minus(figures["grm_grpo_hard"], figures["grm_sft_hard"])
    figures["targets_met"] = targets_met(figures)
    return figures


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _learning(figures: dict[str, Any]) -> list[str]:
    if figures.get("heldout_pairs") is None:
        return []
    grm_rows = [[tag, _pct(figures[f"grm_{tag}_overall"]), _pct(figures[f"grm_{tag}_hard"]),
                 _pct(figures[f"grm_{tag}_other"]), "50.0%", _pct(figures[f"grm_{tag}_rubric_names_colour_overall"]),
                 _pct(figures[f"grm_{tag}_rubric_names_colour_other"]), "20.0%"]
                for tag in ("sft", "grpo", "grpo_no_proxy") if figures[f"grm_{tag}_overall"] is not None]
    proxy_rows = [[label, _pct(figures[f"proxy_{kind}_rubric"]), _pct(figures[f"proxy_{kind}_rubric_other"])]
                  for kind, label in (("teacher", "the teacher's (its blind spot included)"),
                                      ("rule", "the rule's (the true colour)"), ("grm", "the GRM-SFT checkpoint's own"),
                                      ("none", "none (a neutral rubric)"),
                                      ("counterfactual", "counterfactual (the wrong response's colour)"))]
    targets = [[name, f"{comparison} {bound:g}",
                "n/a" if figures.get(name) is None else f"{figures[name]:.3f}",
                {True: "met", False: "not met", None: "not run"}[figures["targets_met"][name]]]
               for name, (comparison, bound) in TARGETS.items()]
    return ["## Does it learn? Held-out toy pairs, each in both orders", "",
            f"Rule: {RULE}. {figures['heldout_pairs']} pairs no stage saw (seed {figures['heldout_seed']}; "
            f"{figures['heldout_hard_pairs']} on the hard slice, {BLIND_COLOUR} with a wide {BLIND_AS} band; "
            f"{figures['heldout_extra_hard_pairs']} more from the hard slice count on it alone), each "
            "judged as shown and swapped: a model that always gives the same verdict scores exactly 50%. Write such "
            "pairs with `python -m proxy_grm.toy.colour_task --out Q.jsonl --pairs N --seed S [--hard-pairs H]` and "
            "score any checkpoint with `eval/vl_reward_bench.py --both-orders`.", "",
            "GRM: its verdict, and its evidence (does its rubric name the image's true colour?):", "",
            *_table(["checkpoint", "verdict: overall", f"hard slice ({BLIND_COLOUR}, {BLIND_AS} band)", "other",
                     "chance", "rubric names the colour: overall", "other", "chance"], grm_rows),
            "Proxy (the Proxy-SFT checkpoint, through the proxy service) judging the same pairs with each rubric:",
            "", *_table(["rubric", "accuracy", "off the blind spot"], proxy_rows),
            "Targets (`results.json`):", "", *_table(["figure", "target", "value", ""], targets)]


def _line_chart(curves: dict[str, list[GrpoStep]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4))
    (first, steps), *others = curves.items()
    x = [s.step for s in steps]
    nan = float("nan")  # a step without a readable image has no evidence share: a gap in its line
    for label, values in (("reward", [s.score for s in steps]), ("accuracy a'", [s.accuracy_reward for s in steps]),
                          ("proxy p'", [s.proxy_reward for s in steps]), ("format", [s.format_reward for s in steps]),
                          ("share with a rubric", [s.has_rubric for s in steps]),
                          ("share naming the colour", [nan if s.rubric_names_colour is None else s.rubric_names_colour
                                                       for s in steps])):
        ax.plot(x, values, marker="o", label=f"{label} ({first})")
    for name, other in others:
        ax.plot([s.step for s in other], [s.score for s in other], marker="x", linestyle="--",
                label=f"reward ({name})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
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


def write_report(config: DemoConfig, records: list[StageRecord], total_s: float) -> Path:
    """``report.md`` and, beside it, ``results.json`` (``learning_figures``) for comparing runs by script."""
    plots = config.out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    # One typed view of every stage's result: a stage name or result type the report does not know fails here.
    results = DemoResults(**{record.name: record.result for record in records})
    figures = learning_figures(results)
    (config.out_dir / "results.json").write_text(json.dumps(figures, indent=1) + "\n")
    lines = ["# Proxy-GRM toy pipeline report", "",
             "Every stage ran through the same scripts and modules a GPU run uses, on a tiny Qwen2.5-VL built "
             "offline and generated data of a toy task whose label follows from the image.", "",
             *_stages(records, total_s), *_learning(figures), *_data(results), *_sft(results, config),
             *_fluency(results)]
    if results.rewards:
        lines += _rewards(results.rewards, plots)
    if results.grpo:
        lines += _grpo(results, plots, config)
    for tag, evaluation in (("sft", results.eval_sft), ("grpo", results.eval_grpo)):
        if evaluation:
            lines += _eval(tag, evaluation, plots)
    if results.transfer:
        lines += _transfer(results.transfer)
    report = config.out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
