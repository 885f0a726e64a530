"""Async HTTP client for the proxy service: pooled, replica-aware, bounded retries.

One ``ProxyPool`` per event loop and settings (an ``httpx.AsyncClient`` cannot be
shared across loops; verl runs one loop per reward worker process). Each call goes
to the replica with the fewest calls in flight (ties rotate), retries connection
errors, timeouts, 429 and 5xx with exponential backoff on another replica when
there is one, and then raises ``ProxyUnavailableError`` naming the URL and cause.
A 4xx or a malformed answer is not retried: it means a bad request or a server
that does not speak this protocol, and retrying would hide it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from dataclasses import dataclass
from typing import Any

import httpx

from proxy_grm.reward.settings import RewardSettings

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0


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


class ProxyPool:
    """The proxy replicas of one settings object, seen from one event loop."""

    def __init__(self, settings: RewardSettings):
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else None
        self.endpoints = settings.proxy_endpoints
        self.client = httpx.AsyncClient(
            timeout=settings.timeout_s,
            headers=headers,
            limits=httpx.Limits(max_connections=settings.max_connections,
                                max_keepalive_connections=settings.max_connections),
        )
        self.in_flight = dict.fromkeys(self.endpoints, 0)
        self._turn = itertools.count()

    def pick(self, avoid: set[str]) -> str:
        """The replica with the fewest calls in flight, skipping ``avoid`` unless nothing else is left."""
        candidates = [url for url in self.endpoints if url not in avoid] or list(self.endpoints)
        start = next(self._turn) % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        return min(rotated, key=self.in_flight.__getitem__)

    async def _post_once(self, url: str, payload: dict[str, Any]) -> tuple[float, bool]:
        self.in_flight[url] += 1
        try:
            response = await self.client.post(url, json=payload)
        finally:
            self.in_flight[url] -= 1
        if response.status_code in RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code != 200:
            raise ProxyProtocolError(url, f"HTTP {response.status_code}: {response.text[:500]}")
        try:
            answer = response.json()
            reward = answer["reward"]
        except (ValueError, KeyError, TypeError):
            raise ProxyProtocolError(url, f"answer has no JSON 'reward': {response.text[:200]!r}") from None
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
            except (httpx.TransportError, _Retryable) as error:
                cause = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                failed.add(url)
            if attempt < max_retries:
                delay = min(backoff_s * 2**attempt, MAX_BACKOFF_S)
                logger.warning("proxy %s: %s; retry %d/%d in %.2fs", url, cause, attempt + 1, max_retries, delay)
                await asyncio.sleep(delay)
        raise ProxyUnavailableError(
            url, f"{cause} (after {max_retries + 1} attempts; tried {sorted(failed)})", max_retries + 1
        )

    async def aclose(self) -> None:
        await self.client.aclose()


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
