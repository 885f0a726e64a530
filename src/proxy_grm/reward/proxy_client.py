"""Async HTTP client for the proxy service: pooled, replica-aware, bounded retries.

One ``ProxyPool`` per event loop and settings (an HTTP session cannot be shared
across loops; verl runs one loop per reward worker process). Each call goes
to the replica with the fewest calls in flight (ties rotate), retries connection
errors, timeouts, 429 and 5xx with exponential backoff on another replica when
there is one, and then raises ``ProxyUnavailableError`` naming the URL and cause.
A 4xx or a malformed answer is not retried: it means a bad request or a server
that does not speak this protocol, and retrying would hide it.

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
import itertools
import json
import logging
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import aiohttp

from proxy_grm.reward.settings import RewardSettings

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0
WARNING_WINDOW_S = 1.0  # longest a warning waits for the identical ones of other calls


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


class ProxyPool:
    """The proxy replicas of one settings object, seen from one event loop."""

    def __init__(self, settings: RewardSettings):
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else None
        self.endpoints = settings.proxy_endpoints
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=settings.timeout_s),
            headers=headers,
            connector=aiohttp.TCPConnector(limit=settings.max_connections),
        )
        self.in_flight = dict.fromkeys(self.endpoints, 0)
        self._turn = itertools.count()
        self.warnings = WarningBatch()

    def pick(self, avoid: set[str]) -> str:
        """The replica with the fewest calls in flight, skipping ``avoid`` unless nothing else is left."""
        candidates = [url for url in self.endpoints if url not in avoid] or list(self.endpoints)
        start = next(self._turn) % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        return min(rotated, key=self.in_flight.__getitem__)

    async def _post_once(self, url: str, payload: dict[str, Any]) -> tuple[float, bool]:
        self.in_flight[url] += 1
        try:
            async with self.session.post(url, json=payload) as response:
                status, text = response.status, await response.text(errors="replace")
        finally:
            self.in_flight[url] -= 1
        if status in RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {status}: {text[:200]}")
        if status != 200:
            raise ProxyProtocolError(url, f"HTTP {status}: {text[:500]}")
        try:
            answer = json.loads(text)
            reward = answer["reward"]
        except (ValueError, KeyError, TypeError):
            raise ProxyProtocolError(url, f"answer has no JSON 'reward': {text[:200]!r}") from None
        if isinstance(reward, bool) or reward not in (1, -1):
            raise ProxyProtocolError(url, f"'reward' must be 1.0 or -1.0, got {reward!r}")
        return float(reward), answer.get("truncated") is True

    async def judge(self, payload: dict[str, Any], max_retries: int, backoff_s: float) -> Judgement:
        """Post one rubric to the proxy; retry transient failures, then raise."""
        failed: set[str] = set()
        for attempt in range(max_retries + 1):
            url = self.pick(failed)
            try:
                reward, truncated = await self._post_once(url, payload)
                return Judgement(reward, truncated, url, attempt + 1)
            except ProxyProtocolError as error:
                error.attempts = attempt + 1
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, _Retryable) as error:
                cause = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                failed.add(url)
            if attempt < max_retries:
                delay = min(backoff_s * 2**attempt, MAX_BACKOFF_S)
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
        await self.session.close()


class _Retryable(Exception):
    """A status that may pass (overload, restart): try again."""


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, ProxyPool]] = weakref.WeakKeyDictionary()


def get_pool(settings: RewardSettings) -> ProxyPool:
    """The pool for these settings on the running event loop, created on first use."""
    key = (settings.proxy_endpoints, settings.timeout_s, settings.api_key, settings.max_connections)
    pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
    if key not in pools:
        pools[key] = ProxyPool(settings)
    return pools[key]


async def close_pools() -> None:
    """Close the running loop's clients (tests and clean shutdowns)."""
    for pool in _POOLS.pop(asyncio.get_running_loop(), {}).values():
        await pool.aclose()
