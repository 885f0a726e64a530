"""What every loader produces, and the skip signal for rows that cannot become a pair.

A loader is a pure converter: released row -> ``SourcePair`` (image still as bytes or a source path) or
``SkipRow(reason)``. ``prepare_pairs.py`` then writes the image once under the output folder and turns the
``SourcePair`` into the ``proxy_grm.pairs.PairRecord`` that every later stage reads from ``pairs.jsonl``.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any


class SkipRow(Exception):
    """A released row that cannot become a pair; ``reason`` is the counter key (e.g. ``tie``)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SourcePair:
    """A converted row whose image is still as released: raw bytes or a path relative to the source."""

    id: str
    source: str
    image: bytes | str
    question: str
    preferred: str
    dispreferred: str


def content_id(*parts: str, image: Any = None) -> str:
    """A stable 16-hex id from text parts and the row's image (its bytes' digest or its path), for sources
    whose rows carry no id of their own: one question and response pair about two images is two pairs."""
    try:
        source = image_source(image) if image is not None else ""
    except SkipRow:  # the pair is skipped for it later; its id does not matter
        source = ""
    ref = hashlib.sha1(source).hexdigest() if isinstance(source, bytes) else source
    return hashlib.sha1("\x1f".join((*parts, ref)).encode()).hexdigest()[:16]


def text_field(value: Any) -> str:
    """A response/question as stripped text; ``{"from":..,"value":..}`` turns are unwrapped."""
    if isinstance(value, dict):
        value = value.get("value", value.get("content"))
    if value is None:
        return ""
    return str(value).strip()


def checked_pair(row_id: str, source: str, image: Any, question: str, preferred: str, dispreferred: str,
                 ) -> SourcePair:
    """Build a ``SourcePair`` after the checks every source shares; raise ``SkipRow`` on failure."""
    if not question:
        raise SkipRow("empty_question")
    if not preferred or not dispreferred:
        raise SkipRow("empty_response")
    if preferred == dispreferred:
        raise SkipRow("identical_responses")
    return SourcePair(row_id, source, image_source(image), question, preferred, dispreferred)


def image_source(value: Any) -> bytes | str:
    """The image of a released row as bytes or a path; raise ``SkipRow("missing_image")`` when absent.

    Accepts what the releases and ``datasets`` produce: raw bytes, a path string, an
    Image-feature struct ``{"bytes", "path"}``, a one-element list of any of these, or a PIL image
    (hub streaming with decoding on).
    """
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path") or None
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    if hasattr(value, "save") and hasattr(value, "size"):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        value = buffer.getvalue()
    if isinstance(value, bytes) and value:
        return value
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise SkipRow("missing_image")
