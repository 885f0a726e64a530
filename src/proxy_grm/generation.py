"""Batched greedy generation from chat messages, with one interface over three engines.

Every backend takes a batch of chat conversations (as built by
``proxy_grm.messages.chat_messages``) and returns one decoded completion per
conversation, greedily, as the release decodes (``model.generate(do_sample=False)``:
the checkpoint's ``generation_config.json``, e.g. its repetition penalty, applies
on every backend):

- ``TransformersGenerator``: ``model.generate`` on a left-padded batch (CPU, debugging, eval);
- ``VllmGenerator``: vLLM's offline ``LLM`` (the whole batch in one scheduled run);
- ``AsyncVllmGenerator``: vLLM's async engine, for servers: each request is
  submitted as it arrives and the engine batches them continuously.

All three turn messages into model inputs with ``prepare_prompt`` (the processor's
chat template plus ``qwen_vl_utils.process_vision_info``), and images are loaded
by ``proxy_grm.images.load_image``, so the same conversation yields the same
tokens and pixels everywhere. vLLM is imported lazily: this module also serves
environments without it.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from proxy_grm.images import ImageLoadError, load_image, sample_video_frames
from proxy_grm.pixels import PixelBudget, pixel_budget

Messages = list[dict[str, Any]]


class Completion(str):
    """A decoded completion that also says whether it stopped at the length limit.

    A ``str``, so every caller that only wants the text keeps working; a critique
    cut off by the limit often holds no verdict, so the proxy reports it
    (``truncated``) instead of letting a stray digit pass for one.
    """

    truncated: bool

    def __new__(cls, text: str, truncated: bool) -> Completion:
        completion = super().__new__(cls, text)
        completion.truncated = truncated
        return completion


class Generator(Protocol):
    """What every synchronous backend offers."""

    def generate(self, batch: list[Messages], max_new_tokens: int) -> list[str]:
        """One greedy completion per conversation, in order."""
        ...


@dataclass
class PreparedPrompt:
    """A conversation rendered for a model: chat text plus resized vision inputs."""

    text: str
    images: list[Image.Image] | None = None
    videos: list[Any] | None = None
    video_metadata: list[Any] | None = None
    video_kwargs: dict[str, Any] = field(default_factory=dict)


def _load_item(item: dict[str, Any], image_root: Path | None, pixels: PixelBudget) -> dict[str, Any]:
    """A content item with its image/video references replaced by loaded PIL images.

    An image item also gets the pixel budget, which ``qwen_vl_utils.fetch_image`` resizes to
    (replacing any range the item had: one budget for every stage, see ``proxy_grm.pixels``).
    """
    if item.get("type") == "image" or "image" in item:
        ref = item["image"]
        image = ref if isinstance(ref, Image.Image) else load_image(ref, image_root)
        return {**item, "image": image, **pixels.image_kwargs()}
    if item.get("type") == "video" or "video" in item:
        frames = item["video"]
        if isinstance(frames, (str, Path)):
            if not Path(frames).is_dir():
                raise ImageLoadError("video", f"expected a folder of frames or a list of frames, got {frames!r}")
            frames = sample_video_frames(Path(frames))
        loaded = [f if isinstance(f, Image.Image) else load_image(str(f), image_root, "video") for f in frames]
        return {**item, "video": loaded}
    return item


def load_vision(messages: Messages, image_root: Path | None = None, pixels: PixelBudget | None = None) -> Messages:
    """A copy of ``messages`` whose image and video references are loaded images.

    Loading happens here, through ``load_image``, rather than inside
    ``qwen_vl_utils``, so one loader (with its root check and errors) serves all.
    Image items carry ``pixels`` (default: ``pixel_budget()``, the shared budget).
    """
    pixels = pixels or pixel_budget()
    loaded: Messages = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [_load_item(item, image_root, pixels) for item in content]
        loaded.append({**message, "content": content})
    return loaded


def prepare_prompt(processor: Any, messages: Messages, image_root: Path | None = None,
                   pixels: PixelBudget | None = None) -> PreparedPrompt:
    """Chat text (with the generation prompt) and images/videos resized as every stage resizes them.

    Images go into ``pixels`` (default: the shared budget, ``proxy_grm.pixels``), as in SFT and RL.
    """
    from qwen_vl_utils import process_vision_info

    messages = load_vision(messages, image_root, pixels)
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    images, videos, video_kwargs = process_vision_info(messages, return_video_kwargs=True,
                                                       return_video_metadata=True)
    if not videos:
        return PreparedPrompt(text=text, images=images)
    # Frames arrive sampled, each video with its metadata (vLLM requires it; transformers 5 uses it
    # for the temporal positions), so neither engine samples again.
    frames, metadata = zip(*videos)
    return PreparedPrompt(text=text, images=images, videos=list(frames), video_metadata=list(metadata),
                          video_kwargs={**video_kwargs, "do_sample_frames": False})


def _vllm_input(prompt: PreparedPrompt) -> dict[str, Any]:
    """A vLLM prompt dict for one prepared conversation."""
    request: dict[str, Any] = {"prompt": prompt.text}
    media: dict[str, Any] = {}
    if prompt.images:
        media["image"] = prompt.images
    if prompt.videos:
        media["video"] = list(zip(prompt.videos, prompt.video_metadata or []))
        request["mm_processor_kwargs"] = prompt.video_kwargs
    if media:
        request["multi_modal_data"] = media
    return request


def _greedy_params(model_defaults: dict[str, Any], max_new_tokens: int) -> Any:
    """vLLM parameters that decode as ``model.generate(do_sample=False)`` does.

    transformers keeps the checkpoint's ``generation_config.json`` under greedy
    decoding (Qwen2.5-VL-7B-Instruct sets ``repetition_penalty`` 1.05); vLLM
    applies those defaults only when no ``SamplingParams`` are given. So the
    engine's reading of them (``ModelConfig.get_diff_sampling_param``) is applied
    here, with sampling turned off and our length limit.

    Outputs are final-only: the async engine otherwise builds a cumulative output and
    wakes the request's coroutine on every decoded token, which on a proxy serving
    thousands of critiques is CPU taken from the engine (the offline ``LLM`` sets the
    same, vllm/entrypoints/offline_utils.py in vLLM 0.24).
    """
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams.from_optional(**{**model_defaults, "temperature": 0.0, "max_tokens": max_new_tokens,
                                           "output_kind": RequestOutputKind.FINAL_ONLY})


class TransformersGenerator:
    """Hugging Face ``generate`` over a left-padded batch; greedy."""

    def __init__(self, model_path: str | Path, device: str | None = None, dtype: str | None = None,
                 image_root: Path | None = None, pixels: PixelBudget | None = None):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.image_root, self.pixels = image_root, pixels
        self.processor = AutoProcessor.from_pretrained(str(model_path))
        # Left padding keeps every prompt's last token at the end of the row, where generation starts.
        self.processor.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(str(model_path), dtype=dtype or "auto")
        self.model.to(self.device).eval()

    def generate(self, batch: list[Messages], max_new_tokens: int) -> list[str]:
        import torch

        if not batch:
            return []
        prompts = [prepare_prompt(self.processor, messages, self.image_root, self.pixels) for messages in batch]
        images = list(itertools.chain.from_iterable(p.images or [] for p in prompts))
        videos = list(itertools.chain.from_iterable(p.videos or [] for p in prompts))
        metadata = list(itertools.chain.from_iterable(p.video_metadata or [] for p in prompts))
        extra = {"video_metadata": metadata, "do_sample_frames": False} if videos else {}
        inputs = self.processor(
            text=[p.text for p in prompts], images=images or None, videos=videos or None,
            padding=True, return_tensors="pt", **extra,
        ).to(self.device)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        completions = output[:, inputs["input_ids"].shape[1]:]
        texts = self.processor.batch_decode(completions, skip_special_tokens=True)
        # A row without an end-of-sequence token ran until the limit (the batch stops only then or
        # when every row has ended).
        eos = self.model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [] if eos is None else [eos]
        ended = torch.isin(completions, torch.tensor(eos_ids, dtype=completions.dtype, device=completions.device))
        return [Completion(text, not bool(row.any())) for text, row in zip(texts, ended)]


def _engine_kwargs(model_path: str | Path, tp: int, dtype: str, max_model_len: int | None,
                   gpu_memory_utilization: float | None, extra: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": str(model_path), "tensor_parallel_size": tp, "dtype": dtype, **extra}
    if max_model_len is not None:
        kwargs["max_model_len"] = max_model_len
    if gpu_memory_utilization is not None:
        kwargs["gpu_memory_utilization"] = gpu_memory_utilization
    return kwargs


class VllmGenerator:
    """vLLM's offline engine; the whole batch goes to the scheduler at once; greedy."""

    def __init__(self, model_path: str | Path, tp: int = 1, dtype: str = "auto", max_model_len: int | None = None,
                 gpu_memory_utilization: float | None = None, image_root: Path | None = None,
                 pixels: PixelBudget | None = None, **engine_kwargs: Any):
        from transformers import AutoProcessor
        from vllm import LLM

        self.image_root, self.pixels = image_root, pixels
        self.processor = AutoProcessor.from_pretrained(str(model_path))
        self.llm = LLM(**_engine_kwargs(model_path, tp, dtype, max_model_len, gpu_memory_utilization, engine_kwargs))
        self.model_defaults = self.llm.llm_engine.model_config.get_diff_sampling_param()

    def generate(self, batch: list[Messages], max_new_tokens: int) -> list[str]:
        if not batch:
            return []
        inputs = [_vllm_input(prepare_prompt(self.processor, m, self.image_root, self.pixels)) for m in batch]
        outputs = self.llm.generate(inputs, _greedy_params(self.model_defaults, max_new_tokens), use_tqdm=False)
        return [Completion(output.outputs[0].text, output.outputs[0].finish_reason == "length")
                for output in outputs]

    def shutdown(self) -> None:
        """Stop the engine's worker processes now rather than at interpreter exit."""
        self.llm.llm_engine.engine_core.shutdown()


class AsyncVllmGenerator:
    """vLLM's async engine: requests are submitted as they come and batched continuously.

    Must be created inside a running event loop (the engine starts its output
    handler there), e.g. in a FastAPI lifespan.
    """

    def __init__(self, model_path: str | Path, tp: int = 1, dtype: str = "auto", max_model_len: int | None = None,
                 gpu_memory_utilization: float | None = None, image_root: Path | None = None,
                 pixels: PixelBudget | None = None, **engine_kwargs: Any):
        from transformers import AutoProcessor
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.image_root, self.pixels = image_root, pixels
        self.processor = AutoProcessor.from_pretrained(str(model_path))
        args = AsyncEngineArgs(**_engine_kwargs(model_path, tp, dtype, max_model_len, gpu_memory_utilization,
                                                {"disable_log_stats": True, **engine_kwargs}))
        self.engine = AsyncLLM.from_engine_args(args)
        self.model_defaults = self.engine.model_config.get_diff_sampling_param()

    async def generate_one(self, messages: Messages, max_new_tokens: int) -> str:
        """One greedy completion; image decoding runs in a thread so the event loop keeps serving."""
        prompt = await asyncio.to_thread(prepare_prompt, self.processor, messages, self.image_root, self.pixels)
        final = None
        params = _greedy_params(self.model_defaults, max_new_tokens)
        async for output in self.engine.generate(_vllm_input(prompt), params, request_id=uuid.uuid4().hex):
            final = output
        if final is None:
            raise RuntimeError("vLLM returned no output")
        return Completion(final.outputs[0].text, final.outputs[0].finish_reason == "length")

    async def generate(self, batch: list[Messages], max_new_tokens: int) -> list[str]:
        """One greedy completion per conversation, all in flight at once."""
        return list(await asyncio.gather(*(self.generate_one(m, max_new_tokens) for m in batch)))

    def shutdown(self) -> None:
        self.engine.shutdown()
