"""The whole chain against vLLM's own OpenAI-compatible server (CPU engine) serving the tiny model.

The random tiny model's critiques do not parse: the test checks every pair is answered and cached, the
unparseable ones are counted, and they (with any wrong ones) end up in the hard set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from proxy_grm.toy.servers import ServerProcess, free_port, vllm_env

from proxy_grm.data.distill import TeacherCache, TeacherConfig, distill
from proxy_grm.data.prepare_pairs import prepare_pairs
from proxy_grm.data.split import split_and_write
from proxy_grm.toy.source_fixtures import make_source_fixtures

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
MODEL_NAME = "tiny-teacher"


@pytest.fixture(scope="module")
def vllm_url(vllm_python: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    argv = [str(vllm_python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model_dir),
            "--served-model-name", MODEL_NAME, "--host", "127.0.0.1", "--port", str(port),
            "--max-model-len", "4096", "--dtype", "float32", "--max-num-seqs", "4"]
    server = ServerProcess(argv, f"http://127.0.0.1:{port}/health",
                           tmp_path_factory.mktemp("vllm") / "server.log", env=vllm_env())
    server.wait_healthy(timeout_s=420)
    yield f"http://127.0.0.1:{port}/v1"
    server.stop()


def test_chain_against_vllm_counts_and_routes_unparseable_critiques(vllm_url: str, tmp_path: Path) -> None:
    fixtures = make_source_fixtures(tmp_path / "src", 2, seed=3)
    summary = prepare_pairs({k: str(v) for k, v in fixtures.specs.items()}, tmp_path / "out", progress=False)
    n_pairs = sum(summary.kept.values())
    config = TeacherConfig(base_urls=(vllm_url,), model=MODEL_NAME, max_tokens=16, concurrency=4)
    distilled = asyncio.run(distill(tmp_path / "out" / "pairs.jsonl", tmp_path / "cache.jsonl", config,
                                    progress=False))
    assert distilled.done == n_pairs and not distilled.failed
    entries = list(TeacherCache(tmp_path / "cache.jsonl").entries())
    assert len({e["id"] for e in entries}) == n_pairs
    assert all(e["finish_reason"] in ("length", "stop") and e["model"] == MODEL_NAME for e in entries)

    split = split_and_write(tmp_path / "out" / "pairs.jsonl", tmp_path / "cache.jsonl", tmp_path / "sets",
                            {"grm_sft": 10, "proxy_sft": 10, "proxy_rl": 10, "grm_rl": 100})
    assert sum(split.categories.values()) == n_pairs
    assert split.categories["unparseable"] > 0
    hard = split.categories["unparseable"] + split.categories["wrong"]
    assert len(pd.read_parquet(tmp_path / "sets" / "grm_rl.parquet")) == split.written["grm_rl"] == hard
    print(split.report())
