"""A deterministic stand-in teacher: a local OpenAI-compatible chat-completions server whose answers parse.

It exists for tests and the CPU demo, where the 235B teacher cannot run. It speaks the same protocol
(``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``), reads the two responses out of the
GRM prompt and answers in the GRM format. It judges by the toy task's rule (``colour_task``) from the
image it decodes: the response that names the colour it sees wins. It sees every colour right but one slice
(``colour_task.BLIND_COLOUR`` images with a wide ``BLIND_AS`` band, which it reads as ``BLIND_AS``), so the
correct/hard split is predictable (``stub_verdict``). Its rubric carries the evidence (the colour it saw)
and its verdict follows from it. A prompt in the proxy format gets a ``<think>..</think><answer>N</answer>``
reply that follows the colour the rubric names (the image's, when the rubric names none): a proxy that learns
from it has to read the rubric.

``--fail-every N`` answers 503 to every N-th request (to exercise client retries); ``--delay-s``
slows every answer (to interrupt a run midway).

    python -m proxy_grm.toy.teacher_stub --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from PIL import Image

from proxy_grm.images import ImageLoadError, load_image
from proxy_grm.toy.colour_task import named_colour, seen_colour, verdict_for

_GRM_RE = re.compile(
    r"\[The Start of Chatbot 1's Response\]\n(?P<r1>.*?)\n\[The End of Chatbot 1's Response\].*?"
    r"\[The Start of Chatbot 2's Response\]\n(?P<r2>.*?)\n\[The End of Chatbot 2's Response\]",
    re.DOTALL,
)
_PROXY_RE = re.compile(r"\*\*Response 1:\*\* (?P<r1>.*?)\n\*\*Response 2:\*\* (?P<r2>.*?)\n"
                       r"\*\*Evaluation Rubric:\*\* (?P<rubric>.*?)\n\*\*Formatting Requirements", re.DOTALL)


def stub_verdict(response_1: str, response_2: str, image: Image.Image | None) -> int:
    """The stub's judgement: the response naming the colour it sees in the image (a tie or no image: 1)."""
    return verdict_for(seen_colour(image) if image is not None else None, response_1, response_2)


def evidence(response_1: str, response_2: str, colour: str | None, source: str, verdict: int) -> str:
    """Each response's colour followed by its number, then the colour seen (``source``: where it was read)
    followed by the verdict: ``Colours: red 1, blue 2. The image: red 1.``

    The verdict is then an induction step (find the earlier copy of the colour just written, copy the number
    after it), which a two-layer model learns: free-running, 100% of 64 held-out items from step 1,500 of the
    probe (docs/toy.md, "Does it learn?", the probe's table). A per-response right/wrong eval stayed at chance
    for 2,400.
    """
    return (f"Colours: {named_colour(response_1)} 1, {named_colour(response_2)} 2. "
            f"The {source}: {colour} {verdict}.")


def stub_rubric(colour: str) -> str:
    """The stub's rubric: its one criterion carries the evidence, the colour it saw."""
    return f"<rubric>\n1. Colour, 100%: the image is mostly {colour}.\n</rubric>"


def grm_answer(response_1: str, response_2: str, image: Image.Image | None) -> str:
    """A short critique in the GRM format, one template (only the colour and the verdict vary), so the tiny
    demo model learns its shape in a few dozen SFT steps and its verdict from the colour it names."""
    colour = seen_colour(image) if image is not None else "unknown"
    verdict = stub_verdict(response_1, response_2, image)
    return (
        f"{stub_rubric(colour)}\n"
        f"<eval>{evidence(response_1, response_2, colour, 'image', verdict)}</eval>\n"
        f"<answer>{verdict}</answer>"
    )


def proxy_answer(response_1: str, response_2: str, rubric: str, image: Image.Image | None) -> str:
    """A proxy critique that follows the rubric's colour (the image's when it names none)."""
    colour, source = named_colour(rubric), "rubric"
    if colour is None:
        colour, source = (seen_colour(image) if image is not None else None), "image"
    verdict = verdict_for(colour, response_1, response_2)
    return f"<think>{evidence(response_1, response_2, colour, source, verdict)}</think><answer>{verdict}</answer>"


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
        image = None
        if image_url is not None:
            try:
                image = load_image(image_url, field="image_url")
            except ImageLoadError as error:
                raise HTTPException(status_code=400, detail=str(error)) from None
        if match := _GRM_RE.search(text):
            content = grm_answer(match["r1"], match["r2"], image)
        elif match := _PROXY_RE.search(text):
            content = proxy_answer(match["r1"], match["r2"], match["rubric"], image)
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
