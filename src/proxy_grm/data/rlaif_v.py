"""RLAIF-V-Dataset (hub id ``openbmb/RLAIF-V-Dataset``).

Input row::

    {"ds_name": str, "image": {"bytes": b"...", "path": str} | bytes, "question": str,
     "chosen": str, "rejected": str, "origin_dataset": str, "origin_split": str,
     "idx": int | str, "image_path": str}

``idx`` is unique only within an ``origin_dataset``, so the pair id joins both. ``image_path`` names the
file inside the original release; it is used only when the row carries no image bytes.
"""

from __future__ import annotations

from typing import Any

from proxy_grm.data.records import SourcePair, checked_pair, content_id, text_field

SOURCE = "rlaif_v"
HUB_ID = "openbmb/RLAIF-V-Dataset"
HUB_CONFIG = None


def convert(row: dict[str, Any]) -> SourcePair:
    """One row -> ``SourcePair`` (raises ``SkipRow``)."""
    question, chosen, rejected = (text_field(row.get(k)) for k in ("question", "chosen", "rejected"))
    idx = row.get("idx")
    local_id = f"{row.get('origin_dataset') or row.get('ds_name') or 'x'}-{idx}" if idx is not None else None
    image = row.get("image") or row.get("image_path")
    row_id = local_id or content_id(question, chosen, rejected, image=image)
    return checked_pair(f"{SOURCE}:{row_id}", SOURCE, image, question, chosen, rejected)
