"""``compute_score``: the Proxy-GRM GRPO reward, as verl 0.9 calls it.

score = a' + p' + format_weight * f, where a is the accuracy reward (the rollout's
verdict vs the label), p the proxy reward (did the proxy, given only this
rollout's rubric, pick the labelled response?), f the format check, and
``(a', p') = mode(a correct?, p)`` (see ``modes.py``). With the proxy off, the
score is a + format_weight * f and the mode is not applied, as in the release.

Every call returns the same keys, all numbers (verl stacks them into arrays):

| key             | meaning                                         | release key        |
|-----------------|-------------------------------------------------|--------------------|
| score           | the GRPO reward                                 | score              |
| accuracy_reward | a' (after the mode)                             | accuracy_reward    |
| proxy_reward    | p' (after the mode)                             | instruct_reward    |
| format_reward   | format_weight * f                               | format_reward      |
| verdict_correct | 1 when the verdict matches the label, else 0    |                    |
| well_formatted  | f (0 when the format reward is off)             |                    |
| proxy_judgement | p before the mode: +1, -1, 0 (no judgement)     |                    |
| has_rubric      | 1 when the rollout holds ``</rubric>``          |                    |
| proxy_called    | 1 when the proxy answered                       |                    |
| proxy_failed    | 1 when the call failed and was scored as p = 0  |                    |
| proxy_attempts  | HTTP attempts made (retries + 1; 0 if no call)  |                    |
| proxy_truncated | 1 when the proxy's critique hit its length cap  |                    |

Deviation from the release: a rollout without ``</rubric>`` is not sent to the
proxy and gets p = -1 (the release sent the whole text as a "rubric"). Bad rows
are errors rather than p = 0: an ``extra_info`` without the pair raises naming the
missing fields, where the release silently skipped the proxy.
"""

from __future__ import annotations

import logging
from typing import Any

from proxy_grm.parsing import extract_rubric, is_well_formatted, parse_label, parse_verdict
from proxy_grm.proxy_contract import RewardItem
from proxy_grm.reward.proxy_client import ProxyCallError, get_pool
from proxy_grm.reward.settings import RewardSettings, resolve_settings

SCORE_KEYS = (
    "score", "accuracy_reward", "proxy_reward", "format_reward", "verdict_correct", "well_formatted",
    "proxy_judgement", "has_rubric", "proxy_called", "proxy_failed", "proxy_attempts",
    "proxy_truncated",
)
PAIR_FIELDS = ("question", "chosen", "rejected", "image")

logger = logging.getLogger(__name__)


def proxy_payload(extra_info: Any, ground_truth: Any, rubric: str, data_source: str) -> dict[str, str]:
    """The proxy request body (``RewardItem``, the release's payload) from a verl row's ``extra_info`` and the rollout's rubric.

    ``extra_info`` holds the release's names: ``chosen``/``rejected`` are Response 1/Response 2 in the order
    the policy saw them and ``answer`` the better one ("1"/"2"); without ``extra_info["answer"]`` the row's
    ground truth is the label.
    """
    if not isinstance(extra_info, dict):
        raise ValueError(f"data_source={data_source!r}: extra_info must be a dict with {PAIR_FIELDS + ('answer',)}, "
                         f"got {type(extra_info).__name__}")
    missing = [field for field in PAIR_FIELDS if not isinstance(extra_info.get(field), str)]
    if missing:
        raise ValueError(f"data_source={data_source!r}: extra_info lacks string field(s) {missing}; "
                         "the proxy needs the pair (question, chosen, rejected, image) of each row")
    label = parse_label(extra_info.get("answer", ground_truth))
    if label is None:
        raise ValueError(f"data_source={data_source!r}: label {extra_info.get('answer', ground_truth)!r} is not 1 or 2")
    return RewardItem(**{field: extra_info[field] for field in PAIR_FIELDS}, answer=label, rubric=rubric).to_json()


async def score_rollout(settings: RewardSettings, data_source: str, solution_str: str, ground_truth: Any,
                        extra_info: Any) -> dict[str, float]:
    """The reward dict of one rollout under explicit settings."""
    verdict = parse_verdict(solution_str)
    correct = verdict is not None and verdict == parse_label(ground_truth)
    accuracy = 1.0 if correct else -1.0
    formatted = settings.use_format and is_well_formatted(solution_str)
    rubric = extract_rubric(solution_str)
    judgement, called, failed, attempts, truncated = 0, 0, 0, 0, False

    if settings.use_proxy:
        if rubric is None:
            judgement = -1
        else:
            payload = proxy_payload(extra_info, ground_truth, rubric, data_source)
            try:
                result = await get_pool(settings).judge(payload, settings.max_retries, settings.backoff_s)
            except ProxyCallError as error:
                if settings.on_failure == "raise":
                    raise
                logger.warning("%s; scored as the release did (proxy reward 0, on_failure=score_as_release)", error)
                failed, attempts = 1, error.attempts
            else:
                judgement, called, attempts, truncated = int(result.reward), 1, result.attempts, result.truncated
        accuracy, proxy = settings.mode.apply(correct, judgement)
    else:
        proxy = 0.0

    format_reward = settings.format_weight * float(formatted)
    return {
        "score": float(accuracy + proxy + format_reward),
        "accuracy_reward": float(accuracy),
        "proxy_reward": float(proxy),
        "format_reward": format_reward,
        "verdict_correct": float(correct),
        "well_formatted": float(formatted),
        "proxy_judgement": float(judgement),
        "has_rubric": float(rubric is not None),
        "proxy_called": float(called),
        "proxy_failed": float(failed),
        "proxy_attempts": float(attempts),
        "proxy_truncated": float(truncated),
    }


async def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Any = None,
                        **reward_kwargs: Any) -> dict[str, float]:
    """verl's custom reward function (``reward.custom_reward_function.name=compute_score``).

    ``reward_kwargs`` come from ``+reward.custom_reward_function.reward_kwargs.*``
    and are read together with the release's environment switches on every call
    (see ``settings.py`` for keys and precedence).

    Raises ``ProxyCallError`` (naming the URL and cause) when the proxy cannot
    judge, unless ``on_failure=score_as_release``; ``ValueError``/``TypeError``
    for bad settings or rows.
    """
    settings = resolve_settings(reward_kwargs)
    return await score_rollout(settings, data_source, solution_str, ground_truth, extra_info)
