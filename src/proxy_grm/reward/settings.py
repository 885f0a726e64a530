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

``proxy_url`` takes one URL, a list of URLs (proxy replicas) or a comma-separated
string. A base URL (``http://host:port``) gets ``/get_reward_mllm`` appended; a URL
that already ends in it is kept. ``REMOTE_RM_URL`` is the release's full endpoint
URL and is used as is; without it, ``ip``/``api_port`` (if either is set, or
``use_api=1``) give ``http://{ip}:{api_port}/get_reward_mllm`` with the release's
defaults ``0.0.0.0`` and ``20240``.

``on_failure``: ``raise`` (a proxy that stays unreachable stops training with an
error naming the URL) or ``score_as_release`` (score the call as the release did,
proxy reward 0, and count it in ``proxy_failed``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proxy_grm.reward.modes import DEFAULT_MODE, Aggregation, get_mode

PROXY_ENDPOINT = "/get_reward_mllm"
FAILURE_POLICIES = ("raise", "score_as_release")
RELEASE_DEFAULT_IP = "0.0.0.0"
RELEASE_DEFAULT_PORT = "20240"

# Keys verl itself adds to the call when a reward-model router exists; not ours to judge.
VERL_INJECTED_KWARGS = frozenset({"reward_router_address", "reward_model_tokenizer"})


@dataclass(frozen=True)
class RewardSettings:
    """Everything ``compute_score`` needs besides the rollout itself."""

    use_proxy: bool = True
    use_format: bool = True
    mode: Aggregation = get_mode(DEFAULT_MODE)
    proxy_endpoints: tuple[str, ...] = ()
    format_weight: float = 0.5
    timeout_s: float = 120.0
    max_retries: int = 3
    backoff_s: float = 0.5
    on_failure: str = "raise"
    api_key: str | None = None
    max_connections: int = 100


KWARG_NAMES = frozenset(
    {"proxy_url", "mode", "use_proxy", "use_format", "format_weight", "timeout_s", "max_retries", "backoff_s",
     "on_failure", "api_key", "max_connections"}
)


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"0", "1", "true", "false", "yes", "no"}:
        return value.strip().lower() in {"1", "true", "yes"}
    raise ValueError(f"{name}: expected true/false or 0/1, got {value!r}")


def _as_number(name: str, value: Any, kind: type, minimum: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a {kind.__name__}, got {value!r}") from None
    if isinstance(value, bool) or number < minimum or (kind is int and number != float(value)):
        raise ValueError(f"{name}: expected a {kind.__name__} >= {minimum}, got {value!r}")
    return number


def endpoint_url(url: str, field: str = "proxy_url") -> str:
    """The scoring endpoint for a proxy base URL (or an endpoint URL, kept as is).

    >>> endpoint_url("http://10.0.0.7:8000/")
    'http://10.0.0.7:8000/get_reward_mllm'
    """
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{field}: expected an http(s) URL, got {url!r}")
    url = url.rstrip("/")
    return url if url.endswith(PROXY_ENDPOINT) else url + PROXY_ENDPOINT


def base_url(endpoint: str) -> str:
    """The proxy's base URL (where ``/health`` lives) for one of its endpoint URLs."""
    return endpoint[: -len(PROXY_ENDPOINT)] if endpoint.endswith(PROXY_ENDPOINT) else endpoint.rsplit("/", 1)[0]


def _proxy_endpoints(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        urls = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, Sequence):
        urls = [str(part) for part in value]
    else:
        raise ValueError(f"proxy_url: expected a URL or a list of URLs, got {value!r}")
    if not urls:
        raise ValueError("proxy_url: empty")
    return tuple(endpoint_url(url) for url in urls)


def endpoint_url_as_is(url: str) -> str:
    """The release's ``REMOTE_RM_URL``: a full endpoint URL, posted to unchanged."""
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"REMOTE_RM_URL: expected an http(s) URL, got {url!r}")
    return url


def _legacy_endpoint(env: Mapping[str, str]) -> str | None:
    if env.get("REMOTE_RM_URL"):
        return endpoint_url_as_is(env["REMOTE_RM_URL"])
    if any(env.get(key) for key in ("ip", "api_port")) or env.get("use_api", "").strip() == "1":
        ip = env.get("ip") or RELEASE_DEFAULT_IP
        port = env.get("api_port") or RELEASE_DEFAULT_PORT
        return f"http://{ip}:{port}{PROXY_ENDPOINT}"
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

    def pick(kwarg: str, env_name: str | None) -> Any:
        if reward_kwargs.get(kwarg) is not None:
            return reward_kwargs[kwarg]
        if env_name is not None and env.get(env_name, "").strip():
            return env[env_name]
        return None

    defaults = RewardSettings()
    use_proxy = pick("use_proxy", "use_api")
    use_proxy = defaults.use_proxy if use_proxy is None else _as_bool("use_proxy", use_proxy)
    use_format = pick("use_format", "use_format")
    use_format = defaults.use_format if use_format is None else _as_bool("use_format", use_format)
    mode = pick("mode", "use_fb")

    endpoints: tuple[str, ...] = ()
    if use_proxy:
        if reward_kwargs.get("proxy_url") is not None:
            endpoints = _proxy_endpoints(reward_kwargs["proxy_url"])
        elif (legacy := _legacy_endpoint(env)) is not None:
            endpoints = (legacy,)
        else:
            raise ValueError(
                "the proxy reward is on but no proxy URL is set: pass "
                "+reward.custom_reward_function.reward_kwargs.proxy_url=http://HOST:PORT (or a list of URLs), "
                "or turn the proxy off with ...reward_kwargs.use_proxy=false"
            )

    on_failure = pick("on_failure", None) or defaults.on_failure
    if on_failure not in FAILURE_POLICIES:
        raise ValueError(f"on_failure: expected one of {FAILURE_POLICIES}, got {on_failure!r}")
    number = {
        name: _as_number(name, value, kind, minimum) if value is not None else getattr(defaults, name)
        for name, kind, minimum, value in (
            ("format_weight", float, 0.0, pick("format_weight", None)),
            ("timeout_s", float, 0.001, pick("timeout_s", None)),
            ("max_retries", int, 0, pick("max_retries", None)),
            ("backoff_s", float, 0.0, pick("backoff_s", None)),
            ("max_connections", int, 1, pick("max_connections", "HTTP_POOL_SIZE")),
        )
    }
    return RewardSettings(
        use_proxy=use_proxy,
        use_format=use_format,
        mode=defaults.mode if mode is None else get_mode(mode),
        proxy_endpoints=endpoints,
        on_failure=on_failure,
        api_key=pick("api_key", "PROXY_GRM_API_KEY") or None,
        **number,
    )
