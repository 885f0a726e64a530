"""Stage 1: read the four sources, convert, filter, and write ``pairs.jsonl`` and ``images/``.

The sources are read (``source_specs``) and interleaved row by row, so a total cap samples all of them;
each row is converted by its source's loader, filtered (``filters``), and its image stored once
(``image_store``). ``pairs.summary.json`` counts what was read, skipped, removed and kept.

    python -m proxy_grm.data.prepare_pairs --source llava_critic=lmms-lab/llava-critic-113k ... --out OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from proxy_grm.data import llava_critic, mmif, rlaif_v, rlhf_v
from proxy_grm.data.filters import FilterConfig, PairFilter, format_table
from proxy_grm.data.image_store import ImageStore
from proxy_grm.data.records import SkipRow, SourcePair
from proxy_grm.data.source_specs import SourceRow, iter_source_rows
from proxy_grm.pairs import PAIRS_FILE, PairRecord

LOADERS: dict[str, ModuleType] = {m.SOURCE: m for m in (llava_critic, rlaif_v, rlhf_v, mmif)}
SUMMARY_FILE = "pairs.summary.json"


@dataclass
class PrepareSummary:
    """What stage 1 did: rows read, skipped by (reason, source), removed by (rule, source), kept."""

    read: Counter[str] = field(default_factory=Counter)
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    removed: Counter[tuple[str, str]] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)

    def report(self) -> str:
        kept = Counter({("kept", s): n for s, n in self.kept.items()})
        read = Counter({("read", s): n for s, n in self.read.items()})
        parts = [format_table(read + kept, "rows")]
        if self.skipped:
            parts.append(format_table(self.skipped, "skipped (cannot convert)"))
        if self.removed:
            parts.append(format_table(self.removed, "removed by filter"))
        return "\n\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        def flat(counter: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for (reason, source), n in sorted(counter.items()):
                out.setdefault(reason, {})[source] = n
            return out

        return {"read": dict(self.read), "kept": dict(self.kept), "skipped": flat(self.skipped),
                "removed": flat(self.removed)}


def _round_robin(streams: dict[str, Iterator[SourceRow]]) -> Iterator[tuple[str, SourceRow]]:
    """Interleave the sources row by row so a total cap samples all of them.

    Sources removed from ``streams`` while iterating (limit reached) are not read again.
    """
    while streams:
        for name in list(streams):
            row = next(streams[name], None) if name in streams else None
            if row is None:
                streams.pop(name, None)
            else:
                yield name, row


def convert_and_filter(
    sources: dict[str, Iterator[SourceRow]],
    store: ImageStore,
    pair_filter: PairFilter,
    summary: PrepareSummary,
    limits: dict[str, int] | None = None,
    max_pairs: int = 0,
    on_row: Callable[[], None] | None = None,
) -> Iterator[PairRecord]:
    """Records that pass conversion and every filter; per-source ``limits`` and the total ``max_pairs``
    stop reading early (0 = unlimited). Skips and removals are counted in ``summary``."""
    limits = limits or {}
    seen_ids: set[str] = set()
    streams = dict(sources)
    for name, item in _round_robin(streams):
        if on_row:
            on_row()
        summary.read[name] += 1
        try:
            pair: SourcePair = LOADERS[name].convert(item.row)
            if pair.id in seen_ids:
                raise SkipRow("duplicate_id")
            rule = pair_filter.text_rule(pair)
            if rule is None:
                stored = store.put(store.read(pair.image, item.bases))
                rule = pair_filter.image_rule(stored.width, stored.height) or pair_filter.seen_rule(
                    pair, stored.digest)
        except SkipRow as skip:
            # Filter rules are named "filter:rule" (an unreadable image is found while storing it).
            target = summary.removed if ":" in skip.reason else summary.skipped
            target[(skip.reason, name)] += 1
            continue
        if rule is not None:
            summary.removed[(rule, name)] += 1
            continue
        seen_ids.add(pair.id)
        summary.kept[name] += 1
        yield PairRecord(pair.id, pair.source, str(stored.path), pair.question, pair.preferred, pair.dispreferred)
        if limits.get(name) and summary.kept[name] >= limits[name]:
            streams.pop(name, None)
        if max_pairs and sum(summary.kept.values()) >= max_pairs:
            return


def prepare_pairs(
    source_specs: dict[str, str],
    out_dir: Path,
    filter_config: FilterConfig | None = None,
    limits: dict[str, int] | None = None,
    max_pairs: int = 0,
    hub_split: str = "train",
    progress: bool = True,
) -> PrepareSummary:
    """Stage 1 end to end: write ``out_dir/pairs.jsonl`` (atomically) and ``pairs.summary.json``."""
    unknown = set(source_specs) - set(LOADERS)
    if unknown:
        raise ValueError(f"unknown source(s) {sorted(unknown)}; known: {sorted(LOADERS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    streams = {
        name: iter_source_rows(spec, getattr(LOADERS[name], "HUB_CONFIG", None), hub_split)
        for name, spec in source_specs.items()
    }
    summary = PrepareSummary()
    store = ImageStore(out_dir.resolve() / "images")
    partial = out_dir / f".{PAIRS_FILE}.part"
    from tqdm import tqdm

    bar = tqdm(desc="pairs", unit="row", disable=not progress, mininterval=1.0)
    with partial.open("w", encoding="utf-8") as handle:
        records = convert_and_filter(streams, store, PairFilter(filter_config or FilterConfig()), summary,
                                     limits, max_pairs, on_row=bar.update)
        for record in records:
            handle.write(record.to_json() + "\n")
    bar.close()
    partial.replace(out_dir / PAIRS_FILE)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    return summary


def _key_values(items: list[str], what: str, cast: Callable[[str], Any] = str) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"{what}: expected NAME=VALUE, got {item!r}")
        out[key] = cast(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    defaults = FilterConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", action="append", default=[], metavar="NAME=SPEC", required=True,
                        help=f"a source ({', '.join(LOADERS)}) and its hub id, file or folder; repeatable")
    parser.add_argument("--out", type=Path, required=True, help="output folder (pairs.jsonl, images/)")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=N",
                        help="keep at most N pairs from a source; repeatable")
    parser.add_argument("--max-pairs", type=int, default=0, help="keep at most this many pairs in all (0: all)")
    parser.add_argument("--hub-split", default="train")
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    specs = _key_values(args.source, "--source")
    config = FilterConfig(**{name: getattr(args, name) for name in FilterConfig.__dataclass_fields__})
    summary = prepare_pairs(specs, args.out, config, _key_values(args.limit, "--limit", int), args.max_pairs,
                            args.hub_split, progress=not args.no_progress)
    print(summary.report())
    total = sum(summary.kept.values())
    print(f"\nwrote {total} pairs to {args.out / PAIRS_FILE}")
    if total == 0:
        sys.exit("no pairs survived conversion and filtering; see the tables above")


if __name__ == "__main__":
    main()
