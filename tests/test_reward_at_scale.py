"""The reward at the release's step size: a busy proxy is served, a hung one is found, a caller that left is dropped.

Against the real proxy app in a subprocess whose fake engine has a known capacity (``--batch-size`` critiques
per ``--delay-s``): 2,048 rollouts of one step wait many times ``timeout_s`` in our pool and the service's
queue and are still judged exactly once, with no retry; a proxy stopped with SIGSTOP (it accepts connections
and never answers) fails each attempt within ``timeout_s + probe_interval``; requests whose callers close
the connection are dropped from the engine's queue and counted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import httpx
import pytest
from reward_stub_proxy import start_stub

from proxy_grm.reward import ProxyUnavailableError, compute_score
from proxy_grm.reward.proxy_client import close_pools, probe_interval


OUTPUT = "<rubric>PICK1</rubric><eval>e</eval><answer>1</answer>"
EXTRA = {"question": "q", "chosen": "c", "rejected": "r", "image": "i.png", "answer": "1"}


async def score_many(n: int, **kwargs: object) -> list:
    try:
        calls = [compute_score("src", OUTPUT, "1", dict(EXTRA), **kwargs) for _ in range(n)]
        return await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await close_pools()


def test_a_busy_proxy_judges_every_rollout_of_a_release_sized_step_once(tmp_path: Path) -> None:
    """2,048 calls, 16 critiques per 0.25 s: the step's backlog is ~32 s, 11 times timeout_s, and nothing fails.

    (timeout_s also bounds a TCP connect: at 1 s, a connect to the stub's busy event loop on 2 loaded cores once
    took longer, and the call was retried.)
    """
    rollouts, batch, delay_s, timeout_s = 2048, 16, 0.25, 3.0
    server, base = start_stub(tmp_path, "--batch-size", str(batch), "--delay-s", str(delay_s))
    try:
        outcomes = asyncio.run(score_many(rollouts, proxy_url=base, timeout_s=timeout_s, max_retries=3))
        health = httpx.get(f"{base}/health").json()
        generated = httpx.get(f"{base}/generated").json()
    finally:
        server.stop()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert errors == [], f"{len(errors)} failed, e.g. {errors[0]!r}"
    assert [o["proxy_called"] for o in outcomes] == [1.0] * rollouts
    assert sum(o["proxy_attempts"] for o in outcomes) == rollouts, "no retries"
    assert (health["critiques"], generated, health["aborted_critiques"]) == (rollouts, rollouts, 0)
    assert rollouts * delay_s / batch > 10 * timeout_s, "the backlog must dwarf timeout_s for this to mean anything"


def test_a_hung_proxy_fails_each_attempt_within_the_documented_bound(tmp_path: Path) -> None:
    """SIGSTOP: the kernel still accepts connections, nothing answers. The error names the URL in bounded time."""
    timeout_s, max_retries, backoff_s = 1.0, 1, 0.1
    server, base = start_stub(tmp_path)
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        outcomes = asyncio.run(score_many(8, proxy_url=base, timeout_s=timeout_s, max_retries=max_retries,
                                          backoff_s=backoff_s))
        elapsed = time.monotonic() - started
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()
    for outcome in outcomes:
        assert isinstance(outcome, ProxyUnavailableError), outcome
        assert outcome.url == f"{base}/get_reward_mllm" and "did not answer" in str(outcome), outcome
        assert outcome.attempts == max_retries + 1
    # Documented bound (docs/proxy-service.md, "When the proxy is busy, slow or down"):
    # (max_retries + 1) x (timeout_s + probe interval) + backoff.
    bound = (max_retries + 1) * (timeout_s + probe_interval(timeout_s)) + backoff_s
    assert elapsed <= bound + 2.0, f"took {elapsed:.1f}s, bound {bound:.1f}s"


def test_requests_whose_callers_left_are_dropped_and_counted(tmp_path: Path) -> None:
    """One critique at a time, 0.5 s each: the first runs, 6 more queue, their callers leave; none is written."""
    server, base = start_stub(tmp_path, "--batch-size", "1", "--delay-s", "0.5")
    body = {**EXTRA, "rubric": "<rubric>PICK1</rubric>"}

    async def run() -> int:
        async with aiohttp.ClientSession() as session:
            async def post() -> int:
                async with session.post(f"{base}/get_reward_mllm", json=body) as response:
                    return response.status

            first = asyncio.ensure_future(post())
            await asyncio.sleep(0.1)  # the first is in the engine
            leavers = [asyncio.ensure_future(post()) for _ in range(6)]
            await asyncio.sleep(0.2)  # queued behind it
            for task in leavers:
                task.cancel()
            return await first

    try:
        assert asyncio.run(run()) == 200
        deadline = time.monotonic() + 10
        while (health := httpx.get(f"{base}/health").json())["aborted_critiques"] < 6:
            assert time.monotonic() < deadline, health
            time.sleep(0.05)
        time.sleep(1.0)  # long enough for the engine to have written any of them
        health = httpx.get(f"{base}/health").json()
        generated = httpx.get(f"{base}/generated").json()
        metrics = httpx.get(f"{base}/metrics").text
    finally:
        server.stop()
    assert (health["critiques"], health["aborted_critiques"], health["pending_critiques"]) == (1, 6, 0)
    assert generated == 1, "the dropped requests never reached the engine"
    assert "proxy_grm_aborted_critiques_total 6.0" in metrics
    assert 'proxy_grm_errors_total{kind="client_left"} 6.0' in metrics


@pytest.mark.parametrize("on_failure", ["raise", "score_as_release"])
def test_the_watch_stops_with_the_calls(tmp_path: Path, on_failure: str) -> None:
    """After a step the pool keeps no task alive: nothing probes an idle proxy."""
    server, base = start_stub(tmp_path)

    async def run() -> set[asyncio.Task]:
        outcomes = await asyncio.gather(*(compute_score("src", OUTPUT, "1", dict(EXTRA), proxy_url=base,
                                                        timeout_s=0.4, on_failure=on_failure) for _ in range(4)))
        assert all(o["proxy_called"] == 1.0 for o in outcomes)
        await asyncio.sleep(0.5)  # more than one probe interval
        left = asyncio.all_tasks() - {asyncio.current_task()}
        await close_pools()
        return left

    try:
        assert asyncio.run(run()) == set()
    finally:
        server.stop()
