"""What every benchmark does before it measures: vLLM on loopback, its engine flags, and the model to measure."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def use_local_vllm() -> None:
    """Keep vLLM's internal queues on loopback and its CPU KV cache small, unless the caller set them."""
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def benchmark_model(model_path: Path | None, scratch: Path) -> Path:
    """The checkpoint to measure, or the tiny random Qwen2.5-VL built in ``scratch`` (CPU, offline)."""
    if model_path is not None:
        return model_path
    from proxy_grm.tiny_model import make_tiny_model

    return make_tiny_model(scratch / "tiny-model")


def add_engine_args(parser: argparse.ArgumentParser, port: int) -> None:
    """The flags of a benchmark that starts a vLLM engine and a server beside it."""
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--enforce-eager", action=argparse.BooleanOptionalAction, default=True,
                        help="vLLM without graph compilation (right for CPU; turn off on a GPU)")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--startup-timeout-s", type=float, default=600)
