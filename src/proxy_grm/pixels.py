"""The one image-size budget that SFT, the RL rows, the proxy and the eval all resize to.

Every stage resizes an image with ``qwen_vl_utils.smart_resize`` between ``min_pixels``
and ``max_pixels``; each reads the range from a different place, so without one budget
they silently disagree (qwen-vl-utils' own default cap is 16,384 image tokens):

- ms-swift (SFT) reads the ``MAX_PIXELS``/``MIN_PIXELS`` environment variables, in whole
  28x28 tokens (``swift/model/models/qwen.py``, ``compat_qwen_vl_utils``); the SFT launcher
  exports ``MAX_PIXELS`` (``scripts/sft/sft_common.sh``);
- verl (RL) passes an image dict's ``max_pixels``/``min_pixels`` from the parquet row to
  ``qwen_vl_utils.fetch_image`` (``verl/utils/dataset/rl_dataset.py``, ``_build_messages``),
  so the rows carry the budget and the trainer's environment does not matter;
- the proxy and the eval put it on each image item before ``process_vision_info``
  (``proxy_grm.generation.prepare_prompt``); ``fetch_image`` reads it there
  (``qwen_vl_utils/vision_process.py``), and qwen-vl-utils itself reads no environment variable.

The model's processor resizes once more with its own min/max pixels (ms-swift skips that
step): keep the budget inside the processor's range, as Qwen2.5-VL-7B-Instruct's
(3,136 to 12,845,056) is, so that second resize changes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

IMAGE_FACTOR = 28  # Qwen2.5-VL: patch 14 x spatial merge 2; one image token per 28x28 pixels
TOKEN_PIXELS = IMAGE_FACTOR * IMAGE_FACTOR
RELEASE_MAX_PIXELS = 1280 * TOKEN_PIXELS  # 1003520, the release's SFT MAX_PIXELS
# The release's eval scripts set no budget, so qwen-vl-utils' default cap applies (IMAGE_MAX_TOKEN_NUM 16384);
# --protocol release uses it to generate as they did.
RELEASE_EVAL_MAX_PIXELS = 16384 * TOKEN_PIXELS
DEFAULT_MIN_PIXELS = 4 * TOKEN_PIXELS  # qwen-vl-utils' IMAGE_MIN_TOKEN_NUM, so also ms-swift's default
MAX_PIXELS_ENV = "MAX_PIXELS"
MIN_PIXELS_ENV = "MIN_PIXELS"


@dataclass(frozen=True)
class PixelBudget:
    """The pixel range every image is resized into (multiples of 28x28: ms-swift counts whole tokens)."""

    max_pixels: int = RELEASE_MAX_PIXELS
    min_pixels: int = DEFAULT_MIN_PIXELS

    def __post_init__(self) -> None:
        for name in ("max_pixels", "min_pixels"):
            value = getattr(self, name)
            if value < TOKEN_PIXELS or value % TOKEN_PIXELS:
                raise ValueError(f"{name} must be a positive multiple of {TOKEN_PIXELS} (28x28, one image token; "
                                 f"ms-swift rounds other values down), got {value}")
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels {self.min_pixels} is above max_pixels {self.max_pixels}")

    def image_kwargs(self) -> dict[str, int]:
        """The keys ``qwen_vl_utils.fetch_image`` reads from an image item (and verl from a row's image)."""
        return {"max_pixels": self.max_pixels, "min_pixels": self.min_pixels}


def _from_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${name} must be an integer number of pixels, got {value!r}") from None


def pixel_budget(max_pixels: int | None = None, min_pixels: int | None = None) -> PixelBudget:
    """The budget: explicit values first, then ``$MAX_PIXELS``/``$MIN_PIXELS`` (ms-swift's), then the release's.

    >>> pixel_budget(max_pixels=64 * 28 * 28, min_pixels=4 * 28 * 28)
    PixelBudget(max_pixels=50176, min_pixels=3136)
    """
    return PixelBudget(
        max_pixels=max_pixels if max_pixels is not None else _from_env(MAX_PIXELS_ENV, RELEASE_MAX_PIXELS),
        min_pixels=min_pixels if min_pixels is not None else _from_env(MIN_PIXELS_ENV, DEFAULT_MIN_PIXELS),
    )
