"""Small datasets in each source's released shape, made by code (tests, the toy demo, the benchmark).

``make_source_fixtures(out_dir, n_per_source, seed)`` writes, per source, ``n_per_source`` convertible
rows plus a few rows that must be skipped (tie, unparseable winner, missing image, empty and identical
responses), in the released file format of that source:

- ``llava_critic/pairwise.parquet``: conversations + Image-feature struct ``{"bytes", "path"}``;
  two pairs per image (as in the release, where prompts repeat).
- ``rlaif_v/train.parquet``: flat columns + Image-feature struct.
- ``rlhf_v/rlhf_v.json``: a JSON array (LLaMA-Factory ranking format) + ``images/*.png`` files.
- ``mmif/dpo.jsonl``: JSON lines + ``images/*.png`` files.

Every pair is a toy colour pair (``proxy_grm.toy.colour_task``): the chosen response names the colour
that fills most of the image, so the label follows from the image and the stub teacher, judging by that
rule with one blind spot, is right on most pairs and wrong on a named slice. ``distinct_images`` bounds how
many different images are drawn (the throughput benchmark uses a small pool so 100k rows do not mean 100k PNG encodes).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from proxy_grm.toy.colour_task import RULE, ColourPair, make_pair

_INSTRUCTION = (
    "Given an image and a corresponding question, please serve as an unbiased and fair judge to evaluate "
    "the quality of the answers provided by a Large Multimodal Model (LMM). Determine which answer is "
    "better and explain your reasoning with specific details. Your task is provided as follows:"
)
_WINNER_TEMPLATES = (
    "The better response: [{word}]\nIt is more accurate about the image.",
    "After comparing both, the {word} response is better because it matches the visual evidence.",
    "Response {digit} is better: it names the objects correctly.",
)
BATCH_ROWS = 2048


@dataclass
class SourceFixtures:
    """Where each source's fixture lives (a file or folder usable as a source spec) and the skips to expect."""

    specs: dict[str, Path] = field(default_factory=dict)
    expected_skips: Counter[tuple[str, str]] = field(default_factory=Counter)
    good_rows: dict[str, int] = field(default_factory=dict)


class _Maker:
    def __init__(self, seed: int, distinct_images: int | None):
        self.rng = random.Random(seed)
        self.distinct_images = distinct_images
        self._png_cache: dict[int, bytes] = {}

    def pair(self, image_key: int, question: int | None = None) -> ColourPair:
        """A toy pair about image ``image_key`` (``colour_task``): the chosen response names its colour."""
        if self.distinct_images:
            image_key %= self.distinct_images
        pair = make_pair(self.rng, image_key, question)
        if self.distinct_images:
            # A small pool of images: encode each PNG once (100k rows are not 100k encodes).
            pair = replace(pair, png=self._png_cache.setdefault(image_key, pair.png))
        return pair


def _write_parquet(path: Path, rows: Iterator[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    writer, batch = None, []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            table = pa.Table.from_pylist(batch, schema=writer.schema if writer else None)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            batch = []
    if batch or writer is None:
        table = pa.Table.from_pylist(batch, schema=writer.schema if writer else None)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def _image_struct(png: bytes | None, name: str) -> dict[str, Any]:
    return {"bytes": png, "path": name}


def _llava_critic_rows(make: _Maker, n: int, skips: Counter) -> Iterator[dict[str, Any]]:
    def row(i: int, first: str, second: str, question: str, judgement: str, png: bytes | None) -> dict:
        human = (f"<image>\n{_INSTRUCTION}\nQuestion: [{question}]\nThe first response: [{first}]\n"
                 f"The second response: [{second}]\nASSISTANT:\n")
        return {"id": f"critic-{i}", "source": "fixture",
                "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": judgement}],
                "image": _image_struct(png, f"critic-{i // 2}.png")}

    for i in range(n):
        pair = make.pair(1_000_000 + i // 2, question=i % 2)  # two pairs per image, two questions
        question, chosen, rejected = pair.question, pair.chosen, pair.rejected
        winner = make.rng.choice((1, 2))
        first, second = (chosen, rejected) if winner == 1 else (rejected, chosen)
        template = _WINNER_TEMPLATES[i % len(_WINNER_TEMPLATES)]
        judgement = template.format(word="first" if winner == 1 else "second", digit=winner)
        yield row(i, first, second, question, judgement, pair.png)
    bad = (("tie", "Two responses are equally good."), ("unparseable_winner", "Both have merits."),
           ("missing_image", "The better response: [first]"))
    for j, (reason, judgement) in enumerate(bad, start=n):
        pair = make.pair(j)
        yield row(j, pair.chosen, pair.rejected, pair.question, judgement,
                  None if reason == "missing_image" else pair.png)
        skips[(reason, "llava_critic")] += 1


def _rlaif_v_rows(make: _Maker, n: int, skips: Counter) -> Iterator[dict[str, Any]]:
    def row(i: int, pair: ColourPair, rejected: str | None = None) -> dict:
        return {"ds_name": "fixture", "image": _image_struct(pair.png, f"rlaif-{i}.png"),
                "question": pair.question, "chosen": pair.chosen,
                "rejected": pair.rejected if rejected is None else rejected, "origin_dataset": "fixture",
                "origin_split": "train", "idx": i, "image_path": f"rlaif-{i}.png"}

    for i in range(n):
        yield row(i, make.pair(2_000_000 + i))
    pair = make.pair(2_000_000 + n)
    yield row(n, pair, "   ")
    yield row(n + 1, pair, pair.chosen)
    skips[("empty_response", "rlaif_v")] += 1
    skips[("identical_responses", "rlaif_v")] += 1


def _file_rows(make: _Maker, n: int, image_dir: Path, offset: int, source: str, skips: Counter,
               ) -> Iterator[tuple[str, str, str, list[str]]]:
    """(question, chosen, rejected, images) with PNG files written under ``image_dir``."""
    image_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = f"images/{source}-{i}.png"
        pair = make.pair(offset + i)
        (image_dir.parent / name).write_bytes(pair.png)
        yield pair.question, pair.chosen, pair.rejected, [name]
    pair = make.pair(offset + n)
    yield pair.question, pair.chosen, pair.rejected, [f"images/{source}-absent.png"]
    skips[("missing_image", source)] += 1


def _write_rlhf_v(make: _Maker, n: int, folder: Path, skips: Counter) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "rlhf_v.json").open("w", encoding="utf-8") as handle:
        handle.write("[\n")
        for k, (question, chosen, rejected, images) in enumerate(
                _file_rows(make, n, folder / "images", 3_000_000, "rlhf_v", skips)):
            row = {"conversations": [{"from": "human", "value": f"<image>{question}"}],
                   "chosen": {"from": "gpt", "value": chosen}, "rejected": {"from": "gpt", "value": rejected},
                   "images": images}
            handle.write(("," if k else "") + json.dumps(row) + "\n")
        handle.write("]\n")


def _write_mmif(make: _Maker, n: int, folder: Path, skips: Counter) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "dpo.jsonl").open("w", encoding="utf-8") as handle:
        for k, (question, chosen, rejected, images) in enumerate(
                _file_rows(make, n, folder / "images", 4_000_000, "mmif", skips)):
            row = {"id": f"mmif-{k}", "images": images,
                   "conversations": [{"from": "human", "value": f"<image>{question} Answer in one paragraph."},
                                     {"from": "gpt", "value": chosen}],
                   "chosen": {"from": "gpt", "value": chosen}, "rejected": {"from": "gpt", "value": rejected}}
            handle.write(json.dumps(row) + "\n")
        empty = {"id": "mmif-noimage", "images": [], "conversations": [{"from": "human", "value": "Q?"}],
                 "chosen": {"from": "gpt", "value": "a b c"}, "rejected": {"from": "gpt", "value": "d e f"}}
        handle.write(json.dumps(empty) + "\n")
    skips[("missing_image", "mmif")] += 1


def make_source_fixtures(out_dir: Path, n_per_source: int, seed: int = 0,
                         distinct_images: int | None = None) -> SourceFixtures:
    """Write all four fixtures under ``out_dir``; return their specs (for ``--source NAME=SPEC``)."""
    make, fixtures = _Maker(seed, distinct_images), SourceFixtures()
    skips = fixtures.expected_skips
    _write_parquet(out_dir / "llava_critic" / "pairwise.parquet", _llava_critic_rows(make, n_per_source, skips))
    _write_parquet(out_dir / "rlaif_v" / "train.parquet", _rlaif_v_rows(make, n_per_source, skips))
    _write_rlhf_v(make, n_per_source, out_dir / "rlhf_v", skips)
    _write_mmif(make, n_per_source, out_dir / "mmif", skips)
    fixtures.specs = {
        "llava_critic": out_dir / "llava_critic" / "pairwise.parquet",
        "rlaif_v": out_dir / "rlaif_v",
        "rlhf_v": out_dir / "rlhf_v" / "rlhf_v.json",
        "mmif": out_dir / "mmif",
    }
    fixtures.good_rows = {name: n_per_source for name in fixtures.specs}
    return fixtures


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Write small datasets in each source's released shape.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n-per-source", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    fixtures = make_source_fixtures(args.out, args.n_per_source, args.seed)
    print(f"# rule: {RULE}")
    for name, spec in fixtures.specs.items():
        print(f"{name}={spec}")


if __name__ == "__main__":
    main()
