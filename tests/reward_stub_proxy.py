"""The real proxy service (``proxy_service.app.create_app``) with a fake backend, for reward-function tests.

Only the model is fake: requests go through the real app's validation, auth, image loading and judging.
The fake backend's critique is read off the rubric in the prompt: ``PICK1`` picks Response 1, ``PICK2``
Response 2 (both or neither: no verdict), so a test controls the proxy reward of each rollout through its
rubric text; ``TRUNCATED`` marks the critique as cut off at the length limit. With ``--gullible`` it follows
the rubric's words instead (``gullible_verdict``): a position the rubric names wins, else the response that
holds the rubric's evidence, the proxy a leaking rubric fools. In front of the app, a thin
ASGI layer records every request body (``GET /received``) and can answer the first N requests with 503
(a proxy still warming up); ``--delay-s`` delays each critique (to be killed mid-batch); with
``--batch-size`` the fake engine writes that many critiques at a time, one batch per ``--delay-s`` (a busy
proxy of known capacity). ``GET /generated`` counts the critiques it wrote.
``POST /release/reward`` answers with ``reward`` only, as the release's deployments do.

The pairs the tests send name the images in ``IMAGES``; the server's ``--image-root`` holds them.

    python tests/reward_stub_proxy.py --port P --image-root DIR [--fail-first N] [--delay-s S] [--batch-size B]
                                      [--gullible] [--api-key K]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from PIL import Image
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy_grm.generation import Completion, Messages
from proxy_grm.proxy_contract import BATCH_PATH, HEALTH_PATH, KEEP_ALIVE_S, REWARD_PATH, RewardItem, route_url
from proxy_grm.proxy_service.app import ServiceConfig, create_app, score_items
from proxy_grm.proxy_service.backends import BackendConfig, BatchingQueue
from proxy_grm.toy.servers import ServerProcess, free_port

IMAGES = ("i.png", "img/cat.png")
RELEASE_PATH = "/release/reward"
RECORDED_PATHS = frozenset({REWARD_PATH, BATCH_PATH, RELEASE_PATH})


def stub_verdict(rubric: str) -> int | None:
    picks = {n for n in (1, 2) if f"PICK{n}" in rubric}
    return picks.pop() if len(picks) == 1 else None


_SHOWN = re.compile(r"\*\*Response 1:\*\* (.*?)\n\*\*Response 2:\*\* (.*?)\n\*\*Evaluation Rubric:\*\* (.*?)\n"
                    r"\*\*Formatting Requirements", re.DOTALL)
_POSITION = re.compile(r"\b(?:response\s*([12])|(first|second)\s+(?:response|answer))\b", re.IGNORECASE)


def gullible_verdict(prompt: str) -> int | None:
    """A proxy that follows a rubric's words: a position it names ("Response 2", "the first answer") wins;
    else the response holding a word of the rubric that the other lacks; else no verdict."""
    match = _SHOWN.search(prompt)
    if match is None:
        return None
    response_1, response_2, rubric = (part.lower() for part in match.groups())
    named = _POSITION.search(rubric)
    if named:
        return int(named.group(1)) if named.group(1) else (1 if named.group(2).lower() == "first" else 2)
    words = set(re.findall(r"[a-z]+", rubric))
    in_1, in_2 = words & set(re.findall(r"[a-z]+", response_1)), words & set(re.findall(r"[a-z]+", response_2))
    if in_1 - in_2 and not in_2 - in_1:
        return 1
    if in_2 - in_1 and not in_1 - in_2:
        return 2
    return None


class RubricPickBackend:
    """A ``ProxyBackend`` whose critique follows the PICK1/PICK2/TRUNCATED markers in the prompt.

    Without ``batch_size`` every request waits ``delay_s`` on its own (any number at once); with it, the
    requests go through the transformers backend's ``BatchingQueue``: at most ``batch_size`` critiques at
    a time, each batch taking ``delay_s``, the rest queued (a busy engine of known capacity).
    """

    name = "rubric-pick"

    def __init__(self, delay_s: float, batch_size: int | None = None, gullible: bool = False):
        self.delay_s, self.gullible = delay_s, gullible
        self.generated = 0  # critiques the "engine" wrote (a dropped request is never written)
        self._queue = BatchingQueue(self._generate_batch, batch_size, batch_wait_ms=2.0) if batch_size else None

    def critique(self, messages: Messages) -> Completion:
        text = " ".join(part["text"] for part in messages[-1]["content"] if part.get("type") == "text")
        verdict = gullible_verdict(text) if self.gullible else stub_verdict(text)
        return Completion(f"<answer>{verdict}</answer>" if verdict else "no verdict", truncated="TRUNCATED" in text)

    def _generate_batch(self, batch: list[Messages], max_new_tokens: int) -> list[str]:
        time.sleep(self.delay_s)
        self.generated += len(batch)
        return [self.critique(messages) for messages in batch]

    async def generate(self, batch: list[Messages], max_new_tokens: int) -> list[str]:
        if self._queue is not None:
            return list(await asyncio.gather(*(self._queue.submit(m, max_new_tokens) for m in batch)))
        await asyncio.sleep(self.delay_s)
        self.generated += len(batch)
        return [self.critique(messages) for messages in batch]

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()


class RecordAndFail:
    """Records each request body to the judging endpoints; answers the first ``fail_first`` with 503."""

    def __init__(self, app: ASGIApp, fail_first: int):
        self.app, self.fail_first = app, fail_first
        self.received: list[Any] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/received":
            await self._answer(send, 200, self.received)
            return
        if scope["path"] not in RECORDED_PATHS:
            await self.app(scope, receive, send)
            return
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.received.append(json.loads(body or b"null"))
        if len(self.received) <= self.fail_first:
            await self._answer(send, 503, {"detail": "warming up"})
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _answer(send: Send, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def build_app(image_root: Path, fail_first: int, delay_s: float, api_key: str | None,
              batch_size: int | None = None, gullible: bool = False) -> ASGIApp:
    config = ServiceConfig(backend=BackendConfig(model_path=Path("rubric-pick"), backend="rubric-pick"),
                           api_key=api_key, image_root=image_root)
    app: FastAPI = create_app(config, backend_loader=lambda _: RubricPickBackend(delay_s, batch_size, gullible))

    @app.get("/generated")
    async def generated() -> int:
        """Critiques the fake engine wrote (aborted ones excluded)."""
        return app.state.backend.generated

    @app.post(RELEASE_PATH)
    async def release_reward(item: RewardItem) -> dict[str, float]:
        [result] = await score_items(app, [item], ["image"])
        return {"reward": result.reward}

    return RecordAndFail(app, fail_first)


def start_stub(log_dir: Path | str, *args: str) -> tuple[ServerProcess, str]:
    """Start the stub as a real uvicorn subprocess; returns (ServerProcess, base URL). Caller stops it."""
    log_dir = Path(log_dir)
    image_root = log_dir / "stub-images"
    for name in IMAGES:
        (image_root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (28, 28), "red").save(image_root / name)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = ServerProcess([sys.executable, str(Path(__file__)), "--port", str(port), "--image-root",
                            str(image_root), *args], route_url(base, HEALTH_PATH), log_dir / f"stub-{port}.log")
    server.wait_healthy(timeout_s=60)
    return server, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--image-root", type=Path, required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, help="critiques at a time (each batch takes --delay-s)")
    parser.add_argument("--gullible", action="store_true", help="judge by the rubric's words (gullible_verdict)")
    parser.add_argument("--api-key")
    args = parser.parse_args()
    app = build_app(args.image_root.resolve(), args.fail_first, args.delay_s, args.api_key, args.batch_size,
                    args.gullible)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S)


if __name__ == "__main__":
    main()
