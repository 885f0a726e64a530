"""Rubric transfer: does the GRM's rubric help a second evaluator judge the same pair?

From a GRM answers file, each rubric (``extract_rubric``: the critique up to
``</rubric>``, without ``<justify>``) is handed to another evaluator together
with the pair, in the order the GRM saw it. The evaluator judges every pair
with the GRM's rubric and with ``NEUTRAL_RUBRIC``; the accuracy gap is the
paper's transfer claim, measured. Two checks say whether a gain comes from
criteria or from leaks: the share of rubrics that leak the verdict
(``parsing.rubric_leak``: a response named by position, or the winner), with the
accuracy on the rubrics that do not; and the evaluator's accuracy with the GRM's
rubric on the pair swapped (the label with it) and in both orders at once. A
rubric of criteria decides the pair whatever the order; "Response 1 is better"
points at the other response once the pair is swapped.

Why a neutral rubric rather than an empty one: the proxy prompt has an
"Evaluation Rubric" slot and the proxy service refuses a blank rubric, so the
baseline fills the slot with generic criteria that carry no pair-specific
information.

Two evaluators: our proxy service (``POST /get_reward_mllm_batch``, the contract
in ``proxy_grm.proxy_contract``) or any OpenAI-compatible chat endpoint
(``/v1/chat/completions`` through the ``openai`` client, which retries with
backoff; the prompt is ``proxy_prompt`` and the verdict is read as the proxy
service reads it). Calls are retried a bounded number of times (for the proxy, the
reward's policy: ``proxy_client.request_json`` retries connection errors, 429 and 5xx),
then fail with the URL and the cause: an unreachable evaluator never turns into a score.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import httpx
import openai
from pydantic import ValidationError

from proxy_grm.datafiles import iter_jsonl
from proxy_grm.evaluation.answers import label_of, require
from proxy_grm.images import image_to_data_uri, load_image
from proxy_grm.messages import openai_messages
from proxy_grm.pairs import show
from proxy_grm.parsing import Fallback, extract_rubric, parse_verdict, rubric_leak
from proxy_grm.prompts import proxy_prompt
from proxy_grm.proxy_contract import BATCH_PATH, BatchRequest, BatchResult, RewardItem, RewardResult, route_url
from proxy_grm.reward.proxy_client import ProxyCallError, request_json

RETRY_BACKOFF_S = 1.0  # a whole batch of critiques per call: wait 1, 2, 4 s between tries
NEUTRAL_RUBRIC = ("<rubric>\nCorrectness with respect to the image (50%), helpfulness and completeness (30%), "
                  "clarity (20%).\n</rubric>")


@dataclass(frozen=True)
class TransferItem:
    """One pair, as the GRM saw it, with the GRM's rubric."""

    row_index: int
    question: str
    response_1: str
    response_2: str
    image: str
    answer: int
    rubric: str

    def swapped(self) -> TransferItem:
        """The same pair shown the other way round; ``answer`` follows the better response."""
        return replace(self, response_1=self.response_2, response_2=self.response_1, answer=3 - self.answer)


@dataclass
class TransferInputs:
    items: list[TransferItem]
    no_rubric: int
    video_rows: int


def transfer_items(answers_file: Path, limit: int | None = None) -> TransferInputs:
    """Items with a rubric; rows without one, and video rows (the evaluators take one image), are counted."""
    items: list[TransferItem] = []
    no_rubric = video_rows = 0
    for position, (lineno, row) in enumerate(iter_jsonl(answers_file)):
        where = f"{answers_file}:{lineno}"
        if not row.get("image"):
            video_rows += 1
            continue
        rubric = extract_rubric(str(require(row, "critic", where)))
        if rubric is None:
            no_rubric += 1
            continue
        shown = show(str(require(row, "chosen", where)), str(require(row, "rejected", where)),
                     label_of(row, where) == 2)
        items.append(TransferItem(row.get("row_index", position), str(require(row, "prompt", where)),
                                  shown.response_1, shown.response_2, str(row["image"]), shown.label, rubric))
        if limit is not None and len(items) >= limit:
            break
    return TransferInputs(items, no_rubric, video_rows)


class Evaluator(Protocol):
    def judge(self, items: list[TransferItem], rubrics: list[str]) -> list[int | None]:
        """One verdict (1, 2 or None) per item, judged with the matching rubric."""
        ...


class EvaluatorError(RuntimeError):
    """The evaluator could not be reached or answered nonsense; the message names the URL."""


class ProxyEvaluator:
    """Our proxy service's batch endpoint."""

    def __init__(self, url: str, api_key: str | None = None, batch_size: int = 32, timeout_s: float = 600.0,
                 retries: int = 3, inline_images: bool = False):
        self.url = route_url(url, BATCH_PATH)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=timeout_s, headers=headers)
        self.batch_size, self.retries, self.inline_images = batch_size, retries, inline_images

    def _image(self, ref: str) -> str:
        return image_to_data_uri(load_image(ref)) if self.inline_images else ref

    def judge(self, items: list[TransferItem], rubrics: list[str]) -> list[int | None]:
        return [r.verdict if r.verdict in (1, 2) else None for r in self.results(items, rubrics)]

    def results(self, items: list[TransferItem], rubrics: list[str]) -> list[RewardResult]:
        """The service's result per item (``reward``, ``verdict``, ``critique``, ``truncated``)."""
        results: list[RewardResult] = []
        for start in range(0, len(items), self.batch_size):
            chunk = list(zip(items[start:start + self.batch_size], rubrics[start:start + self.batch_size]))
            body = BatchRequest(items=[RewardItem(question=i.question, chosen=i.response_1, rejected=i.response_2,
                                                  image=self._image(i.image), answer=i.answer, rubric=r)
                                       for i, r in chunk])
            try:
                reply = request_json(self.client, self.url, body.to_json(), max_retries=self.retries,
                                     backoff_s=RETRY_BACKOFF_S)
            except ProxyCallError as error:
                raise EvaluatorError(f"{self.url}: {error.cause}") from None
            try:
                answer = BatchResult.model_validate(reply).results
            except ValidationError as error:
                raise EvaluatorError(f"{self.url}: not a batch reply ({error.errors()[0]['msg']}): "
                                     f"{json.dumps(reply)[:200]}") from None
            if len(answer) != len(chunk):
                raise EvaluatorError(f"{self.url}: expected {len(chunk)} results, got {len(answer)}")
            results += answer
        return results


class OpenAIEvaluator:
    """Any OpenAI-compatible chat endpoint (vLLM, SGLang, a hosted API), judged with ``proxy_prompt``."""

    def __init__(self, url: str, model: str, api_key: str | None = None, max_tokens: int = 1024,
                 concurrency: int = 8, timeout_s: float = 600.0, retries: int = 3):
        self.url = url.rstrip("/") + "/chat/completions"
        self.client = openai.OpenAI(base_url=url, api_key=api_key or "none", max_retries=retries,
                                    timeout=timeout_s)
        self.model, self.max_tokens, self.concurrency = model, max_tokens, concurrency

    def _judge_one(self, item: TransferItem, rubric: str) -> int | None:
        text = proxy_prompt(item.question, item.response_1, item.response_2, rubric)
        messages = openai_messages(text, image_to_data_uri(load_image(item.image)))
        try:
            reply = self.client.chat.completions.create(model=self.model, messages=messages,
                                                        max_tokens=self.max_tokens, temperature=0.0)
        except openai.APIError as error:
            raise EvaluatorError(f"{self.url}: {type(error).__name__}: {error}") from None
        if not reply.choices:
            raise EvaluatorError(f"{self.url}: a reply without choices")
        completion = reply.choices[0].message.content or ""
        # Read as the proxy service reads its own critiques, so both evaluators are comparable.
        return parse_verdict(completion, Fallback.LAST_DIGIT)

    def judge(self, items: list[TransferItem], rubrics: list[str]) -> list[int | None]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._judge_one, items, rubrics))


def _accuracy(verdicts: list[int | None], items: list[TransferItem]) -> dict[str, Any]:
    correct = sum(v == i.answer for v, i in zip(verdicts, items))
    return {"accuracy": correct / len(items) if items else None, "correct": correct,
            "unparsed": sum(v is None for v in verdicts)}


def run_transfer(inputs: TransferInputs, evaluator: Evaluator,
                 progress: Callable[[str], None] = print) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Judge every item with its rubric (as shown and swapped) and without; returns the summary and per-item rows.

    Unparseable evaluator verdicts count as wrong in every condition.
    """
    items = inputs.items
    progress(f"judging {len(items)} pairs with the GRM's rubrics")
    with_rubric = evaluator.judge(items, [i.rubric for i in items])
    progress(f"judging {len(items)} pairs with the GRM's rubrics, the pair swapped")
    swapped_items = [item.swapped() for item in items]
    swapped = evaluator.judge(swapped_items, [i.rubric for i in items])
    progress(f"judging {len(items)} pairs with the neutral rubric")
    without_rubric = evaluator.judge(items, [NEUTRAL_RUBRIC] * len(items))
    leaks = [rubric_leak(item.rubric) for item in items]
    both = [a == item.answer and b == other.answer
            for a, b, item, other in zip(with_rubric, swapped, items, swapped_items)]
    clean = [i for i, leak in enumerate(leaks) if leak is None]
    summary = {
        "pairs": len(items), "skipped_no_rubric": inputs.no_rubric, "skipped_video": inputs.video_rows,
        "with_rubric": _accuracy(with_rubric, items), "without_rubric": _accuracy(without_rubric, items),
        "with_rubric_swapped": _accuracy(swapped, swapped_items),
        "with_rubric_both_orders": {"accuracy": sum(both) / len(items) if items else None, "correct": sum(both)},
        "rubric_leaks": len(items) - len(clean), "leak_rate": (len(items) - len(clean)) / len(items) if items else None,
        "with_rubric_no_leak": _accuracy([with_rubric[i] for i in clean], [items[i] for i in clean]),
        "neutral_rubric": NEUTRAL_RUBRIC, "unparsed_policy": "wrong",
    }
    if items:
        summary["gain"] = summary["with_rubric"]["accuracy"] - summary["without_rubric"]["accuracy"]
    rows = [{**asdict(item), "verdict_with_rubric": a, "verdict_with_rubric_swapped": b,
             "verdict_without_rubric": c, "rubric_leak": leak}
            for item, a, b, c, leak in zip(items, with_rubric, swapped, without_rubric, leaks)]
    return summary, rows


def output_paths(answers_file: Path) -> tuple[Path, Path]:
    """``<stem>_rubric_transfer.json`` (summary) and ``.jsonl`` (per pair) next to the answers file."""
    stem = answers_file.with_name(answers_file.stem + "_rubric_transfer")
    return stem.with_suffix(".json"), stem.with_suffix(".jsonl")


def write_outputs(answers_file: Path, summary: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[Path, Path]:
    """Write the summary and the per-pair rows at ``output_paths(answers_file)``."""
    summary_path, rows_path = output_paths(answers_file)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    rows_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return summary_path, rows_path
