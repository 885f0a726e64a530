"""Converters from each benchmark's released files to the eval JSONL.

Every converter yields the same record: ``{"id", "prompt", "chosen", "rejected",
"image" | "video", "chosen_reason", "rejected_reason"}`` (Multimodal
RewardBench keeps ``Category``, which its categories come from). Where the
released file shows the two responses in an order, ``chosen_first`` records it,
so ``--order original`` can score as the benchmark's authors do. Users download
the benchmarks themselves; these functions only reshape them.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from proxy_grm.datafiles import DataFileError, iter_rows

Record = dict[str, Any]


class ConversionError(DataFileError):
    """A released record that cannot be converted; the message names the record and field."""


def read_records(path: Path) -> list[Record]:
    """Rows of a ``.jsonl``, ``.json`` (a list or JSON lines) or ``.parquet`` file."""
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    return [row for row, _ in iter_rows(path)]


def _field(record: Record, name: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    if name not in record:
        raise ConversionError(f"{where}: missing field {name!r}")
    value = record[name]
    if not isinstance(value, kind):
        raise ConversionError(f"{where}: field {name!r} has type {type(value).__name__}")
    return value


def _media_path(ref: str, root: Path | None) -> str:
    return str(root / ref) if root is not None and not Path(ref).is_absolute() else ref


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80]


def _save_image(value: Any, target_stem: Path, where: str) -> str:
    """Write an embedded image (hub ``{"bytes", "path"}`` dict, raw bytes, PIL) and return its path."""
    if isinstance(value, dict) and value.get("bytes") is None and value.get("path"):
        return str(value["path"])
    raw = value.get("bytes") if isinstance(value, dict) else value
    if isinstance(raw, (bytes, bytearray)):
        try:
            image = Image.open(io.BytesIO(raw))
            image.load()
        except OSError as error:
            raise ConversionError(f"{where}: field 'image' holds bytes that are not an image ({error})") from None
    elif isinstance(raw, Image.Image):
        image = raw
    else:
        raise ConversionError(f"{where}: field 'image' is neither a path nor image bytes")
    path = target_stem.with_suffix(".png")
    image.convert("RGB").save(path)
    return str(path)


def convert_vl_rewardbench(records: Iterable[Record], image_dir: Path, image_root: Path | None = None,
                           source: str = "input") -> Iterator[Record]:
    """VL-RewardBench (``id, query, image, response[2], human_ranking[2], ...``) to eval records.

    Both public schemas: the hub's (``image``, embedded bytes or a path) and the
    first release's GitHub ``data/data.jsonl`` (``image_path``, relative to its
    ``data`` folder: pass that folder as ``image_root``).
    ``human_ranking`` is a rank (0 = better), so ``[0, 1]`` prefers the first
    response. Embedded images are written to ``image_dir`` as
    ``<row>_<id>.png`` (ids repeat, the row number keeps names unique); string
    paths are kept, joined to ``image_root`` when relative.
    """
    image_dir.mkdir(parents=True, exist_ok=True)
    for index, record in enumerate(records):
        where = f"{source} record {index}"
        data_id = str(_field(record, "id", where, (str, int)))
        responses = _field(record, "response", where, (list, tuple))
        ranking = _field(record, "human_ranking", where, (list, tuple))
        if len(responses) != 2 or not all(isinstance(r, str) for r in responses):
            raise ConversionError(f"{where}: field 'response' must hold two strings")
        if len(ranking) != 2 or ranking[0] == ranking[1]:
            raise ConversionError(f"{where}: field 'human_ranking' must rank the two responses, got {ranking!r}")
        better = 0 if ranking[0] < ranking[1] else 1
        if "image" not in record and "image_path" not in record:
            raise ConversionError(f"{where}: missing field 'image' (hub) or 'image_path' (GitHub data.jsonl)")
        image = record["image"] if "image" in record else _field(record, "image_path", where)
        if isinstance(image, str):
            image_path = _media_path(image, image_root)
        else:
            image_path = _save_image(image, image_dir / f"{index:05d}_{_safe_name(data_id)}", where)
        yield {"id": data_id, "prompt": _field(record, "query", where), "chosen": responses[better],
               "rejected": responses[1 - better], "image": image_path, "chosen_reason": "", "rejected_reason": "",
               "chosen_first": better == 0}


def convert_multimodal_rewardbench(records: Iterable[Record], image_root: Path | None = None,
                                   source: str = "input") -> Iterator[Record]:
    """Multimodal RewardBench (``ID, Text, Image, Output1, Output2, Better, Category``) to eval records.

    ``Better`` names the preferred output (``Output1`` or ``Output2``); ``Image``
    is a path relative to the benchmark's data folder (``image_root``).
    """
    for index, record in enumerate(records):
        where = f"{source} record {index}"
        better = _field(record, "Better", where)
        if better not in ("Output1", "Output2"):
            raise ConversionError(f"{where}: field 'Better' must be 'Output1' or 'Output2', got {better!r}")
        outputs = {name: _field(record, name, where) for name in ("Output1", "Output2")}
        other = "Output1" if better == "Output2" else "Output2"
        yield {"id": str(_field(record, "ID", where, (str, int))), "prompt": _field(record, "Text", where),
               "chosen": outputs[better], "rejected": outputs[other],
               "image": _media_path(_field(record, "Image", where), image_root),
               "chosen_reason": "", "rejected_reason": "", "Category": _field(record, "Category", where),
               "chosen_first": better == "Output1"}


def convert_mm_rlhf_rewardbench(records: Iterable[Record], media_root: Path | None = None,
                                source: str = "input") -> Iterator[Record]:
    """MM-RLHF-RewardBench (already ``id, prompt, chosen, rejected, *_reason, image | video``).

    Checked and normalised; ``video`` is a folder of frames. Media paths are
    joined to ``media_root`` when relative (the category comes from the path,
    so the original relative part is kept).
    """
    for index, record in enumerate(records):
        where = f"{source} record {index}"
        converted: Record = {"id": str(_field(record, "id", where, (str, int)))}
        for name in ("prompt", "chosen", "rejected"):
            converted[name] = _field(record, name, where)
        image, video = record.get("image"), record.get("video")
        if bool(image) == bool(video):
            raise ConversionError(f"{where}: needs exactly one of 'image' and 'video'")
        if image:
            converted["image"] = _media_path(_field(record, "image", where), media_root)
        else:
            converted["video"] = _media_path(_field(record, "video", where), media_root)
        converted["chosen_reason"] = record.get("chosen_reason") or ""
        converted["rejected_reason"] = record.get("rejected_reason") or ""
        yield converted


def convert(benchmark: str, input_path: Path, output_path: Path, media_root: Path | None = None,
            image_dir: Path | None = None) -> int:
    """Convert one released file to the eval JSONL; returns the number of records written."""
    records = read_records(input_path)
    source = str(input_path)
    converters: dict[str, Callable[[], Iterator[Record]]] = {
        "vl_rewardbench": lambda: convert_vl_rewardbench(
            records, image_dir or output_path.with_name(output_path.stem + "_images"), media_root, source),
        "multimodal_rewardbench": lambda: convert_multimodal_rewardbench(records, media_root, source),
        "mm_rlhf_rewardbench": lambda: convert_mm_rlhf_rewardbench(records, media_root, source),
    }
    if benchmark not in converters:
        raise ConversionError(f"unknown benchmark {benchmark!r}; choose one of {sorted(converters)}")
    converted = list(converters[benchmark]())
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in converted), encoding="utf-8")
    return len(converted)
