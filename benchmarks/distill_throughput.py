"""Distillation throughput: our teacher client against a local OpenAI-compatible vLLM server, three ways.

(a) a plain script: one chat-completions request at a time, the same request bodies;
(b) ours: ``proxy_grm.data.distill.distill`` (the stage-2 client: concurrent requests, the
    append-only cache), at ``--concurrency`` (repeat the flag to sweep several values);
(c) the limit: vLLM's offline ``LLM.chat`` on the same messages, no HTTP and no server.

Prints pairs/s and output tokens/s for each, (a)/(b) (target >= 10) and (b)/(c) (target <= 1.15).
The server and the offline engine run one after the other, never together. Ratios are
measured within one run, so they hold on a busy machine where absolute times do not.
Without ``--model-path`` it serves the tiny random Qwen2.5-VL, whose critiques run to ``--max-tokens``
(a teacher writes a few thousand tokens per pair: distillation is generation-bound).

    .venv-vllm/bin/python -m benchmarks.distill_throughput [--pairs 64] [--max-tokens 128] \\
        [--concurrency 16 --concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

from proxy_grm.data.distill import TeacherCache, TeacherConfig, distill, teacher_request
from proxy_grm.pairs import PairRecord
from proxy_grm.pairs import iter_pairs
from proxy_grm.supervise import supervise
from proxy_grm.toy.servers import ServerProcess, vllm_env

from benchmarks.common import add_engine_args, benchmark_model, metric_totals, use_local_vllm

SERVED_NAME = "teacher"
GENERATED_TOKENS = "vllm:generation_tokens_total"
WORDS = ("the picture shows a red box on a wooden table near a window with light falling on its left side "
         "and a small blue cup behind it").split()


@dataclass(frozen=True)
class Run:
    name: str
    seconds: float
    pairs: int
    output_tokens: int


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model-path", type=Path, default=None,
                        help="teacher checkpoint; default: build the tiny random Qwen2.5-VL in a temporary folder")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=128, help="critique length (the tiny model never stops)")
    parser.add_argument("--concurrency", type=int, action="append", default=None,
                        help=f"(b)'s concurrency; repeat to sweep (default: the client's, "
                             f"{TeacherConfig(base_urls=(), model='').concurrency})")
    add_engine_args(parser, port=18742)
    args = parser.parse_args()
    args.concurrency = args.concurrency or [TeacherConfig(base_urls=(), model="").concurrency]
    if min(args.pairs, args.max_tokens, *args.concurrency) < 1:
        parser.error("--pairs, --max-tokens and --concurrency must be at least 1")
    return args


def write_pairs(root: Path, count: int) -> Path:
    """``count`` pairs in stage 1's ``pairs.jsonl``, each with its own 224x224 image."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(count):
        image = root / "images" / f"{index}.png"
        Image.new("RGB", (224, 224), ((37 * index) % 256, (91 * index) % 256, 120)).save(image)
        text = " ".join(WORDS[(index + k) % len(WORDS)] for k in range(60))
        lines.append(PairRecord(id=f"pair_{index}", source="benchmark", image=str(image),
                                question=f"Describe picture {index}.", preferred=f"{text}.",
                                dispreferred=f"A photo of a cat. {text[::-1]}").to_json())
    path = root / "pairs.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def generated_tokens(server_url: str) -> float:
    """The server's ``vllm:generation_tokens_total`` (its own count of the tokens it wrote)."""
    text = httpx.get(f"{server_url}/metrics", timeout=60).text
    return metric_totals(text, [GENERATED_TOKENS])[GENERATED_TOKENS]


def run_plain_script(config: TeacherConfig, pairs: list[PairRecord], server_url: str) -> Run:
    """(a) One request at a time, as a plain loop over the pairs would send them."""
    before = generated_tokens(server_url)
    started = time.perf_counter()
    with httpx.Client(timeout=config.timeout_s) as client:
        for pair in pairs:
            body, _ = teacher_request(pair, config)
            response = client.post(config.base_urls[0].rstrip("/") + "/chat/completions", json=body)
            response.raise_for_status()
    seconds = time.perf_counter() - started
    return Run("(a) plain script, one request at a time", seconds, len(pairs),
               round(generated_tokens(server_url) - before))


def run_ours(config: TeacherConfig, pairs_path: Path, cache_path: Path, server_url: str) -> Run:
    """(b) The stage-2 client, writing its cache as it would."""
    before = generated_tokens(server_url)
    started = time.perf_counter()
    summary = asyncio.run(distill(pairs_path, cache_path, config, progress=False))
    seconds = time.perf_counter() - started
    if summary.failed or summary.done != len(TeacherCache(cache_path).ids()):
        sys.exit(f"our client failed: {summary.report()}")
    return Run(f"(b) ours, distill() at concurrency {config.concurrency}", seconds, summary.done,
               round(generated_tokens(server_url) - before))


def run_offline(args: argparse.Namespace, model_path: Path, config: TeacherConfig, pairs: list[PairRecord]) -> Run:
    """(c) vLLM's offline engine on the same chat messages, all at once.

    The engine is the project's ``VllmGenerator`` (its engine arguments, its shutdown); the measurement
    calls its ``LLM.chat`` on the teacher's own OpenAI-style messages, so (b) and (c) send the same thing.
    """
    from vllm import SamplingParams

    from proxy_grm.generation import VllmGenerator

    generator = VllmGenerator(model_path, dtype=args.dtype, max_model_len=args.max_model_len,
                              enforce_eager=args.enforce_eager)
    llm = generator.llm
    try:
        conversations = [teacher_request(pair, config)[0]["messages"] for pair in pairs]
        params = SamplingParams(temperature=config.temperature, max_tokens=config.max_tokens)
        llm.chat(conversations[:2], params, use_tqdm=False)  # warm-up, as the server's first requests are
        started = time.perf_counter()
        outputs = llm.chat(conversations, params, use_tqdm=False)
        seconds = time.perf_counter() - started
    finally:
        generator.shutdown()
    tokens = sum(len(output.outputs[0].token_ids) for output in outputs)
    return Run("(c) vLLM offline LLM.chat, same messages", seconds, len(pairs), tokens)


def main() -> None:
    args = parse_args()
    supervise()  # the server and the offline engine must not outlive this process, even after a SIGKILL
    use_local_vllm()
    with tempfile.TemporaryDirectory(prefix="distill-throughput-") as scratch:
        root = Path(scratch)
        model_path = benchmark_model(args.model_path, root)
        pairs_path = write_pairs(root, args.pairs)
        pairs = list(iter_pairs(pairs_path))
        server_url = f"http://127.0.0.1:{args.port}"
        base_url = f"{server_url}/v1"
        config = TeacherConfig(base_urls=(base_url,), model=SERVED_NAME, max_tokens=args.max_tokens)
        argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_path),
                "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(args.port),
                "--dtype", args.dtype, "--max-model-len", str(args.max_model_len)]
        if args.enforce_eager:
            argv.append("--enforce-eager")
        print("starting the vLLM OpenAI-compatible server ...", flush=True)
        server = ServerProcess(argv, f"{server_url}/health", root / "server.log",
                               env=vllm_env() | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
        runs = []
        try:
            server.wait_healthy(timeout_s=args.startup_timeout_s)
            run_plain_script(config, pairs[:2], server_url)  # warm-up
            print(f"(a) {len(pairs)} requests one at a time ...", flush=True)
            runs.append(run_plain_script(config, pairs, server_url))
            for concurrency in args.concurrency:
                print(f"(b) distill() at concurrency {concurrency} ...", flush=True)
                runs.append(run_ours(TeacherConfig(base_urls=(base_url,), model=SERVED_NAME,
                                                   max_tokens=args.max_tokens, concurrency=concurrency),
                                     pairs_path, root / f"cache-{concurrency}.jsonl", server_url))
        finally:
            server.stop()
        print("(c) offline batched generation ...", flush=True)
        runs.append(run_offline(args, model_path, config, pairs))

    print(f"\ndistillation: {args.pairs} pairs, max_tokens {args.max_tokens}, "
          f"model={model_path if args.model_path else 'tiny random Qwen2.5-VL'}; {os.cpu_count()} CPUs, shared "
          "with other work: compare the ratios, not the seconds")
    print(f"  {'':48} {'seconds':>8} {'pairs/s':>8} {'out tok/s':>10}")
    for run in runs:
        print(f"  {run.name:<48} {run.seconds:8.2f} {run.pairs / run.seconds:8.2f} "
              f"{run.output_tokens / run.seconds:10.0f}")
    plain, offline = runs[0], runs[-1]
    for ours in runs[1:-1]:
        print(f"  concurrency {ours.name.rsplit(' ', 1)[-1]:>4}: (a)/(b) = {plain.seconds / ours.seconds:6.2f} "
              f"(target >= 10)   (b)/(c) = {ours.seconds / offline.seconds:5.2f} (target <= 1.15)")


if __name__ == "__main__":
    main()
