"""MMIF-23k, DPO part (hub id ``ChrisDing1105/MMIF-23k``; the DPO file name is unconfirmed: pass it).

Input row::

    {"id": str (optional), "images": [path],
     "conversations": [{"from": "human", "value": "<image>instruction with constraints"}, ...],
     "chosen": {"from": "gpt", "value": str}, "rejected": {"from": "gpt", "value": str}}

The question is ``conversations[0].value``. Rows without an id get a hash of question and responses.
The SFT part has no ``rejected`` response: its rows are skipped as ``empty_response``.
"""

from __future__ import annotations

from typing import Any

from proxy_grm.data.records import SourcePair, checked_pair, content_id, text_field

SOURCE = "mmif"
HUB_ID = "ChrisDing1105/MMIF-23k"
HUB_CONFIG = None


def convert(row: dict[str, Any]) -> SourcePair:
    """One DPO row -> ``SourcePair`` (raises ``SkipRow``)."""
    turns = row.get("conversations") or []
    question = text_field(turns[0]).replace("<image>", "").strip() if turns else ""
    chosen, rejected = text_field(row.get("chosen")), text_field(row.get("rejected"))
    row_id = str(row.get("id") or content_id(question, chosen, rejected, image=row.get("images")))
    return checked_pair(f"{SOURCE}:{row_id}", SOURCE, row.get("images"), question, chosen, rejected)
