"""Every benchmark module imports and parses its flags (the measurements themselves run by hand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO_ROOT

BENCHMARKS = sorted(path.stem for path in (REPO_ROOT / "benchmarks").glob("*_throughput.py"))


@pytest.mark.parametrize("module", BENCHMARKS)
def test_benchmark_starts(module: str) -> None:
    """``python -m benchmarks.NAME --help`` from the repository root, as the README runs them."""
    result = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", "--help"], capture_output=True, text=True,
                            timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage:")


EXPOSITION = ('vllm:prompt_tokens_total{engine="0"} 10.0\nvllm:prompt_tokens_total{engine="1"} 5.0\n'
              'vllm:prefix_cache_hits_total{engine="0"} 3.0\nvllm:generation_tokens_total{engine="0"} 7.0\n'
              'vllm:generation_tokens_total{engine="1"} 2.0\n')


@pytest.fixture
def benchmarks_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmarks are a package at the repository root, importable as ``python -m`` runs them."""
    monkeypatch.syspath_prepend(str(REPO_ROOT))


def test_benchmarks_read_engine_counters_with_one_parser(benchmarks_path: None, monkeypatch) -> None:
    import httpx

    from benchmarks import common, distill_throughput, reward_ways

    assert common.metric_totals(EXPOSITION, ["vllm:prompt_tokens_total", "absent"]) == {
        "vllm:prompt_tokens_total": 15.0, "absent": 0.0}
    counts = reward_ways.EngineCounts.parse(EXPOSITION)
    assert (counts.prompt_tokens, counts.cache_queries, counts.cache_hits) == (15.0, 0.0, 3.0)
    monkeypatch.setattr(distill_throughput.httpx, "get", lambda url, timeout: httpx.Response(200, text=EXPOSITION))
    assert distill_throughput.generated_tokens("http://127.0.0.1:1") == 9.0


def test_distill_offline_run_stops_its_engine_through_the_generator(benchmarks_path: None, monkeypatch,
                                                                      tmp_path: Path) -> None:
    """(c) builds its engine as ``proxy_grm.generation.VllmGenerator`` and stops it with its ``shutdown``,
    also when generation fails."""
    import argparse
    import types

    from benchmarks import distill_throughput

    from proxy_grm import generation
    from proxy_grm.data.distill import TeacherConfig

    events: list[str] = []

    class FakeGenerator:
        def __init__(self, model_path: Path, **kwargs: object):
            events.append(f"start {sorted(kwargs)}")
            self.llm = types.SimpleNamespace(chat=self.chat)

        def chat(self, conversations: list, params: object, use_tqdm: bool) -> list:
            if len(conversations) > 2:
                raise RuntimeError("engine died")
            return []

        def shutdown(self) -> None:
            events.append("shutdown")

    monkeypatch.setattr(generation, "VllmGenerator", FakeGenerator)
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=lambda **kwargs: kwargs))
    pairs = list(distill_throughput.iter_pairs(distill_throughput.write_pairs(tmp_path, 3)))
    args = argparse.Namespace(dtype="float32", max_model_len=4096, enforce_eager=True)
    with pytest.raises(RuntimeError, match="engine died"):
        distill_throughput.run_offline(args, tmp_path, TeacherConfig(base_urls=("http://x/v1",), model="t"), pairs)
    assert events == ["start ['dtype', 'enforce_eager', 'max_model_len']", "shutdown"]


def test_reward_workloads_share_servers_and_refuse_a_pool_they_cannot_run(benchmarks_path: None) -> None:
    """The ways on one server are adjacent (``measure`` starts it once for them); the pool path is vLLM's."""
    from benchmarks import reward_throughput
    from benchmarks.reward_ways import Way

    ways = reward_throughput.workload_ways(reward_throughput.parse_args(["--workload", "grpo", "--with-pool"]))
    assert [(way.path, way.prefix_caching) for way in ways] == [
        ("service", True), ("service", False), ("pool", True), ("pool", False), ("offline", True), ("offline", False)]
    uniform = reward_throughput.workload_ways(reward_throughput.parse_args([]))
    assert [way.server for way in uniform] == [("service", None), ("service", None), None]
    assert Way("service", True, "swap").critiques(8) == 16
    for argv in (["--with-pool"], ["--workload", "grpo", "--with-pool", "--backend", "transformers"],
                 ["--workload", "grpo", "--with-pool", "--router-python", "/nonexistent/python"]):
        with pytest.raises(SystemExit):
            reward_throughput.parse_args(argv)
