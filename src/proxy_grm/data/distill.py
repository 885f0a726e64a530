"""Stage 2: teacher critiques for every pair, from any OpenAI-compatible chat-completions endpoint.

Each pair is sent once as the GRM instruction prompt (``proxy_grm.prompts.grm_prompt``) with its image as
a base64 data URI, the two responses in an order fixed per pair id (``records.is_swapped``), so the labels
are ~50/50 and the order is recorded. Answers go to an append-only JSONL cache, one line per pair id,
flushed per line: a run killed at any moment resumes by skipping the ids already there (a torn last line
is cut off first), so nothing is lost or duplicated. Requests that still fail after the retries are
counted and left out of the cache; rerunning retries exactly those.

Several ``--base-url`` values spread requests round robin (a retry moves to the next endpoint).
The API key, when the endpoint needs one, comes from the environment variable named by ``--api-key-env``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from proxy_grm.data.records import PairRecord, is_swapped, shown_order
from proxy_grm.data.sources import iter_pairs
from proxy_grm.images import file_to_data_uri
from proxy_grm.messages import openai_messages
from proxy_grm.prompts import grm_prompt

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class TeacherCache:
    """The append-only JSONL cache: ``{"id", "swapped", "label", "model", "output", "finish_reason"}``."""

    def __init__(self, path: Path):
        self.path = path

    def repair(self) -> int:
        """Cut a torn last line (a write killed midway); return the bytes removed."""
        if not self.path.exists():
            return 0
        with self.path.open("rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return 0
            tail_start = size - 1
            chunk = 1 << 16
            while tail_start > 0:
                start = max(0, tail_start - chunk)
                handle.seek(start)
                block = handle.read(tail_start - start)
                newline = block.rfind(b"\n")
                if newline >= 0:
                    tail_start = start + newline + 1
                    break
                tail_start = start
            handle.truncate(tail_start)
            return size - tail_start

    def ids(self) -> set[str]:
        """Ids present in the cache (after ``repair``); a corrupt complete line is an error naming it."""
        found: set[str] = set()
        if not self.path.exists():
            return found
        with self.path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        found.add(json.loads(line)["id"])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        raise ValueError(f"{self.path}:{line_no}: not a cache entry") from None
        return found

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every cache entry, streamed."""
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


@dataclass(frozen=True)
class TeacherConfig:
    base_urls: tuple[str, ...]
    model: str
    api_key: str | None = None
    max_tokens: int = 4096
    temperature: float = 0.0
    # Requests in flight over all endpoints. benchmarks/distill_throughput.py on CPU: 16 is >= 10x one at a time
    # and 64 no faster; a GPU teacher batches more (sweep --concurrency there).
    concurrency: int = 16
    max_retries: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 600.0
    seed: int = 0


@dataclass
class DistillSummary:
    total: int = 0
    cached_before: int = 0
    done: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    retries: int = 0

    def report(self) -> str:
        lines = [f"pairs {self.total}: already cached {self.cached_before}, distilled now {self.done}, "
                 f"failed {sum(self.failed.values())} (retries {self.retries})"]
        lines += [f"  failed: {reason}: {n}" for reason, n in sorted(self.failed.items())]
        return "\n".join(lines)


class RequestFailed(Exception):
    pass


def teacher_request(pair: PairRecord, config: TeacherConfig) -> tuple[dict[str, Any], bool, int]:
    """The chat-completions body for one pair, whether its responses are shown swapped, and the label.

    Raises ``OSError``/``ValueError`` when the pair's image cannot be read.
    """
    swapped = is_swapped(pair.id, config.seed)
    response_1, response_2, label = shown_order(pair, swapped)
    body = {
        "model": config.model,
        "messages": openai_messages(grm_prompt(pair.question, response_1, response_2), file_to_data_uri(pair.image)),
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
    }
    return body, swapped, label


class TeacherClient:
    """Sends one pair, with bounded retries and exponential backoff with jitter across the endpoints."""

    def __init__(self, config: TeacherConfig, client: httpx.AsyncClient, summary: DistillSummary):
        self.config, self.client, self.summary = config, client, summary
        self._next_url = 0

    def _url(self) -> str:
        url = self.config.base_urls[self._next_url % len(self.config.base_urls)]
        self._next_url += 1
        return url.rstrip("/") + "/chat/completions"

    async def critique(self, pair: PairRecord) -> dict[str, Any]:
        try:
            body, swapped, label = teacher_request(pair, self.config)
        except (OSError, ValueError):
            raise RequestFailed("image_unreadable") from None
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        last_error = ""
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                self.summary.retries += 1
                delay = self.config.backoff_s * 2 ** (attempt - 1)
                await asyncio.sleep(delay * (0.5 + random.random()))
            url = self._url()
            try:
                reply = await self.client.post(url, json=body, headers=headers)
            except httpx.HTTPError as error:
                last_error = f"{type(error).__name__}"
                continue
            if reply.status_code in RETRY_STATUS:
                last_error = f"http_{reply.status_code}"
                continue
            if reply.status_code != 200:
                raise RequestFailed(f"http_{reply.status_code}")
            try:
                choice = reply.json()["choices"][0]
                output = choice["message"].get("content") or ""
            except (ValueError, KeyError, IndexError, TypeError):
                last_error = "bad_response"
                continue
            return {"id": pair.id, "swapped": swapped, "label": label, "model": self.config.model,
                    "output": output, "finish_reason": choice.get("finish_reason")}
        raise RequestFailed(last_error or "unknown")


async def distill(pairs_path: Path, cache_path: Path, config: TeacherConfig, progress: bool = True,
                  ) -> DistillSummary:
    """Critique every pair of ``pairs_path`` not yet in ``cache_path``; append each answer as it arrives."""
    from tqdm import tqdm

    if not config.base_urls:
        raise ValueError("at least one teacher base URL is needed")
    cache = TeacherCache(cache_path)
    removed = cache.repair()
    if removed:
        print(f"{cache_path}: cut a torn last line ({removed} bytes)", file=sys.stderr)
    cached = cache.ids()
    summary = DistillSummary()
    for pair in iter_pairs(pairs_path):
        summary.total += 1
        summary.cached_before += pair.id in cached
    queue: asyncio.Queue[PairRecord | None] = asyncio.Queue(maxsize=2 * config.concurrency)
    bar = tqdm(total=summary.total - summary.cached_before, desc="teacher", unit="pair", disable=not progress)
    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    async with httpx.AsyncClient(timeout=config.timeout_s, limits=limits) as http:
        teacher = TeacherClient(config, http, summary)
        with cache_path.open("a", encoding="utf-8") as out:

            async def worker() -> None:
                while (pair := await queue.get()) is not None:
                    try:
                        entry = await teacher.critique(pair)
                    except RequestFailed as failure:
                        summary.failed[str(failure)] += 1
                    else:
                        out.write(json.dumps(entry, ensure_ascii=False) + "\n")
                        out.flush()
                        summary.done += 1
                    bar.update(1)

            workers = [asyncio.create_task(worker()) for _ in range(config.concurrency)]
            queued: set[str] = set()
            for pair in iter_pairs(pairs_path):
                if pair.id not in cached and pair.id not in queued:
                    queued.add(pair.id)
                    await queue.put(pair)
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
    bar.close()
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, required=True, help="pairs.jsonl from stage 1")
    parser.add_argument("--cache", type=Path, required=True, help="append-only teacher cache (JSONL)")
    parser.add_argument("--base-url", action="append", required=True,
                        help="OpenAI-compatible base URL ending in /v1; repeatable")
    parser.add_argument("--model", required=True, help="model name the endpoint serves")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY",
                        help="environment variable holding the API key (unset: no key sent)")
    defaults = TeacherConfig(base_urls=(), model="")
    for name in ("max_tokens", "temperature", "concurrency", "max_retries", "backoff_s", "timeout_s", "seed"):
        value = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.concurrency < 1 or args.max_retries < 0:
        raise SystemExit("--concurrency must be >= 1 and --max-retries >= 0")
    if not args.pairs.is_file():
        raise SystemExit(f"{args.pairs}: no such pairs file (run stage 1 first)")
    config = TeacherConfig(
        base_urls=tuple(args.base_url), model=args.model, api_key=os.environ.get(args.api_key_env) or None,
        **{name: getattr(args, name) for name in
           ("max_tokens", "temperature", "concurrency", "max_retries", "backoff_s", "timeout_s", "seed")},
    )
    summary = asyncio.run(distill(args.pairs, args.cache, config, progress=not args.no_progress))
    print(summary.report())
    if summary.failed:
        sys.exit(f"{sum(summary.failed.values())} pairs failed; rerun the same command to retry only those")


if __name__ == "__main__":
    main()
