"""What every benchmark does before it measures: vLLM on loopback, its engine flags, the model to measure,
and reading an engine's Prometheus counters."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path


def use_local_vllm() -> None:
    """Keep vLLM's internal queues on loopback and its CPU KV cache small, unless the caller set them."""
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def benchmark_model(model_path: Path | None, scratch: Path) -> Path:
    """The checkpoint to measure, or the tiny random Qwen2.5-VL built in ``scratch`` (CPU, offline)."""
    if model_path is not None:
        return model_path
    from proxy_grm.toy.tiny_model import make_tiny_model

    return make_tiny_model(scratch / "tiny-model")


def add_engine_args(parser: argparse.ArgumentParser, port: int) -> None:
    """The flags of a benchmark that starts a vLLM engine and a server beside it."""
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--enforce-eager", action=argparse.BooleanOptionalAction, default=True,
                        help="vLLM without graph compilation (right for CPU; turn off on a GPU)")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--startup-timeout-s", type=float, default=600)


def metric_totals(exposition: str, names: Iterable[str]) -> dict[str, float]:
    """Each named sample's value in Prometheus text, summed over its labels (0.0 when it is absent).

    Parsed by the Prometheus client's own text-format parser; the text is a server's ``/metrics``
    (the proxy service's, vLLM's) or this process's registry (``prometheus_client.generate_latest``).

    >>> metric_totals('c_total{engine="0"} 2.0\\nc_total{engine="1"} 3.0\\n', ["c_total", "d_total"])
    {'c_total': 5.0, 'd_total': 0.0}
    """
    from prometheus_client.parser import text_string_to_metric_families

    totals = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals
