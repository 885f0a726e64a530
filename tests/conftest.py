"""Shared fixtures: the tiny model, the two environments, and real local servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def vllm_env() -> dict[str, str]:
    """Environment for processes that run the vLLM CPU engine (see ENVIRONMENT notes in README)."""
    env = dict(os.environ)
    env.update(VLLM_HOST_IP="127.0.0.1", VLLM_CPU_KVCACHE_SPACE="1", OMP_NUM_THREADS="1")
    return env


class ServerProcess:
    """A server started as a real subprocess, waited on until its health URL answers."""

    def __init__(self, argv: list[str], health_url: str, log_path: Path, env: dict[str, str] | None = None):
        self.argv, self.health_url, self.log_path = argv, health_url, log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env or dict(os.environ))

    def wait_healthy(self, timeout_s: float = 240.0, headers: dict[str, str] | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.health_url, timeout=2.0, headers=headers).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"{self.health_url} not healthy after {timeout_s}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_bytes()[-chars:].decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


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


PYTHON = Path(sys.executable)
