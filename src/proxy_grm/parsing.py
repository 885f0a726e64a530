"""Parsers for model outputs: verdict, rubric, format.

Each matches the authors' release (see the docstrings for the one deliberate
deviation), and every consumer (reward, proxy, eval, data split) imports them
from here so one output never scores differently in two places.
"""

from __future__ import annotations

import re
from enum import Enum

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_EVAL_RE = re.compile(r"<eval>(.*?)</eval>", re.DOTALL)
_NON_ALNUM_RE = re.compile(r"[^a-zA-Z0-9]")
_GRM_FORMAT_RE = re.compile(r"^<rubric>.*?</rubric><eval>.*?</eval><answer>.*?</answer>$", re.DOTALL)
_THINK_FORMAT_RE = re.compile(r"^<think>.*?</think><summary>.*?</summary><answer>.*?</answer>$", re.DOTALL)
_PROXY_FORMAT_RE = re.compile(r"^\s*<think>(?:(?!<think>|</think>).)*</think>\s*<answer>\s*[12]\s*</answer>\s*$",
                              re.DOTALL)


class Fallback(str, Enum):
    """What to read when an output has no ``<answer>...</answer>``.

    WHOLE_OUTPUT: the GRM reward's rule (the release's ``verify_math``): read the
    whole output, which usually holds both digits and so parses to no verdict.
    LAST_DIGIT: the release's proxy server and eval rule: the last "1" or "2"
    anywhere in the output.
    """

    WHOLE_OUTPUT = "whole_output"
    LAST_DIGIT = "last_digit"


def answer_span(text: str) -> str | None:
    """The stripped text inside the first ``<answer>...</answer>``, or None."""
    match = _ANSWER_RE.search(text)
    return match.group(1).strip() if match else None


def _digit_verdict(text: str) -> int | None:
    has_1, has_2 = "1" in text, "2" in text
    if has_1 and not has_2:
        return 1
    if has_2 and not has_1:
        return 2
    return None


def parse_verdict(text: str, fallback: Fallback = Fallback.WHOLE_OUTPUT) -> int | None:
    """The verdict (1 or 2) of a GRM or proxy output, or None when it has none.

    Inside the first ``<answer>`` tag (or, without one, per ``fallback``), only
    letters and digits count; a span holding both "1" and "2" or neither is no
    verdict. This is exactly the release's acceptance rule: its reward is +1 iff
    the span contains the label's digit and not the other one.

    >>> parse_verdict("<rubric>..</rubric><eval>..</eval><answer> 2 </answer>")
    2
    >>> parse_verdict("<answer>1 or 2</answer>") is None
    True
    >>> parse_verdict("I pick Response 2.", Fallback.LAST_DIGIT)
    2
    """
    span = answer_span(text)
    if span is not None:
        return _digit_verdict(_NON_ALNUM_RE.sub("", span))
    if fallback is Fallback.LAST_DIGIT:
        digits = re.findall(r"[12]", text)
        return int(digits[-1]) if digits else None
    return _digit_verdict(_NON_ALNUM_RE.sub("", text.strip()))


def parse_label(label: object) -> int | None:
    """A ground-truth label (1, "1", "<answer>2</answer>", ...) as 1, 2 or None.

    The release cleans the ground truth with the same rule as the output.
    """
    return parse_verdict(str(label))


def accuracy_reward(solution: str, ground_truth: object) -> float:
    """+1.0 when the output's verdict equals the label, else -1.0 (unparseable too); the GRPO reward's a.

    >>> accuracy_reward("<eval>..</eval><answer>2</answer>", "2"), accuracy_reward("no verdict", 1)
    (1.0, -1.0)
    """
    verdict = parse_verdict(solution)
    return 1.0 if verdict is not None and verdict == parse_label(ground_truth) else -1.0


def extract_rubric(text: str) -> str | None:
    """The rubric the proxy judges by: the output up to ``</rubric>``, without ``<justify>``.

    As in the release: everything before the first ``</rubric>`` plus the closing
    tag; when that holds ``<justify>``, the part before it plus ``</rubric>``.

    Deliberate deviation: an output with no ``</rubric>`` returns None (the
    caller gives proxy reward -1 without calling the proxy). The release sent the
    whole output plus a closing tag to the proxy in that case, so the proxy could
    be rewarded for judging a rubric-less text.

    >>> extract_rubric("<rubric>A 60%, B 40%<justify>why</justify></rubric><eval>e</eval>")
    '<rubric>A 60%, B 40%</rubric>'
    >>> extract_rubric("<eval>no rubric</eval>") is None
    True
    """
    if "</rubric>" not in text:
        return None
    rubric = text.split("</rubric>")[0] + "</rubric>"
    if "<justify>" in rubric:
        rubric = rubric.split("<justify>")[0] + "</rubric>"
    return rubric


# A rubric is criteria any evaluator can apply to the responses' content, in either order. These name a
# response by its position, or carry the verdict itself: the proxy can then follow the words, not the content.
_NAMED = r"(?:response|chatbot|answer|assistant|candidate|reply|output)"  # not "option"/"choice": MCQ content
_LEAK_PATTERNS = (
    ("answer tag", re.compile(r"<\s*/?\s*answer\s*>", re.IGNORECASE)),
    ("position tag", re.compile(r"<\s*/?\s*(?:quote|summary)_[12]\s*>", re.IGNORECASE)),
    ("response by number", re.compile(rf"\b{_NAMED}\s*(?:#|no\.?\s*)?[12](?![\d.,%]\d|\s*%)\b", re.IGNORECASE)),
    ("response by order", re.compile(rf"\b(?:first|second|1st|2nd|former|latter)\s+(?:{_NAMED}|one)s?\b",
                                     re.IGNORECASE)),
    ("a number as the winner", re.compile(r"\b[12]\s+(?:is|was)\s+(?:the\s+)?(?:better|best|superior|preferred|"
                                          r"winner)\b|\b[12]\s+wins\b|\b(?:winner|verdict)\s*(?:is|:)?\s*[12]\b",
                                          re.IGNORECASE)),
)


def rubric_leak(rubric: str) -> str | None:
    """Why this rubric leaks the verdict (names a response by position, or says which wins), or None.

    The proxy reward pays a rubric when the proxy, reading it, picks the labelled response; one that
    writes "Response 2 is more accurate" is paid for its verdict, not its criteria (and twice: accuracy
    and proxy). Criteria about the content ("the response names two dogs") are not leaks.

    >>> rubric_leak("<rubric>1. Names the colour red (60%) 2. Counts two dogs (40%)</rubric>") is None
    True
    >>> rubric_leak("<rubric>Response 2 is more accurate (100%)</rubric>")
    'response by number: Response 2'
    """
    for reason, pattern in _LEAK_PATTERNS:
        match = pattern.search(rubric)
        if match:
            return f"{reason}: {match.group(0).strip()}"
    return None


def extract_eval(text: str) -> str | None:
    """The stripped text inside the first ``<eval>...</eval>``, or None when absent or empty.

    >>> extract_eval("<rubric>r</rubric><eval> 1 is right </eval><answer>1</answer>")
    '1 is right'
    """
    match = _EVAL_RE.search(text)
    return match.group(1).strip() if match and match.group(1).strip() else None


def is_well_formatted(text: str) -> bool:
    """The release's format check: newlines removed, the whole output must be
    ``<rubric>..</rubric><eval>..</eval><answer>..</answer>`` or
    ``<think>..</think><summary>..</summary><answer>..</answer>``, each tag once.

    Anything between the blocks (a space included) fails, as in the release.
    """
    flat = text.replace("\n", "")
    grm = (
        _GRM_FORMAT_RE.match(flat) is not None
        and flat.count("<rubric") == 1
        and flat.count("<eval>") == 1
        and flat.count("<answer>") == 1
    )
    think = (
        _THINK_FORMAT_RE.match(flat) is not None
        and flat.count("<think>") == 1
        and flat.count("<summary>") == 1
        and flat.count("<answer>") == 1
    )
    return grm or think


def is_proxy_well_formatted(text: str) -> bool:
    """The proxy's output format: one ``<think>..</think>``, then ``<answer>1</answer>`` or ``2``, nothing else.

    What Proxy-SFT teaches and ``PROXY_DATA_TEMPLATE`` asks for; whitespace around the blocks is allowed.

    >>> is_proxy_well_formatted("<think>Response 2 follows the rubric.</think><answer>2</answer>")
    True
    >>> is_proxy_well_formatted("<think>no answer</think>")
    False
    """
    return _PROXY_FORMAT_RE.match(text) is not None
