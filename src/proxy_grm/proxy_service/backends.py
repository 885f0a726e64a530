"""Engines behind the proxy service, all batching concurrent requests.

- ``vllm``: vLLM's async engine; every request goes in as it arrives and the
  engine batches continuously (the GPU path, and the release's choice). Its prefix
  cache is on: the rollouts of a GRPO group send the same image, instruction,
  question and responses and differ only in the rubric, which comes last, so the
  shared part is computed once per group (see ``benchmarks/reward_throughput.py``).
  Its stats are on too, so ``/metrics`` shows the cache's hits.
- ``transformers``: one model, one worker thread; requests that arrive within
  ``batch_wait_ms`` of each other (up to ``max_batch_size``) share one
  left-padded ``generate`` call instead of running one by one. It has no prefix
  cache: every prompt is computed in full, shared prefix included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from proxy_grm.generation import AsyncVllmGenerator, Messages, TransformersGenerator
from proxy_grm.pixels import PixelBudget

BACKENDS = ("vllm", "transformers")
TRANSFORMERS_MAX_BATCH = 32


@dataclass(frozen=True)
class BackendConfig:
    """What it takes to load a backend; CLI flags map onto it one to one."""

    model_path: Path
    backend: str = "vllm"
    tp: int = 1
    dtype: str = "auto"
    device: str | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    enforce_eager: bool = False
    prefix_caching: bool = True  # vllm backend; off only to measure what the cache is worth
    max_batch_size: int | None = None
    batch_wait_ms: float = 10.0
    pixels: PixelBudget | None = None  # None: the shared budget (proxy_grm.pixels)


class ProxyBackend(Protocol):
    name: str

    async def generate(self, batch: list[Messages], max_new_tokens: int) -> list[str]:
        """One greedy completion per conversation, in order; concurrent calls are batched together."""
        ...

    def close(self) -> None:
        ...


class BatchingQueue:
    """Collects concurrent requests for a few milliseconds and runs them as one batch in a thread.

    One batch runs at a time (one model, one device), so requests that arrive while
    a batch runs form the next one.
    """

    def __init__(self, generate: Callable[[list[Messages], int], list[str]], max_batch_size: int,
                 batch_wait_ms: float):
        self._generate = generate
        self._max_batch_size = max_batch_size
        self._wait_s = batch_wait_ms / 1000
        self._queue: asyncio.Queue[tuple[Messages, int, asyncio.Future[str]]] = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, messages: Messages, max_new_tokens: int) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        await self._queue.put((messages, max_new_tokens, future))
        return await future

    async def _next_batch(self) -> list[tuple[Messages, int, asyncio.Future[str]]]:
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        deadline = loop.time() + self._wait_s
        while len(batch) < self._max_batch_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            # One generate call per token budget (the server uses one, but stay correct for several).
            for budget in sorted({item[1] for item in batch}):
                group = [item for item in batch if item[1] == budget and not item[2].cancelled()]
                if group:
                    await self._run_group(group, budget)

    async def _run_group(self, group: list[tuple[Messages, int, asyncio.Future[str]]], budget: int) -> None:
        try:
            texts = await asyncio.to_thread(self._generate, [item[0] for item in group], budget)
        except Exception as error:  # noqa: BLE001 - handed to the waiting request(s)
            if len(group) == 1:
                if not group[0][2].done():
                    group[0][2].set_exception(error)
                return
            # One bad request must not fail the others batched with it: run each alone.
            for item in group:
                await self._run_group([item], budget)
            return
        for (_, _, future), text in zip(group, texts, strict=True):
            if not future.done():
                future.set_result(text)

    def close(self) -> None:
        self._worker.cancel()


class TransformersBackend:
    name = "transformers"

    def __init__(self, config: BackendConfig):
        self.generator = TransformersGenerator(config.model_path, device=config.device,
                                               dtype=None if config.dtype == "auto" else config.dtype,
                                               pixels=config.pixels)
        self._queue = BatchingQueue(self.generator.generate, config.max_batch_size or TRANSFORMERS_MAX_BATCH,
                                    config.batch_wait_ms)

    async def generate(self, batch: list[Messages], max_new_tokens: int) -> list[str]:
        return list(await asyncio.gather(*(self._queue.submit(m, max_new_tokens) for m in batch)))

    def close(self) -> None:
        self._queue.close()


class VllmBackend:
    name = "vllm"

    def __init__(self, config: BackendConfig):
        self.generator = AsyncVllmGenerator(
            config.model_path, tp=config.tp, dtype=config.dtype, max_model_len=config.max_model_len,
            gpu_memory_utilization=config.gpu_memory_utilization, enforce_eager=config.enforce_eager,
            pixels=config.pixels, enable_prefix_caching=config.prefix_caching, disable_log_stats=False,
            **({"max_num_seqs": config.max_batch_size} if config.max_batch_size else {}),
        )

    async def generate(self, batch: list[Messages], max_new_tokens: int) -> list[str]:
        return await self.generator.generate(batch, max_new_tokens)

    def close(self) -> None:
        self.generator.shutdown()


def load_backend(config: BackendConfig) -> ProxyBackend:
    """Load the model into the named backend; call from inside the server's event loop."""
    if config.backend == "vllm":
        return VllmBackend(config)
    if config.backend == "transformers":
        return TransformersBackend(config)
    raise ValueError(f"unknown backend {config.backend!r}; expected one of {', '.join(BACKENDS)}")
