"""LLaVA-Critic-113k, ``pairwise`` config (hub id ``lmms-lab/llava-critic-113k``).

Input row::

    {"id": str, "source": str, "image": {"bytes": b"...", "path": str} | bytes | path,
     "conversations": [{"from": "human", "value": "<image>\\n...Question: [Q]\\nThe first response: [A]\\n
                        The second response: [B]\\nASSISTANT:\\n"},
                       {"from": "gpt", "value": "... The better response: [second] ..."}]}

The human turn is an instruction followed by the question and the two responses; the GPT turn names
the winner ("The better response: [first|second|1|2|A|B]", "The first response is better", ...) or a
tie ("equally good"). The exact wording is only known from third-party loaders, so parsing is defensive:
anything it cannot read is skipped and counted (``unparseable_pair``, ``unparseable_winner``, ``tie``).
The pointwise config has no pairs and is not supported.
"""

from __future__ import annotations

import re
from typing import Any

from proxy_grm.data.records import SkipRow, SourcePair, checked_pair, content_id, text_field

SOURCE = "llava_critic"
HUB_ID = "lmms-lab/llava-critic-113k"
HUB_CONFIG = "pairwise"

_PAIR_RE = re.compile(
    r"Question:\s*(?P<question>.*?)\s*The first response:\s*(?P<first>.*?)\s*"
    r"The second response:\s*(?P<second>.*?)\s*(?:ASSISTANT:\s*)?$",
    re.DOTALL | re.IGNORECASE,
)
_TIE_RE = re.compile(r"\b(equally good|equally (?:helpful|accurate|bad|poor)|a tie|tied)\b", re.IGNORECASE)
_WINNER_RES = (
    re.compile(r"better response\s*(?:is)?\s*:?\s*\[?\s*(first|second|1|2|A|B)\b", re.IGNORECASE),
    re.compile(r"\b(first|second)\s+response\s+is\s+(?:better|superior|preferred)", re.IGNORECASE),
    re.compile(r"\bresponse\s*\[?(1|2|A|B)\]?\s+is\s+(?:better|superior|preferred)", re.IGNORECASE),
)
_FIRST = {"first", "1", "a"}


def _unbracket(text: str) -> str:
    """Strip one pair of surrounding square brackets, as the release wraps each field in them."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text.strip()


def parse_winner(judgement: str) -> int:
    """1 or 2 for the GPT turn's winner; ``SkipRow`` for a tie or wording it cannot read.

    >>> parse_winner("The better response: [second]. Because ...")
    2
    """
    if _TIE_RE.search(judgement):
        raise SkipRow("tie")
    for pattern in _WINNER_RES:
        match = pattern.search(judgement)
        if match:
            return 1 if match.group(1).lower() in _FIRST else 2
    raise SkipRow("unparseable_winner")


def convert(row: dict[str, Any]) -> SourcePair:
    """One pairwise row -> ``SourcePair`` (raises ``SkipRow``)."""
    turns = row.get("conversations") or []
    human = next((text_field(t) for t in turns if isinstance(t, dict) and t.get("from") == "human"), "")
    judge = next((text_field(t) for t in turns if isinstance(t, dict) and t.get("from") == "gpt"), "")
    match = _PAIR_RE.search(human.replace("<image>", ""))
    if match is None:
        raise SkipRow("unparseable_pair")
    question, first, second = (_unbracket(match.group(k)) for k in ("question", "first", "second"))
    chosen, rejected = (first, second) if parse_winner(judge) == 1 else (second, first)
    row_id = str(row.get("id") or content_id(question, first, second, image=row.get("image")))
    return checked_pair(f"{SOURCE}:{row_id}", SOURCE, row.get("image"), question, chosen, rejected)
