"""Reward settings: kwargs over the release's env switches over defaults, read at call time."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from proxy_grm.proxy_contract import route_url
from proxy_grm.reward import compute_score, get_mode, resolve_settings
from proxy_grm.reward.proxy_client import close_pools
from proxy_grm.reward.settings import RewardSettings

URL = "http://10.0.0.5:8000"
ENDPOINT = URL + "/get_reward_mllm"


def test_defaults_need_a_proxy_url() -> None:
    with pytest.raises(ValueError, match="proxy_url"):
        resolve_settings({}, env={})
    settings = resolve_settings({"proxy_url": URL}, env={})
    assert settings == RewardSettings(proxy_endpoints=(ENDPOINT,))
    assert (settings.use_proxy, settings.use_format, settings.mode.name) == (True, True, "explicit_additive")
    assert (settings.format_weight, settings.timeout_s, settings.max_retries, settings.on_failure) == (
        0.5, 120.0, 3, "raise")


@pytest.mark.parametrize(
    "value, endpoints",
    [
        (URL, (ENDPOINT,)),
        (URL + "/", (ENDPOINT,)),
        (ENDPOINT, (ENDPOINT,)),
        ([URL, "http://10.0.0.6:8000"], (ENDPOINT, "http://10.0.0.6:8000/get_reward_mllm")),
        (f"{URL}, http://10.0.0.6:8000", (ENDPOINT, "http://10.0.0.6:8000/get_reward_mllm")),
    ],
)
def test_proxy_url_forms(value: object, endpoints: tuple[str, ...]) -> None:
    settings = resolve_settings({"proxy_url": value}, env={})
    assert settings.proxy_endpoints == endpoints
    assert {route_url(e, "") for e in endpoints} == {e.removesuffix("/get_reward_mllm") for e in endpoints}


def test_release_env_switches() -> None:
    env = {"use_api": "1", "use_format": "0", "use_fb": "7", "ip": "10.1.2.3", "api_port": "9000",
           "HTTP_POOL_SIZE": "16"}
    settings = resolve_settings({}, env=env)
    assert settings.use_proxy and not settings.use_format
    assert settings.mode is get_mode("implicit_graded_correct")
    assert settings.proxy_endpoints == ("http://10.1.2.3:9000/get_reward_mllm",)
    assert settings.max_connections == 16


def test_release_defaults_for_ip_and_port() -> None:
    assert resolve_settings({}, env={"use_api": "1"}).proxy_endpoints == ("http://0.0.0.0:20240/get_reward_mllm",)
    assert resolve_settings({}, env={"api_port": "1234"}).proxy_endpoints == ("http://0.0.0.0:1234/get_reward_mllm",)


def test_remote_rm_url_is_used_as_is_and_wins_over_ip() -> None:
    env = {"use_api": "1", "REMOTE_RM_URL": "http://10.9.9.9:20240/custom/path", "ip": "10.1.2.3"}
    assert resolve_settings({}, env=env).proxy_endpoints == ("http://10.9.9.9:20240/custom/path",)


def test_kwargs_win_over_env() -> None:
    env = {"use_api": "0", "use_format": "0", "use_fb": "7", "REMOTE_RM_URL": "http://10.9.9.9:1/x",
           "HTTP_POOL_SIZE": "16", "PROXY_GRM_API_KEY": "from-env"}
    kwargs = {"use_proxy": True, "use_format": True, "mode": 3, "proxy_url": URL, "max_connections": 4,
              "api_key": "from-kwargs"}
    settings = resolve_settings(kwargs, env=env)
    assert (settings.use_proxy, settings.use_format, settings.mode.release_id) == (True, True, 3)
    assert (settings.proxy_endpoints, settings.max_connections, settings.api_key) == ((ENDPOINT,), 4, "from-kwargs")
    assert resolve_settings({"proxy_url": URL}, env=env).api_key == "from-env"


def test_use_api_0_turns_the_proxy_off_without_a_url() -> None:
    settings = resolve_settings({}, env={"use_api": "0"})
    assert not settings.use_proxy and settings.proxy_endpoints == ()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"proxy_urll": URL}, "unknown reward_kwargs"),
        ({"proxy_url": "10.0.0.5:8000"}, "proxy_url: expected an http"),
        ({"proxy_url": URL, "mode": "fancy"}, "mode: unknown name"),
        ({"proxy_url": URL, "on_failure": "ignore"}, "on_failure"),
        ({"proxy_url": URL, "format_weight": "heavy"}, "format_weight"),
        ({"proxy_url": URL, "max_retries": -1}, "max_retries"),
        ({"proxy_url": URL, "use_format": "maybe"}, "use_format"),
        ({"proxy_url": []}, "proxy_url: empty"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        resolve_settings(kwargs, env={})


def test_verl_injected_kwargs_are_accepted() -> None:
    assert resolve_settings({"proxy_url": URL, "reward_router_address": None, "reward_model_tokenizer": None}, env={})


def test_verls_router_address_is_where_the_proxy_is_asked() -> None:
    settings = resolve_settings({"reward_router_address": "10.0.0.3:41234", "reward_model_tokenizer": object()},
                                env={})
    assert (settings.proxy_endpoints, settings.via_router) == (("http://10.0.0.3:41234",), True)
    assert not resolve_settings({"proxy_url": URL}, env={}).via_router
    with pytest.raises(ValueError, match="in verl's pool or in our service, not both"):
        resolve_settings({"proxy_url": URL, "reward_router_address": "10.0.0.3:41234"}, env={})


OUTPUT = "<rubric>PICK1</rubric><eval>e</eval><answer>1</answer>"
EXTRA = {"question": "q", "chosen": "c", "rejected": "r", "image": "i.png", "answer": "1"}


def run_score(**kwargs: object) -> dict[str, float]:
    async def run() -> dict[str, float]:
        try:
            return await compute_score("src", OUTPUT, "1", dict(EXTRA), **kwargs)
        finally:
            await close_pools()

    return asyncio.run(run())


def test_env_is_read_at_call_time(stub_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = stub_url.rsplit(":", 1)[1]
    monkeypatch.setenv("use_api", "1")
    monkeypatch.setenv("ip", "127.0.0.1")
    monkeypatch.setenv("api_port", port)
    monkeypatch.setenv("use_fb", "7")
    first = run_score()
    assert (first["proxy_called"], first["score"], first["proxy_reward"]) == (1.0, 2.0, 0.0)
    monkeypatch.setenv("use_api", "0")
    monkeypatch.setenv("use_format", "0")
    second = run_score()
    assert (second["proxy_called"], second["score"]) == (0.0, 1.0)


def test_legacy_remote_rm_url_posts_release_payload(stub_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("use_api", "1")
    monkeypatch.setenv("REMOTE_RM_URL", f"{stub_url}/release/reward")
    result = run_score()
    assert (result["proxy_called"], result["proxy_judgement"], result["score"]) == (1.0, 1.0, 2.5)
    body = httpx.get(f"{stub_url}/received").json()[-1]
    assert body == {**EXTRA, "rubric": "<rubric>PICK1</rubric>"}
