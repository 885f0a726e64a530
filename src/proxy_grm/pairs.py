"""A preference pair, the order it is shown in, and the one rule that decides that order.

``PairRecord`` is the record of ``pairs.jsonl`` that every data stage reads: ``preferred`` is the
human-preferred response, ``dispreferred`` the other. A model sees the two as Response 1 and Response 2
(``ShownPair``); ``reverse`` means the dispreferred one is shown first, so the label (the position of the
preferred response) is 2. ``is_reversed`` decides ``reverse`` for the teacher cache, the training sets
and the eval runner alike, and each records it as ``reverse``.

The release's names live only at its edges: the eval question/answers files keep the benchmarks'
``chosen``/``rejected`` (preferred/dispreferred), and verl's ``extra_info`` and the proxy payload
(``proxy_grm.proxy_contract``) name the shown Response 1/2 ``chosen``/``rejected``, with ``answer`` the label.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from proxy_grm.datafiles import iter_jsonl

PAIRS_FILE = "pairs.jsonl"  # stage 1's output, every later data stage's input


def is_reversed(seed: int, key: str) -> bool:
    """Whether a pair is shown dispreferred-first: a fixed coin per (seed, key), ~50/50 over keys.

    A hash rather than a seeded RNG stream, so a pair's order never depends on which other pairs were
    processed before it (resumed and sharded runs agree). Keys: the pair id in training data, the row
    index in an eval question file.

    >>> is_reversed(0, "a") == is_reversed(0, "a")
    True
    """
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()[0] & 1 == 1


@dataclass(frozen=True)
class ShownPair:
    """Two responses in the order a model sees them; ``label`` is the shown position of the preferred one."""

    response_1: str
    response_2: str
    reverse: bool

    @property
    def label(self) -> int:
        return 2 if self.reverse else 1


def show(preferred: str, dispreferred: str, reverse: bool) -> ShownPair:
    """The pair as shown: preferred first unless ``reverse``.

    >>> show("good", "bad", True)
    ShownPair(response_1='bad', response_2='good', reverse=True)
    >>> show("good", "bad", True).label
    2
    """
    return ShownPair(dispreferred, preferred, True) if reverse else ShownPair(preferred, dispreferred, False)


@dataclass(frozen=True)
class PairRecord:
    """One preference pair of ``pairs.jsonl``; ``image`` is a file under the output folder."""

    id: str
    source: str
    image: str
    question: str
    preferred: str
    dispreferred: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "pairs") -> PairRecord:
        missing = [field.name for field in fields(cls) if not isinstance(data.get(field.name), str)]
        if missing:
            raise ValueError(f"{where}: not a pair record (missing or non-string field(s) {missing})")
        return cls(**{field.name: data[field.name] for field in fields(cls)})

    def shown(self, reverse: bool) -> ShownPair:
        return show(self.preferred, self.dispreferred, reverse)


def iter_pairs(path: Path) -> Iterator[PairRecord]:
    """The records of a ``pairs.jsonl`` file, streamed."""
    for lineno, row in iter_jsonl(path):
        yield PairRecord.from_dict(row, f"{path}:{lineno}")
