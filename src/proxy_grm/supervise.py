"""Leave no vLLM engine behind when a program that started one dies.

vLLM runs its engine core and workers as child processes (titled ``VLLM::EngineCore``,
``VLLM::Worker``...). When the process that started them is killed with SIGKILL (the
OOM killer, a scheduler's forced stop) they keep running and keep their memory, GPU
memory included, so the next launch runs out of memory. A process cannot clean up
after its own SIGKILL, so every entry point that starts an engine calls
``supervise(argv)`` first thing in ``main``: the process becomes a small supervisor
(same pid, so whoever started it still signals the right process) and runs the real
work as a child in a new process group, tied to it by a pipe.

- The child dies, however (a crash, the OOM killer): the supervisor SIGKILLs the
  child's process group and every remaining descendant, then exits as the child did.
- The supervisor dies, even by SIGKILL: the pipe's only write end closes, the child
  reads EOF and SIGKILLs its descendants and its own group.
- The supervisor gets SIGTERM, SIGINT or SIGHUP: it forwards the signal to the child's
  group and SIGKILLs the group if it is still there after a grace period.

``PROXY_GRM_SUPERVISOR=off`` runs programs unsupervised (a process manager that already
kills whole groups); ``PROXY_GRM_STOP_GRACE_S`` sets the grace period (default 10 s).
``python -m proxy_grm.supervise [--] COMMAND...`` supervises any other command.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from contextlib import suppress
from dataclasses import dataclass
from types import FrameType

import psutil

SUPERVISOR_ENV = "PROXY_GRM_SUPERVISOR"  # the child's read end of the pipe, or "off"
OFF = "off"
GRACE_ENV = "PROXY_GRM_STOP_GRACE_S"
DEFAULT_GRACE_S = 10.0
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def supervise(argv: list[str] | None = None) -> None:
    """Run the rest of this program under a supervisor; call it first thing in ``main(argv)``.

    ``argv`` is what ``main`` got: None means this process runs its own command line and
    is re-executed supervised; a list means Python code called ``main`` with its own
    arguments, and that caller owns the process, so nothing happens.
    """
    if argv is not None:
        return
    value = os.environ.get(SUPERVISOR_ENV)
    if value == OFF:
        return
    if value is not None:
        # Our own children (a server we start, say) get supervisors of their own.
        del os.environ[SUPERVISOR_ENV]
        watch_parent(int(value))
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # exec keeps the pid and drops this process's imports: the supervisor stays small.
    os.execv(sys.executable, [sys.executable, "-m", __name__, "--", sys.executable, *sys.orig_argv[1:]])


def run_supervised(argv: list[str] | None = None, grace_s: float | None = None) -> int:
    """Run ``argv`` (default ``sys.argv[1:]``) as a supervised child; its return code once it and its group are gone.

    Negative return codes are signals, as in ``subprocess``.
    """
    command = list(sys.argv[1:] if argv is None else argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise SystemExit(f"usage: python -m {__name__} [--] COMMAND [ARG...]")
    grace = float(os.environ.get(GRACE_ENV, DEFAULT_GRACE_S)) if grace_s is None else grace_s
    adopt_orphans()
    read_fd, write_fd = os.pipe()  # not inheritable: only this process ever holds the write end
    child = subprocess.Popen(command, pass_fds=(read_fd,), start_new_session=True,
                             env={**os.environ, SUPERVISOR_ENV: str(read_fd)})
    os.close(read_fd)
    kill_timer: list[threading.Timer] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        _signal_group(child.pid, signum)
        if not kill_timer:
            kill_timer.append(threading.Timer(grace, _signal_group, (child.pid, signal.SIGKILL)))
            kill_timer[0].daemon = True
            kill_timer[0].start()

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    code = child.wait()
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)  # nothing may interrupt the clean-up below
    for timer in kill_timer:
        timer.cancel()
    _signal_group(child.pid, signal.SIGKILL)
    leftovers = psutil.Process().children(recursive=True)
    for process in leftovers:
        with suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(leftovers, timeout=10)  # reaps the ones adopt_orphans made ours
    os.close(write_fd)
    return code


def watch_parent(fd: int) -> threading.Thread:
    """In the supervised child: end this process group once the supervisor is gone.

    The supervisor never writes to the pipe, so a read returns only at EOF, when its
    write end closed: the supervisor died, by SIGKILL too.
    """

    def watch() -> None:
        while os.read(fd, 1):
            pass
        descendants = psutil.Process().children(recursive=True)  # also those that left the group
        for process in descendants:
            with suppress(psutil.NoSuchProcess):
                process.kill()
        os.killpg(0, signal.SIGKILL)

    thread = threading.Thread(target=watch, name="watch-supervisor", daemon=True)
    thread.start()
    return thread


@dataclass(frozen=True)
class EngineProcess:
    """A running vLLM engine process and the memory it holds."""

    pid: int
    name: str
    rss_mib: float | None  # None: another user's process
    gpu_mib: float | None  # None: no nvidia-smi here, or it does not list the process


def stray_engines() -> list[EngineProcess]:
    """Every vLLM engine process alive on this machine (title ``VLLM::...``), with its GPU memory.

    Before a launch none should exist: one that does was left by a killed program and
    holds memory the new engine needs. A preflight can refuse to start on them:

    >>> strays = stray_engines()
    >>> for engine in strays:  # doctest: +SKIP
    ...     gpu = "" if engine.gpu_mib is None else f", {engine.gpu_mib:.0f} MiB GPU"
    ...     print(f"stray vLLM process {engine.pid} {engine.name}: {engine.rss_mib or 0:.0f} MiB resident{gpu}")
    stray vLLM process 4242 VLLM::EngineCore: 2410 MiB resident, 61234 MiB GPU
    """
    prefix = os.environ.get("VLLM_PROCESS_NAME_PREFIX", "VLLM") + "::"
    gpu = _gpu_mib_by_pid()
    engines = []
    for process in psutil.process_iter(["name", "cmdline", "memory_info", "status"]):
        info = process.info
        # setproctitle rewrites the command line; the kernel's name keeps only its first 15 characters.
        title = next((t for t in (" ".join(info["cmdline"] or []), info["name"] or "") if t.startswith(prefix)), None)
        if title is None or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        rss = None if info["memory_info"] is None else info["memory_info"].rss / 2**20
        engines.append(EngineProcess(process.pid, title.split()[0], rss, gpu.get(process.pid)))
    return engines


def _gpu_mib_by_pid() -> dict[int, float]:
    """GPU memory (MiB) of each process using a GPU, per nvidia-smi; empty without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    usage = {}
    for line in out.splitlines():
        pid, _, used = line.partition(",")
        with suppress(ValueError):
            usage[int(pid)] = float(used)
    return usage


def _signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def adopt_orphans() -> None:
    """Become the parent of orphaned descendants (Linux): a process whose parent died stays findable.

    Without it an orphan moves to init and no longer shows as our descendant, even
    when it left the child's process group where a group kill would miss it.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _exit_as(code: int) -> None:
    """Exit with ``code``, or die of the same signal when it is negative, as the child did."""
    if code < 0:
        with suppress(OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(128 - code if code < 0 else code)


if __name__ == "__main__":
    _exit_as(run_supervised())
