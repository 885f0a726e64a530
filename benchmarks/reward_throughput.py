"""Reward throughput: how fast GRPO rollouts are scored through the proxy, three ways.

(a) the release's way: one blocking HTTP call per rollout, one after another;
(b) ours: ``proxy_grm.reward.compute_score`` (async) on every rollout at once,
    as verl's reward loop calls it, against the same proxy service;
(c) the limit: the engine's offline batched generation on the same proxy prompts,
    with no HTTP and no server.

Prints (a)/(b) (targets >= 10 with the vLLM backend) and (b)/(c) (target <= 1.25).
The server and the offline engine run one after the other, never together.

    .venv-vllm/bin/python benchmarks/reward_throughput.py                 # tiny model, vLLM on CPU
    python benchmarks/reward_throughput.py --model-path DIR --no-enforce-eager   # a real proxy on a GPU
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

from proxy_grm.messages import chat_messages
from proxy_grm.parsing import extract_rubric
from proxy_grm.prompts import proxy_prompt
from proxy_grm.reward import compute_score
from proxy_grm.reward.proxy_client import close_pools
from proxy_grm.reward.score import proxy_payload
from proxy_grm.supervise import supervise

REPO_ROOT = Path(__file__).resolve().parents[1]
PROXY_SCRIPT = REPO_ROOT / "proxy" / "proxy.py"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model-path", type=Path, default=None,
                        help="proxy checkpoint; default: build the tiny random Qwen2.5-VL in a temporary folder")
    parser.add_argument("--backend", choices=("vllm", "transformers"), default="vllm")
    parser.add_argument("--rollouts", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=128,
                        help="critique length (the tiny model never stops early); real proxy critiques run "
                             "~100-300 tokens, and with much shorter ones prefill and per-request overhead dominate")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--enforce-eager", action=argparse.BooleanOptionalAction, default=True,
                        help="vLLM without graph compilation (right for CPU; turn off on a GPU)")
    parser.add_argument("--port", type=int, default=18741)
    parser.add_argument("--startup-timeout-s", type=float, default=600)
    args = parser.parse_args()
    if args.rollouts < 1 or args.max_new_tokens < 1:
        parser.error("--rollouts and --max-new-tokens must be at least 1")
    return args


def make_rollouts(count: int, image_dir: Path) -> list[dict]:
    """verl-style rows: a GRM rollout (rubric/eval/answer) plus the pair in ``extra_info``."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]
    images = []
    for index, colour in enumerate(colours):
        path = image_dir / f"image_{index}.png"
        Image.new("RGB", (64 + 16 * index, 48 + 8 * index), colour).save(path)
        images.append(str(path))
    rows = []
    for index in range(count):
        label = 1 + index % 2
        rubric = (f"<rubric>\n1. Colour accuracy ({40 + index % 30}%)\n2. Completeness ({60 - index % 30}%)\n"
                  "<justify>The question asks about colour.</justify>\n</rubric>")
        rows.append({
            "data_source": "benchmark",
            "solution_str": f"{rubric}\n<eval>Response {label} names the colour.</eval>\n<answer>{label}</answer>",
            "ground_truth": str(label),
            "extra_info": {
                "question": f"What colour is object {index}?",
                "chosen": f"Object {index} is red." if label == 1 else f"Object {index} is green.",
                "rejected": f"Object {index} is green." if label == 1 else f"Object {index} is red.",
                "image": images[index % len(images)],
                "answer": str(label),
            },
        })
    return rows


def release_payloads(rows: list[dict]) -> list[dict]:
    return [proxy_payload(row["extra_info"], row["ground_truth"], extract_rubric(row["solution_str"]),
                          row["data_source"]) for row in rows]


def start_proxy(args: argparse.Namespace, model_path: Path, log_path: Path) -> subprocess.Popen:
    argv = [sys.executable, str(PROXY_SCRIPT), "--model-path", str(model_path), "--backend", args.backend,
            "--port", str(args.port), "--max-new-tokens", str(args.max_new_tokens), "--dtype", args.dtype,
            "--max-model-len", str(args.max_model_len)]
    if args.enforce_eager:
        argv.append("--enforce-eager")
    process = subprocess.Popen(argv, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + args.startup_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"proxy exited with {process.returncode}; see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{args.port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(1)
    process.terminate()
    sys.exit(f"proxy not healthy after {args.startup_timeout_s}s; see {log_path}")


def run_release_way(url: str, payloads: list[dict]) -> float:
    """(a) One blocking call at a time, as the release's reward function did."""
    started = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        for payload in payloads:
            response = client.post(url, json=payload)
            response.raise_for_status()
            response.json()["reward"]
    return time.perf_counter() - started


def run_ours(base_url: str, rows: list[dict]) -> float:
    """(b) compute_score on every rollout concurrently, as verl's reward loop awaits it."""

    async def score_all() -> list[dict]:
        try:
            return await asyncio.gather(*(
                compute_score(row["data_source"], row["solution_str"], row["ground_truth"], row["extra_info"],
                              proxy_url=base_url, max_connections=len(rows))
                for row in rows
            ))
        finally:
            await close_pools()

    started = time.perf_counter()
    scores = asyncio.run(score_all())
    elapsed = time.perf_counter() - started
    assert all(score["proxy_called"] == 1.0 for score in scores), "some rollouts were not judged by the proxy"
    return elapsed


def run_offline(args: argparse.Namespace, model_path: Path, payloads: list[dict]) -> float:
    """(c) The same proxy prompts through the engine's offline batched generation."""
    from proxy_grm.generation import TransformersGenerator, VllmGenerator

    if args.backend == "vllm":
        generator = VllmGenerator(model_path, dtype=args.dtype, max_model_len=args.max_model_len,
                                  enforce_eager=args.enforce_eager)
    else:
        generator = TransformersGenerator(model_path, dtype=args.dtype)
    conversations = [
        chat_messages(proxy_prompt(p["question"], p["chosen"], p["rejected"], p["rubric"]), image=p["image"])
        for p in payloads
    ]
    try:
        generator.generate(conversations[:2], args.max_new_tokens)  # warm-up, as the server's first requests are
        started = time.perf_counter()
        generator.generate(conversations, args.max_new_tokens)
        return time.perf_counter() - started
    finally:
        if isinstance(generator, VllmGenerator):
            generator.shutdown()


def main() -> None:
    args = parse_args()
    supervise()  # the proxy and the offline engine must not outlive this process, even after a SIGKILL
    n = args.rollouts
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    with tempfile.TemporaryDirectory(prefix="reward-throughput-") as scratch:
        scratch_dir = Path(scratch)
        model_path = args.model_path
        if model_path is None:
            from proxy_grm.tiny_model import make_tiny_model

            model_path = make_tiny_model(scratch_dir / "tiny-model")
        rows = make_rollouts(args.rollouts, scratch_dir)
        payloads = release_payloads(rows)
        base_url = f"http://127.0.0.1:{args.port}"

        log_path = scratch_dir / "proxy.log"
        print(f"starting the {args.backend} proxy ...", flush=True)
        proxy = start_proxy(args, model_path, log_path)
        try:
            run_release_way(f"{base_url}/get_reward_mllm", payloads[:4])  # warm-up
            print(f"(a) {n} blocking calls ...", flush=True)
            release_s = run_release_way(f"{base_url}/get_reward_mllm", payloads)
            print(f"(b) {n} concurrent compute_score calls ...", flush=True)
            ours_s = run_ours(base_url, rows)
        finally:
            proxy.terminate()
            proxy.wait(timeout=60)
        print("(c) offline batched generation ...", flush=True)
        offline_s = run_offline(args, model_path, payloads)

    print(f"\nreward throughput: {n} rollouts, {args.backend} backend, max_new_tokens={args.max_new_tokens}, "
          f"model={model_path if args.model_path else 'tiny random Qwen2.5-VL'}")
    print(f"  (a) release, one blocking call at a time : {release_s:8.2f} s  {n / release_s:8.1f} rollouts/s")
    print(f"  (b) ours, async compute_score            : {ours_s:8.2f} s  {n / ours_s:8.1f} rollouts/s")
    print(f"  (c) offline batched generation (limit)   : {offline_s:8.2f} s  {n / offline_s:8.1f} rollouts/s")
    print(f"  (a)/(b) = {release_s / ours_s:.2f}   (target >= 10 with vLLM)")
    print(f"  (b)/(c) = {ours_s / offline_s:.2f}   (target <= 1.25)")


if __name__ == "__main__":
    main()
