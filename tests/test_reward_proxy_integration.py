"""The reward function against the real proxy service (proxy/proxy.py, transformers
backend, tiny model): judgements come back, components add up, auth works, and a
proxy killed mid-batch makes the reward raise naming the URL.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO_ROOT
from proxy_grm.toy.servers import ServerProcess, free_port
from PIL import Image

from proxy_grm.reward import SCORE_KEYS, ProxyUnavailableError, compute_score, get_mode
from proxy_grm.reward.proxy_client import close_pools

API_KEY = "reward-test-key"
PAIR = {"question": "What colour is the box?", "chosen": "It is red.", "rejected": "It is blue.",
        "image": "red.png"}
OUTPUTS = [
    "<rubric>1. Colour accuracy (100%)<justify>the question asks for a colour</justify></rubric>"
    "<eval>Response 1 says red.</eval><answer>1</answer>",
    "<rubric>1. Brevity (100%)</rubric><eval>both short</eval><answer>2</answer>",
    "<rubric>1. Colour (60%) 2. Tone (40%)</rubric> <eval>x</eval><answer>1</answer>",
    "<eval>no rubric at all</eval><answer>1</answer>",
]


def start_proxy(model_dir: Path, image_root: Path, log_dir: Path, *extra: str) -> tuple[ServerProcess, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, str(REPO_ROOT / "proxy" / "proxy.py"), "--model-path", str(model_dir),
            "--backend", "transformers", "--port", str(port), "--max-new-tokens", "8", "--dtype", "float32",
            "--api-key", API_KEY, "--image-root", str(image_root), *extra]
    server = ServerProcess(argv, f"{url}/health", log_dir / f"proxy-{port}.log")
    server.wait_healthy(timeout_s=300)
    return server, url


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    Image.new("RGB", (56, 56), (220, 20, 20)).save(root / "red.png")
    return root


@pytest.fixture(scope="module")
def proxy_url(tiny_model_dir: Path, image_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, url = start_proxy(tiny_model_dir, image_root, tmp_path_factory.mktemp("proxy"))
    yield url
    server.stop()


async def score_all(outputs: list[str], **kwargs: object) -> list:
    try:
        calls = [compute_score("rlaif_v", text, "1", {**PAIR, "answer": "1"}, **kwargs) for text in outputs]
        return await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await close_pools()


@pytest.mark.parametrize("mode", ["explicit_additive", "implicit_graded_correct"])
def test_real_proxy_judgements_and_components(proxy_url: str, mode: str) -> None:
    results = asyncio.run(score_all(OUTPUTS, proxy_url=proxy_url, api_key=API_KEY, mode=mode, max_retries=0))
    aggregation = get_mode(mode)
    for text, result in zip(OUTPUTS, results, strict=True):
        assert not isinstance(result, BaseException), result
        assert tuple(result) == SCORE_KEYS
        called = "</rubric>" in text
        assert result["proxy_called"] == float(called) and result["proxy_failed"] == 0.0
        assert result["proxy_judgement"] in ((1.0, -1.0) if called else (-1.0,))
        a, p = aggregation.apply(bool(result["verdict_correct"]), int(result["proxy_judgement"]))
        assert (result["accuracy_reward"], result["proxy_reward"]) == (a, p)
        assert result["score"] == a + p + result["format_reward"]


def test_real_proxy_without_key_is_refused_not_retried(proxy_url: str) -> None:
    [error] = asyncio.run(score_all(OUTPUTS[:1], proxy_url=proxy_url, max_retries=3, backoff_s=0.01))
    assert "401" in str(error) and proxy_url in str(error) and error.attempts == 1


def test_real_proxy_killed_mid_batch_raises_naming_url(tiny_model_dir: Path, image_root: Path,
                                                       tmp_path: Path) -> None:
    server, url = start_proxy(tiny_model_dir, image_root, tmp_path, "--max-batch-size", "1")

    async def run() -> list:
        settings = {"proxy_url": url, "api_key": API_KEY, "max_retries": 2, "backoff_s": 0.05}
        tasks = [asyncio.ensure_future(compute_score("rlaif_v", OUTPUTS[0], "1", {**PAIR, "answer": "1"},
                                                     **settings)) for _ in range(12)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            server.proc.kill()
            return await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await close_pools()

    try:
        outcomes = asyncio.run(run())
    finally:
        server.stop()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert errors, "every call finished before the kill"
    for error in errors:
        assert isinstance(error, ProxyUnavailableError) and error.url == f"{url}/get_reward_mllm", error
        assert error.attempts == 3
    assert all(o["proxy_called"] == 1.0 for o in outcomes if not isinstance(o, BaseException))


def test_verl_reward_loop_with_the_real_proxy(proxy_url: str, tiny_model_dir: Path) -> None:
    """verl's RewardLoopWorker loads compute_score by path and scores a GRPO group through the real service."""
    from proxy_grm.demo.verl_loop import Rollout, score_rollouts, trainer_config

    config = trainer_config(tiny_model_dir, {"proxy_url": proxy_url, "api_key": API_KEY, "mode": "explicit_additive"},
                            REPO_ROOT / "verl" / "proxy_grm_reward.py")
    rollouts = [Rollout("group", text, "1", {**PAIR, "answer": "1"}) for text in OUTPUTS]
    result = score_rollouts(config, rollouts)
    assert [c["proxy_called"] for c in result.components] == [1.0, 1.0, 1.0, 0.0]
    assert all(c["proxy_failed"] == 0.0 for c in result.components)
    for score, c in zip(result.scores, result.components, strict=True):
        assert score == c["accuracy_reward"] + c["proxy_reward"] + c["format_reward"]
    assert abs(sum(result.advantages)) < 1e-4, "GRPO advantages are centred within the group"
