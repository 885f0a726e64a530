"""One GRPO step at the release's size through one proxy: every rollout judged once, against the ideal time.

The release trains with batch 256 x n = 8: 2,048 rollouts a step, all sent to the proxy while the step's
other rollouts still generate. A proxy of capacity C critiques at a time, each batch taking T seconds,
needs at least ``rollouts x T / C`` seconds for the step, and most calls wait many times ``timeout_s`` in
the client's connection pool and the service's queue. This benchmark

1. starts the proxy service (transformers backend by default: a known capacity, ``--max-batch-size``),
2. times one full batch alone (T at capacity C; the median of three),
3. sends ``--rollouts`` rollouts through ``compute_score`` at once, as verl's reward loop awaits them,

and prints the wall time beside the ideal ``rollouts x T / C``, the service's critique counter (every
rollout judged exactly once), failures, retries and the backlog in units of ``timeout_s``.

    .venv/bin/python -m benchmarks.reward_step_throughput                  # tiny model, 2,048 rollouts
    python -m benchmarks.reward_step_throughput --model-path DIR --backend vllm --no-enforce-eager  # a GPU
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from proxy_grm.proxy_contract import HEALTH_PATH, route_url
from proxy_grm.reward import compute_score
from proxy_grm.reward.proxy_client import close_pools
from proxy_grm.supervise import supervise

from benchmarks.common import add_engine_args, benchmark_model, use_local_vllm
from benchmarks.reward_rollouts import uniform_rollouts
from benchmarks.reward_ways import Bench, start_service


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model-path", type=Path, default=None,
                        help="proxy checkpoint; default: build the tiny random Qwen2.5-VL in a temporary folder")
    parser.add_argument("--backend", choices=("transformers", "vllm"), default="transformers")
    parser.add_argument("--rollouts", type=int, default=2048, help="one step: train_batch_size x rollout.n")
    parser.add_argument("--max-batch-size", type=int, default=32, help="critiques the proxy writes at a time")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="critique length")
    parser.add_argument("--timeout-s", type=float, default=15.0,
                        help="the reward's timeout_s: must exceed the time the proxy takes for one batch")
    parser.add_argument("--max-connections", type=int, default=100, help="the reward's pool (its default)")
    add_engine_args(parser, port=18743)
    args = parser.parse_args()
    for name in ("rollouts", "max_batch_size", "max_new_tokens", "max_connections"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def health(base_url: str) -> dict:
    return httpx.get(route_url(base_url, HEALTH_PATH), timeout=30).json()


def score_all(base_url: str, rows: list[dict], args: argparse.Namespace) -> tuple[float, list]:
    """Every rollout through ``compute_score`` at once; (wall seconds, outcomes with exceptions kept)."""

    async def run() -> list:
        try:
            return await asyncio.gather(*(
                compute_score(row["data_source"], row["solution_str"], row["ground_truth"], row["extra_info"],
                              proxy_url=base_url, timeout_s=args.timeout_s, max_connections=args.max_connections)
                for row in rows), return_exceptions=True)
        finally:
            await close_pools()

    started = time.perf_counter()
    outcomes = asyncio.run(run())
    return time.perf_counter() - started, outcomes


def main() -> None:
    args = parse_args()
    use_local_vllm()
    supervise()
    with tempfile.TemporaryDirectory(prefix="reward-step-") as scratch:
        scratch_dir = Path(scratch)
        model_path = benchmark_model(args.model_path, scratch_dir)
        rows = uniform_rollouts(args.rollouts, scratch_dir)
        base_url = f"http://127.0.0.1:{args.port}"
        print(f"starting the {args.backend} proxy ...", flush=True)
        proxy = start_service(Bench(args, model_path, scratch_dir), scratch_dir / "proxy.log",
                            ("--max-batch-size", str(args.max_batch_size)))
        try:
            score_all(base_url, rows[:4], args)  # warm-up
            batch_s = statistics.median(score_all(base_url, rows[:args.max_batch_size], args)[0] for _ in range(3))
            print(f"one batch of {args.max_batch_size}: {batch_s:.2f} s (median of 3); {args.rollouts} rollouts ...",
                  flush=True)
            before = health(base_url)
            wall_s, outcomes = score_all(base_url, rows, args)
            after = health(base_url)
        finally:
            proxy.stop()

    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    judged = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    retries = sum(outcome["proxy_attempts"] - 1 for outcome in judged)
    written = after["critiques"] - before["critiques"]
    ideal_s = args.rollouts * batch_s / args.max_batch_size
    print(f"\none step: {args.rollouts} rollouts, {args.backend} backend, {args.max_batch_size} critiques at a time, "
          f"max_new_tokens={args.max_new_tokens}, timeout_s={args.timeout_s}, "
          f"model={args.model_path or 'tiny random Qwen2.5-VL'}")
    aborted = after.get("aborted_critiques", 0) - before.get("aborted_critiques", 0)
    print(f"  ideal (rollouts x batch time / batch size) : {ideal_s:8.1f} s "
          f"(= {ideal_s / args.timeout_s:.0f} x timeout_s)")
    print(f"  wall                                       : {wall_s:8.1f} s (wall / ideal = {wall_s / ideal_s:.2f})")
    print(f"  critiques written by the service           : {written:8d} (aborted {aborted})")
    print(f"  judged / failed / retries                  : {len(judged)} / {len(failures)} / {retries:.0f}")
    if failures:
        print(f"  first failure: {failures[0]}")


if __name__ == "__main__":
    main()
