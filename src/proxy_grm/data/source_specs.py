"""Reading a source spec: a local file (``.parquet``, ``.jsonl``, ``.json``), a local folder of such files
(sorted), a remote data file ``datasets`` can stream (``hf://datasets/...``), or a hub dataset id.

Everything streams: parquet by record batch, JSONL by line, JSON arrays object by object, the hub with
``streaming=True``; memory does not grow with the source size. Each row carries the folders its relative
image paths may be relative to (next to the data file, then the source folder's root).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy_grm.datafiles import DATA_SUFFIXES, iter_rows


@dataclass(frozen=True)
class SourceRow:
    """A released row plus the folders its relative image paths may be relative to."""

    row: dict[str, Any]
    where: str
    bases: tuple[Path, ...]


def _iter_hub_rows(spec: str, config: str | None, split: str) -> Iterator[tuple[dict[str, Any], str]]:
    import datasets

    builder = next((b for s, b in ((".parquet", "parquet"), (".jsonl", "json"), (".json", "json")) if spec.endswith(s)),
                   None)
    if builder:
        stream = datasets.load_dataset(builder, data_files=spec, split=split, streaming=True)
    else:
        stream = datasets.load_dataset(spec, name=config, split=split, streaming=True)
    for index, row in enumerate(stream.decode(False)):
        yield row, f"{spec}:row {index}"


def iter_source_rows(spec: str, config: str | None = None, split: str = "train") -> Iterator[SourceRow]:
    """Every row of a source spec (local file, local folder, remote data file or hub id)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in DATA_SUFFIXES and p.is_file())
        if not files:
            raise ValueError(f"{path}: no {', '.join(DATA_SUFFIXES)} files in this folder")
        for file in files:
            for row, where in iter_rows(file):
                yield SourceRow(row, where, (file.parent, path))
    elif path.is_file():
        for row, where in iter_rows(path):
            yield SourceRow(row, where, (path.parent,))
    elif spec.startswith(("/", "./", "../", "~")):
        raise ValueError(f"{spec}: no such file or folder")
    else:
        for row, where in _iter_hub_rows(spec, config, split):
            yield SourceRow(row, where, ())
