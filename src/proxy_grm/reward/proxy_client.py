"""HTTP client for the proxy service: pooled, replica-aware, liveness-checked, bounded retries.

One ``ProxyPool`` per event loop and settings (an HTTP session cannot be shared
across loops; verl runs one loop per reward worker process). Each call goes
to the replica with the fewest calls in flight (ties rotate), retries connection
errors, a replica found dead, 429 and 5xx with exponential backoff on another
replica when there is one, and then raises ``ProxyUnavailableError`` naming the URL
and cause. A 4xx or a malformed answer is not retried: it means a bad request or a
server that does not speak this protocol, and retrying would hide it. ``request_json`` is the
same retry policy for one blocking call (the preflight, the rubric-transfer evaluator).

A busy proxy is not a dead one. At the release's step size (2,048 rollouts, 8 reward
workers) calls wait in our connection pool and in the service's queue for many times
what one critique takes, so no timeout runs on a call itself (aiohttp's ``total``
would count the wait for a pooled connection). Liveness is watched per replica
instead (``ReplicaWatch``): while calls wait on a replica, its ``/health`` is asked
every ``probe_interval(timeout_s)`` seconds on a connection of its own; the replica is
dead, and its waiting calls fail over to a retry, when for ``timeout_s`` it has not
answered ``/health`` (a hung or stopped process, a lost host) or has finished no
critique (its ``/health`` counter; an engine that stopped while the server still
answers). ``timeout_s`` is therefore the longest the proxy may take to serve, not
to queue: a hung proxy fails each attempt within ``timeout_s + probe_interval``.
A proxy without ``/health`` counters (the release's) is judged by answering alone.

Retry warnings are logged once per endpoint and round (``WarningBatch``): a proxy
restart during a 2,048-rollout step fails every call within milliseconds, and one
line per call would bury the log.

The session is aiohttp's: a GRPO step keeps hundreds of calls in flight (the proxy's
engine batches them), and httpx's connection pool does work quadratic in its
connections on every request (httpcore 1.0 ``_assign_requests_to_connections``):
at 256 calls in flight it cost more CPU than the proxy's own request handling
(``benchmarks/reward_throughput.py --workload grpo``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from proxy_grm.proxy_contract import BATCH_PATH, HEALTH_PATH, route_url
from proxy_grm.reward.settings import RewardSettings

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0
WARNING_WINDOW_S = 1.0  # longest a warning waits for the identical ones of other calls
MAX_PROBE_INTERVAL_S = 5.0
CONNECT_TIMEOUT_S = 30.0  # the TCP connect alone (a host that is gone), never the wait for a pooled connection


def retry_delay(attempt: int, backoff_s: float) -> float:
    """Seconds to wait before retry ``attempt + 1``: ``backoff_s`` doubling per retry, at most ``MAX_BACKOFF_S``.

    >>> [retry_delay(attempt, 0.5) for attempt in range(3)], retry_delay(10, 0.5)
    ([0.5, 1.0, 2.0], 30.0)
    """
    return min(backoff_s * 2**attempt, MAX_BACKOFF_S)


def probe_interval(timeout_s: float) -> float:
    """How often a replica with calls waiting is asked ``/health``: 5 s, or a quarter of ``timeout_s`` if less.

    >>> probe_interval(120), probe_interval(2)
    (5.0, 0.5)
    """
    return min(MAX_PROBE_INTERVAL_S, timeout_s / 4)


class ProxyCallError(RuntimeError):
    """A proxy call that produced no judgement; ``url`` is the endpoint that failed last."""

    def __init__(self, url: str, cause: str, attempts: int = 1):
        super().__init__(f"proxy call to {url} failed: {cause}")
        self.url = url
        self.cause = cause
        self.attempts = attempts


class ProxyUnavailableError(ProxyCallError):
    """Connection errors, timeouts or 5xx on every attempt."""


class ProxyProtocolError(ProxyCallError):
    """A 4xx or an answer without a valid ``reward``."""


@dataclass(frozen=True)
class Judgement:
    """The proxy's reward (+1.0 or -1.0), whether its critique hit the length limit, and the attempts it took.

    ``truncated`` is False for proxies that do not report it (the release's).
    """

    reward: float
    truncated: bool
    url: str
    attempts: int


class WarningBatch:
    """Warnings that many concurrent calls raise together, logged as one line per key.

    The first ``add`` for a key opens a window; at its end one line is logged, told how
    many calls it stands for. ``flush`` logs what is still open (before a loop closes).
    """

    def __init__(self) -> None:
        self._open: dict[Hashable, tuple[int, Callable[[int], str], asyncio.TimerHandle]] = {}

    def add(self, key: Hashable, window_s: float, line: Callable[[int], str]) -> None:
        """Count one call under ``key``; ``line(calls)`` is the text logged when the window ends."""
        if key in self._open:
            calls, first_line, timer = self._open[key]
            self._open[key] = (calls + 1, first_line, timer)
            return
        timer = asyncio.get_running_loop().call_later(window_s, self._log, key)
        self._open[key] = (1, line, timer)

    def _log(self, key: Hashable) -> None:
        calls, line, timer = self._open.pop(key)
        timer.cancel()
        logger.warning(line(calls))

    def flush(self) -> None:
        for key in list(self._open):
            self._log(key)


class ReplicaWatch:
    """Liveness of one replica while calls wait on it (see the module docstring).

    ``dead`` is a future the waiting calls race their request against; it gets the cause when
    the replica is found dead, and a fresh one replaces it for the calls that come after.
    """

    def __init__(self, url: str, probes: aiohttp.ClientSession, timeout_s: float, waiting: Callable[[], int]):
        self.health_url = route_url(url, HEALTH_PATH)
        self.probes, self.timeout_s, self.waiting = probes, timeout_s, waiting
        self.dead: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> asyncio.Future[str]:
        """Start watching (if not already); the future the caller's request races against."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())
        return self.dead

    async def _probe(self) -> int | None:
        """Ask ``/health``; its critique counter, or None when it has none. Raises when it does not answer."""
        async with self.probes.get(self.health_url) as response:
            text = await response.text(errors="replace")
        try:
            critiques = json.loads(text).get("critiques")
        except (ValueError, AttributeError):
            return None
        return critiques if isinstance(critiques, int) and not isinstance(critiques, bool) else None

    async def _watch(self) -> None:
        interval = probe_interval(self.timeout_s)
        answered = progressed = time.monotonic()
        critiques: int | None = None
        while self.waiting() > 0:
            try:
                count = await asyncio.wait_for(self._probe(), self.timeout_s)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            else:
                answered = time.monotonic()
                if count is None or count != critiques:
                    progressed, critiques = answered, count
            now = time.monotonic()
            if now - answered >= self.timeout_s:
                self._declare_dead(f"did not answer {self.health_url} for {now - answered:.0f}s (timeout_s)")
                answered = progressed = now
            elif now - progressed >= self.timeout_s:
                self._declare_dead(f"finished no critique for {now - progressed:.0f}s (timeout_s) while "
                                   f"{self.waiting()} call(s) waited")
                answered = progressed = now
            await asyncio.sleep(interval)

    def _declare_dead(self, cause: str) -> None:
        self.dead.set_result(cause)
        self.dead = asyncio.get_running_loop().create_future()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


class ProxyPool:
    """The proxy replicas of one settings object, seen from one event loop."""

    def __init__(self, settings: RewardSettings):
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else None
        self.endpoints = settings.proxy_endpoints
        # No total, connect or read timeout: a call may wait as long as the replica keeps serving (ReplicaWatch).
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(CONNECT_TIMEOUT_S, settings.timeout_s)),
            headers=headers,
            connector=aiohttp.TCPConnector(limit=settings.max_connections),
        )
        self.probes = aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=len(self.endpoints)))
        self.in_flight = dict.fromkeys(self.endpoints, 0)
        self.watches = {url: ReplicaWatch(url, self.probes, settings.timeout_s, lambda url=url: self.in_flight[url])
                        for url in self.endpoints}
        self._turn = itertools.count()
        self.warnings = WarningBatch()

    def pick(self, avoid: set[str]) -> str:
        """The replica with the fewest calls in flight, skipping ``avoid`` unless nothing else is left."""
        candidates = [url for url in self.endpoints if url not in avoid] or list(self.endpoints)
        start = next(self._turn) % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        return min(rotated, key=self.in_flight.__getitem__)

    async def _request(self, url: str, payload: dict[str, Any]) -> tuple[int, str]:
        async with self.session.post(url, json=payload) as response:
            return response.status, await response.text(errors="replace")

    async def _send(self, url: str, target: str, body: dict[str, Any]) -> str:
        """POST ``body`` to ``target`` on replica ``url``, raced against its liveness watch; the 200 reply's text."""
        self.in_flight[url] += 1
        request = asyncio.ensure_future(self._request(target, body))
        try:
            dead = self.watches[url].ensure_running()
            await asyncio.wait((request, dead), return_when=asyncio.FIRST_COMPLETED)
            if not request.done():
                raise _Retryable(f"replica found dead: {dead.result()}")
            status, text = request.result()
        finally:
            self.in_flight[url] -= 1
            if not request.done():
                request.cancel()  # closes the connection: the server aborts the critique
        if status in RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {status}: {text[:200]}")
        if status != 200:
            raise ProxyProtocolError(target, f"HTTP {status}: {text[:500]}")
        return text

    async def _post_once(self, url: str, payloads: list[dict[str, Any]]) -> list[tuple[float, bool]]:
        """One attempt: one payload to the release's endpoint, several to the batch endpoint (one request)."""
        target = url if len(payloads) == 1 else route_url(url, BATCH_PATH)
        body = payloads[0] if len(payloads) == 1 else {"items": payloads}
        text = await self._send(url, target, body)
        try:
            answer = json.loads(text)
            answers = [answer] if len(payloads) == 1 else answer["results"]
            rewards = [(item["reward"], item.get("truncated") is True) for item in answers]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ProxyProtocolError(target, f"answer has no JSON 'reward': {text[:200]!r}") from None
        if len(rewards) != len(payloads):
            raise ProxyProtocolError(target, f"expected {len(payloads)} results, got {len(rewards)}")
        for reward, _ in rewards:
            if isinstance(reward, bool) or reward not in (1, -1):
                raise ProxyProtocolError(target, f"'reward' must be 1.0 or -1.0, got {reward!r}")
        return [(float(reward), truncated) for reward, truncated in rewards]

    async def judge(self, payloads: list[dict[str, Any]], max_retries: int, backoff_s: float) -> list[Judgement]:
        """Post rubric(s) to the proxy in one request, one ``Judgement`` each; retry transient failures, then raise."""
        failed: set[str] = set()
        for attempt in range(max_retries + 1):
            url = self.pick(failed)
            try:
                results = await self._post_once(url, payloads)
                return [Judgement(reward, truncated, url, attempt + 1) for reward, truncated in results]
            except ProxyProtocolError as error:
                error.url, error.attempts = url, attempt + 1
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, _Retryable) as error:
                cause = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                failed.add(url)
            if attempt < max_retries:
                delay = retry_delay(attempt, backoff_s)
                self._warn_retry(url, cause, attempt + 1, max_retries, delay)
                await asyncio.sleep(delay)
        raise ProxyUnavailableError(
            url, f"{cause} (after {max_retries + 1} attempts; tried {sorted(failed)})", max_retries + 1
        )

    def _warn_retry(self, url: str, cause: str, retry: int, max_retries: int, delay: float) -> None:
        """One line per endpoint and round: the calls that failed there within the window, and when they retry."""
        window = min(delay / 2, WARNING_WINDOW_S)

        def line(calls: int) -> str:
            return (f"proxy {url}: {cause}; {calls} call(s) wait, retry {retry}/{max_retries} "
                    f"in {delay - window:.2f}s (on another replica when there is one)")

        self.warnings.add(("retry", url, retry), window, line)

    async def aclose(self) -> None:
        self.warnings.flush()
        for watch in self.watches.values():
            watch.close()
        await self.session.close()
        await self.probes.close()


class _Retryable(Exception):
    """A status that may pass (overload, restart): try again."""


def request_json(client: httpx.Client, url: str, body: Any = None, max_retries: int = 3,
                 backoff_s: float = 0.5) -> Any:
    """One blocking call to the service (GET, or POST of ``body``) with the reward's retry policy; its JSON reply.

    For the one-off callers (the preflight, the rubric-transfer evaluator), which need no pool or liveness
    watch: connection errors, timeouts, 429 and 5xx are retried ``max_retries`` times (``retry_delay``), then
    ``ProxyUnavailableError``; any other non-200, or a reply that is not JSON, is ``ProxyProtocolError`` at once.
    """
    for attempt in range(max_retries + 1):
        try:
            response = client.get(url) if body is None else client.post(url, json=body)
        except httpx.TransportError as error:
            cause = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        else:
            if response.status_code not in RETRYABLE_STATUS:
                if response.status_code != 200:
                    raise ProxyProtocolError(url, f"HTTP {response.status_code}: {response.text[:500]}", attempt + 1)
                try:
                    return response.json() if response.content else None  # vLLM's /health has no body
                except ValueError:
                    raise ProxyProtocolError(url, f"not JSON: {response.text[:200]!r}", attempt + 1) from None
            cause = f"HTTP {response.status_code}: {response.text[:200]}"
        if attempt < max_retries:
            time.sleep(retry_delay(attempt, backoff_s))
    attempts = max_retries + 1
    raise ProxyUnavailableError(url, f"{cause} (after {attempts} attempts)" if attempts > 1 else cause, attempts)


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, ProxyPool]] = weakref.WeakKeyDictionary()
_CLOSERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = \
    weakref.WeakKeyDictionary()


def get_pool(settings: RewardSettings, pool_cls: type[ProxyPool] = ProxyPool) -> ProxyPool:
    """The pool of ``pool_cls`` for these settings on the running event loop, created on first use.

    The loop's pools close when the loop shuts down (``close_with_loop``), so a caller that runs each reward
    call on a loop of its own (``asyncio.run(compute_score(...))``) leaves no session or task behind.
    """
    key = (pool_cls, settings.proxy_endpoints, settings.timeout_s, settings.api_key, settings.max_connections,
           settings.max_new_tokens)
    loop = asyncio.get_running_loop()
    if loop not in _CLOSERS:  # once per loop: the closer closes whatever pools the loop holds when it shuts down
        close_with_loop(loop)
    pools = _POOLS.setdefault(loop, {})
    if key not in pools:
        pools[key] = pool_cls(settings)
    return pools[key]


async def close_pools() -> None:
    """Close the running loop's clients (tests and clean shutdowns; the loop's shutdown does it too)."""
    for pool in _POOLS.pop(asyncio.get_running_loop(), {}).values():
        await pool.aclose()


async def _closer() -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await close_pools()


def close_with_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close ``loop``'s pools when it shuts down: at ``loop.shutdown_asyncgens()``, which ``asyncio.run`` calls
    before it closes the loop, asyncio ``aclose``s every async generator started on it and not finished.

    ``_closer`` is started here, synchronously, up to its ``yield`` (asyncio's first-iteration hook registers
    it with the running loop), and kept alive for the loop's lifetime (the loop only holds it weakly).
    """
    closer = _closer()
    _CLOSERS[loop] = closer
    with contextlib.suppress(StopIteration):
        closer.__anext__().send(None)
