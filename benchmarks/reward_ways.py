"""The ways the reward benchmarks score rollouts, and the one driver that measures them.

- ``release``: one blocking HTTP call per rollout to the proxy service, one after another (the
  release's reward function);
- ``service``: ``proxy_grm.reward.compute_score`` on every rollout at once against the proxy service,
  as verl's reward loop awaits it (``PROXY_MODE=service``);
- ``pool``: the same calls with verl's ``reward_router_address``: ``compute_score`` builds the chat
  request itself (``reward.router_client``) and sends it through verl 0.9.1's own router
  (``naive_router.run_router``) to a vLLM OpenAI server on the same checkpoint, the servers verl's
  reward-model pool starts (``PROXY_MODE=pool``), started with the launcher's
  ``override_generation_config={}``;
- ``offline``: the engine's offline batched generation on the same proxy prompts, no HTTP, no server.

``measure`` starts each server once for the adjacent ways that share it, warms each way up on other
rollouts, reads the engine's own counters (prompt tokens, prefix-cache hits) before and after each
way, and stops the server before the next one starts: servers never run side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from prometheus_client import REGISTRY, generate_latest

from proxy_grm.proxy_contract import HEALTH_PATH, METRICS_PATH, route_url
from proxy_grm.reward import compute_score
from proxy_grm.reward.proxy_client import close_pools
from proxy_grm.toy.servers import VERL_ROUTER, ServerProcess, free_port

from benchmarks.common import metric_totals
from benchmarks.reward_rollouts import Row, proxy_conversations, release_payloads

REPO_ROOT = Path(__file__).resolve().parents[1]
PROXY_SCRIPT = REPO_ROOT / "proxy" / "proxy.py"
WayPath = Literal["release", "service", "pool", "offline"]
LABELS = {"release": "(a) release, one blocking call at a time", "service": "(b) ours, compute_score -> service",
          "pool": "(p) ours, compute_score -> verl router -> vLLM", "offline": "(c) offline batched generation"}


@dataclass(frozen=True)
class EngineCounts:
    """vLLM's own counters: prompt tokens, and the prompt tokens looked up in / served from its prefix cache."""

    prompt_tokens: float = 0.0
    cache_queries: float = 0.0
    cache_hits: float = 0.0

    @classmethod
    def parse(cls, exposition: str) -> EngineCounts:
        """From Prometheus text (a server's ``/metrics``, or this process's registry), summed over labels."""
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


@dataclass(frozen=True)
class Way:
    """One way of scoring a workload's rollouts: one row of a benchmark's table."""

    path: WayPath
    prefix_caching: bool | None = None  # None: the engine's default (no flag)
    proxy_check: str = "none"

    @property
    def server(self) -> tuple[str, bool | None] | None:
        """The server this way needs (ways with the same one share it), None for the offline engine."""
        if self.path == "offline":
            return None
        return ("pool" if self.path == "pool" else "service", self.prefix_caching)

    @property
    def label(self) -> str:
        parts = [LABELS[self.path]]
        if self.prefix_caching is not None:
            parts.append(f"cache {'on' if self.prefix_caching else 'off'}")
        if self.proxy_check != "none":
            parts.append(f"proxy_check={self.proxy_check}")
        return ", ".join(parts)

    def critiques(self, rollouts: int) -> int:
        """Critiques the proxy writes for ``rollouts`` rollouts (the swap check judges both orders)."""
        return rollouts * (2 if self.proxy_check == "swap" else 1)


@dataclass(frozen=True)
class Measured:
    seconds: float
    counts: EngineCounts


@dataclass(frozen=True)
class Bench:
    """What every way needs: the engine flags (``common.add_engine_args`` plus ``--backend``,
    ``--max-new-tokens``, ``--router-python``), the checkpoint, a scratch folder."""

    args: argparse.Namespace
    model_path: Path
    scratch: Path


@dataclass
class Endpoint:
    """A started server: how ``compute_score`` reaches it and where its engine's counters are."""

    processes: list[ServerProcess]
    metrics_url: str
    score_kwargs: dict[str, Any]
    release_url: str | None = None

    def counts(self) -> EngineCounts:
        return EngineCounts.parse(httpx.get(self.metrics_url, timeout=60).text)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def engine_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--dtype", args.dtype, "--max-model-len", str(args.max_model_len)]
    return [*flags, "--enforce-eager"] if args.enforce_eager else flags


def start_service(bench: Bench, log_path: Path, extra_flags: tuple[str, ...] = ()) -> ServerProcess:
    """The proxy service (``proxy/proxy.py``) on ``--port`` with the benchmark's engine flags."""
    args = bench.args
    argv = [sys.executable, str(PROXY_SCRIPT), "--model-path", str(bench.model_path), "--backend", args.backend,
            "--port", str(args.port), "--max-new-tokens", str(args.max_new_tokens), *engine_flags(args),
            *extra_flags]
    health_url = route_url(f"http://127.0.0.1:{args.port}", HEALTH_PATH)
    return ServerProcess(argv, health_url, log_path).wait_healthy(args.startup_timeout_s)


def _cache_flag(prefix_caching: bool | None, on: str, off: str) -> tuple[str, ...]:
    return () if prefix_caching is None else (on,) if prefix_caching else (off,)


@contextmanager
def serve(bench: Bench, server: tuple[str, bool | None]) -> Iterator[Endpoint]:
    """Start the server a way needs; stop it (and everything it started) on the way out."""
    kind, prefix_caching = server
    note = f" (prefix cache {'on' if prefix_caching else 'off'})" if prefix_caching is not None else ""
    endpoint = Endpoint([], "", {})
    try:
        if kind == "service":
            print(f"starting the {bench.args.backend} proxy service{note} ...", flush=True)
            flags = _cache_flag(prefix_caching, "--prefix-caching", "--no-prefix-caching")
            endpoint.processes.append(start_service(bench, bench.scratch / f"service-{prefix_caching}.log", flags))
            base_url = f"http://127.0.0.1:{bench.args.port}"
            endpoint.metrics_url = route_url(base_url, METRICS_PATH)
            endpoint.score_kwargs = {"proxy_url": base_url}
            endpoint.release_url = route_url(base_url)
        else:
            print(f"starting vLLM's OpenAI server{note} and verl's router ...", flush=True)
            endpoint.processes += start_pool(bench, prefix_caching)
            endpoint.metrics_url = endpoint.processes[0].health_url.removesuffix("/health") + "/metrics"
            router = endpoint.processes[1].health_url.removeprefix("http://").removesuffix("/health")
            endpoint.score_kwargs = {"reward_router_address": router, "max_new_tokens": bench.args.max_new_tokens}
        yield endpoint
    finally:
        endpoint.stop()


def start_pool(bench: Bench, prefix_caching: bool | None) -> list[ServerProcess]:
    """A vLLM OpenAI server on the checkpoint (as verl's pool starts one) and verl's router in front."""
    args = bench.args
    vllm_port, router_port = free_port(), free_port()
    flags = _cache_flag(prefix_caching, "--enable-prefix-caching", "--no-enable-prefix-caching")
    vllm = ServerProcess(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(bench.model_path), "--host",
         "127.0.0.1", "--port", str(vllm_port), *engine_flags(args), "--override-generation-config", "{}", *flags],
        f"http://127.0.0.1:{vllm_port}/health", bench.scratch / f"pool-vllm-{prefix_caching}.log")
    started = [vllm]
    try:
        vllm.wait_healthy(args.startup_timeout_s)
        router = ServerProcess(
            [str(args.router_python), "-c", VERL_ROUTER, str(router_port), f"http://127.0.0.1:{vllm_port}"],
            f"http://127.0.0.1:{router_port}/health", bench.scratch / "pool-router.log")
        started.append(router)
        router.wait_healthy(120)
        return started
    except BaseException:
        for process in reversed(started):
            process.stop()
        raise


def score_all(rows: list[Row], proxy_check: str, **target: Any) -> float:
    """Seconds for ``compute_score`` on every rollout at once; every rollout must be judged by the proxy."""

    async def run() -> list[dict]:
        try:
            return await asyncio.gather(*(
                compute_score(row["data_source"], row["solution_str"], row["ground_truth"], row["extra_info"],
                              max_connections=len(rows), proxy_check=proxy_check, **target)
                for row in rows))
        finally:
            await close_pools()

    started = time.perf_counter()
    scores = asyncio.run(run())
    elapsed = time.perf_counter() - started
    assert all(score["proxy_called"] == 1.0 for score in scores), "some rollouts were not judged by the proxy"
    return elapsed


def post_one_by_one(url: str, payloads: list[dict]) -> float:
    """Seconds for one blocking call at a time, as the release's reward function made them."""
    started = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        for payload in payloads:
            response = client.post(url, json=payload)
            response.raise_for_status()
            response.json()["reward"]
    return time.perf_counter() - started


def run_on(endpoint: Endpoint, way: Way, rows: list[Row]) -> float:
    if way.path == "release":
        assert endpoint.release_url is not None, "the release's way needs the proxy service"
        return post_one_by_one(endpoint.release_url, release_payloads(rows))
    return score_all(rows, way.proxy_check, **endpoint.score_kwargs)


def run_offline(bench: Bench, way: Way, rows: list[Row], warm_up: list[Row]) -> Measured:
    """The same proxy prompts through the engine's offline batched generation (warmed up on ``warm_up``)."""
    from proxy_grm.generation import TransformersGenerator, VllmGenerator

    args = bench.args
    if args.backend == "vllm":
        cache = {} if way.prefix_caching is None else {"enable_prefix_caching": way.prefix_caching}
        generator = VllmGenerator(bench.model_path, dtype=args.dtype, max_model_len=args.max_model_len,
                                  enforce_eager=args.enforce_eager, disable_log_stats=False, **cache)
    else:
        generator = TransformersGenerator(bench.model_path, dtype=args.dtype)
    try:
        generator.generate(proxy_conversations(release_payloads(warm_up)), args.max_new_tokens)
        conversations = proxy_conversations(release_payloads(rows))
        before = EngineCounts.parse(generate_latest(REGISTRY).decode())
        started = time.perf_counter()
        generator.generate(conversations, args.max_new_tokens)
        elapsed = time.perf_counter() - started
        return Measured(elapsed, EngineCounts.parse(generate_latest(REGISTRY).decode()) - before)
    finally:
        if isinstance(generator, VllmGenerator):
            generator.shutdown()


def measure(bench: Bench, rows: list[Row], warm_up: list[Row], ways: list[Way]) -> dict[Way, Measured]:
    """Each way on ``rows``, after a warm-up on ``warm_up``; adjacent ways that need one server share it."""
    measured: dict[Way, Measured] = {}
    for server, group in itertools.groupby(ways, key=lambda way: way.server):
        if server is None:
            for way in group:
                print(f"{way.label}: {len(rows)} rollouts ...", flush=True)
                measured[way] = run_offline(bench, way, rows, warm_up)
            continue
        with serve(bench, server) as endpoint:
            for way in group:
                run_on(endpoint, way, warm_up)
                before = endpoint.counts()
                print(f"{way.label}: {len(rows)} rollouts ...", flush=True)
                seconds = run_on(endpoint, way, rows)
                measured[way] = Measured(seconds, endpoint.counts() - before)
    return measured


def print_table(title: str, measured: dict[Way, Measured], rollouts: int, engine_counters: bool) -> None:
    """One row per way: seconds, rollouts/s, critiques, and the engine's prompt tokens and cache share."""
    print(f"\n{title}")
    print(f"  {'':58} {'seconds':>8} {'rollouts/s':>10} {'critiques':>9} {'prompt tokens':>13} {'from cache':>10}")
    for way, run in measured.items():
        tokens = f"{run.counts.prompt_tokens:13.0f}" if engine_counters else f"{'n/a':>13}"
        share = f"{run.counts.hit_share:10.0%}" if engine_counters else f"{'no cache':>10}"
        print(f"  {way.label:<58} {run.seconds:8.2f} {rollouts / run.seconds:10.1f} {way.critiques(rollouts):9d} "
              f"{tokens} {share}")
