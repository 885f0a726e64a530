"""Shared fixtures: the tiny model, the two environments, and real local servers.

No process the tests start may outlive the test session: a vLLM engine left behind
keeps its memory. The session adopts orphaned descendants (so an engine whose parent
was killed is still found), and a session that ends with any of its descendants
still running kills them and fails, naming them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import psutil
import pytest

from helpers import REPO_ROOT, RL_PYTHON, VLLM_PYTHON, is_running  # noqa: F401  (REPO_ROOT: tests/test_demo.py)

from proxy_grm.supervise import adopt_orphans
from proxy_grm.toy.servers import ServerProcess

# One intra-op thread: with 2 threads on 2 busy cores generation is 5-10x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_sessionstart(session: pytest.Session) -> None:
    adopt_orphans()


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down
def pytest_sessionfinish(session: pytest.Session) -> None:
    survivors = surviving_descendants(grace_s=5.0)
    if not survivors:
        return
    lines = []
    for process in survivors:
        with suppress(psutil.Error):
            lines.append(f"  pid {process.pid} (parent {process.ppid()}): {' '.join(process.cmdline())[:200]}")
            process.kill()
    psutil.wait_procs(survivors, timeout=10)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_sep("!", "FAILED: processes started by the tests outlived them (now killed)", red=True)
    reporter.write_line("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def surviving_descendants(grace_s: float) -> list[psutil.Process]:
    """Descendants of this process still running (zombies excluded), once they had ``grace_s`` to exit."""
    deadline = time.monotonic() + grace_s
    while True:
        alive = [p for p in psutil.Process().children(recursive=True) if is_running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.2)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Qwen2.5-VL, built once per test session."""
    from proxy_grm.toy.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-qwen2.5-vl"))


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The interpreter of .venv-vllm; a missing environment is an error, not a skip."""
    if not VLLM_PYTHON.exists():
        pytest.fail(f"{VLLM_PYTHON} is missing: run `bash scripts/setup_env.sh vllm`")
    return VLLM_PYTHON


@pytest.fixture(scope="session")
def rl_python() -> Path:
    """The interpreter of .venv-rl (verl 0.9.1 with vLLM 0.24.0); a missing environment is an error, not a skip."""
    if not RL_PYTHON.exists():
        pytest.fail(f"{RL_PYTHON} is missing: run `bash scripts/setup_env.sh rl`")
    return RL_PYTHON


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



@pytest.fixture(scope="module")
def stub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The proxy service with a fake backend (``reward_stub_proxy``), one per test module."""
    from reward_stub_proxy import start_stub

    server, base = start_stub(tmp_path_factory.mktemp("stub"))
    yield base
    server.stop()
