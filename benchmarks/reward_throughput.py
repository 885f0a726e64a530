"""Reward throughput: how fast GRPO rollouts are scored through the proxy, three ways.

(a) the release's way: one blocking HTTP call per rollout, one after another;
(b) ours: ``proxy_grm.reward.compute_score`` (async) on every rollout at once,
    as verl's reward loop calls it, against the same proxy service;
(c) the limit: the engine's offline batched generation on the same proxy prompts,
    with no HTTP and no server.

Two workloads:

- ``uniform`` (default): distinct short prompts; prints (a)/(b) (target >= 10 with
  the vLLM backend) and (b)/(c) (target <= 1.25).
- ``grpo``: the shape of a GRPO step, ``--pairs`` pairs x ``--group-size`` rollouts.
  The rollouts of a pair share the image, the question and both responses (a few
  hundred tokens each) and differ in the rubric (~200 tokens), which comes last in
  the proxy prompt; they are sent in the order verl streams them (a group's rollouts
  close together, groups interleaved). (b) and (c) run with the engine's prefix cache
  on and off; prints time, prompt tokens, the share of prompt tokens served from the
  cache (vLLM's own counters: the proxy's ``/metrics``, the offline engine's
  registry), (b)/(c) (target <= 1.10 with the cache on) and on/off speed ratios.
  The transformers backend has no prefix cache: it runs once and computes every
  prompt in full.
- ``swap``: the ``grpo`` step through (b) twice on one proxy (cache on), without and
  with the order-swap check (``proxy_check=swap``: each rubric judged in both
  orders in one request); prints seconds, prompt tokens and the cache's share for
  each, and what the check costs.

The server and the offline engine run one after the other, never together. Ratios
are measured within one run, so they hold on a busy machine where absolute times do not.

    .venv-vllm/bin/python benchmarks/reward_throughput.py                 # tiny model, vLLM on CPU
    .venv-vllm/bin/python benchmarks/reward_throughput.py --workload grpo # 32 pairs x 8 rollouts
    .venv-vllm/bin/python benchmarks/reward_throughput.py --workload swap # the same, swap check off and on
    python benchmarks/reward_throughput.py --model-path DIR --no-enforce-eager   # a real proxy on a GPU
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image
from prometheus_client import REGISTRY, generate_latest

from proxy_grm.messages import chat_messages
from proxy_grm.parsing import extract_rubric
from proxy_grm.prompts import proxy_prompt
from proxy_grm.proxy_contract import HEALTH_PATH, METRICS_PATH, route_url
from proxy_grm.reward import compute_score
from proxy_grm.reward.proxy_client import close_pools
from proxy_grm.reward.score import proxy_payload
from proxy_grm.supervise import supervise
from proxy_grm.toy.servers import ServerProcess

from common import add_engine_args, benchmark_model, metric_totals, use_local_vllm

REPO_ROOT = Path(__file__).resolve().parents[1]
PROXY_SCRIPT = REPO_ROOT / "proxy" / "proxy.py"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model-path", type=Path, default=None,
                        help="proxy checkpoint; default: build the tiny random Qwen2.5-VL in a temporary folder")
    parser.add_argument("--backend", choices=("vllm", "transformers"), default="vllm")
    parser.add_argument("--workload", choices=("uniform", "grpo", "swap"), default="uniform")
    parser.add_argument("--rollouts", type=int, default=256, help="uniform workload")
    parser.add_argument("--pairs", type=int, default=32, help="grpo workload: pairs per step")
    parser.add_argument("--group-size", type=int, default=8, help="grpo workload: rollouts per pair (GRPO's n)")
    parser.add_argument("--response-tokens", type=int, default=300, help="grpo workload: each of the two responses")
    parser.add_argument("--rubric-tokens", type=int, default=200, help="grpo workload")
    parser.add_argument("--image-side", type=int, default=448,
                        help="grpo workload: square images of this side (448: 256 image tokens)")
    parser.add_argument("--max-new-tokens", type=int, default=128,
                        help="critique length (the tiny model never stops early); real proxy critiques run "
                             "~100-300 tokens, and with much shorter ones prefill and per-request overhead dominate")
    add_engine_args(parser, port=18741)
    args = parser.parse_args()
    counts = ("rollouts", "max_new_tokens", "pairs", "group_size", "response_tokens", "rubric_tokens", "image_side")
    for name in counts:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
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


def start_proxy(args: argparse.Namespace, model_path: Path, log_path: Path,
                extra_flags: tuple[str, ...] = ()) -> ServerProcess:
    argv = [sys.executable, str(PROXY_SCRIPT), "--model-path", str(model_path), "--backend", args.backend,
            "--port", str(args.port), "--max-new-tokens", str(args.max_new_tokens), "--dtype", args.dtype,
            "--max-model-len", str(args.max_model_len), *extra_flags]
    if args.enforce_eager:
        argv.append("--enforce-eager")
    health_url = route_url(f"http://127.0.0.1:{args.port}", HEALTH_PATH)
    return ServerProcess(argv, health_url, log_path).wait_healthy(args.startup_timeout_s)


def run_release_way(url: str, payloads: list[dict]) -> float:
    """(a) One blocking call at a time, as the release's reward function did."""
    started = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        for payload in payloads:
            response = client.post(url, json=payload)
            response.raise_for_status()
            response.json()["reward"]
    return time.perf_counter() - started


def run_ours(base_url: str, rows: list[dict], proxy_check: str = "none") -> float:
    """(b) compute_score on every rollout concurrently, as verl's reward loop awaits it."""

    async def score_all() -> list[dict]:
        try:
            return await asyncio.gather(*(
                compute_score(row["data_source"], row["solution_str"], row["ground_truth"], row["extra_info"],
                              proxy_url=base_url, max_connections=len(rows), proxy_check=proxy_check)
                for row in rows
            ))
        finally:
            await close_pools()

    started = time.perf_counter()
    scores = asyncio.run(score_all())
    elapsed = time.perf_counter() - started
    assert all(score["proxy_called"] == 1.0 for score in scores), "some rollouts were not judged by the proxy"
    return elapsed


def run_offline(args: argparse.Namespace, model_path: Path, payloads: list[dict], prefix_caching: bool = True,
                warm_up: list[dict] | None = None) -> tuple[float, EngineCounts]:
    """(c) The same proxy prompts through the engine's offline batched generation.

    The warm-up runs ``warm_up`` (default: the first two prompts), as the server's first requests do.
    """
    from proxy_grm.generation import TransformersGenerator, VllmGenerator

    if args.backend == "vllm":
        generator = VllmGenerator(model_path, dtype=args.dtype, max_model_len=args.max_model_len,
                                  enforce_eager=args.enforce_eager, enable_prefix_caching=prefix_caching,
                                  disable_log_stats=False)
    else:
        generator = TransformersGenerator(model_path, dtype=args.dtype)
    try:
        generator.generate(proxy_conversations(warm_up or payloads[:2]), args.max_new_tokens)
        before = EngineCounts.parse(generate_latest(REGISTRY).decode())
        started = time.perf_counter()
        generator.generate(proxy_conversations(payloads), args.max_new_tokens)
        elapsed = time.perf_counter() - started
        return elapsed, EngineCounts.parse(generate_latest(REGISTRY).decode()) - before
    finally:
        if isinstance(generator, VllmGenerator):
            generator.shutdown()


def proxy_conversations(payloads: list[dict]) -> list[list[dict]]:
    """The proxy service's prompts for these payloads, built as the service builds them."""
    return [chat_messages(proxy_prompt(p["question"], p["chosen"], p["rejected"], p["rubric"]), image=p["image"])
            for p in payloads]


@dataclass(frozen=True)
class EngineCounts:
    """vLLM's own counters: prompt tokens, and the prompt tokens looked up in / served from its prefix cache."""

    prompt_tokens: float = 0.0
    cache_queries: float = 0.0
    cache_hits: float = 0.0

    @classmethod
    def parse(cls, exposition: str) -> EngineCounts:
        """From Prometheus text (the proxy's ``/metrics``, or this process's registry), summed over labels."""
        names = {"vllm:prompt_tokens_total": "prompt_tokens", "vllm:prefix_cache_queries_total": "cache_queries",
                 "vllm:prefix_cache_hits_total": "cache_hits"}
        return cls(**{names[name]: value for name, value in metric_totals(exposition, names).items()})

    def __sub__(self, other: EngineCounts) -> EngineCounts:
        return EngineCounts(self.prompt_tokens - other.prompt_tokens, self.cache_queries - other.cache_queries,
                            self.cache_hits - other.cache_hits)

    @property
    def hit_share(self) -> float:
        """Share of prompt tokens served from the cache (0 with the cache off)."""
        return self.cache_hits / self.prompt_tokens if self.prompt_tokens else 0.0


# ---- the GRPO-shaped workload ---------------------------------------------------------------------

WORDS = ("the image shows a red box on a wooden table near the window while bright light falls across "
         "its left side and the answer should name colour shape position and count of every object").split()


def filler(tokenizer, tokens: int, rng: random.Random) -> str:
    """Text of exactly ``tokens`` tokens of the proxy's tokenizer (real lengths, whatever its vocabulary)."""
    ids = tokenizer.encode(" ".join(rng.choices(WORDS, k=tokens)), add_special_tokens=False)[:tokens]
    return tokenizer.decode(ids)


def stream_order(pairs: int, group_size: int, rng: random.Random, spread: float = 3.0) -> list[tuple[int, int]]:
    """(pair, rollout) in the order verl's agent loop finishes and scores them.

    Pair p's rollouts start together and finish at p + U(0, spread) (in units of one pair's
    rollout time): a group's rollouts arrive close together, neighbouring groups interleave.
    """
    finish = [(pair + rng.uniform(0, spread), pair, rollout) for pair in range(pairs) for rollout in range(group_size)]
    return [(pair, rollout) for _, pair, rollout in sorted(finish)]


def make_grpo_rollouts(args: argparse.Namespace, tokenizer, image_dir: Path, pairs: int, seed: int) -> list[dict]:
    """verl-style rows for ``pairs`` pairs x ``--group-size`` rollouts, in streaming order."""
    rng = random.Random(seed)
    groups = []
    for pair in range(pairs):
        image = image_dir / f"pair_{seed}_{pair}.png"
        Image.new("RGB", (args.image_side, args.image_side), (rng.randrange(256), rng.randrange(256), 90)).save(image)
        groups.append({"question": f"Question {pair}: {filler(tokenizer, 30, rng)}?",
                       "chosen": filler(tokenizer, args.response_tokens, rng),
                       "rejected": filler(tokenizer, args.response_tokens, rng),
                       "image": str(image), "answer": str(1 + pair % 2)})
    rows = []
    for pair, rollout in stream_order(pairs, args.group_size, rng):
        label = groups[pair]["answer"]
        rubric = f"<rubric>\n{rollout}. {filler(tokenizer, args.rubric_tokens, rng)}\n</rubric>"
        rows.append({"data_source": "benchmark", "ground_truth": label, "extra_info": groups[pair],
                     "solution_str": f"{rubric}\n<eval>Response {label} is better.</eval>\n<answer>{label}</answer>"})
    return rows


def scrape(base_url: str) -> EngineCounts:
    return EngineCounts.parse(httpx.get(route_url(base_url, METRICS_PATH), timeout=60).text)


@dataclass(frozen=True)
class Measured:
    seconds: float
    counts: EngineCounts


def run_grpo(args: argparse.Namespace, model_path: Path, scratch_dir: Path) -> None:
    """(b) and (c) on one GRPO step, with the prefix cache on and off (vLLM), and the ratios."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    rows = make_grpo_rollouts(args, tokenizer, scratch_dir, args.pairs, seed=0)
    warm_up = make_grpo_rollouts(args, tokenizer, scratch_dir, 1, seed=1)[:2]  # another pair: warms no prefix
    base_url = f"http://127.0.0.1:{args.port}"
    settings = (True, False) if args.backend == "vllm" else (False,)
    ours: dict[bool, Measured] = {}
    offline: dict[bool, Measured] = {}
    for cache in settings:
        flags = () if args.backend != "vllm" else ("--prefix-caching",) if cache else ("--no-prefix-caching",)
        cache_note = f" (prefix cache {'on' if cache else 'off'})" if flags else ""
        print(f"starting the {args.backend} proxy{cache_note} ...", flush=True)
        proxy = start_proxy(args, model_path, scratch_dir / f"proxy-{cache}.log", flags)
        try:
            run_ours(base_url, warm_up)
            before = scrape(base_url)
            print(f"(b) {len(rows)} concurrent compute_score calls in streaming order ...", flush=True)
            seconds = run_ours(base_url, rows)
            ours[cache] = Measured(seconds, scrape(base_url) - before)
        finally:
            proxy.stop()
    for cache in settings:
        cache_note = f" (prefix cache {'on' if cache else 'off'})" if len(settings) > 1 else ""
        print(f"(c) offline batched generation{cache_note} ...", flush=True)
        seconds, counts = run_offline(args, model_path, release_payloads(rows), cache, release_payloads(warm_up))
        offline[cache] = Measured(seconds, counts)
    report_grpo(args, model_path, len(rows), ours, offline)


def report_grpo(args: argparse.Namespace, model_path: Path, n: int, ours: dict[bool, Measured],
                offline: dict[bool, Measured]) -> None:
    print(f"\nGRPO-shaped reward step: {args.pairs} pairs x {args.group_size} rollouts = {n} proxy prompts, "
          f"{args.backend} backend, max_new_tokens={args.max_new_tokens}, responses {args.response_tokens} tokens "
          f"each, rubric ~{args.rubric_tokens} tokens, {args.image_side}x{args.image_side} images, "
          f"model={model_path if args.model_path else 'tiny random Qwen2.5-VL'}; {os.cpu_count()} CPUs, "
          "shared with other work: compare the ratios, not the seconds")
    print(f"  {'':44} {'seconds':>8} {'rollouts/s':>10} {'prompt tokens':>13} {'from cache':>10}")
    for label, runs in (("(b) ours, compute_score -> proxy", ours), ("(c) offline batched generation", offline)):
        for cache, run in sorted(runs.items(), reverse=True):
            name = f"{label}, cache {'on' if cache else 'off'}" if args.backend == "vllm" else label
            tokens = f"{run.counts.prompt_tokens:13.0f}" if args.backend == "vllm" else f"{'n/a':>13}"
            share = f"{run.counts.hit_share:10.0%}" if args.backend == "vllm" else f"{'no cache':>10}"
            print(f"  {name:<44} {run.seconds:8.2f} {n / run.seconds:10.1f} {tokens} {share}")
    if args.backend == "vllm":
        shared_bound = (args.group_size - 1) / args.group_size
        print(f"  (b)/(c), cache on  = {ours[True].seconds / offline[True].seconds:.2f}   (target <= 1.10)")
        print(f"  (b)/(c), cache off = {ours[False].seconds / offline[False].seconds:.2f}")
        print(f"  cache off/on speed: (b) {ours[False].seconds / ours[True].seconds:.2f}x, "
              f"(c) {offline[False].seconds / offline[True].seconds:.2f}x")
        print(f"  prompt tokens served from the cache: (b) {ours[True].counts.hit_share:.0%}, "
              f"(c) {offline[True].counts.hit_share:.0%} (target >= 60%; at most {shared_bound:.0%} of the shared "
              "part, in whole cache blocks)")
    else:
        print(f"  (b)/(c) = {ours[False].seconds / offline[False].seconds:.2f}; the transformers backend has no "
              "prefix cache: each of a group's prompts is computed in full, shared prefix included")


def run_swap_cost(args: argparse.Namespace, model_path: Path, scratch_dir: Path) -> None:
    """(b) on one GRPO step without and with the order-swap check, one proxy, prefix cache on."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    rows = make_grpo_rollouts(args, tokenizer, scratch_dir, args.pairs, seed=0)
    warm_up = make_grpo_rollouts(args, tokenizer, scratch_dir, 1, seed=1)[:2]
    base_url = f"http://127.0.0.1:{args.port}"
    flags = ("--prefix-caching",) if args.backend == "vllm" else ()
    print(f"starting the {args.backend} proxy ...", flush=True)
    proxy = start_proxy(args, model_path, scratch_dir / "proxy-swap.log", flags)
    runs: dict[str, Measured] = {}
    try:
        run_ours(base_url, warm_up, "swap")
        for check in ("none", "swap"):
            before = scrape(base_url)
            print(f"(b) {len(rows)} compute_score calls, proxy_check={check} ...", flush=True)
            seconds = run_ours(base_url, rows, check)
            runs[check] = Measured(seconds, scrape(base_url) - before)
    finally:
        proxy.stop()
    print(f"\norder-swap check at GRPO shape: {args.pairs} pairs x {args.group_size} rollouts, {args.backend} backend, "
          f"max_new_tokens={args.max_new_tokens}, model={model_path if args.model_path else 'tiny random Qwen2.5-VL'}")
    print(f"  {'':28} {'seconds':>8} {'critiques':>9} {'prompt tokens':>13} {'from cache':>10}")
    for check, run in runs.items():
        critiques = len(rows) * (2 if check == "swap" else 1)
        print(f"  proxy_check={check:<16} {run.seconds:8.2f} {critiques:9d} {run.counts.prompt_tokens:13.0f} "
              f"{run.counts.hit_share:10.0%}")
    print(f"  swap / none: {runs['swap'].seconds / runs['none'].seconds:.2f}x the time, "
          f"{runs['swap'].counts.prompt_tokens / max(runs['none'].counts.prompt_tokens, 1):.2f}x the prompt tokens")


def main() -> None:
    args = parse_args()
    supervise()  # the proxy and the offline engine must not outlive this process, even after a SIGKILL
    n = args.rollouts
    use_local_vllm()
    with tempfile.TemporaryDirectory(prefix="reward-throughput-") as scratch:
        scratch_dir = Path(scratch)
        model_path = benchmark_model(args.model_path, scratch_dir)
        if args.workload in ("grpo", "swap"):
            (run_grpo if args.workload == "grpo" else run_swap_cost)(args, model_path, scratch_dir)
            return
        rows = make_rollouts(args.rollouts, scratch_dir)
        payloads = release_payloads(rows)
        base_url = f"http://127.0.0.1:{args.port}"

        log_path = scratch_dir / "proxy.log"
        print(f"starting the {args.backend} proxy ...", flush=True)
        proxy = start_proxy(args, model_path, log_path)
        try:
            run_release_way(route_url(base_url), payloads[:4])  # warm-up
            print(f"(a) {n} blocking calls ...", flush=True)
            release_s = run_release_way(route_url(base_url), payloads)
            print(f"(b) {n} concurrent compute_score calls ...", flush=True)
            ours_s = run_ours(base_url, rows)
        finally:
            proxy.stop()
        print("(c) offline batched generation ...", flush=True)
        offline_s, _ = run_offline(args, model_path, payloads)

    print(f"\nreward throughput: {n} rollouts, {args.backend} backend, max_new_tokens={args.max_new_tokens}, "
          f"model={model_path if args.model_path else 'tiny random Qwen2.5-VL'}")
    print(f"  (a) release, one blocking call at a time : {release_s:8.2f} s  {n / release_s:8.1f} rollouts/s")
    print(f"  (b) ours, async compute_score            : {ours_s:8.2f} s  {n / ours_s:8.1f} rollouts/s")
    print(f"  (c) offline batched generation (limit)   : {offline_s:8.2f} s  {n / offline_s:8.1f} rollouts/s")
    print(f"  (a)/(b) = {release_s / ours_s:.2f}   (target >= 10 with vLLM)")
    print(f"  (b)/(c) = {ours_s / offline_s:.2f}   (target <= 1.25)")


if __name__ == "__main__":
    main()
