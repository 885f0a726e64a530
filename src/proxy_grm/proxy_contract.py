"""The proxy's HTTP contract: what the service validates and what every client sends.

``POST /get_reward_mllm`` takes the release's payload (the release's trainer and proxy speak it, so the
names are the release's): ``chosen``/``rejected`` are Response 1 / Response 2 in the order shown to the
policy, and ``answer`` says which of the two is better. The reply is ``{"reward": 1.0 | -1.0, "verdict":
1 | 2 | null, "critique": str, "truncated": bool}``: reward +1 iff the proxy's verdict equals ``answer``. An
optional ``id`` is echoed back (only when given) so clients can match replies to requests.
``POST /get_reward_mllm_batch`` takes ``{"items": [...]}`` and answers ``{"results": [...]}`` in order.
``GET /health`` and ``GET /metrics`` stay open with an API key; ``POST /check_images`` says which image
references the service cannot read. Every client builds these URLs with ``route_url``. ``judge`` turns a
critique into that reply (the release server's rule), for the service and for the reward when it asks
verl's reward-model servers itself (``reward.router_client``); ``DEFAULT_MAX_NEW_TOKENS`` bounds both.

The service (``proxy_service.app``), the GRPO reward (``reward.score``), the rubric-transfer evaluator and
the tests' fake proxy all use these models, so the contract is written once.

Limits (each violation is a 422 naming the field): texts at most ``MAX_TEXT_CHARS`` characters, the image
reference at most ``MAX_IMAGE_CHARS``, at most ``MAX_BATCH_ITEMS`` items per batch; whole bodies at most
``MAX_BODY_BYTES`` (413).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StrictInt,
                      StrictStr)

from proxy_grm.parsing import Fallback, parse_verdict

REWARD_PATH = "/get_reward_mllm"
BATCH_PATH = "/get_reward_mllm_batch"
HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
CHECK_IMAGES_PATH = "/check_images"
ROUTES = (REWARD_PATH, BATCH_PATH, HEALTH_PATH, METRICS_PATH, CHECK_IMAGES_PATH)
MAX_TEXT_CHARS = 65_536
MAX_IMAGE_CHARS = 32 * 1024 * 1024
MAX_BATCH_ITEMS = 1024
MAX_BODY_BYTES = 256 * 1024 * 1024
# How long a server keeps an idle connection open: longer than any client pool keeps one (httpx 5 s, aiohttp
# 15 s), so a client never sends a request on a connection the server is closing (uvicorn's default, 5 s, equals
# httpx's: under load a request then dies with a read error that no server log shows).
KEEP_ALIVE_S = 75
# The release serves 16,384. Proxy-SFT teaches the proxy to write the teacher's whole <eval>, which
# can run past 1,024 tokens; a critique cut off there has no <answer> and its last stray digit
# becomes the reward. vLLM also stops at the model length, so this bounds nothing below it.
DEFAULT_MAX_NEW_TOKENS = 16384


def route_url(url: str, route: str = REWARD_PATH) -> str:
    """The URL of one of the proxy's routes, from its base URL or the URL of any of its routes.

    A URL that ends in a route has it replaced; any other URL is taken as the base (a proxy behind a
    path prefix keeps the prefix). ``route=""`` gives the base URL.

    >>> route_url("http://10.0.0.7:8000/")
    'http://10.0.0.7:8000/get_reward_mllm'
    >>> route_url("http://10.0.0.7:8000/get_reward_mllm", HEALTH_PATH)
    'http://10.0.0.7:8000/health'
    >>> route_url("https://host/proxy-grm/health", BATCH_PATH)
    'https://host/proxy-grm/get_reward_mllm_batch'
    """
    base = url.strip().rstrip("/")
    for known in sorted(ROUTES, key=len, reverse=True):
        if base.endswith(known):
            base = base[: -len(known)]
            break
    return base + route


def _parse_answer(value: Any) -> int:
    """The release sends "1"/"2"; integers are accepted too. Anything else is refused."""
    if isinstance(value, bool):
        raise ValueError("answer must be 1 or 2 (a string or an integer)")
    if isinstance(value, str) and value.strip() in ("1", "2"):
        return int(value.strip())
    if isinstance(value, int) and value in (1, 2):
        return value
    raise ValueError(f"answer must be 1 or 2 (a string or an integer), got {value!r}")


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


# Validated as 1 or 2; sent as "1"/"2", as the release's trainer sends it.
Answer = Annotated[int, BeforeValidator(_parse_answer), PlainSerializer(str, return_type=str)]
Text = Annotated[StrictStr, Field(max_length=MAX_TEXT_CHARS)]


class RewardItem(BaseModel):
    """One pair to judge with one rubric."""

    model_config = ConfigDict(extra="ignore")

    question: Text
    chosen: Text = Field(description="Response 1, as shown to the policy")
    rejected: Text = Field(description="Response 2, as shown to the policy")
    image: Annotated[StrictStr, Field(min_length=1, max_length=MAX_IMAGE_CHARS,
                                      description="local path or data:image/...;base64,... URI")]
    answer: Answer = Field(description="the better response: 1 or 2")
    rubric: Annotated[Text, AfterValidator(_non_blank)]
    id: StrictStr | StrictInt | None = Field(default=None, description="echoed back in the result")

    def to_json(self) -> dict[str, Any]:
        """The request body; ``id`` only when set, so a release proxy sees exactly the release's payload."""
        return self.model_dump(exclude_none=True)

    def swapped(self) -> RewardItem:
        """The same pair and rubric shown in the other order; ``answer`` follows the better response.

        >>> item = RewardItem(question="q", chosen="a", rejected="b", image="i.png", answer="1", rubric="r")
        >>> (item.swapped().chosen, item.swapped().answer)
        ('b', 2)
        """
        return self.model_copy(update={"chosen": self.rejected, "rejected": self.chosen, "answer": 3 - self.answer})


class RewardResult(BaseModel):
    reward: float
    verdict: int | None
    critique: str
    truncated: bool = Field(default=False, description="the critique stopped at --max-new-tokens")
    id: StrictStr | StrictInt | None = None

    def to_json(self) -> dict[str, Any]:
        """The reply body; ``id`` only when the request carried one (the release's clients never do)."""
        return self.model_dump(exclude={"id"} if self.id is None else set())


class BatchRequest(BaseModel):
    items: Annotated[list[RewardItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]

    def to_json(self) -> dict[str, Any]:
        return {"items": [item.to_json() for item in self.items]}


class BatchResult(BaseModel):
    """The batch endpoint's reply, read back by clients (extra keys a newer service adds are ignored)."""

    results: list[RewardResult]


def judge(critique: str, answer: int, request_id: str | int | None = None) -> RewardResult:
    """The release server's rule: verdict from ``<answer>`` (else the last 1/2); +1 iff it equals ``answer``.

    ``truncated`` comes from the backend's ``Completion`` (a plain string counts as complete).

    >>> judge("<think>..</think><answer>2</answer>", 2).reward
    1.0
    >>> judge("no digits at all", 1).model_dump()
    {'reward': -1.0, 'verdict': None, 'critique': 'no digits at all', 'truncated': False, 'id': None}
    """
    verdict = parse_verdict(critique, Fallback.LAST_DIGIT)
    return RewardResult(reward=1.0 if verdict == answer else -1.0, verdict=verdict, critique=critique,
                        truncated=getattr(critique, "truncated", False), id=request_id)
