"""The four training-set formats, written in one place.

ms-swift (GRM-SFT, Proxy-SFT): JSONL rows ``{"messages": [user with <image>, assistant], "images": [path]}``
built by ``proxy_grm.messages.swift_row``; image paths are absolute (ms-swift reads them as given).

verl (GRM-RL, Proxy-RL): parquet with ``data_source``, ``prompt`` (``proxy_grm.messages.verl_prompt``),
``images`` (``[{"bytes": ..., "max_pixels": ..., "min_pixels": ...}]`` by default, self-contained; or
``{"image": path, ...}`` with the same pixel keys: verl hands them to ``qwen_vl_utils.fetch_image``, so RL
resizes to the shared budget of ``proxy_grm.pixels`` whatever the trainer's environment), ``ability``,
``reward_model`` ``{"style": "rule", "ground_truth": "1"|"2"}`` (the label, stored only there) and
``extra_info``: ``question``, ``response_1`` and ``response_2`` (as shown to the policy), ``image`` (path),
``id``, ``source``, ``reverse`` (``proxy_grm.pairs``), ``index`` (verl reads it), ``split`` and ``rubric``
(the teacher's, Proxy-RL only; "" in GRM-RL). The reward function maps them to the release's payload names
(``chosen``/``rejected`` = Response 1/2 as shown, ``answer``) in ``reward.score.proxy_payload``, which also
reads rows written with those names.

Both writers write to a hidden partial file and rename it on success, so a crash never leaves a
truncated training set under the final name.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from proxy_grm.messages import swift_row, verl_prompt
from proxy_grm.pairs import PairRecord
from proxy_grm.pixels import PixelBudget, pixel_budget
from proxy_grm.prompts import grm_prompt, proxy_prompt

GRM_DATA_SOURCE = "proxy_grm/grm"
PROXY_DATA_SOURCE = "proxy_grm/proxy"
ABILITY = "preference"
ImageMode = Literal["bytes", "path"]


def _verl_schema(image_mode: ImageMode) -> Any:
    import pyarrow as pa

    text = pa.string()
    image = ("bytes", pa.binary()) if image_mode == "bytes" else ("image", text)
    return pa.schema([
        ("data_source", text),
        ("prompt", pa.list_(pa.struct([("role", text), ("content", text)]))),
        ("images", pa.list_(pa.struct([image, ("max_pixels", pa.int64()), ("min_pixels", pa.int64())]))),
        ("ability", text),
        ("reward_model", pa.struct([("style", text), ("ground_truth", text)])),
        ("extra_info", pa.struct([
            ("id", text), ("source", text), ("split", text), ("index", pa.int64()), ("reverse", pa.bool_()),
            ("question", text), ("response_1", text), ("response_2", text), ("image", text), ("rubric", text),
        ])),
    ])


class _AtomicFile:
    def __init__(self, path: Path):
        self.path = path
        self.partial = path.with_name(f".{path.name}.part")
        self.rows = 0

    def __enter__(self) -> _AtomicFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._close()
        if kind is None:
            self.partial.replace(self.path)
        else:
            self.partial.unlink(missing_ok=True)

    def _open(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class SwiftJsonlWriter(_AtomicFile):
    """ms-swift multimodal JSONL, one row per line."""

    def _open(self) -> None:
        self._handle = self.partial.open("w", encoding="utf-8")

    def _close(self) -> None:
        self._handle.close()

    def write(self, row: dict[str, Any]) -> None:
        self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.rows += 1


class VerlParquetWriter(_AtomicFile):
    """verl RL parquet with a fixed schema, written in row groups of ``group_rows`` (bounded memory).

    Every image carries ``pixels`` (default: ``pixel_budget()``, the shared budget).
    """

    def __init__(self, path: Path, image_mode: ImageMode = "bytes", group_rows: int = 256,
                 pixels: PixelBudget | None = None):
        super().__init__(path)
        self.image_mode, self.group_rows = image_mode, group_rows
        self.pixels = pixels or pixel_budget()
        self._batch: list[dict[str, Any]] = []

    def _open(self) -> None:
        import pyarrow.parquet as pq

        self._schema = _verl_schema(self.image_mode)
        self._writer = pq.ParquetWriter(self.partial, self._schema)

    def _flush(self) -> None:
        import pyarrow as pa

        if self._batch:
            self._writer.write_table(pa.Table.from_pylist(self._batch, schema=self._schema))
            self._batch = []

    def _close(self) -> None:
        self._flush()
        self._writer.close()

    def write(self, row: dict[str, Any]) -> None:
        image = row["extra_info"]["image"]
        source = {"bytes": Path(image).read_bytes()} if self.image_mode == "bytes" else {"image": image}
        row["images"] = [{**source, **self.pixels.image_kwargs()}]
        self._batch.append(row)
        self.rows += 1
        if len(self._batch) >= self.group_rows:
            self._flush()


def proxy_target(eval_text: str, label: int) -> str:
    """The Proxy-SFT assistant turn: the teacher's ``<eval>`` comparison as the reasoning, then the label."""
    return f"<think>{eval_text}</think><answer>{label}</answer>"


def grm_sft_row(pair: PairRecord, reverse: bool, teacher_output: str) -> dict[str, Any]:
    shown = pair.shown(reverse)
    return swift_row(grm_prompt(pair.question, shown.response_1, shown.response_2), pair.image,
                     teacher_output.strip())


def proxy_sft_row(pair: PairRecord, reverse: bool, rubric: str, eval_text: str) -> dict[str, Any]:
    shown = pair.shown(reverse)
    return swift_row(proxy_prompt(pair.question, shown.response_1, shown.response_2, rubric), pair.image,
                     proxy_target(eval_text, shown.label))


def verl_row(pair: PairRecord, reverse: bool, index: int, split: str, rubric: str | None = None,
             ) -> dict[str, Any]:
    """A GRM-RL row (``rubric`` None: the GRM prompt) or a Proxy-RL row (the proxy prompt with ``rubric``)."""
    shown = pair.shown(reverse)
    if rubric is None:
        text, data_source = grm_prompt(pair.question, shown.response_1, shown.response_2), GRM_DATA_SOURCE
    else:
        text = proxy_prompt(pair.question, shown.response_1, shown.response_2, rubric)
        data_source = PROXY_DATA_SOURCE
    return {
        "data_source": data_source,
        "prompt": verl_prompt(text),
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": str(shown.label)},
        "extra_info": {
            "id": pair.id, "source": pair.source, "split": split, "index": index, "reverse": reverse,
            "question": pair.question, "response_1": shown.response_1, "response_2": shown.response_2,
            "image": pair.image, "rubric": rubric or "",
        },
    }
