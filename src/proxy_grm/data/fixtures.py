"""Small datasets in each source's released shape, made by code (tests, the toy demo, the benchmark).

``make_source_fixtures(out_dir, n_per_source, seed)`` writes, per source, ``n_per_source`` convertible
rows plus a few rows that must be skipped (tie, unparseable winner, missing image, empty and identical
responses), in the released file format of that source:

- ``llava_critic/pairwise.parquet``: conversations + Image-feature struct ``{"bytes", "path"}``;
  two pairs per image (as in the release, where prompts repeat).
- ``rlaif_v/train.parquet``: flat columns + Image-feature struct.
- ``rlhf_v/rlhf_v.json``: a JSON array (LLaMA-Factory ranking format) + ``images/*.png`` files.
- ``mmif/dpo.jsonl``: JSON lines + ``images/*.png`` files.

In about 60% of pairs the chosen response is the longer one, so a "longer wins" judge (the stub teacher)
is right on most pairs but not all. ``distinct_images`` bounds how many different images are drawn
(the throughput benchmark uses a small pool so 100k rows do not mean 100k PNG encodes).
"""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

_WORDS = (
    "red blue green small large wooden metal glass dog cat bird car tree house river road sky cloud "
    "person child table chair window door book cup plate bottle sign street light shadow left right top "
    "bottom center near far behind front inside outside holding sitting standing running looking white "
    "black yellow orange round square bright dark old new busy quiet two three four several many few "
    "shows contains appears visible clearly likely probably image picture scene background foreground "
    "because therefore however while also only exactly roughly about counts colour shape texture"
).split()
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

    def sentence(self, n_words: int) -> str:
        words = self.rng.choices(_WORDS, k=n_words)
        return " ".join(words).capitalize() + "."

    def texts(self, index: int) -> tuple[str, str, str]:
        """(question, chosen, rejected); the chosen one is longer in ~60% of pairs."""
        question = f"Question {index}: what is the {self.rng.choice(_WORDS)} {self.rng.choice(_WORDS)} doing?"
        long_text, short_text = self.sentence(self.rng.randint(26, 40)), self.sentence(self.rng.randint(12, 22))
        return (question, long_text, short_text) if self.rng.random() < 0.6 else (question, short_text, long_text)

    def png(self, key: int) -> bytes:
        """A small PNG (56-112 px a side, a colour and a stripe); the same key gives the same bytes."""
        if self.distinct_images:
            key %= self.distinct_images
        if key not in self._png_cache:
            rng = random.Random(key)
            width, height = rng.choice((56, 84, 112)), rng.choice((56, 84))
            image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
            image.paste(tuple(rng.randrange(256) for _ in range(3)), (0, 0, width // 3, height))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            png = buffer.getvalue()
            if not self.distinct_images:
                return png
            self._png_cache[key] = png
        return self._png_cache[key]


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
        question, chosen, rejected = make.texts(i)
        winner = make.rng.choice((1, 2))
        first, second = (chosen, rejected) if winner == 1 else (rejected, chosen)
        template = _WINNER_TEMPLATES[i % len(_WINNER_TEMPLATES)]
        judgement = template.format(word="first" if winner == 1 else "second", digit=winner)
        yield row(i, first, second, question, judgement, make.png(1_000_000 + i // 2))
    bad = (("tie", "Two responses are equally good."), ("unparseable_winner", "Both have merits."),
           ("missing_image", "The better response: [first]"))
    for j, (reason, judgement) in enumerate(bad, start=n):
        question, chosen, rejected = make.texts(j)
        yield row(j, chosen, rejected, question, judgement, None if reason == "missing_image" else make.png(j))
        skips[(reason, "llava_critic")] += 1


def _rlaif_v_rows(make: _Maker, n: int, skips: Counter) -> Iterator[dict[str, Any]]:
    def row(i: int, question: str, chosen: str, rejected: str) -> dict:
        return {"ds_name": "fixture", "image": _image_struct(make.png(2_000_000 + i), f"rlaif-{i}.png"),
                "question": question, "chosen": chosen, "rejected": rejected, "origin_dataset": "fixture",
                "origin_split": "train", "idx": i, "image_path": f"rlaif-{i}.png"}

    for i in range(n):
        yield row(i, *make.texts(i))
    question, chosen, _ = make.texts(n)
    yield row(n, question, chosen, "   ")
    yield row(n + 1, question, chosen, chosen)
    skips[("empty_response", "rlaif_v")] += 1
    skips[("identical_responses", "rlaif_v")] += 1


def _file_rows(make: _Maker, n: int, image_dir: Path, offset: int, source: str, skips: Counter,
               ) -> Iterator[tuple[str, str, str, list[str]]]:
    """(question, chosen, rejected, images) with PNG files written under ``image_dir``."""
    image_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = f"images/{source}-{i}.png"
        (image_dir.parent / name).write_bytes(make.png(offset + i))
        yield (*make.texts(offset + i), [name])
    yield (*make.texts(offset + n), [f"images/{source}-absent.png"])
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
    for name, spec in fixtures.specs.items():
        print(f"{name}={spec}")


if __name__ == "__main__":
    main()
