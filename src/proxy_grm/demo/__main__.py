"""Run the toy pipeline: ``python -m proxy_grm.demo [--out outputs/demo] [--ablation] [--learning-run]``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from proxy_grm.demo import heldout, pipeline
from proxy_grm.demo.config import LEARNING_RUN, DemoConfig, pixel_env
from proxy_grm.demo.report import write_report
from proxy_grm.demo.results import (
    Evaluation,
    Fluency,
    GrmHeldout,
    GrpoRun,
    HeldoutPairs,
    PreparedData,
    ProxyHeldout,
    RewardLoop,
    RubricTransfer,
    SftRun,
    Sources,
    TinyModel,
    TrainingSets,
)
from proxy_grm.demo.stages import StageFailed, StageRunner, content_digest, source_digest
from proxy_grm.proxy_contract import route_url
from proxy_grm.supervise import supervise

# Every DemoConfig field is a flag (``--sft-steps`` for ``sft_steps``), its default the dataclass's.
CHOICES = {"teacher": ("both", "vllm", "stub"), "proxy_backend": ("vllm", "transformers"),
           "eval_backend": ("vllm", "transformers")}
HELP = {
    "teacher": "both: distil with the vLLM teacher (tiny model: its critiques do not parse) AND the deterministic "
               "stub teacher, whose parseable critiques feed the training sets",
    "fluency_pairs": "held-out toy pairs the protocol-fluency check prompts the GRM with",
    "max_new_tokens": "the proxy's and teacher's critique cap; the GRM's is three times this",
    "heldout_pairs": "toy pairs no stage saw, each judged in both orders (python -m proxy_grm.toy.colour_task)",
    "heldout_hard_pairs": "more held-out pairs, all from the teacher's blind spot, counted on the hard slice only",
    "proxy_sft_steps": "Proxy-SFT steps (0: --sft-steps)",
    "sft_gradient_accumulation": "batches per SFT optimizer step (the launchers' GRAD_ACCUM)",
    "sft_batch_size": "rows per SFT batch (the launchers' BATCH_SIZE)",
    "sft_lr_scheduler": "swift sft --lr_scheduler_type (ms-swift's default: cosine)",
    "sft_weight_decay": "swift sft --weight_decay (ms-swift's default: 0.1)",
    "grpo_temperature": "the GRPO rollouts' sampling temperature (the launcher's TEMPERATURE)",
    "ablation": "also run GRPO without the proxy reward (accuracy and format only), same seed and steps",
}
NOT_FLAGS = ("out_dir", "repo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="The whole Proxy-GRM pipeline at toy scale on CPU.")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="where every stage writes")
    parser.add_argument("--learning-run", action="store_true",
                        help="the learning run's settings (demo.config.LEARNING_RUN, about 70 minutes on 2 cores) as "
                             "the defaults; flags given beside it still win")
    for field in dataclasses.fields(DemoConfig):
        if field.name in NOT_FLAGS:
            continue
        flag, default = "--" + field.name.replace("_", "-"), field.default
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=HELP.get(field.name))
        else:
            parser.add_argument(flag, type=type(default), default=default, choices=CHOICES.get(field.name),
                                help=HELP.get(field.name))
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The flags, over the learning run's settings when ``--learning-run`` is given."""
    args = parser.parse_args(argv)
    if args.learning_run:
        parser.set_defaults(**LEARNING_RUN)
        args = parser.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if not (Path.cwd() / "scripts" / "demo.sh").is_file():
        parser.error(f"run the demo from the repository root (bash scripts/demo.sh); {Path.cwd()} has no scripts/")
    supervise(argv)  # the servers and engines it starts must not outlive it, even after a SIGKILL
    config = DemoConfig(out_dir=args.out.resolve(), **{
        field.name: getattr(args, field.name) for field in dataclasses.fields(DemoConfig)
        if field.name not in NOT_FLAGS})
    os.environ.update(pixel_env())  # one image budget, inherited by every stage's process
    runner = StageRunner(config.out_dir)
    start = time.perf_counter()
    try:
        run_stages(config, runner)
    except StageFailed as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1
    report = write_report(config, runner.records, time.perf_counter() - start)
    print(f"\nreport: {report}\nresults: {config.out_dir / 'results.json'}\nplots:  {config.out_dir / 'plots'}\n"
          f"logs:   {config.out_dir / 'logs'}")
    return 0


def run_stages(config: DemoConfig, runner: StageRunner) -> None:
    """Every stage in order; each names what it depends on, so a rerun reuses only what is still valid."""
    from proxy_grm.toy import colour_task, source_fixtures, tiny_model

    c = config
    model = runner.run("model", "Build the tiny Qwen2.5-VL", lambda: pipeline.build_model(c), TinyModel,
                       depends=source_digest(tiny_model, colour_task))
    sources = runner.run("sources", "Make the four sources in their released shapes (the toy colour task)",
                         lambda: pipeline.make_sources(c), Sources,
                         depends=[c.pairs_per_source, source_digest(source_fixtures, colour_task)])
    import proxy_grm.data
    from proxy_grm import messages, parsing, prompts

    # The data stages run the loaders, filters, distil and split (proxy_grm.data) and the prompts and parsers
    # the training rows are made with: a change there (a flipped label, say) makes new training sets.
    data_depends = [sources, c.max_new_tokens, c.teacher,
                    source_digest(proxy_grm.data, messages, parsing, prompts)]
    if c.teacher in ("vllm", "both"):
        runner.run("data_vllm_teacher", "Load, filter, distil (vLLM teacher server), split",
                   lambda: pipeline.prepare_with_vllm_teacher(c, sources, model.model), PreparedData,
                   depends=[model, data_depends])
    if c.teacher in ("stub", "both"):
        from proxy_grm.toy import teacher_stub

        runner.run("data_stub_teacher", "Load, filter, distil (deterministic teacher server), split",
                   lambda: pipeline.prepare_with_stub_teacher(c, sources), PreparedData,
                   depends=[data_depends, source_digest(teacher_stub)])
    data = runner.run("data", "Check the four training sets", lambda: pipeline.check_training_sets(c),
                      TrainingSets, depends=[r.result for r in runner.records if r.name.startswith("data_")])
    data_dir = Path(data.dir)
    sft_settings = [c.sft_learning_rate, c.sft_warmup_ratio, c.sft_gradient_accumulation, c.sft_batch_size,
                    c.sft_lr_scheduler, c.sft_weight_decay]
    grm, proxy = runner.run_together([
        ("sft_grm", "GRM cold-start SFT (swift sft, CPU)", lambda: pipeline.sft(
            c, "scripts/sft/train_grm_sft.sh", model.model, data_dir / "grm_sft.jsonl", "grm_sft", c.sft_steps),
         SftRun, [content_digest(Path(model.model)), content_digest(data_dir / "grm_sft.jsonl"), c.sft_steps,
                  *sft_settings]),
        ("sft_proxy", "Proxy-SFT (swift sft, CPU)", lambda: pipeline.sft(
            c, "scripts/sft/train_proxy_sft.sh", model.model, data_dir / "proxy_sft.jsonl", "proxy_sft",
            c.proxy_steps), SftRun, [content_digest(Path(model.model)), content_digest(data_dir / "proxy_sft.jsonl"),
                                     c.proxy_steps, *sft_settings]),
    ])
    pairs = runner.run("heldout_pairs", "Write held-out toy pairs (no stage saw them)",
                       lambda: heldout.write_pairs(c.path("heldout", "pairs.jsonl"), c.heldout_pairs, c.heldout_seed,
                                                   c.heldout_hard_pairs), HeldoutPairs,
                       depends=[c.heldout_pairs, c.heldout_hard_pairs, c.heldout_seed, source_digest(colour_task)])

    def grm_heldout(tag: str, checkpoint: SftRun | GrpoRun) -> GrmHeldout:
        return runner.run(f"heldout_{tag}", f"The GRM ({tag} checkpoint) on the held-out pairs, both orders",
                          lambda: heldout.grm_accuracy(c.python, Path(pairs.questions), checkpoint.checkpoint,
                                                       c.path("heldout", f"answers_{tag}.jsonl"),
                                                       c.path("logs", f"heldout_{tag}.log"), c.grm_max_new_tokens),
                          GrmHeldout, depends=[pairs, checkpoint, c.grm_max_new_tokens])

    sft_heldout = grm_heldout("sft", grm)
    server = None

    def proxy_url() -> str:
        nonlocal server
        if server is None:
            print(f"    starting the proxy service ({c.proxy_backend} backend) on the Proxy-SFT checkpoint")
            server = pipeline.start_proxy(c, proxy.checkpoint)
        return route_url(server.health_url, "")

    proxy_depends = [proxy, c.proxy_backend, c.max_new_tokens]
    try:
        runner.run("heldout_proxy", "The proxy on the held-out pairs: teacher's, rule's, GRM's, no and counterfactual "
                                    "rubric", lambda: heldout.proxy_accuracy(proxy_url(), Path(sft_heldout.answers)),
                   ProxyHeldout, depends=[sft_heldout, proxy_depends])
        runner.run("rewards", "Score GRPO rollouts through verl's reward loop, every aggregation mode",
                   lambda: pipeline.score_rollouts_all_modes(c, proxy_url(), grm.checkpoint, model.model),
                   RewardLoop, depends=[grm, proxy_depends, c.rollout_groups])
        grpo_depends = [grm, proxy_depends, c.grpo_steps, c.grpo_prompts_per_step, c.grpo_generations,
                        c.grpo_learning_rate, c.grpo_temperature]
        runs = {"grpo": True, "grpo_no_proxy": False} if c.ablation else {"grpo": True}
        grpos = {name: runner.run(name, "GRM GRPO " + ("with the proxy reward" if use_proxy else
                                                        "without the proxy reward (ablation)")
                                  + " (ms-swift on CPU, the CPU trainer of C.2)",
                                  lambda name=name, use_proxy=use_proxy: pipeline.grpo(c, grm.checkpoint,
                                                                                       proxy_url(), name, use_proxy),
                                  GrpoRun, depends=[grpo_depends, use_proxy])
                 for name, use_proxy in runs.items()}
        for name, result in grpos.items():
            grm_heldout(name, result)
        checkpoints: dict[str, SftRun | GrpoRun] = {"sft": grm, "grpo": grpos["grpo"]}
        evaluations = {tag: runner.run(f"eval_{tag}", f"Evaluate the GRM ({tag} checkpoint) on the benchmark fixtures",
                                       lambda tag=tag, r=r: pipeline.evaluate(c, r.checkpoint, tag), Evaluation,
                                       depends=[r, c.eval_pairs, c.eval_backend, c.grm_max_new_tokens])
                       for tag, r in checkpoints.items()}
        answers = {tag: [b.answers for b in result.benchmarks.values()] for tag, result in evaluations.items()}
        for tag, r in checkpoints.items():
            runner.run(f"fluency_{tag}", f"Protocol fluency on held-out prompts ({tag} GRM, proxy on its rubrics)",
                       lambda tag=tag, r=r: pipeline.fluency(c, proxy_url(), r.checkpoint, answers[tag],
                                                            Path(pairs.questions)), Fluency,
                       depends=[r, proxy_depends, evaluations[tag], pairs, c.fluency_pairs])
        runner.run("transfer", "Rubric transfer: the proxy judges with and without the GRM's rubrics",
                   lambda: pipeline.rubric_transfer(c, proxy_url(), {
                       f"{tag}/{benchmark}": result.answers
                       for tag, evaluation in evaluations.items()
                       for benchmark, result in evaluation.benchmarks.items()}),
                   RubricTransfer, depends=[evaluations, checkpoints, proxy_depends])
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
