"""Run the toy pipeline: ``python -m proxy_grm.demo [--out outputs/demo] [--small]``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from proxy_grm.demo import pipeline
from proxy_grm.demo.report import write_report
from proxy_grm.demo.stages import StageFailed, StageRunner
from proxy_grm.supervise import supervise


def build_parser() -> argparse.ArgumentParser:
    defaults = pipeline.DemoConfig(out_dir=Path())
    parser = argparse.ArgumentParser(description="The whole Proxy-GRM pipeline at toy scale on CPU.")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="where every stage writes")
    parser.add_argument("--pairs-per-source", type=int, default=defaults.pairs_per_source)
    parser.add_argument("--teacher", choices=("both", "vllm", "stub"), default=defaults.teacher,
                        help="both: distil with the vLLM teacher (tiny model: its critiques do not parse) AND the "
                             "deterministic stub teacher, whose parseable critiques feed the training sets")
    parser.add_argument("--sft-steps", type=int, default=defaults.sft_steps)
    parser.add_argument("--proxy-backend", choices=("vllm", "transformers"), default=defaults.proxy_backend)
    parser.add_argument("--eval-backend", choices=("vllm", "transformers"), default=defaults.eval_backend)
    parser.add_argument("--eval-pairs", type=int, default=defaults.eval_pairs)
    parser.add_argument("--fluency-pairs", type=int, default=defaults.fluency_pairs,
                        help="GRM-RL rows held out of GRPO for the protocol-fluency check")
    parser.add_argument("--rollout-groups", type=int, default=defaults.rollout_groups)
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens,
                        help="the proxy's and teacher's critique cap; the GRM's is three times this")
    parser.add_argument("--grpo-steps", type=int, default=defaults.grpo_steps)
    parser.add_argument("--grpo-prompts-per-step", type=int, default=defaults.grpo_prompts_per_step)
    parser.add_argument("--grpo-generations", type=int, default=defaults.grpo_generations)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (Path.cwd() / "scripts" / "demo.sh").is_file():
        parser.error(f"run the demo from the repository root (bash scripts/demo.sh); {Path.cwd()} has no scripts/")
    supervise(argv)  # the servers and engines it starts must not outlive it, even after a SIGKILL
    config = pipeline.DemoConfig(
        out_dir=args.out.resolve(), pairs_per_source=args.pairs_per_source, teacher=args.teacher,
        sft_steps=args.sft_steps, proxy_backend=args.proxy_backend, eval_backend=args.eval_backend,
        eval_pairs=args.eval_pairs, fluency_pairs=args.fluency_pairs, rollout_groups=args.rollout_groups, max_new_tokens=args.max_new_tokens,
        grpo_steps=args.grpo_steps, grpo_prompts_per_step=args.grpo_prompts_per_step,
        grpo_generations=args.grpo_generations,
    )
    os.environ.update(pipeline.pixel_env())  # one image budget, inherited by every stage's process
    runner = StageRunner(config.out_dir)
    start = time.perf_counter()
    try:
        model = runner.run("model", "Build the tiny Qwen2.5-VL", lambda: pipeline.build_model(config))
        sources = runner.run("sources", "Make the four sources in their released shapes",
                             lambda: pipeline.make_sources(config))
        if config.teacher in ("vllm", "both"):
            runner.run("data_vllm_teacher", "Load, filter, distil (vLLM teacher server), split",
                       lambda: pipeline.prepare_with_vllm_teacher(config, sources, model["model"]))
        if config.teacher in ("stub", "both"):
            runner.run("data_stub_teacher", "Load, filter, distil (deterministic teacher server), split",
                       lambda: pipeline.prepare_with_stub_teacher(config, sources))
        data = runner.run("data", "Check the four training sets", lambda: pipeline.check_training_sets(config))
        data_dir = Path(data["dir"])
        grm, proxy = runner.run_together([
            ("sft_grm", "GRM cold-start SFT (swift sft, CPU)", lambda: pipeline.sft(
                config, "scripts/sft/train_grm_sft.sh", model["model"], data_dir / "grm_sft.jsonl", "grm_sft")),
            ("sft_proxy", "Proxy-SFT (swift sft, CPU)", lambda: pipeline.sft(
                config, "scripts/sft/train_proxy_sft.sh", model["model"], data_dir / "proxy_sft.jsonl", "proxy_sft")),
        ])

        server = None

        def proxy_url() -> str:
            nonlocal server
            if server is None:
                print(f"    starting the proxy service ({config.proxy_backend} backend) on the Proxy-SFT checkpoint")
                server = pipeline.start_proxy(config, proxy["checkpoint"])
            return server.health_url.removesuffix("/health")

        try:
            runner.run("rewards", "Score GRPO rollouts through verl's reward loop, every aggregation mode",
                       lambda: pipeline.score_rollouts_all_modes(config, proxy_url(), grm["checkpoint"],
                                                                 model["model"]))
            grpo = runner.run("grpo", "GRM GRPO with the proxy reward (ms-swift on CPU, the CPU trainer of C.2)",
                              lambda: pipeline.grpo(config, grm["checkpoint"], proxy_url()))
            checkpoints = {"sft": grm["checkpoint"], "grpo": grpo["checkpoint"]}
            evaluations = {tag: runner.run(f"eval_{tag}", f"Evaluate the GRM ({tag} checkpoint) on the benchmark "
                                                          "fixtures", lambda path=path, tag=tag: pipeline.evaluate(config, path, tag))
                           for tag, path in checkpoints.items()}
            answers = {tag: [r["answers"] for r in result.values()] for tag, result in evaluations.items()}
            for tag in checkpoints:
                runner.run(f"fluency_{tag}", f"Protocol fluency on held-out prompts ({tag} GRM, proxy on its rubrics)",
                           lambda tag=tag: pipeline.fluency(config, proxy_url(), checkpoints[tag], answers[tag]))
            runner.run("transfer", "Rubric transfer: the proxy judges with and without the GRM's rubrics",
                       lambda: pipeline.rubric_transfer(config, proxy_url(), {
                           f"{tag}/{benchmark}": result["answers"]
                           for tag, evaluation in evaluations.items() for benchmark, result in evaluation.items()}))
        finally:
            if server is not None:
                server.stop()
    except StageFailed as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1
    report = write_report(config, runner.records, time.perf_counter() - start)
    print(f"\nreport: {report}\nplots:  {config.out_dir / 'plots'}\nlogs:   {config.out_dir / 'logs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
