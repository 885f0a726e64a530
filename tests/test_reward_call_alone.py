"""A reward call run on an event loop of its own leaves nothing behind: ``asyncio.run(compute_score(...))``,
one call at a time, as the release's reward function is called and as a user tries it before a run.

Each loop's HTTP sessions and liveness tasks close with the loop (``proxy_client.close_with_loop``); before,
every call left two unclosed aiohttp sessions (200 "Unclosed" warnings for 50 calls). Run against the proxy
service (with ``/health``) and against a release-style endpoint that has none.
"""

from __future__ import annotations

import asyncio
import gc
import os
import warnings

import pytest

from proxy_grm.reward import compute_score
from proxy_grm.reward.proxy_client import close_pools
from reward_stub_proxy import IMAGES

CALLS = 300
PAIR = {"question": "What colour is the box?", "chosen": "Red.", "rejected": "Blue.", "image": IMAGES[0],
        "answer": "1"}
PICK1 = "<rubric>PICK1 the colour</rubric><eval>Response 1 names it.</eval><answer>1</answer>"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("endpoint", ["service", "release"])
def test_hundreds_of_calls_each_on_its_own_loop_leave_nothing_running(endpoint: str, stub_url: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = {"proxy_url": stub_url, "timeout_s": 5}
    if endpoint == "release":  # the release's endpoint URL: no /health beside it, judged by answering alone
        monkeypatch.setenv("REMOTE_RM_URL", f"{stub_url}/release/reward")
        kwargs = {"timeout_s": 5}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(compute_score("rlaif_v", PICK1, "1", PAIR, **kwargs))
        before = open_fds()
        scores = [asyncio.run(compute_score("rlaif_v", PICK1, "1", PAIR, **kwargs)) for _ in range(CALLS)]
        gc.collect()
    assert [score["proxy_reward"] for score in scores] == [1.0] * CALLS
    unclosed = [str(warning.message) for warning in caught if "Unclosed" in str(warning.message)]
    assert unclosed == [], unclosed[:3]
    assert open_fds() <= before + 2, "sockets left open by earlier calls"


def test_a_long_lived_loop_keeps_serving_after_close_pools(stub_url: str) -> None:
    """verl's reward worker keeps one loop; ``close_pools`` on it (the demo's harness) must not leave a closer
    that later closes the next call's pool."""
    loop = asyncio.new_event_loop()
    try:
        for _ in range(3):
            score = loop.run_until_complete(compute_score("rlaif_v", PICK1, "1", PAIR, proxy_url=stub_url))
            loop.run_until_complete(close_pools())
            gc.collect()
            assert score["proxy_reward"] == 1.0
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
