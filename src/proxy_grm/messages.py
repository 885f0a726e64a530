"""One prompt, four shapes: ms-swift rows, chat-template messages, verl prompts, OpenAI chat messages.

The image always comes first in the user turn. ms-swift and verl mark its place
with an ``<image>`` tag in the text; a chat-template call (transformers, vLLM)
uses an image content item; OpenAI messages carry it as a data URI, and the
server applies the chat template. They render to the same chat text, which
tests check, so SFT, RL and serving/eval see identical inputs.
"""

from __future__ import annotations

from typing import Any

IMAGE_TAG = "<image>"


def swift_row(user_text: str, image: str, response: str | None = None) -> dict[str, Any]:
    """An ms-swift multimodal row: ``messages`` with an ``<image>`` tag plus ``images``."""
    messages: list[dict[str, str]] = [{"role": "user", "content": IMAGE_TAG + user_text}]
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return {"messages": messages, "images": [image]}


def chat_messages(user_text: str, image: Any = None, video: Any = None) -> list[dict[str, Any]]:
    """Chat-template messages for transformers / vLLM / qwen_vl_utils.

    ``image`` may be a path, URL, data URI or PIL image; ``video`` a list of frames
    or a path. With neither, the turn is text only.
    """
    content: list[dict[str, Any]] = []
    if image is not None:
        content.append({"type": "image", "image": image})
    if video is not None:
        content.append({"type": "video", "video": video})
    content.append({"type": "text", "text": user_text})
    return [{"role": "user", "content": content}]


def verl_prompt(user_text: str) -> list[dict[str, str]]:
    """The ``prompt`` column of a verl multimodal parquet row (one image, first)."""
    return [{"role": "user", "content": IMAGE_TAG + user_text}]


def openai_messages(user_text: str, image_uri: str) -> list[dict[str, Any]]:
    """One user turn for an OpenAI-compatible chat API: the image (a URL or data URI) first, then the text."""
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_uri}},
                                         {"type": "text", "text": user_text}]}]
