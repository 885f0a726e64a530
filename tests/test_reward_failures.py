"""Proxy failures, replicas and auth, against real local stub servers.

A proxy that stays down stops training with an error naming the URL; only the
opt-in ``on_failure=score_as_release`` turns it into p = 0, counted per rollout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest
from proxy_grm.toy.servers import free_port
from reward_stub_proxy import start_stub

from proxy_grm.reward import ProxyProtocolError, ProxyUnavailableError, compute_score
from proxy_grm.reward.proxy_client import close_pools, request_json

OUTPUT = "<rubric>PICK1</rubric><eval>e</eval><answer>1</answer>"
EXTRA = {"question": "q", "chosen": "c", "rejected": "r", "image": "i.png", "answer": "1"}
FAST = {"backoff_s": 0.01, "timeout_s": 10}


async def score_many(n: int, **kwargs: object) -> list:
    try:
        calls = [compute_score("src", OUTPUT, "1", dict(EXTRA), **kwargs) for _ in range(n)]
        return await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await close_pools()


def test_transient_5xx_is_retried(tmp_path: Path) -> None:
    server, base = start_stub(tmp_path, "--fail-first", "2")
    try:
        [result] = asyncio.run(score_many(1, proxy_url=base, max_retries=3, **FAST))
    finally:
        server.stop()
    assert (result["proxy_called"], result["proxy_attempts"], result["score"]) == (1.0, 3.0, 2.5)


def test_retry_budget_exhausted_raises_naming_url_and_cause(tmp_path: Path) -> None:
    server, base = start_stub(tmp_path, "--fail-first", "10")
    try:
        [error] = asyncio.run(score_many(1, proxy_url=base, max_retries=2, **FAST))
        assert len(httpx.get(f"{base}/received").json()) == 3
    finally:
        server.stop()
    assert isinstance(error, ProxyUnavailableError)
    assert f"{base}/get_reward_mllm" in str(error) and "503" in str(error) and "3 attempts" in str(error)


async def kill_mid_batch(server, base: str, n: int, **kwargs: object) -> list:
    """Start n calls against a slow proxy, SIGKILL it once all n are in, collect the outcomes."""
    batch = asyncio.ensure_future(score_many(n, proxy_url=base, max_retries=2, **FAST, **kwargs))
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while len((await client.get(f"{base}/received")).json()) < n:
            assert time.monotonic() < deadline, "stub never received the batch"
            await asyncio.sleep(0.05)
    server.proc.kill()
    return await batch


def test_proxy_killed_mid_batch_raises_naming_url(tmp_path: Path) -> None:
    server, base = start_stub(tmp_path, "--delay-s", "30")
    try:
        outcomes = asyncio.run(kill_mid_batch(server, base, 8))
    finally:
        server.stop()
    assert len(outcomes) == 8
    for outcome in outcomes:
        assert isinstance(outcome, ProxyUnavailableError), outcome
        assert outcome.url == f"{base}/get_reward_mllm" and base in str(outcome)
        assert outcome.attempts == 3


def test_opt_in_policy_scores_failures_as_release_and_counts_them(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    server, base = start_stub(tmp_path, "--delay-s", "30")
    try:
        with caplog.at_level(logging.WARNING, logger="proxy_grm.reward.proxy_client"):
            outcomes = asyncio.run(kill_mid_batch(server, base, 6, on_failure="score_as_release"))
    finally:
        server.stop()
    [line] = [r.getMessage() for r in caplog.records if "scored as the release did" in r.getMessage()]
    assert f"{base}/get_reward_mllm" in line and "6 call(s)" in line, line
    assert [o["proxy_failed"] for o in outcomes] == [1.0] * 6
    # p = 0 in the default additive mode: a + 0 + 0.5 f
    assert {(o["score"], o["proxy_reward"], o["proxy_called"], o["proxy_attempts"]) for o in outcomes} == {
        (1.5, 0.0, 0.0, 3.0)}


def test_a_proxy_restart_logs_one_line_per_round_not_per_call(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """50 calls fail at once (a restarting proxy): one warning names the URL, the cause and the 50 waiting."""
    calls = 50
    server, base = start_stub(tmp_path, "--fail-first", str(calls))
    try:
        with caplog.at_level(logging.WARNING, logger="proxy_grm.reward.proxy_client"):
            outcomes = asyncio.run(score_many(calls, proxy_url=base, max_retries=2, backoff_s=2.0, timeout_s=30))
    finally:
        server.stop()
    assert all(o["proxy_called"] == 1.0 and o["proxy_attempts"] == 2.0 for o in outcomes), outcomes
    [line] = [record.getMessage() for record in caplog.records]
    assert line.startswith(f"proxy {base}/get_reward_mllm: _Retryable: HTTP 503"), line
    assert f"{calls} call(s) wait, retry 1/2 in 1.00s" in line, line


def test_calls_spread_over_replicas(tmp_path: Path) -> None:
    (server_a, base_a), (server_b, base_b) = start_stub(tmp_path, "--delay-s", "0.3"), start_stub(
        tmp_path, "--delay-s", "0.3")
    try:
        outcomes = asyncio.run(score_many(8, proxy_url=[base_a, base_b], max_retries=0, **FAST))
        received = [len(httpx.get(f"{base}/received").json()) for base in (base_a, base_b)]
    finally:
        server_a.stop()
        server_b.stop()
    assert all(o["proxy_called"] == 1.0 for o in outcomes)
    assert received == [4, 4]


def test_dead_replica_is_routed_around(tmp_path: Path) -> None:
    server, base = start_stub(tmp_path)
    dead = f"http://127.0.0.1:{free_port()}"
    try:
        outcomes = asyncio.run(score_many(6, proxy_url=[dead, base], max_retries=1, **FAST))
    finally:
        server.stop()
    assert all(o["proxy_called"] == 1.0 and o["proxy_attempts"] <= 2 for o in outcomes)


def test_auth_key(tmp_path: Path) -> None:
    server, base = start_stub(tmp_path, "--api-key", "s3cret")
    try:
        [unauthorised] = asyncio.run(score_many(1, proxy_url=base, max_retries=3, **FAST))
        [authorised] = asyncio.run(score_many(1, proxy_url=base, api_key="s3cret", **FAST))
    finally:
        server.stop()
    assert isinstance(unauthorised, ProxyProtocolError) and "401" in str(unauthorised)
    assert unauthorised.attempts == 1, "a 4xx is not retried"
    assert authorised["proxy_called"] == 1.0


def test_wrong_endpoint_is_a_protocol_error(tmp_path: Path) -> None:
    server, base = start_stub(tmp_path)
    try:
        [error] = asyncio.run(score_many(1, proxy_url=f"{base}/health/get_reward_mllm", **FAST))
    finally:
        server.stop()
    assert isinstance(error, ProxyProtocolError) and "404" in str(error) and base in str(error)


def test_missing_pair_fields_name_the_field() -> None:
    async def run() -> None:
        await compute_score("rlaif_v", OUTPUT, "1", {"question": "q"}, proxy_url="http://127.0.0.1:1")

    with pytest.raises(ValueError, match=r"rlaif_v.*\['response_1', 'response_2', 'image'\].*chosen/rejected"):
        asyncio.run(run())


@pytest.mark.parametrize(("statuses", "outcome"), [
    ((429, 503, 200), {"ok": True}),
    ((500, 502, 504), ProxyUnavailableError),
    ((401,), ProxyProtocolError),
    ((404,), ProxyProtocolError),
])
def test_blocking_calls_share_the_reward_retry_policy(statuses: tuple[int, ...], outcome: object) -> None:
    """``request_json`` (the preflight, the rubric transfer) retries what the pool retries, and only that."""
    replies = iter(statuses)
    seen: list[int] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(status := next(replies))
        return httpx.Response(status, json={"ok": True})

    with httpx.Client(transport=httpx.MockTransport(reply)) as client:
        if isinstance(outcome, dict):
            assert request_json(client, "http://proxy/health", max_retries=2, backoff_s=0.0) == outcome
        else:
            with pytest.raises(outcome) as error:  # type: ignore[call-overload]
                request_json(client, "http://proxy/health", max_retries=2, backoff_s=0.0)
            assert error.value.url == "http://proxy/health" and error.value.attempts == len(statuses)
    assert seen == list(statuses), "each status asked once, in order; a 4xx ends the call"
