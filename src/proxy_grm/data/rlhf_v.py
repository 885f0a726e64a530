"""RLHF-V in LLaMA-Factory's ShareGPT ranking format (hub id ``llamafactory/RLHF-V``).

Input row::

    {"conversations": [{"from": "human", "value": "<image>question"}],
     "chosen": {"from": "gpt", "value": str}, "rejected": {"from": "gpt", "value": str},
     "images": [path | {"bytes": b"...", "path": str}]}

Rows carry no id: the pair id is a hash of the question, the two responses and the image.
"""

from __future__ import annotations

from typing import Any

from proxy_grm.data.records import SourcePair, checked_pair, content_id, text_field

SOURCE = "rlhf_v"
HUB_ID = "llamafactory/RLHF-V"
HUB_CONFIG = None


def first_user_text(conversations: Any) -> str:
    """The first human/user turn's text without ``<image>`` tags."""
    for turn in conversations or []:
        if isinstance(turn, dict) and turn.get("from", turn.get("role")) in ("human", "user"):
            return text_field(turn).replace("<image>", "").strip()
    return ""


def convert(row: dict[str, Any]) -> SourcePair:
    """One row -> ``SourcePair`` (raises ``SkipRow``)."""
    question = first_user_text(row.get("conversations"))
    chosen, rejected = text_field(row.get("chosen")), text_field(row.get("rejected"))
    row_id = str(row.get("id") or content_id(question, chosen, rejected, image=row.get("images")))
    return checked_pair(f"{SOURCE}:{row_id}", SOURCE, row.get("images"), question, chosen, rejected)
