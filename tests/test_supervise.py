"""A program that starts engines leaves nothing running however it dies (``proxy_grm.supervise``).

The fast tests supervise a plain Python program that starts two sleepers, one in its
process group and one in a session of its own (as a server it starts would be); the
slow ones kill the real proxy service with the vLLM backend.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from helpers import REPO_ROOT, is_running
from proxy_grm.supervise import OFF, SUPERVISOR_ENV, stray_engines, supervise
from proxy_grm.toy.servers import free_port, vllm_env

PROGRAM = """
import json, os, signal, subprocess, sys, time
from proxy_grm.supervise import supervise

def main():
    supervise()
    mode, out = sys.argv[1], sys.argv[2]
    sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
    in_group = subprocess.Popen(sleeper)
    own_session = subprocess.Popen(sleeper, start_new_session=True)
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(out + ".tmp", "w") as handle:
        json.dump({"pid": os.getpid(), "descendants": [in_group.pid, own_session.pid]}, handle)
    os.replace(out + ".tmp", out)
    if mode == "exit-3":
        sys.exit(3)
    time.sleep(300)

if __name__ == "__main__":
    main()
"""


def start(tmp_path: Path, mode: str = "sleep", **env: str) -> tuple[subprocess.Popen, dict]:
    """Start the program; return its process (the supervisor) and what the supervised child wrote."""
    script, out = tmp_path / "program.py", tmp_path / "pids.json"
    script.write_text(PROGRAM)
    proc = subprocess.Popen([sys.executable, str(script), mode, str(out)], env={**os.environ, **env})
    deadline = time.monotonic() + 60
    while not out.exists():
        assert proc.poll() is None or mode == "exit-3", f"program exited with {proc.returncode}"
        assert time.monotonic() < deadline, "the program never started its sleepers"
        time.sleep(0.05)
    return proc, json.loads(out.read_text())


def wait_gone(pids: list[int], timeout_s: float = 10.0) -> list[int]:
    """The pids still running after ``timeout_s`` (zombies count as gone)."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = _alive(pids)
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        if is_running(process):
            alive.append(pid)
    return alive


def kill_all(pids: list[int]) -> None:
    for pid in _alive(pids):
        os.kill(pid, signal.SIGKILL)


def test_the_work_runs_in_a_child_in_its_own_process_group(tmp_path: Path) -> None:
    proc, run = start(tmp_path)
    try:
        assert run["pid"] != proc.pid, "the program was not re-executed under a supervisor"
        assert psutil.Process(run["pid"]).ppid() == proc.pid
        assert os.getpgid(run["pid"]) == run["pid"] != os.getpgid(proc.pid)
    finally:
        kill_all([proc.pid, run["pid"], *run["descendants"]])
        proc.wait()


def test_supervisor_killed_takes_the_child_and_its_descendants(tmp_path: Path) -> None:
    proc, run = start(tmp_path)
    everything = [run["pid"], *run["descendants"]]
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert wait_gone(everything, 5.0) == [], "left running after the supervisor's SIGKILL"
    finally:
        kill_all(everything)


def test_child_killed_supervisor_cleans_up_and_dies_the_same_way(tmp_path: Path) -> None:
    proc, run = start(tmp_path)
    try:
        os.kill(run["pid"], signal.SIGKILL)
        assert proc.wait(timeout=15) == -signal.SIGKILL
        assert wait_gone(run["descendants"], 1.0) == [], "the supervisor exited leaving descendants"
    finally:
        kill_all([proc.pid, run["pid"], *run["descendants"]])


def test_exit_status_passes_through_and_leftovers_are_killed(tmp_path: Path) -> None:
    proc, run = start(tmp_path, "exit-3")
    try:
        assert proc.wait(timeout=15) == 3
        assert wait_gone(run["descendants"], 1.0) == []
    finally:
        kill_all(run["descendants"])


def test_sigterm_is_forwarded_to_the_group_then_escalated(tmp_path: Path) -> None:
    proc, run = start(tmp_path, "ignore-term", PROXY_GRM_STOP_GRACE_S="1")
    try:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # The child ignores SIGTERM: only the SIGKILL after the grace period ends it.
        assert proc.wait(timeout=15) == -signal.SIGKILL
        assert 1.0 <= time.monotonic() - started < 10
        assert wait_gone([run["pid"], *run["descendants"]], 1.0) == []
    finally:
        kill_all([proc.pid, run["pid"], *run["descendants"]])


def test_off_or_explicit_arguments_run_unsupervised(tmp_path: Path) -> None:
    supervise(["--called-from-python"])  # returns at once: the caller owns this process
    proc, run = start(tmp_path, **{SUPERVISOR_ENV: OFF})
    try:
        assert run["pid"] == proc.pid
    finally:
        kill_all([proc.pid, *run["descendants"]])
        proc.wait()


def test_stray_engines_finds_processes_by_their_vllm_title(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    titled = subprocess.Popen([sys.executable, "-c", "import ctypes, time; "
                               "ctypes.CDLL(None).prctl(15, b'VLLM::FakeCore', 0, 0, 0); time.sleep(60)"])
    try:
        deadline = time.monotonic() + 10
        while not (found := [e for e in stray_engines() if e.pid == titled.pid]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [e.name for e in found] == ["VLLM::FakeCore"]
        assert found[0].rss_mib > 1
        assert os.getpid() not in [e.pid for e in stray_engines()]
        # nvidia-smi's compute-apps query, as on a GPU node (values in MiB; some drivers print [N/A]).
        fake = tmp_path / "bin" / "nvidia-smi"
        fake.parent.mkdir()
        fake.write_text(f"#!/bin/sh\necho '{titled.pid}, 61234'\necho '{os.getpid()}, [N/A]'\n")
        fake.chmod(0o755)
        monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
        assert [e.gpu_mib for e in stray_engines() if e.pid == titled.pid] == [61234.0]
    finally:
        titled.kill()
        titled.wait()


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.parametrize("victim", ["supervisor", "child"])
def test_killed_proxy_service_leaves_no_vllm_engine(victim: str, tiny_model_dir: Path, vllm_python: Path,
                                                   start_server) -> None:
    port = free_port()
    argv = [str(vllm_python), str(REPO_ROOT / "proxy" / "proxy.py"), "--model-path", str(tiny_model_dir),
            "--backend", "vllm", "--port", str(port), "--dtype", "float32", "--max-new-tokens", "8",
            "--max-model-len", "4096", "--enforce-eager"]
    server = start_server(argv, f"http://127.0.0.1:{port}/health", env=vllm_env(), timeout_s=300)
    supervisor = psutil.Process(server.proc.pid)
    tree = supervisor.children(recursive=True)
    engines = [p.pid for p in tree if " ".join(p.cmdline()).startswith("VLLM::")]
    assert engines, f"no VLLM:: process under the proxy: {[p.cmdline() for p in tree]}"
    os.kill(supervisor.pid if victim == "supervisor" else supervisor.children()[0].pid, signal.SIGKILL)
    if victim == "child":
        assert server.proc.wait(timeout=30) == -signal.SIGKILL, "the supervisor did not exit with its child"
    assert wait_gone([p.pid for p in tree], 10.0) == [], f"left running after the {victim}'s SIGKILL"
