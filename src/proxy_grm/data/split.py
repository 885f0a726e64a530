"""Stage 3: split the distilled pairs into teacher-correct and hard, then write the four training sets.

Each cache entry's verdict is parsed with ``proxy_grm.parsing.parse_verdict`` (the GRM reward's rule) and
compared with the recorded label:

- ``correct``: verdict == label, and the output has a rubric (``extract_rubric``) and an ``<eval>`` part
  (and, by default, passes ``is_well_formatted``; GRM-SFT teaches the format, so it must be clean);
- ``correct_malformed``: verdict == label but the parts above are missing: counted, used nowhere;
- ``wrong`` and ``unparseable`` (no verdict): both are **hard** pairs, the GRM-RL pool. An unparseable
  critique says the teacher could not settle the pair, which is what "hard" means here.

From the shuffled (seeded) correct pool come Proxy-SFT, Proxy-RL and GRM-SFT, disjoint; when the pool is
smaller than the three sizes together, each set gets its proportional share. GRM-RL takes up to its size
from the shuffled hard pool. Every example keeps the response order the teacher saw (recorded in the
cache), so the GRM-SFT target's "Response 1/2" references stay true and the labels stay ~50/50.

Proxy-SFT target: ``<think>{the teacher's <eval> text}</think><answer>{label}</answer>``. The eval is the
teacher's criterion-by-criterion comparison under its own rubric, ending in the right verdict, which is
exactly the reasoning the proxy should learn to do from a rubric.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy_grm.data.writers import (
    ImageMode,
    SwiftJsonlWriter,
    VerlParquetWriter,
    grm_sft_row,
    proxy_sft_row,
    verl_row,
)
from proxy_grm.datafiles import DataFileError, iter_jsonl_at, read_jsonl_at
from proxy_grm.pairs import PairRecord
from proxy_grm.parsing import extract_eval, extract_rubric, is_well_formatted, parse_verdict
from proxy_grm.pixels import MAX_PIXELS_ENV, RELEASE_MAX_PIXELS, PixelBudget, pixel_budget



def _grm_sft(pair: PairRecord, reverse: bool, output: str, index: int) -> dict[str, Any]:
    return grm_sft_row(pair, reverse, output)


def _proxy_sft(pair: PairRecord, reverse: bool, output: str, index: int) -> dict[str, Any]:
    return proxy_sft_row(pair, reverse, extract_rubric(output) or "", extract_eval(output) or "")


def _proxy_rl(pair: PairRecord, reverse: bool, output: str, index: int) -> dict[str, Any]:
    return verl_row(pair, reverse, index, "proxy_rl", extract_rubric(output))


def _grm_rl(pair: PairRecord, reverse: bool, output: str, index: int) -> dict[str, Any]:
    return verl_row(pair, reverse, index, "grm_rl", None)


RowBuilder = Callable[[PairRecord, bool, str, int], dict[str, Any]]
# Each training set: its file and how one of its rows is built from a pair, the order shown and the
# teacher's critique (the proxy's sets keep the teacher's rubric; GRM-RL rows carry none: the policy writes it).
OUTPUT_FILES = {"grm_sft": "grm_sft.jsonl", "proxy_sft": "proxy_sft.jsonl", "proxy_rl": "proxy_rl.parquet",
                "grm_rl": "grm_rl.parquet"}
ROW_BUILDERS: dict[str, RowBuilder] = {"grm_sft": _grm_sft, "proxy_sft": _proxy_sft, "proxy_rl": _proxy_rl,
                                       "grm_rl": _grm_rl}
# The order the shuffled correct pool is dealt out in (GRM-RL takes the hard pool).
CORRECT_SETS = ("proxy_sft", "proxy_rl", "grm_sft")
SUMMARY_FILE = "split.summary.json"


def classify(output: str, label: int, require_format: bool = True) -> str:
    """``correct`` | ``correct_malformed`` | ``wrong`` | ``unparseable`` for one teacher output."""
    verdict = parse_verdict(output)
    if verdict is None:
        return "unparseable"
    if verdict != label:
        return "wrong"
    usable = extract_rubric(output) is not None and extract_eval(output) is not None
    if usable and (is_well_formatted(output) or not require_format):
        return "correct"
    return "correct_malformed"


def allocate(pool: int, sizes: dict[str, int]) -> dict[str, int]:
    """Sizes that fit the pool: as asked when they fit, else proportional shares (largest remainder)."""
    wanted = sum(sizes.values())
    if wanted <= pool:
        return dict(sizes)
    exact = {name: pool * size / wanted for name, size in sizes.items()}
    shares = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(sizes, key=lambda name: exact[name] - shares[name], reverse=True)
    for name in by_remainder[: pool - sum(shares.values())]:
        shares[name] += 1
    return shares


@dataclass
class SplitSummary:
    categories: Counter[str] = field(default_factory=Counter)
    written: dict[str, int] = field(default_factory=dict)
    labels: dict[str, Counter[str]] = field(default_factory=dict)
    not_distilled: int = 0

    def report(self) -> str:
        lines = ["teacher verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(self.categories.items())),
                 "  (wrong + unparseable -> hard pool; correct_malformed -> unused)"]
        if self.not_distilled:
            lines.append(f"pairs with no teacher answer yet (not used): {self.not_distilled}")
        for name, rows in self.written.items():
            balance = self.labels.get(name, Counter())
            lines.append(f"{name:<10} {rows:>7} rows  label 1: {balance['1']}  label 2: {balance['2']}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"categories": dict(self.categories), "written": self.written, "not_distilled": self.not_distilled,
                "labels": {k: dict(v) for k, v in self.labels.items()}}


def _offsets(path: Path) -> dict[str, int]:
    """Byte offset of the first line per id (duplicates after the first are ignored)."""
    offsets: dict[str, int] = {}
    for lineno, offset, row in iter_jsonl_at(path):
        if not isinstance(row.get("id"), str):
            raise DataFileError(f"{path}:{lineno}: no 'id' in this line")
        offsets.setdefault(row["id"], offset)
    return offsets


def split_and_write(
    pairs_path: Path,
    cache_path: Path,
    out_dir: Path,
    sizes: dict[str, int],
    seed: int = 0,
    require_format: bool = True,
    image_mode: ImageMode = "bytes",
    pixels: PixelBudget | None = None,
) -> SplitSummary:
    """Classify every cached critique, allocate the sets, and write them under ``out_dir``."""
    unknown = set(sizes) - set(OUTPUT_FILES)
    if unknown:
        raise ValueError(f"unknown set(s) {sorted(unknown)}; known: {sorted(OUTPUT_FILES)}")
    pair_offsets = _offsets(pairs_path)
    summary = SplitSummary()
    pools: dict[str, list[tuple[str, int]]] = {"correct": [], "hard": []}
    seen: set[str] = set()
    for _, entry_offset, entry in iter_jsonl_at(cache_path):
        if entry["id"] in seen or entry["id"] not in pair_offsets:
            summary.categories["duplicate_in_cache" if entry["id"] in seen else "not_in_pairs"] += 1
            continue
        seen.add(entry["id"])
        category = classify(entry["output"], int(entry["label"]), require_format)
        summary.categories[category] += 1
        if category in ("wrong", "unparseable"):
            pools["hard"].append((entry["id"], entry_offset))
        elif category == "correct":
            pools["correct"].append((entry["id"], entry_offset))
    summary.not_distilled = len(set(pair_offsets) - seen)

    rng = random.Random(seed)
    for pool in pools.values():
        pool.sort()
        rng.shuffle(pool)
    shares = allocate(len(pools["correct"]), {name: sizes.get(name, 0) for name in CORRECT_SETS})
    chosen: dict[str, list[tuple[str, int]]] = {}
    start = 0
    for name in CORRECT_SETS:
        chosen[name] = pools["correct"][start: start + shares[name]]
        start += shares[name]
    chosen["grm_rl"] = pools["hard"][: sizes.get("grm_rl", 0)]

    with pairs_path.open("rb") as pairs, cache_path.open("rb") as cache:
        for name in OUTPUT_FILES:
            path = out_dir / OUTPUT_FILES[name]
            writer = (SwiftJsonlWriter(path) if path.suffix == ".jsonl"
                      else VerlParquetWriter(path, image_mode, pixels=pixels))
            labels: Counter[str] = Counter()
            with writer:
                for index, (pair_id, entry_offset) in enumerate(chosen[name]):
                    entry = read_jsonl_at(cache, entry_offset)
                    pair = PairRecord.from_dict(read_jsonl_at(pairs, pair_offsets[pair_id]), f"{pairs_path}")
                    writer.write(ROW_BUILDERS[name](pair, bool(entry["reverse"]), entry["output"], index))
                    labels[str(entry["label"])] += 1
            summary.written[name] = writer.rows
            summary.labels[name] = labels
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for the four training sets")
    parser.add_argument("--grm-sft-size", type=int, default=10_000)
    parser.add_argument("--proxy-sft-size", type=int, default=5_000)
    parser.add_argument("--proxy-rl-size", type=int, default=10_000)
    parser.add_argument("--grm-rl-size", type=int, default=35_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allow-unformatted", action="store_true",
                        help="accept correct critiques that fail the strict format check")
    parser.add_argument("--verl-images", choices=("bytes", "path"), default="bytes",
                        help="embed image bytes in the parquet (self-contained) or store paths")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help=f"pixel budget written on every RL image, which verl resizes to (default: "
                             f"${MAX_PIXELS_ENV}, else the release's {RELEASE_MAX_PIXELS}, as SFT)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    for path in (args.pairs, args.cache):
        if not path.is_file():
            raise SystemExit(f"{path}: no such file (run the earlier stages first)")
    sizes = {"grm_sft": args.grm_sft_size, "proxy_sft": args.proxy_sft_size, "proxy_rl": args.proxy_rl_size,
             "grm_rl": args.grm_rl_size}
    if min(sizes.values()) < 0:
        raise SystemExit("set sizes must be >= 0")
    try:
        pixels = pixel_budget(args.max_pixels)
    except ValueError as error:
        raise SystemExit(f"--max-pixels: {error}") from None
    summary = split_and_write(args.pairs, args.cache, args.out, sizes, args.seed, not args.allow_unformatted,
                              args.verl_images, pixels)
    print(summary.report())
    if not any(summary.written.values()):
        sys.exit("every training set is empty; see the verdict counts above")


if __name__ == "__main__":
    main()
