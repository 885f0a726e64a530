"""``compute_score``: the Proxy-GRM GRPO reward, as verl 0.9 calls it.

score = a' + p' + format_weight * f - leak_penalty * leak, where a is the accuracy
reward (the rollout's verdict vs the label), p the proxy reward (did the proxy,
given only this rollout's rubric, pick the labelled response?), f the format
check, leak 1 when the rubric names a response by position or the winner
(``parsing.rubric_leak``), and ``(a', p') = mode(a correct?, p)`` (see
``modes.py``). With the proxy off, the score is a + format_weight * f (- the leak
penalty) and the mode is not applied, as in the release. ``leak_penalty`` is 0 by
default, the release's reward.

Order-swap check (``proxy_check=swap``, off by default as in the release): the
proxy judges the rubric twice in one request, the pair as the policy saw it and
swapped (the label with it). p = +1 when both picks are the labelled response,
-1 when both are the other, and 0 when they disagree: the proxy followed the
position the rubric names, not the content it describes, so the rubric decided
nothing.

Every call returns the same keys, all numbers (verl stacks them into arrays):

| key             | meaning                                         | release key        |
|-----------------|-------------------------------------------------|--------------------|
| score           | the GRPO reward                                 | score              |
| accuracy_reward | a' (after the mode)                             | accuracy_reward    |
| proxy_reward    | p' (after the mode)                             | instruct_reward    |
| format_reward   | format_weight * f                               | format_reward      |
| verdict_correct | 1 when the verdict matches the label, else 0    |                    |
| well_formatted  | f (0 when the format reward is off)             |                    |
| proxy_judgement | p before the mode: +1, -1, 0 (no judgement, or the two orders disagree) | |
| has_rubric      | 1 when the rollout holds ``</rubric>``          |                    |
| proxy_called    | 1 when the proxy answered                       |                    |
| proxy_failed    | 1 when the call failed and was scored as p = 0  |                    |
| proxy_failed_replica | which replica failed last: its 1-based index in ``proxy_url``; 0 when none | |
| proxy_attempts  | HTTP attempts made (retries + 1; 0 if no call)  |                    |
| proxy_truncated | 1 when the proxy's critique hit its length cap  |                    |
| rubric_leak     | 1 when the rubric leaks the verdict (``rubric_leak``) |              |
| proxy_consistent | 1 when the swap check ran and both orders agreed (0 without it) |    |

When the proxy cannot judge, ``compute_score`` raises ``ProxyCallError`` (``on_failure=raise``, the
default) or scores p = 0 and counts it (``score_as_release``). Under verl the raise would lose the
rollout in silence: verl 0.9.1's v1 agent loop logs a reward function's exception, stores nothing for
that rollout and trains on the rest (``trainer/ppo/v1/agent_loop_tq.py``, ``_run_prompt``). So the
function verl loads (``verl_compute_score``, exported by ``verl/proxy_grm_reward.py``) records the failure
in the reward dict instead, and the trainer (``proxy_grm.launch.verl_trainer``) stops the run before that step's
update, naming the replica(s), unless ``on_failure=score_as_release``.

Deviation from the release: a rollout without ``</rubric>`` is not sent to the
proxy and gets p = -1 (the release sent the whole text as a "rubric"). Bad rows
are errors rather than p = 0: an ``extra_info`` without the pair raises naming the
missing fields, where the release silently skipped the proxy.
"""

from __future__ import annotations

from typing import Any

from proxy_grm.parsing import accuracy_reward, extract_rubric, is_well_formatted, parse_label, rubric_leak
from proxy_grm.proxy_contract import RewardItem
from proxy_grm.reward.proxy_client import WARNING_WINDOW_S, ProxyCallError, ProxyPool, get_pool
from proxy_grm.reward.router_client import RouterPool
from proxy_grm.reward.score_parts import ScoreParts
from proxy_grm.reward.settings import RewardSettings, resolve_settings

PAIR_FIELDS = ("question", "response_1", "response_2", "image")
# Rows written before the rename name the shown responses as the release does.
RELEASE_NAMES = {"response_1": "chosen", "response_2": "rejected"}


def proxy_payload(extra_info: Any, ground_truth: Any, rubric: str, data_source: str) -> dict[str, str]:
    """The proxy request body (``RewardItem``, the release's payload) from a verl row's ``extra_info`` and the
    rollout's rubric.

    ``extra_info`` holds the pair as the policy saw it: ``response_1``/``response_2`` (rows written by
    ``data/writers.py``), or the release's names ``chosen``/``rejected`` for the same shown order. The label
    (which response is better, "1"/"2") is the row's ground truth; a row with ``extra_info["answer"]`` (the
    release's rows) is read by it. The release's names appear only here, in the payload the proxy expects.
    """
    if not isinstance(extra_info, dict):
        raise ValueError(f"data_source={data_source!r}: extra_info must be a dict with {PAIR_FIELDS}, "
                         f"got {type(extra_info).__name__}")
    pair = {field: extra_info.get(field, extra_info.get(RELEASE_NAMES.get(field, field))) for field in PAIR_FIELDS}
    missing = [field for field, value in pair.items() if not isinstance(value, str)]
    if missing:
        raise ValueError(f"data_source={data_source!r}: extra_info lacks string field(s) {missing}; "
                         "the proxy needs the pair (question, response_1, response_2, image) of each row "
                         "(response_1/response_2 may be named chosen/rejected, as in the release's rows)")
    label = parse_label(extra_info.get("answer", ground_truth))
    if label is None:
        raise ValueError(f"data_source={data_source!r}: label {extra_info.get('answer', ground_truth)!r} is not 1 or 2")
    return RewardItem(question=pair["question"], chosen=pair["response_1"], rejected=pair["response_2"],
                      image=pair["image"], answer=label, rubric=rubric).to_json()


async def score_rollout(settings: RewardSettings, data_source: str, solution_str: str, ground_truth: Any,
                        extra_info: Any, record_failures: bool = False) -> ScoreParts:
    """The reward dict of one rollout under explicit settings.

    ``record_failures``: a proxy failure under ``on_failure=raise`` is recorded (``proxy_failed``, p = 0)
    rather than raised, for a trainer that stops the run itself (verl's swallows exceptions).
    """
    accuracy = accuracy_reward(solution_str, ground_truth)  # a, before the mode
    correct = accuracy > 0
    formatted = settings.use_format and is_well_formatted(solution_str)
    rubric = extract_rubric(solution_str)
    leak = rubric is not None and rubric_leak(rubric) is not None
    judgement, called, failed, failed_replica, attempts, truncated, consistent = 0, 0, 0, 0, 0, False, False

    if settings.use_proxy:
        if rubric is None:
            judgement = -1
        else:
            payload = proxy_payload(extra_info, ground_truth, rubric, data_source)
            payloads = [payload]
            if settings.proxy_check == "swap":
                payloads.append(RewardItem.model_validate(payload).swapped().to_json())
            pool = get_pool(settings, RouterPool if settings.via_router else ProxyPool)
            try:
                results = await pool.judge(payloads, settings.max_retries, settings.backoff_s)
            except ProxyCallError as error:
                if settings.on_failure == "raise" and not record_failures:
                    raise
                if settings.on_failure == "score_as_release":
                    pool.warnings.add(
                        ("scored_as_release", error.url), WARNING_WINDOW_S,
                        lambda calls, error=error: f"{error}; {calls} call(s) scored as the release did "
                                                   "(proxy reward 0, on_failure=score_as_release)")
                failed, attempts = 1, error.attempts
                failed_replica = settings.proxy_endpoints.index(error.url) + 1
            else:
                rewards = {int(result.reward) for result in results}
                consistent = len(results) == 2 and len(rewards) == 1
                judgement = rewards.pop() if len(rewards) == 1 else 0
                called, attempts = 1, results[0].attempts
                truncated = any(result.truncated for result in results)
        accuracy, proxy = settings.mode.apply(correct, judgement)
    else:
        proxy = 0.0

    format_reward = settings.format_weight * float(formatted)
    return {
        "score": float(accuracy + proxy + format_reward - settings.leak_penalty * leak),
        "accuracy_reward": float(accuracy),
        "proxy_reward": float(proxy),
        "format_reward": format_reward,
        "verdict_correct": float(correct),
        "well_formatted": float(formatted),
        "proxy_judgement": float(judgement),
        "has_rubric": float(rubric is not None),
        "proxy_called": float(called),
        "proxy_failed": float(failed),
        "proxy_failed_replica": float(failed_replica),
        "proxy_attempts": float(attempts),
        "proxy_truncated": float(truncated),
        "rubric_leak": float(leak),
        "proxy_consistent": float(consistent),
    }


async def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Any = None,
                        **reward_kwargs: Any) -> ScoreParts:
    """verl's custom reward function (``reward.custom_reward_function.name=compute_score``).

    ``reward_kwargs`` come from ``+reward.custom_reward_function.reward_kwargs.*``
    and are read together with the release's environment switches on every call
    (see ``settings.py`` for keys and precedence). With verl's reward-model pool on, verl adds
    ``reward_router_address`` and the proxy is asked there (``router_client``) instead of at ``proxy_url``:
    the same payload, prompt, decoding, verdict rule, reward dict and failure rules.

    Raises ``ProxyCallError`` (naming the URL and cause) when the proxy cannot
    judge, unless ``on_failure=score_as_release``; ``ValueError``/``TypeError``
    for bad settings or rows.
    """
    settings = resolve_settings(reward_kwargs)
    return await score_rollout(settings, data_source, solution_str, ground_truth, extra_info)


async def verl_compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Any = None,
                             **reward_kwargs: Any) -> ScoreParts:
    """``compute_score`` for verl's trainer: a proxy failure is in the reward dict, never an exception.

    verl would drop a rollout whose reward raised and train on the rest; recorded, the failure reaches
    ``proxy_grm.launch.verl_trainer``, which stops the run under ``on_failure=raise`` naming the replica.
    """
    settings = resolve_settings(reward_kwargs)
    return await score_rollout(settings, data_source, solution_str, ground_truth, extra_info, record_failures=True)
