"""Reading and appending the data files every stage shares: JSONL, JSON arrays, parquet.

Everything streams (JSONL by line, parquet by record batch, JSON arrays object by object through
``ijson``), so memory does not grow with the file. Every error names the file and the line or row.

Resumable outputs (the teacher cache, the eval answers) are append-only JSONL written one flushed line
at a time; a run killed mid-write leaves at most one torn last line, which ``append_jsonl`` cuts off
before the next run appends.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

DATA_SUFFIXES = (".parquet", ".jsonl", ".json")


class DataFileError(ValueError):
    """A data file that cannot be read as promised; the message names the file and the line or field."""


def iter_jsonl_at(path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(line number, byte offset, object) for each non-blank line; the offset is for ``read_jsonl_at``."""
    with open(path, "rb") as handle:
        offset = 0
        for lineno, line in enumerate(handle, 1):
            start, offset = offset, offset + len(line)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise DataFileError(f"{path}:{lineno}: not valid JSON ({error})") from None
            if not isinstance(row, dict):
                raise DataFileError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, start, row


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file."""
    for lineno, _, row in iter_jsonl_at(path):
        yield lineno, row


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All rows of a JSONL file."""
    return [row for _, row in iter_jsonl(path)]


def read_jsonl_at(handle: IO[bytes], offset: int) -> dict[str, Any]:
    """The row starting at ``offset`` of a JSONL file opened in binary mode (random access by offset)."""
    handle.seek(offset)
    return json.loads(handle.readline())


def iter_json_array(path: Path) -> Iterator[Any]:
    """The elements of a top-level JSON array, decoded one at a time."""
    import ijson

    with open(path, "rb") as handle:
        try:
            yield from ijson.items(handle, "item", use_float=True)
        except ijson.JSONError as error:
            raise DataFileError(f"{path}: not a valid JSON array ({error})") from None


def is_json_lines(path: Path) -> bool:
    """Whether a ``.json`` file holds JSON lines rather than one array (both are released as ``.json``)."""
    with open(path, encoding="utf-8") as handle:
        return not handle.read(4096).lstrip().startswith("[")


def iter_rows(path: Path, batch_rows: int = 256) -> Iterator[tuple[dict[str, Any], str]]:
    """(row, "file:line" / "file:row N" / "file:item N") for every row of a local data file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        index = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
            for row in batch.to_pylist():
                yield row, f"{path}:row {index}"
                index += 1
    elif path.suffix == ".jsonl" or (path.suffix == ".json" and is_json_lines(path)):
        for lineno, row in iter_jsonl(path):
            yield row, f"{path}:{lineno}"
    elif path.suffix == ".json":
        for index, row in enumerate(iter_json_array(path)):
            if not isinstance(row, dict):
                raise DataFileError(f"{path}:item {index}: expected a JSON object, got {type(row).__name__}")
            yield row, f"{path}:item {index}"
    else:
        raise DataFileError(f"{path}: unsupported data file (want {', '.join(DATA_SUFFIXES)})")


def repair_torn_tail(path: Path) -> int:
    """Cut a last line without its newline (a write killed midway); return the bytes removed."""
    if not path.exists():
        return 0
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        tail_start = size
        chunk = 1 << 16
        while tail_start > 0:
            start = max(0, tail_start - chunk)
            handle.seek(start)
            block = handle.read(tail_start - start)
            if tail_start == size and block.endswith(b"\n"):
                return 0
            newline = block.rfind(b"\n")
            if newline >= 0:
                tail_start = start + newline + 1
                break
            tail_start = start
        handle.truncate(tail_start)
        return size - tail_start


class JsonlAppender:
    """An append-only JSONL file, flushed per write: a kill loses at most the line being written."""

    def __init__(self, handle: IO[str]):
        self._handle = handle

    def write(self, *rows: dict[str, Any]) -> None:
        self._handle.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        self._handle.flush()


@contextmanager
def append_jsonl(path: Path) -> Iterator[JsonlAppender]:
    """``with append_jsonl(path) as out: out.write(row)``; a torn last line is cut off first.

    Resuming callers run ``repair_torn_tail`` themselves before reading what is done, to report the cut.
    """
    repair_torn_tail(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        yield JsonlAppender(handle)
