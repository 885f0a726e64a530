"""A deterministic stand-in teacher: a local OpenAI-compatible chat-completions server whose answers parse.

It exists for tests and the CPU demo, where the 235B teacher cannot run. It speaks the same protocol
(``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``), reads the two responses out of
the GRM prompt and answers in the GRM format. Its rule: the response with more words wins (ties: 1).
So it is right on some pairs and wrong on others, and the correct/hard split is predictable
(``stub_verdict``). The rubric names the image size it decoded, proving the image arrived.
A prompt in the proxy format gets a ``<think>..</think><answer>N</answer>`` reply by the same rule.

``--fail-every N`` answers 503 to every N-th request (to exercise client retries); ``--delay-s``
slows every answer (to interrupt a run midway).

    python -m proxy_grm.data.teacher_stub --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from proxy_grm.images import ImageLoadError, load_image

_GRM_RE = re.compile(
    r"\[The Start of Chatbot 1's Response\]\n(?P<r1>.*?)\n\[The End of Chatbot 1's Response\].*?"
    r"\[The Start of Chatbot 2's Response\]\n(?P<r2>.*?)\n\[The End of Chatbot 2's Response\]",
    re.DOTALL,
)
_PROXY_RE = re.compile(r"\*\*Response 1:\*\* (?P<r1>.*?)\n\*\*Response 2:\*\* (?P<r2>.*?)\n\*\*Evaluation Rubric", re.DOTALL)


def stub_verdict(response_1: str, response_2: str) -> int:
    """The stub's judgement: more words wins, a tie goes to Response 1."""
    return 2 if len(response_2.split()) > len(response_1.split()) else 1


def grm_answer(response_1: str, response_2: str, image_size: tuple[int, int] | None) -> str:
    """A short critique in the GRM format, the same template every time (only the image size and the
    verdict vary), so the tiny demo model learns its shape in a few dozen SFT steps."""
    verdict = stub_verdict(response_1, response_2)
    size = f"{image_size[0]}x{image_size[1]}" if image_size else "none"
    return (
        "<rubric>\n"
        f"1. Detail, 60%: the {size} image.\n"
        "2. Accuracy, 40%: its objects.\n"
        "</rubric>\n"
        f"<eval>Response {verdict} has more words.</eval>\n"
        f"<answer>{verdict}</answer>"
    )


def proxy_answer(response_1: str, response_2: str) -> str:
    """A proxy critique by the same rule, in the ``<think>..</think><answer>N</answer>`` format."""
    verdict = stub_verdict(response_1, response_2)
    return f"<think>Response {verdict} has more words.</think><answer>{verdict}</answer>"


class ChatRequest(BaseModel):
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    temperature: float | None = None


def _parts(messages: list[dict[str, Any]]) -> tuple[str, str | None]:
    """The last user turn's text and its first image URL."""
    text, image = "", None
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            text = content
            continue
        text = "".join(item.get("text", "") for item in content if item.get("type") == "text")
        urls = [item["image_url"]["url"] for item in content if item.get("type") == "image_url"]
        image = urls[0] if urls else image
    return text, image


def create_app(model: str = "teacher-stub", fail_every: int = 0, delay_s: float = 0.0) -> FastAPI:
    app = FastAPI(title="teacher stub")
    counter = itertools.count(1)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model, "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest) -> dict[str, Any]:
        if fail_every and next(counter) % fail_every == 0:
            raise HTTPException(status_code=503, detail="deliberate failure (--fail-every)")
        if delay_s:
            await asyncio.sleep(delay_s)
        text, image_url = _parts(request.messages)
        size = None
        if image_url is not None:
            try:
                size = load_image(image_url, field="image_url").size
            except ImageLoadError as error:
                raise HTTPException(status_code=400, detail=str(error)) from None
        if match := _GRM_RE.search(text):
            content = grm_answer(match["r1"], match["r2"], size)
        elif match := _PROXY_RE.search(text):
            content = proxy_answer(match["r1"], match["r2"])
        else:
            raise HTTPException(status_code=400, detail="prompt is neither a GRM nor a proxy prompt")
        return {
            "id": "stub", "object": "chat.completion", "model": request.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Deterministic OpenAI-compatible stand-in teacher.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="teacher-stub")
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--delay-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.model, args.fail_every, args.delay_s), host=args.host, port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
