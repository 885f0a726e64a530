"""Reward throughput: how fast GRPO rollouts are scored through the proxy.

The ways (``benchmarks.reward_ways``): (a) the release's, one blocking HTTP call per rollout;
(b) ours, ``compute_score`` on every rollout at once against the proxy service; (p) ours through verl's
reward-model pool path (verl's router in front of a vLLM OpenAI server; ``--with-pool``); (c) the limit,
the engine's offline batched generation on the same proxy prompts, no HTTP and no server.

Three workloads:

- ``uniform`` (default): distinct short prompts; prints (a)/(b) (target >= 10 with the vLLM backend)
  and (b)/(c) (target <= 1.25).
- ``grpo``: the shape of a GRPO step, ``--pairs`` pairs x ``--group-size`` rollouts. The rollouts of a
  pair share the image, the question and both responses (a few hundred tokens each) and differ in the
  rubric (~200 tokens), which comes last in the proxy prompt; they are sent in the order verl streams
  them (a group's rollouts close together, groups interleaved). Every way runs with the engine's prefix
  cache on and off; prints time, prompt tokens, the share of prompt tokens served from the cache (vLLM's
  own counters), (b)/(c) (target <= 1.10 with the cache on), (p)/(b) and on/off speed ratios. The
  transformers backend has no prefix cache (and no pool path): it runs once and computes every prompt
  in full.
- ``swap``: the ``grpo`` step through (b) twice on one proxy (cache on), without and with the order-swap
  check (``proxy_check=swap``: each rubric judged in both orders in one request); prints what it costs.

Servers and the offline engine run one after the other, never together. Ratios are measured within one
run, so they hold on a busy machine where absolute times do not.

    .venv-vllm/bin/python -m benchmarks.reward_throughput                 # tiny model, vLLM on CPU
    .venv-vllm/bin/python -m benchmarks.reward_throughput --workload grpo --with-pool  # 32 pairs x 8
    .venv-vllm/bin/python -m benchmarks.reward_throughput --workload swap # swap check off and on
    python -m benchmarks.reward_throughput --model-path DIR --no-enforce-eager   # a real proxy on a GPU
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from proxy_grm.supervise import supervise

from benchmarks.common import add_engine_args, benchmark_model, use_local_vllm
from benchmarks.reward_rollouts import grpo_rollouts, uniform_rollouts
from benchmarks.reward_ways import REPO_ROOT, Bench, Measured, Way, measure, print_table

# verl is in the CPU test environment, vLLM in the other: the router runs in the first by default.
DEFAULT_ROUTER_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
    parser.add_argument("--with-pool", action="store_true",
                        help="grpo workload, vLLM backend: also measure (p), verl's reward-model pool path")
    parser.add_argument("--router-python", type=Path, default=DEFAULT_ROUTER_PYTHON,
                        help="a Python with verl 0.9.1 installed, to run verl's router for (p)")
    add_engine_args(parser, port=18741)
    args = parser.parse_args(argv)
    counts = ("rollouts", "max_new_tokens", "pairs", "group_size", "response_tokens", "rubric_tokens", "image_side")
    for name in counts:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.with_pool and (args.workload != "grpo" or args.backend != "vllm"):
        parser.error("--with-pool needs --workload grpo and --backend vllm (verl's pool serves with vLLM)")
    if args.with_pool and not args.router_python.exists():
        parser.error(f"--router-python {args.router_python} does not exist (a Python with verl 0.9.1)")
    return args


def workload_ways(args: argparse.Namespace) -> list[Way]:
    """The ways each workload measures, ordered so that ways on one server are adjacent."""
    if args.workload == "uniform":
        return [Way("release"), Way("service"), Way("offline")]
    cache: tuple[bool | None, ...] = (True, False) if args.backend == "vllm" else (None,)
    if args.workload == "swap":
        return [Way("service", cache[0], "none"), Way("service", cache[0], "swap")]
    pool = [Way("pool", on) for on in cache] if args.with_pool else []
    return [*(Way("service", on) for on in cache), *pool, *(Way("offline", on) for on in cache)]


def ratio(measured: dict[Way, Measured], over: Way, under: Way) -> float:
    return measured[over].seconds / measured[under].seconds


def summarise(args: argparse.Namespace, rollouts: int, measured: dict[Way, Measured], model: str) -> None:
    """The workload's table and the ratios its targets are stated in."""
    vllm = args.backend == "vllm"
    shape = f"{args.backend} backend, max_new_tokens={args.max_new_tokens}, model={model}; {os.cpu_count()} CPUs"
    if args.workload == "uniform":
        print_table(f"reward throughput: {rollouts} rollouts, {shape}", measured, rollouts, vllm)
        release, ours, offline = (Way("release"), Way("service"), Way("offline"))
        print(f"  (a)/(b) = {ratio(measured, release, ours):.2f}   (target >= 10 with vLLM)")
        print(f"  (b)/(c) = {ratio(measured, ours, offline):.2f}   (target <= 1.25)")
        return
    if args.workload == "swap":
        print_table(f"order-swap check at GRPO shape: {args.pairs} pairs x {args.group_size} rollouts, {shape}",
                    measured, rollouts, True)
        none, swap = list(measured)
        tokens = measured[swap].counts.prompt_tokens / max(measured[none].counts.prompt_tokens, 1)
        print(f"  swap / none: {ratio(measured, swap, none):.2f}x the time, {tokens:.2f}x the prompt tokens")
        return
    print_table(f"GRPO-shaped reward step: {args.pairs} pairs x {args.group_size} rollouts = {rollouts} proxy "
                f"prompts, responses {args.response_tokens} tokens each, rubric ~{args.rubric_tokens} tokens, "
                f"{args.image_side}x{args.image_side} images, {shape}, shared with other work: compare the "
                "ratios, not the seconds", measured, rollouts, vllm)
    if not vllm:
        print(f"  (b)/(c) = {ratio(measured, Way('service'), Way('offline')):.2f}; the transformers backend has "
              "no prefix cache: each of a group's prompts is computed in full, shared prefix included")
        return
    for on in (True, False):
        state = "on " if on else "off"
        line = f"  cache {state}: (b)/(c) = {ratio(measured, Way('service', on), Way('offline', on)):.2f}"
        if Way("pool", on) in measured:
            line += f", (p)/(b) = {ratio(measured, Way('pool', on), Way('service', on)):.2f}"
        print(line + ("   (target (b)/(c) <= 1.10)" if on else ""))
    paths = [path for path in ("service", "pool", "offline") if Way(path, True) in measured]
    speed = ", ".join(f"{path} {ratio(measured, Way(path, False), Way(path, True)):.2f}x" for path in paths)
    shares = ", ".join(f"{path} {measured[Way(path, True)].counts.hit_share:.0%}" for path in paths)
    bound = (args.group_size - 1) / args.group_size
    print(f"  cache off/on time: {speed}")
    print(f"  prompt tokens served from the cache: {shares} (target >= 60%; at most {bound:.0%} of the shared part, "
          "in whole cache blocks)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    supervise()  # the servers and the offline engine must not outlive this process, even after a SIGKILL
    use_local_vllm()
    with tempfile.TemporaryDirectory(prefix="reward-throughput-") as scratch:
        bench = Bench(args, benchmark_model(args.model_path, Path(scratch)), Path(scratch))
        if args.workload == "uniform":
            rows = uniform_rollouts(args.rollouts, bench.scratch)
            warm_up = rows[:4]
        else:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(bench.model_path))
            shape = (args.group_size, args.response_tokens, args.rubric_tokens, args.image_side)
            rows = grpo_rollouts(tokenizer, bench.scratch, args.pairs, *shape, seed=0)
            warm_up = grpo_rollouts(tokenizer, bench.scratch, 1, *shape, seed=1)[:2]  # another pair: no prefix
        measured = measure(bench, rows, warm_up, workload_ways(args))
        summarise(args, len(rows), measured, str(args.model_path or "tiny random Qwen2.5-VL"))


if __name__ == "__main__":
    main()
