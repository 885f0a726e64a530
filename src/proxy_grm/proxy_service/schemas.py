"""The proxy service's own endpoints beyond the reward contract (``proxy_grm.proxy_contract``): health and
the image check the preflight uses.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StrictStr

from proxy_grm.proxy_contract import MAX_BATCH_ITEMS, MAX_IMAGE_CHARS


class ImageCheckRequest(BaseModel):
    """Image references a trainer will send; the preflight asks which of them this node cannot read."""

    images: Annotated[list[Annotated[StrictStr, Field(max_length=MAX_IMAGE_CHARS)]],
                      Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class UnreadableImage(BaseModel):
    image: str
    reason: str


class ImageCheckResponse(BaseModel):
    unreadable: list[UnreadableImage]


class HealthResponse(BaseModel):
    status: str
    model: str
    backend: str
    max_new_tokens: int
    critiques: int = Field(description="critiques written since start-up")
    truncated_critiques: int = Field(description="of those, the ones cut off at max_new_tokens")
    pending_critiques: int = Field(0, description="critiques asked of the engine and not yet written")
    aborted_critiques: int = Field(0, description="critiques dropped because their caller left")
