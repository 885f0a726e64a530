"""Local server processes (proxy, teacher, vLLM) for the demo and the tests.

A server is started as a real subprocess, in a process group of its own, and
waited on until its health URL answers; its output goes to a log file whose tail
is shown when it fails. Stopping it ends the whole group: a vLLM server's engine
processes would otherwise outlive it. vLLM also leaves its ZMQ IPC sockets behind
(``ipc://$VLLM_RPC_BASE_PATH/<uuid>``, vllm/utils/network_utils.py:get_open_zmq_ipc_path,
default the temp dir), so each server gets a folder of its own for them, removed at stop.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path

import httpx


# verl 0.9.1's reward-model router, as verl's launch_router_process runs it (minus Ray's node-address lookup):
# ``python -c VERL_ROUTER PORT WORKER_URL`` in an environment with verl.
VERL_ROUTER = """
import sys
from verl.experimental.reward_loop.router.naive_router import run_router
run_router("127.0.0.1", int(sys.argv[1]), [sys.argv[2]])
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def vllm_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for processes running the vLLM CPU engine.

    VLLM_HOST_IP keeps its internal queues on loopback; 1 GiB of KV cache is
    plenty for tiny models; one OpenMP thread avoids oversubscribing 2 cores.
    """
    env = dict(os.environ if base is None else base)
    env.update(VLLM_HOST_IP="127.0.0.1", VLLM_CPU_KVCACHE_SPACE="1", OMP_NUM_THREADS="1")
    return env


class ServerProcess:
    """A server subprocess, healthy once its ``health_url`` answers 200."""

    def __init__(self, argv: list[str], health_url: str, log_path: Path, env: dict[str, str] | None = None):
        self.argv, self.health_url, self.log_path = argv, health_url, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.rpc_dir = tempfile.mkdtemp(prefix="vllm-rpc-")
        env = dict(os.environ if env is None else env)
        env.setdefault("VLLM_RPC_BASE_PATH", self.rpc_dir)
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def wait_healthy(self, timeout_s: float = 240.0, headers: dict[str, str] | None = None) -> ServerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} (log {self.log_path}):\n"
                                   f"{self.log_tail()}")
            try:
                if httpx.get(self.health_url, timeout=2.0, headers=headers).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()  # closes the log: read its tail after
        raise TimeoutError(f"{self.health_url} not healthy after {timeout_s:.0f}s (log {self.log_path}):\n"
                           f"{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_bytes()[-chars:].decode(errors="replace")

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the server's process group; SIGKILL whatever of it is left after ``grace_s``."""
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace_s)
        self._signal_group(signal.SIGKILL)  # also what outlived the server itself
        self.proc.wait()
        shutil.rmtree(self.rpc_dir, ignore_errors=True)
        if not self._log.closed:
            self._log.close()

    def _signal_group(self, signum: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
