"""The one generation runner: pairs in, GRM verdicts out, resumable.

Each answers row is the question row plus ``row_index`` and ``row_key`` (a hash
of the question row): benchmark ids are not unique (VL-RewardBench repeats some,
MM-RLHF-RewardBench has several pairs per id), so progress is keyed by row.
A rerun skips rows already written, checks that they belong to this question
file, and appends the rest; the answers file is never deleted or rewritten
(only a half-written last line left by a kill is cut off).

The pair order (``--order``) is the benchmark file's or ``proxy_grm.pairs.is_reversed``
keyed by ``--seed`` and the row index, so a resumed run shows every pair in the same
order as an uninterrupted one; it is recorded as ``reverse``.

Two protocols. Ours (``authors``): the GRM instruction the model was trained
with, and verdicts parsed with ``parse_verdict(..., Fallback.WHOLE_OUTPUT)`` for
all three benchmarks, the rule the GRM was trained under. An output without an
``<answer>`` tag is then unparsed (unless it names only one of the digits), and
the scorer's explicit ``--unparsed`` policy decides what it counts as, instead
of the last "1"/"2" in a truncated critique (often "Chatbot 1").
``--verdict-fallback last_digit`` reads that digit instead. ``release``: the
release eval scripts' prompt (their instruction variant and a literal
``<image>`` line), their stripped critique and their per-benchmark parser.
Both write ``qs`` (the user text given to the model), ``critic``, ``rewards``
and ``reverse`` as the release does, so its scorers read our files unchanged.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from proxy_grm.datafiles import append_jsonl, iter_jsonl, repair_torn_tail
from proxy_grm.evaluation.answers import AnswersFileError
from proxy_grm.evaluation.benchmarks import Benchmark, Order
from proxy_grm.evaluation.release import VERDICT_PARSERS
from proxy_grm.evaluation.scoring import AUTHORS, RELEASE
from proxy_grm.generation import Generator, Messages
from proxy_grm.images import sample_video_frames
from proxy_grm.messages import chat_messages
from proxy_grm.pairs import is_reversed, show
from proxy_grm.parsing import Fallback, parse_verdict
from proxy_grm.prompts import grm_prompt, release_grm_prompt

REQUIRED_FIELDS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on besides the model."""

    benchmark: Benchmark
    question_file: Path
    answers_file: Path
    seed: int = 0
    protocol: str = AUTHORS
    order: Order | None = None
    both_orders: bool = False
    batch_size: int = 32
    max_new_tokens: int = 4096
    image_root: Path | None = None
    num_frames: int = 32
    fallback: Fallback = Fallback.WHOLE_OUTPUT

    @property
    def pair_order(self) -> Order:
        """``order``, else the release's swap (release protocol) or the benchmark authors' order."""
        if self.order is not None:
            return self.order
        return Order.RANDOM if self.protocol == RELEASE else self.benchmark.default_order

    def parse(self, critic: str) -> int | None:
        """A critique's verdict under this run's protocol."""
        if self.protocol == RELEASE:
            return VERDICT_PARSERS[self.benchmark.name](critic)
        return parse_verdict(critic, self.fallback)


@dataclass
class RunSummary:
    """What a run did, for the closing summary."""

    total: int
    skipped: int
    generated: int
    unparsed: int
    seconds: float


def row_key(row: dict[str, Any]) -> str:
    """A short content hash of a question row: detects an answers file from another question file."""
    canonical = json.dumps(row, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def shown_reversed(config: RunConfig, row: dict[str, Any], row_index: int) -> bool:
    """Whether the row is shown rejected-first under the run's pair order.

    ``original`` reads the converters' ``chosen_first`` (absent: chosen first).
    """
    if config.pair_order is Order.ORIGINAL:
        return not row.get("chosen_first", True)
    return seeded_reversed(config.seed, row_index)


def seeded_reversed(seed: int, row_index: int) -> bool:
    """The random pair order of a question file's row (``is_reversed`` keyed by the row index): the one rule, so
    whatever else reads the file (the demo's fluency check) shows each row the way round the eval did."""
    return is_reversed(seed, str(row_index))


def load_questions(path: Path) -> list[dict[str, Any]]:
    """Question rows, each checked for the fields generation needs."""
    if not path.is_file():
        raise AnswersFileError(f"{path}: no such question file")
    rows = []
    for lineno, row in iter_jsonl(path):
        for field in REQUIRED_FIELDS:
            if not isinstance(row.get(field), str):
                raise AnswersFileError(f"{path}:{lineno}: field {field!r} must be a string")
        if not (row.get("image") or row.get("video")):
            raise AnswersFileError(f"{path}:{lineno}: needs an 'image' path or a 'video' frame folder")
        rows.append(row)
    if not rows:
        raise AnswersFileError(f"{path}: no question rows")
    return rows


def finished_rows(answers_file: Path, questions: list[dict[str, Any]]) -> set[int]:
    """Row indices already answered, after checking each answer against its question row."""
    if not answers_file.exists():
        return set()
    if repair_torn_tail(answers_file):
        print(f"{answers_file}: removed a half-written last line (interrupted run); it will be regenerated",
              file=sys.stderr)
    done: set[int] = set()
    for lineno, row in iter_jsonl(answers_file):
        where = f"{answers_file}:{lineno}"
        index = row.get("row_index")
        if not isinstance(index, int) or not 0 <= index < len(questions):
            raise AnswersFileError(f"{where}: 'row_index' {index!r} is missing or outside the question file; "
                                   "is this an answers file from another tool? Choose a new --answers_file.")
        if row.get("row_key") != row_key(questions[index]):
            raise AnswersFileError(f"{where}: written for a different question row {index}; "
                                   "choose a new --answers_file for this question file")
        if index in done:
            raise AnswersFileError(f"{where}: row {index} appears twice")
        done.add(index)
    return done


def pair_text(row: dict[str, Any], reverse: bool, config: RunConfig) -> str:
    """The GRM's user text for one pair (the answers row's ``qs``), in the order given by ``reverse``."""
    shown = show(row["chosen"], row["rejected"], reverse)
    build = release_grm_prompt if config.protocol == RELEASE else grm_prompt
    return build(row["prompt"], shown.response_1, shown.response_2)


def pair_messages(row: dict[str, Any], reverse: bool, config: RunConfig) -> Messages:
    """The GRM conversation for one pair: the image (or video) item, then ``pair_text``."""
    text = pair_text(row, reverse, config)
    if row.get("image"):
        return chat_messages(text, image=row["image"])
    folder = Path(row["video"])
    if config.image_root is not None and not folder.is_absolute():
        folder = config.image_root / folder
    return chat_messages(text, video=sample_video_frames(folder, config.num_frames))


def _rewards(verdict: int | None, benchmark: Benchmark) -> list[int]:
    """``rewards`` as the release wrote them, so its scorers read our files unchanged."""
    if verdict is None:
        return list(benchmark.release_unparsed_rewards)
    return [1, 0] if verdict == 1 else [0, 1]


def answer_rows(config: RunConfig, indices: list[int], questions: list[dict[str, Any]],
                generator: Generator) -> list[dict[str, Any]]:
    """Generate and assemble the answers rows for ``indices`` (one generator call)."""
    orders = [shown_reversed(config, questions[i], i) for i in indices]
    batch = [pair_messages(questions[i], reverse, config) for i, reverse in zip(indices, orders)]
    if config.both_orders:
        batch += [pair_messages(questions[i], not reverse, config) for i, reverse in zip(indices, orders)]
    critiques = generator.generate(batch, config.max_new_tokens)
    if len(critiques) != len(batch):
        raise RuntimeError(f"generator returned {len(critiques)} outputs for {len(batch)} prompts")
    if config.protocol == RELEASE:  # the release strips the decoded critique
        critiques = [critique.strip() for critique in critiques]
    rows = []
    for position, (index, reverse) in enumerate(zip(indices, orders)):
        question, critique = questions[index], critiques[position]
        verdict = config.parse(critique)
        row = {**question, "row_index": index, "row_key": row_key(question), "qs": pair_text(question, reverse, config),
               "reverse": reverse, "rewards": _rewards(verdict, config.benchmark), "verdict": verdict,
               "critic": critique}
        if config.both_orders:
            swapped = critiques[len(indices) + position]
            row.update(critic_swapped=swapped, verdict_swapped=config.parse(swapped))
        rows.append(row)
    return rows


def pending_rows(config: RunConfig) -> tuple[list[dict[str, Any]], list[int]]:
    """The question rows and the indices still to generate; validates both files first."""
    questions = load_questions(config.question_file)
    done = finished_rows(config.answers_file, questions)
    return questions, [i for i in range(len(questions)) if i not in done]


def run(config: RunConfig, generator: Generator, questions: list[dict[str, Any]],
        pending: list[int]) -> RunSummary:
    """Generate the pending rows in batches, appending each batch to the answers file as it finishes."""
    start = time.monotonic()
    unparsed = 0
    with append_jsonl(config.answers_file) as answers, \
            tqdm(total=len(questions), initial=len(questions) - len(pending), unit="pair",
                 desc=config.benchmark.title) as progress:
        for offset in range(0, len(pending), config.batch_size):
            chunk = pending[offset:offset + config.batch_size]
            rows = answer_rows(config, chunk, questions, generator)
            answers.write(*rows)
            unparsed += sum(row["verdict"] is None for row in rows)
            progress.update(len(chunk))
    return RunSummary(len(questions), len(questions) - len(pending), len(pending), unparsed,
                      time.monotonic() - start)
