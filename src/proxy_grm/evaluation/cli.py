"""Command lines behind ``eval/*.py``: generation and scoring, one parser each for all benchmarks.

Flag spellings follow the release's README (``--model-path``, ``--question_file``
or ``--question-file``, ``--answers_file`` or ``--answers-file``, ``--file_path``)
so its commands keep working.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from proxy_grm.datafiles import DataFileError
from proxy_grm.evaluation.benchmarks import BENCHMARKS, Benchmark, Order, Unparsed
from proxy_grm.evaluation.report import markdown_table, write_report
from proxy_grm.evaluation.runner import RunConfig, RunSummary, pending_rows, run
from proxy_grm.evaluation.scoring import AUTHORS, GUESS_SEED, PROTOCOLS, RELEASE, authors_metrics, release_metrics
from proxy_grm.generation import Generator
from proxy_grm.parsing import Fallback
from proxy_grm.pixels import MAX_PIXELS_ENV, RELEASE_EVAL_MAX_PIXELS, RELEASE_MAX_PIXELS, PixelBudget, pixel_budget
from proxy_grm.supervise import supervise


def score_parser(benchmark: Benchmark) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=f"Score a {benchmark.title} answers file.")
    parser.add_argument("--file_path", "--file-path", dest="file_path", type=Path, required=True,
                        help="answers JSONL written by the generation script")
    parser.add_argument("--protocol", choices=PROTOCOLS, default=AUTHORS,
                        help="authors: the benchmark's own definitions (default); "
                             "release: exactly the Proxy-GRM release's scorer, to compare with the paper")
    parser.add_argument("--unparsed", choices=[p.value for p in Unparsed], default=None,
                        help=f"unparseable verdicts count as wrong, are excluded, or become a seeded guess "
                             f"(authors protocol only; default for this benchmark: "
                             f"{benchmark.default_unparsed.value}, as {benchmark.default_unparsed_reason})")
    parser.add_argument("--guess-seed", type=int, default=GUESS_SEED, help="seed of --unparsed guess")
    parser.add_argument("--no-report", action="store_true", help="skip the JSON/Markdown/PNG files")
    return parser


def score_main(benchmark_name: str, argv: list[str] | None = None) -> dict:
    """Score, print, and write the report; returns the metrics."""
    benchmark = BENCHMARKS[benchmark_name]
    parser = score_parser(benchmark)
    args = parser.parse_args(argv)
    if args.protocol == RELEASE and args.unparsed is not None:
        parser.error("--unparsed applies to the authors protocol; the release protocol scores the rewards "
                     "exactly as written")
    if not args.file_path.is_file():
        parser.error(f"--file_path {args.file_path}: no such file")
    try:
        return _score(benchmark, args)
    except DataFileError as error:
        parser.exit(2, f"error: {error}\n")


def _score(benchmark: Benchmark, args: argparse.Namespace) -> dict:
    if args.protocol == RELEASE:
        metrics, output = release_metrics(benchmark, args.file_path)
        # stdout carries exactly the release's lines; our additions go to stderr.
        print("\n".join(output.printed))
        output.text_file.write_text("\n".join(output.written) + "\n", encoding="utf-8")
        print(f"[release protocol] unparseable verdicts: {metrics['unparsed']} of {metrics['rows']} "
              f"(scored as the rewards were written); text file: {output.text_file}", file=sys.stderr)
    else:
        unparsed = Unparsed(args.unparsed) if args.unparsed else None
        metrics = authors_metrics(benchmark, args.file_path, unparsed, args.guess_seed)
        default_note = (f"the default for {benchmark.title}: {benchmark.default_unparsed_reason}"
                        if metrics["unparsed_policy_is_default"] else "set by --unparsed")
        print(f"{benchmark.title}: {args.file_path} ({metrics['rows']} rows, authors protocol)")
        print(f"Unparseable verdicts: {metrics['unparsed']} of {metrics['rows']}; "
              f"policy: {metrics['unparsed_policy']} ({default_note})")
        print(markdown_table(benchmark, metrics), end="")
    if not args.no_report:
        paths = write_report(benchmark, metrics, args.file_path)
        print(f"Wrote {paths['json']}, {paths['md']}, {paths['png']}", file=sys.stderr)
    return metrics


def generate_parser(benchmark: Benchmark) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=f"Generate GRM verdicts on {benchmark.title} (resumable).")
    parser.add_argument("--model-path", "--model_path", dest="model_path", required=True)
    parser.add_argument("--question-file", "--question_file", dest="question_file", type=Path, required=True,
                        help="pairs JSONL (data_prep/convert_benchmark.py writes it)")
    parser.add_argument("--answers-file", "--answers_file", dest="answers_file", type=Path, required=True,
                        help="output JSONL; an existing one is resumed, never deleted")
    parser.add_argument("--backend", choices=("auto", "vllm", "transformers"), default="auto",
                        help="auto: vLLM when importable, else transformers")
    parser.add_argument("--protocol", choices=PROTOCOLS, default=AUTHORS,
                        help="authors: our prompt and parser, the benchmark authors' pair order (default); "
                             "release: the Proxy-GRM release's eval prompt, <image> line, parser and random "
                             "swap, to reproduce the paper's table")
    parser.add_argument("--order", choices=[o.value for o in Order], default=None,
                        help=f"pair order: random (a seeded coin per row) or original (the benchmark file's); "
                             f"default: {benchmark.default_order.value} (the {benchmark.title} authors'), "
                             f"random under --protocol release")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-row order swap")
    parser.add_argument("--both-orders", action="store_true",
                        help="also score each pair in the other order and report position consistency")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="pairs per generation call and per append (default: 64 vLLM, 8 transformers)")
    parser.add_argument("--max-new-tokens", type=int, default=4096)
    parser.add_argument("--image-root", type=Path, default=None,
                        help="folder that relative image/video paths are resolved against (and confined to)")
    parser.add_argument("--num-frames", type=int, default=32, help="frames sampled evenly from a video folder")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help=f"images are resized to at most this many pixels, as in SFT and RL "
                             f"(default: ${MAX_PIXELS_ENV}, else the release's {RELEASE_MAX_PIXELS}; under "
                             f"--protocol release, the release eval's {RELEASE_EVAL_MAX_PIXELS})")
    parser.add_argument("--verdict-fallback", choices=[f.value for f in Fallback], default=None,
                        help="reading of an output without <answer>: whole_output (the training rule, default) "
                             "or last_digit (close to the release's eval rule); --protocol release uses the "
                             "release's own parser for each benchmark")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM only")
    parser.add_argument("--max-model-len", type=int, default=None, help="vLLM only")
    parser.add_argument("--gpu-memory-utilization", type=float, default=None, help="vLLM only")
    return parser


def _backend(name: str) -> str:
    if name != "auto":
        return name
    return "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"


def eval_pixel_budget(args: argparse.Namespace) -> PixelBudget:
    """--max-pixels, else (under --protocol release) the cap the release's eval had, else the shared budget."""
    if args.max_pixels is None and args.protocol == RELEASE:
        return pixel_budget(RELEASE_EVAL_MAX_PIXELS)
    return pixel_budget(args.max_pixels)


def make_generator(args: argparse.Namespace, backend: str) -> Generator:
    if backend == "vllm":
        from proxy_grm.generation import VllmGenerator

        return VllmGenerator(args.model_path, tp=args.tensor_parallel_size, dtype=args.dtype,
                             max_model_len=args.max_model_len, gpu_memory_utilization=args.gpu_memory_utilization,
                             image_root=args.image_root, pixels=eval_pixel_budget(args))
    from proxy_grm.generation import TransformersGenerator

    return TransformersGenerator(args.model_path, dtype=args.dtype, image_root=args.image_root,
                                 pixels=eval_pixel_budget(args))


def generate_main(benchmark_name: str, argv: list[str] | None = None) -> RunSummary | None:
    """Validate everything cheap first, then load the model and generate what is missing."""
    benchmark = BENCHMARKS[benchmark_name]
    parser = generate_parser(benchmark)
    args = parser.parse_args(argv)
    for flag in ("batch_size", "max_new_tokens", "num_frames", "tensor_parallel_size"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.image_root is not None and not args.image_root.is_dir():
        parser.error(f"--image-root {args.image_root}: no such folder")
    try:
        eval_pixel_budget(args)
    except ValueError as error:
        parser.error(f"--max-pixels: {error}")
    if args.protocol == RELEASE and args.verdict_fallback is not None:
        parser.error("--verdict-fallback applies to the authors protocol; --protocol release parses as the release")
    backend = _backend(args.backend)
    if backend == "vllm" and importlib.util.find_spec("vllm") is None:
        parser.error("--backend vllm: vllm is not installed in this environment")
    if backend == "vllm":
        supervise(argv)  # the engine's processes must not outlive this one, even after a SIGKILL
    config = RunConfig(
        benchmark=benchmark, question_file=args.question_file, answers_file=args.answers_file, seed=args.seed,
        protocol=args.protocol, order=Order(args.order) if args.order else None,
        both_orders=args.both_orders, batch_size=args.batch_size or (64 if backend == "vllm" else 8),
        max_new_tokens=args.max_new_tokens, image_root=args.image_root, num_frames=args.num_frames,
        fallback=Fallback(args.verdict_fallback or Fallback.WHOLE_OUTPUT.value),
    )
    try:
        questions, pending = pending_rows(config)
    except DataFileError as error:
        parser.exit(2, f"error: {error}\n")
    if pending:
        print(f"{benchmark.title}: {len(pending)} of {len(questions)} pairs to generate with {backend} "
              f"({len(questions) - len(pending)} already in {config.answers_file})", file=sys.stderr)
        summary = run(config, make_generator(args, backend), questions, pending)
    else:
        summary = RunSummary(len(questions), len(questions), 0, 0, 0.0)
    _print_summary(benchmark, config, summary)
    return summary


def _print_summary(benchmark: Benchmark, config: RunConfig, summary: RunSummary) -> None:
    rate = summary.generated / summary.seconds if summary.seconds else 0.0
    print(f"{benchmark.title}: {summary.generated} pairs generated in {summary.seconds:.1f} s ({rate:.2f} pairs/s), "
          f"{summary.skipped} already done, {summary.unparsed} of the new verdicts unparseable; "
          f"answers: {config.answers_file}")
    metrics = authors_metrics(benchmark, config.answers_file)
    line = f"Accuracy (authors protocol, unparsed {metrics['unparsed_policy']}): {100 * (metrics['overall'] or 0):.2f}%"
    if "position_consistency" in metrics:
        line += f"; position consistency {100 * metrics['position_consistency']:.2f}%"
    print(line)
    protocol = " --protocol release" if config.protocol == RELEASE else ""
    print(f"Full report: python {benchmark.score_script} --file_path {config.answers_file}{protocol}")


def transfer_main(argv: list[str] | None = None) -> dict:
    """Rubric transfer: a second evaluator's accuracy with and without the GRM's rubrics."""
    from proxy_grm.evaluation import rubric_transfer as transfer

    parser = argparse.ArgumentParser(description="Judge each pair of a GRM answers file with a second evaluator, "
                                                 "with the GRM's rubric and with a neutral one.")
    parser.add_argument("--answers-file", "--answers_file", dest="answers_file", type=Path, required=True)
    parser.add_argument("--evaluator", choices=("proxy", "openai"), default="proxy",
                        help="proxy: our proxy service; openai: any OpenAI-compatible chat endpoint")
    parser.add_argument("--url", required=True,
                        help="proxy: http://HOST:PORT; openai: the API base, e.g. http://HOST:PORT/v1")
    parser.add_argument("--model", default=None, help="model name (openai evaluator)")
    parser.add_argument("--api-key", default=None, help="bearer token, if the endpoint needs one")
    parser.add_argument("--batch-size", type=int, default=32, help="items per proxy request")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel requests (openai evaluator)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="critique length (openai evaluator)")
    parser.add_argument("--inline-images", action="store_true",
                        help="send images as data URIs (the proxy runs on another machine)")
    parser.add_argument("--limit", type=int, default=None, help="judge only the first N pairs with a rubric")
    args = parser.parse_args(argv)
    if args.evaluator == "openai" and not args.model:
        parser.error("--evaluator openai needs --model")
    if not args.answers_file.is_file():
        parser.error(f"--answers-file {args.answers_file}: no such file")
    try:
        inputs = transfer.transfer_items(args.answers_file, args.limit)
    except DataFileError as error:
        parser.exit(2, f"error: {error}\n")
    evaluator: transfer.Evaluator
    if args.evaluator == "proxy":
        evaluator = transfer.ProxyEvaluator(args.url, args.api_key, args.batch_size, inline_images=args.inline_images)
    else:
        evaluator = transfer.OpenAIEvaluator(args.url, args.model, args.api_key, args.max_tokens, args.concurrency)
    summary, rows = transfer.run_transfer(inputs, evaluator, lambda message: print(message, file=sys.stderr))
    summary_path, rows_path = transfer.write_outputs(args.answers_file, summary, rows)
    with_rubric, without = summary["with_rubric"], summary["without_rubric"]
    print(f"Rubric transfer on {summary['pairs']} pairs ({summary['skipped_no_rubric']} without a rubric and "
          f"{summary['skipped_video']} video rows skipped); evaluator: {args.evaluator} at {args.url}")
    for name, result in (("with the GRM's rubric", with_rubric), ("with a neutral rubric", without),
                         ("with the GRM's rubric, pair swapped", summary["with_rubric_swapped"])):
        accuracy = "n/a" if result["accuracy"] is None else f"{100 * result['accuracy']:.2f}%"
        print(f"  {name}: {accuracy} ({result['correct']} correct, {result['unparsed']} unparseable, counted wrong)")
    if summary["pairs"]:
        print(f"  right in both orders: {100 * summary['with_rubric_both_orders']['accuracy']:.2f}%; rubrics that "
              f"leak the verdict: {summary['rubric_leaks']} ({100 * summary['leak_rate']:.1f}%)")
    print(f"Wrote {summary_path} and {rows_path}")
    return summary
