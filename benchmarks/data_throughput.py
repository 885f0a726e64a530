"""Throughput and peak memory of the data chain without the teacher: loaders, filters, split, writers.

Generates ``--n-per-source`` synthetic rows per source (4 sources; default 25,000 -> 100k pairs) in a
child process, then in this process runs stage 1 (read, convert, filter, write pairs.jsonl + images),
writes a synthetic teacher cache (the stub teacher's answers), and runs stage 3 (split + the four
writers, every pair used). Prints pairs/s per stage and this process's peak RSS (target: < 1 GB).

    python -m benchmarks.data_throughput --n-per-source 25000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

from proxy_grm.data.prepare_pairs import prepare_pairs
from proxy_grm.data.split import split_and_write
from proxy_grm.pairs import is_reversed
from proxy_grm.pairs import iter_pairs
from proxy_grm.toy.source_fixtures import make_source_fixtures
from proxy_grm.toy.teacher_stub import grm_answer


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_synthetic_cache(pairs: Path, cache: Path) -> int:
    count = 0
    with cache.open("w", encoding="utf-8") as out:
        for pair in iter_pairs(pairs):
            shown = pair.shown(is_reversed(0, pair.id))
            entry = {"id": pair.id, "reverse": shown.reverse, "label": shown.label, "model": "stub",
                     "output": grm_answer(shown.response_1, shown.response_2, None), "finish_reason": "stop"}
            out.write(json.dumps(entry) + "\n")
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-per-source", type=int, default=25_000)
    parser.add_argument("--distinct-images", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        child = multiprocessing.Process(target=make_source_fixtures,
                                        args=(tmp / "src", args.n_per_source, 0, args.distinct_images))
        child.start()
        child.join()
        if child.exitcode:
            raise SystemExit(f"fixture generation failed ({child.exitcode})")
        specs = {name: str(tmp / "src" / name) for name in ("llava_critic", "rlaif_v", "rlhf_v", "mmif")}
        print(f"generated {4 * args.n_per_source} source rows in {time.perf_counter() - start:.1f}s (child)")

        rows = []
        start = time.perf_counter()
        summary = prepare_pairs(specs, tmp / "out", progress=False)
        kept = sum(summary.kept.values())
        rows.append(("load+filter+write pairs", sum(summary.read.values()), time.perf_counter() - start))

        start = time.perf_counter()
        cached = write_synthetic_cache(tmp / "out" / "pairs.jsonl", tmp / "cache.jsonl")
        rows.append(("synthetic teacher cache", cached, time.perf_counter() - start))

        start = time.perf_counter()
        sizes = {"grm_sft": kept, "proxy_sft": kept, "proxy_rl": kept, "grm_rl": kept}
        split = split_and_write(tmp / "out" / "pairs.jsonl", tmp / "cache.jsonl", tmp / "sets", sizes)
        rows.append(("split + 4 writers", sum(split.written.values()), time.perf_counter() - start))

        print(f"\nkept {kept} pairs; sets: {split.written}")
        print(f"{'stage':<26} {'rows':>8} {'seconds':>8} {'rows/s':>9}")
        for name, count, seconds in rows:
            print(f"{name:<26} {count:>8} {seconds:>8.1f} {count / seconds:>9.0f}")
        total_s = rows[0][2] + rows[2][2]
        print(f"end to end (no teacher): {kept / total_s:.0f} pairs/s over {total_s:.1f}s")
        print(f"peak RSS of this process: {peak_rss_mb():.0f} MB (target < 1024 MB)")


if __name__ == "__main__":
    main()
