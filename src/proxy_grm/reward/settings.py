"""Reward settings: verl's ``reward_kwargs`` and the release's environment switches, in one place.

Precedence, per setting: an explicit ``+reward.custom_reward_function.reward_kwargs.KEY``
wins over the release's environment switch, which wins over the built-in default.
Both are read at call time (never at import time), so a worker started before the
environment was set still sees it.

| kwarg           | release env switch              | default                         |
|-----------------|---------------------------------|---------------------------------|
| use_proxy       | use_api (0/1)                   | true                            |
| use_format      | use_format (0/1)                | true                            |
| mode            | use_fb (0-10)                   | explicit_additive               |
| proxy_url       | REMOTE_RM_URL, else ip/api_port | none (an error when use_proxy)  |
| max_connections | HTTP_POOL_SIZE                  | 100                             |
| api_key         | PROXY_GRM_API_KEY               | none                            |
| format_weight   |                                 | 0.5                             |
| timeout_s       |                                 | 120                             |
| max_retries     |                                 | 3                               |
| backoff_s       |                                 | 0.5 (doubles per retry)         |
| on_failure      |                                 | raise                           |
| proxy_check     |                                 | none (swap: judge both orders)  |
| leak_penalty    |                                 | 0 (the release's reward)        |
| max_new_tokens  |                                 | 16384 (the service's default)   |

Where the proxy runs: verl's own reward-model pool (``reward.reward_model.enable``; the launcher's
``PROXY_MODE=pool``) or our service. With the pool, verl adds ``reward_router_address`` (``host:port`` of its
router) to every call, and the reward sends OpenAI chat requests there (``reward.router_client``);
``proxy_url`` must then be unset, and ``max_new_tokens`` is the critique's length cap (the service has its
own ``--max-new-tokens``). Without it, the reward calls the service at ``proxy_url``.

``proxy_url`` takes one URL, a list of URLs (proxy replicas) or a comma-separated
string. A base URL (``http://host:port``) gets ``/get_reward_mllm`` appended; a URL
that already ends in one of the proxy's routes gets it instead (``proxy_contract.route_url``).
``REMOTE_RM_URL`` is the release's full endpoint URL and is used as is; without it,
``ip``/``api_port`` (if either is set, or ``use_api=1``) give
``http://{ip}:{api_port}/get_reward_mllm`` with the release's defaults ``0.0.0.0`` and ``20240``.

``timeout_s``: the longest a replica may go, while calls wait on it, without answering
``/health`` or finishing a critique; a call itself may wait longer (``proxy_client``).

``on_failure``: ``raise`` (a proxy that stays unreachable stops training with an
error naming the URL: ``compute_score`` raises; under verl the failure is recorded
and ``proxy_grm.launch.verl_trainer`` stops the run) or ``score_as_release`` (score the call
as the release did, proxy reward 0, and count it in ``proxy_failed``).

``proxy_check`` and ``leak_penalty``: the reward-hacking guards (``score.py`` and
docs/reward.md, "Reward-hacking guards"): the order-swap check, and a penalty on rubrics that leak
the verdict.

``RewardSettings`` is a pydantic model: it types, bounds and coerces every value
(``"0"``/``"1"``/``"true"`` for switches, digit strings for numbers), refuses
unknown keys, and its fields are the kwarg names (``proxy_url`` becomes
``proxy_endpoints``; ``via_router`` says they are verl's router, not the service).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from proxy_grm.proxy_contract import DEFAULT_MAX_NEW_TOKENS, route_url
from proxy_grm.reward.modes import DEFAULT_MODE, Aggregation, get_mode

RELEASE_DEFAULT_IP = "0.0.0.0"
RELEASE_DEFAULT_PORT = "20240"

# Keys verl itself adds to the call when its reward-model pool runs (reward_manager/naive.py, run_single):
# the router's address is where the proxy is asked; the tokenizer is not needed (the server applies the
# chat template).
ROUTER_KWARG = "reward_router_address"
VERL_INJECTED_KWARGS = frozenset({ROUTER_KWARG, "reward_model_tokenizer"})


class RewardSettings(BaseModel):
    """Everything ``compute_score`` needs besides the rollout itself."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    use_proxy: bool = True
    use_format: bool = True
    mode: Aggregation = Field(default_factory=lambda: get_mode(DEFAULT_MODE))
    proxy_endpoints: tuple[str, ...] = ()
    via_router: bool = False
    format_weight: float = Field(0.5, ge=0.0)
    timeout_s: float = Field(120.0, gt=0.0)
    max_retries: int = Field(3, ge=0)
    backoff_s: float = Field(0.5, ge=0.0)
    on_failure: Literal["raise", "score_as_release"] = "raise"
    proxy_check: Literal["none", "swap"] = "none"
    leak_penalty: float = Field(0.0, ge=0.0)
    api_key: str | None = None
    max_connections: int = Field(100, ge=1)
    max_new_tokens: int = Field(DEFAULT_MAX_NEW_TOKENS, ge=1)

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Aggregation:
        return value if isinstance(value, Aggregation) else get_mode(value)


# The kwarg names: the model's fields, with the URL(s) given as ``proxy_url``.
KWARG_NAMES = frozenset(RewardSettings.model_fields) - {"proxy_endpoints", "via_router"} | {"proxy_url"}
# The release's environment switch for each kwarg that has one.
ENV_SWITCHES = {"use_proxy": "use_api", "use_format": "use_format", "mode": "use_fb",
                "max_connections": "HTTP_POOL_SIZE", "api_key": "PROXY_GRM_API_KEY"}


def _http_url(url: str, field: str) -> str:
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{field}: expected an http(s) URL, got {url!r}")
    return url


def _proxy_endpoints(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        urls = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, Sequence):
        urls = [str(part) for part in value]
    else:
        raise ValueError(f"proxy_url: expected a URL or a list of URLs, got {value!r}")
    if not urls:
        raise ValueError("proxy_url: empty")
    return tuple(route_url(_http_url(url, "proxy_url")) for url in urls)


def _legacy_endpoint(env: Mapping[str, str]) -> str | None:
    if env.get("REMOTE_RM_URL"):
        return _http_url(env["REMOTE_RM_URL"], "REMOTE_RM_URL")  # the release's full endpoint URL, as is
    if any(env.get(key) for key in ("ip", "api_port")) or env.get("use_api", "").strip() == "1":
        ip = env.get("ip") or RELEASE_DEFAULT_IP
        port = env.get("api_port") or RELEASE_DEFAULT_PORT
        return route_url(f"http://{ip}:{port}")
    return None


def resolve_settings(reward_kwargs: Mapping[str, Any], env: Mapping[str, str] | None = None) -> RewardSettings:
    """Settings for one call: ``reward_kwargs`` over the release's env switches over defaults.

    Unknown kwargs are an error (a misspelled key would otherwise be silently
    ignored); the keys verl adds itself are accepted and ignored.
    """
    env = os.environ if env is None else env
    unknown = set(reward_kwargs) - KWARG_NAMES - VERL_INJECTED_KWARGS
    if unknown:
        raise TypeError(f"unknown reward_kwargs {sorted(unknown)}; known: {sorted(KWARG_NAMES)}")
    values: dict[str, Any] = {}
    for name in KWARG_NAMES - {"proxy_url"}:
        if reward_kwargs.get(name) is not None:
            values[name] = reward_kwargs[name]
        elif name in ENV_SWITCHES and env.get(ENV_SWITCHES[name], "").strip():
            values[name] = env[ENV_SWITCHES[name]]
    if values.get("api_key") == "":
        del values["api_key"]
    try:
        settings = RewardSettings(**values)
    except ValidationError as error:
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                                   for e in error.errors())) from None
    if not settings.use_proxy:
        return settings
    if reward_kwargs.get(ROUTER_KWARG) is not None:
        if reward_kwargs.get("proxy_url") is not None:
            raise ValueError("both reward.reward_model.enable (verl passes reward_router_address) and "
                             "reward_kwargs.proxy_url are set: the proxy runs in verl's pool or in our service, "
                             "not both; drop one")
        router = _http_url(f"http://{reward_kwargs[ROUTER_KWARG]}", ROUTER_KWARG)
        return settings.model_copy(update={"proxy_endpoints": (router,), "via_router": True})
    if reward_kwargs.get("proxy_url") is not None:
        endpoints = _proxy_endpoints(reward_kwargs["proxy_url"])
    elif (legacy := _legacy_endpoint(env)) is not None:
        endpoints = (legacy,)
    else:
        raise ValueError(
            "the proxy reward is on but no proxy URL is set: pass "
            "+reward.custom_reward_function.reward_kwargs.proxy_url=http://HOST:PORT (or a list of URLs), "
            "run it in verl's reward-model pool (reward.reward_model.enable=True; PROXY_MODE=pool), "
            "or turn the proxy off with ...reward_kwargs.use_proxy=false"
        )
    return settings.model_copy(update={"proxy_endpoints": endpoints})
