"""Shared fixtures: the tiny model, the two environments, and real local servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy_grm.servers import ServerProcess, free_port, vllm_env  # noqa: F401  (re-exported to tests)

REPO_ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"

# One intra-op thread: with 2 threads on 2 busy cores generation is 5-10x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Accelerator-only tests skip cleanly where torch sees no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Qwen2.5-VL, built once per test session."""
    from proxy_grm.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-qwen2.5-vl"))


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The interpreter of .venv-vllm; a missing environment is an error, not a skip."""
    if not VLLM_PYTHON.exists():
        pytest.fail(f"{VLLM_PYTHON} is missing: run `bash scripts/setup_env.sh vllm`")
    return VLLM_PYTHON


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    """Factory fixture: start_server(argv, health_url, env=None) -> ServerProcess, stopped at teardown."""
    started: list[ServerProcess] = []

    def _start(argv: list[str], health_url: str, env: dict[str, str] | None = None, timeout_s: float = 240.0,
               headers: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(argv, health_url, tmp_path / f"server-{len(started)}.log", env)
        started.append(server)
        server.wait_healthy(timeout_s, headers=headers)
        return server

    yield _start
    for server in started:
        server.stop()

