"""Stage 2: teacher critiques for every pair, from any OpenAI-compatible chat-completions endpoint.

Each pair is sent once as the GRM instruction prompt (``proxy_grm.prompts.grm_prompt``) with its image as
a base64 data URI, the two responses in an order fixed per pair id (``proxy_grm.pairs.is_reversed``), so
the labels are ~50/50 and the order is recorded (``reverse``). Answers go to an append-only JSONL cache, one
line per pair id, flushed per line: a run killed at any moment resumes by skipping the ids already there (a
torn last line is cut off first), so nothing is lost or duplicated. Requests that still fail after the
``openai`` client's retries are counted and left out of the cache; rerunning retries exactly those.

Several ``--base-url`` values spread requests round robin (a pair's retries stay on its endpoint).
The API key, when the endpoint needs one, comes from the environment variable named by ``--api-key-env``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai

from proxy_grm.pairs import iter_pairs
from proxy_grm.datafiles import DataFileError, append_jsonl, iter_jsonl, repair_torn_tail
from proxy_grm.images import file_to_data_uri
from proxy_grm.messages import openai_messages
from proxy_grm.pairs import PairRecord, ShownPair, is_reversed
from proxy_grm.prompts import grm_prompt

class TeacherCache:
    """The append-only JSONL cache: ``{"id", "reverse", "label", "model", "output", "finish_reason"}``."""

    def __init__(self, path: Path):
        self.path = path

    def ids(self) -> set[str]:
        """Ids present in the cache; a corrupt complete line is an error naming it."""
        if not self.path.exists():
            return set()
        found: set[str] = set()
        for lineno, entry in iter_jsonl(self.path):
            if not isinstance(entry.get("id"), str):
                raise DataFileError(f"{self.path}:{lineno}: not a cache entry (no 'id')")
            found.add(entry["id"])
        return found

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every cache entry, streamed."""
        for _, entry in iter_jsonl(self.path):
            yield entry


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


def teacher_request(pair: PairRecord, config: TeacherConfig) -> tuple[dict[str, Any], ShownPair]:
    """The chat-completions request for one pair (the arguments of ``chat.completions.create``) and how its
    responses are shown; the distillation benchmark's one-at-a-time client sends the same requests.

    Raises ``OSError``/``ValueError`` when the pair's image cannot be read.
    """
    shown = pair.shown(is_reversed(config.seed, pair.id))
    body = {
        "model": config.model,
        "messages": openai_messages(grm_prompt(pair.question, shown.response_1, shown.response_2),
                                    file_to_data_uri(pair.image)),
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
    }
    return body, shown


class TeacherClient:
    """Sends one pair to the next endpoint (round robin); the ``openai`` client retries it there.

    Retries (connection errors, timeouts, 408/409/429/5xx) use the client's own exponential backoff with
    jitter, honouring ``Retry-After``; HTTP attempts beyond the first of each call are counted as retries.
    """

    def __init__(self, config: TeacherConfig):
        self.config = config
        limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
        self.http = httpx.AsyncClient(limits=limits, event_hooks={"request": [self._count_attempt]})
        self.clients = [
            openai.AsyncOpenAI(base_url=url, api_key=config.api_key or "none", max_retries=config.max_retries,
                               timeout=config.timeout_s, http_client=self.http)
            for url in config.base_urls
        ]
        self._next_client = itertools.cycle(self.clients)
        self.attempts = self.calls = 0

    async def _count_attempt(self, request: httpx.Request) -> None:
        self.attempts += 1

    @property
    def retries(self) -> int:
        return self.attempts - self.calls

    async def critique(self, pair: PairRecord) -> dict[str, Any]:
        try:
            body, shown = teacher_request(pair, self.config)
        except (OSError, ValueError):
            raise RequestFailed("image_unreadable") from None
        self.calls += 1
        try:
            reply = await next(self._next_client).chat.completions.create(**body)
        except openai.APIStatusError as error:
            raise RequestFailed(f"http_{error.status_code}") from None
        except openai.APIConnectionError as error:
            raise RequestFailed(type(error.__cause__ or error).__name__) from None
        if not reply.choices:
            raise RequestFailed("bad_response")
        choice = reply.choices[0]
        return {"id": pair.id, "reverse": shown.reverse, "label": shown.label, "model": self.config.model,
                "output": choice.message.content or "", "finish_reason": choice.finish_reason}

    async def aclose(self) -> None:
        await self.http.aclose()


async def distill(pairs_path: Path, cache_path: Path, config: TeacherConfig, progress: bool = True,
                  ) -> DistillSummary:
    """Critique every pair of ``pairs_path`` not yet in ``cache_path``; append each answer as it arrives."""
    from tqdm import tqdm

    if not config.base_urls:
        raise ValueError("at least one teacher base URL is needed")
    cache = TeacherCache(cache_path)
    removed = repair_torn_tail(cache_path)
    if removed:
        print(f"{cache_path}: cut a torn last line ({removed} bytes)", file=sys.stderr)
    cached = cache.ids()
    summary = DistillSummary()
    for pair in iter_pairs(pairs_path):
        summary.total += 1
        summary.cached_before += pair.id in cached
    queue: asyncio.Queue[PairRecord | None] = asyncio.Queue(maxsize=2 * config.concurrency)
    bar = tqdm(total=summary.total - summary.cached_before, desc="teacher", unit="pair", disable=not progress)
    teacher = TeacherClient(config)
    try:
        with append_jsonl(cache_path) as out:

            async def worker() -> None:
                while (pair := await queue.get()) is not None:
                    try:
                        entry = await teacher.critique(pair)
                    except RequestFailed as failure:
                        summary.failed[str(failure)] += 1
                    else:
                        out.write(entry)
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
    finally:
        await teacher.aclose()
        summary.retries = teacher.retries
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
    for name in ("max_tokens", "temperature", "concurrency", "max_retries", "timeout_s", "seed"):
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
           ("max_tokens", "temperature", "concurrency", "max_retries", "timeout_s", "seed")},
    )
    summary = asyncio.run(distill(args.pairs, args.cache, config, progress=not args.no_progress))
    print(summary.report())
    if summary.failed:
        sys.exit(f"{sum(summary.failed.values())} pairs failed; rerun the same command to retry only those")


if __name__ == "__main__":
    main()
