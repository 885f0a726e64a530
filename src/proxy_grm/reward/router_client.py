"""The proxy asked through verl's own reward-model pool: OpenAI chat requests to verl's router.

With ``reward.reward_model.enable``, verl 0.9.1 starts vLLM OpenAI servers on the Proxy-SFT checkpoint and
one router in front of them (``experimental/reward_loop/reward_model.py``; ``router/naive_router.py``:
least in flight, up to 3 attempts on connection errors, every path forwarded as is to
``http://worker/{path}``), and its naive reward manager hands our reward function the router's
``host:port`` as ``reward_router_address``. ``RouterPool`` then plays the proxy service's part itself: the
same prompt (``prompts.proxy_prompt``), the same messages (``messages.openai_messages``, which renders to the
service's chat text), the same image pixels, greedy decoding with the service's length cap, and the service's
verdict rule (``proxy_contract.judge``). Retries, backoff, liveness and failure counting are ``ProxyPool``'s;
the router is its one "replica" (its ``/health`` is a vLLM server's, with no critique counter, so it is
judged by answering alone). A 4xx from vLLM reaches us as the router's 500 (it re-raises it), so a bad
request is retried ``max_retries`` times before it fails like a dead server.

Images travel as data URIs of the image already resized into the pixel budget (``proxy_grm.pixels``), as
the service resizes it before its processor runs, and PNG-encoded, so vLLM's processor gets the service's
exact pixels (its second resize, to the same size, changes nothing). vLLM 0.24.0, the version verl 0.9.1 pins
for GPU nodes, takes an ``image_url`` part's ``url`` (``vllm/entrypoints/chat_utils.py``, line 1439) and
loads a ``data:`` URL before any other scheme (``vllm/multimodal/media/connector.py``,
``load_from_url_async``, line 321; ``_load_data_url``, lines 237-251): it splits ``image/png;base64`` at
the first ``;`` and accepts only ``base64``, which is what ``image_to_data_uri`` writes (0.32 also accepts
``;name=value`` parameters before ``base64``, and refuses images over ``VLLM_MAX_IMAGE_PIXELS``, which 0.24
does not check). The other way, a ``file://`` URL (``_load_file_url``, lines 253-273, the same in 0.32), is
refused unless the server is started with ``--allowed-local-media-path DIR`` and the file lies under DIR;
the default is ``""``, off, and vLLM documents turning it on as "a security risk" for trusted environments
only (``vllm/config/model.py``, ``allowed_local_media_path``, line 164). It sends no pixels but needs the
image on the vLLM node and resizes the original file with the processor's own ``min_pixels``/``max_pixels``:
other pixels than the service's (a budget passed in ``mm_processor_kwargs`` would still resize the original,
not qwen-vl-utils' resized copy), and other critiques. The cost of the data URI, at the release's
1,003,520-pixel budget (measured here on one busy CPU core): a PNG encode of 130-190 ms in the reward worker
per image (cached per image, so a GRPO group's rollouts and the swap check's second order share it), and
2.6 MB (a photo-like image) to 4.0 MB (noise) in every request, decoded again by vLLM: at the release's step
(256 pairs x 8 rollouts) some 5-8 GB through the router per step, where the service reads each path from its
own disk.

Decoding: ``temperature=0`` and ``max_tokens``; every other sampling field is left to the server's defaults,
which are the checkpoint's ``generation_config.json`` (what the service's engine applies,
``generation._greedy_params``) only when verl's override is cleared: verl starts its servers with
``override_generation_config`` = rollout temperature/top_k/top_p, ``repetition_penalty=1.0`` and
``max_new_tokens=response_length`` (``vllm_async_server.py``, ``_get_override_generation_config``), so the
launcher's pool mode sets ``engine_kwargs.vllm.override_generation_config`` to ``{}``, which verl's engine
kwargs replace it with (``scripts/rl/common.sh``). In vLLM 0.24.0 ``--override-generation-config`` is a dict
flag read with ``json.loads`` (``vllm/engine/arg_utils.py``, lines 376-377 and 857), laid over the
checkpoint's ``generation_config.json`` (``vllm/config/model.py``: ``generation_config="auto"``, line 277;
``get_diff_sampling_param``, line 1433), so ``{}`` leaves the checkpoint's settings. The two request
fields are ``ChatCompletionRequest``'s (``vllm/entrypoints/openai/chat_completion/protocol.py``: ``model``
optional, line 197; ``temperature``, line 215; ``max_tokens``, lines 202-206, deprecated in favour of
``max_completion_tokens`` but still read, ``build_tok_params``, line 510; the same in 0.32), and
``to_sampling_params`` (line 556) takes each field a request leaves out from those server defaults.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from proxy_grm.generation import Completion, load_vision
from proxy_grm.images import ImageLoadError, image_to_data_uri
from proxy_grm.messages import chat_messages, openai_messages
from proxy_grm.pixels import PixelBudget, pixel_budget
from proxy_grm.prompts import proxy_prompt
from proxy_grm.proxy_contract import RewardItem, judge
from proxy_grm.reward.proxy_client import ProxyPool, ProxyProtocolError
from proxy_grm.reward.settings import RewardSettings

CHAT_PATH = "/v1/chat/completions"
IMAGE_CACHE_SIZE = 256  # images, per reward worker: a step's groups come in together


@functools.lru_cache(maxsize=IMAGE_CACHE_SIZE)
def budget_image_uri(ref: str, pixels: PixelBudget) -> str:
    """A PNG data URI of image ``ref`` resized into ``pixels`` exactly as the service resizes it.

    The service's path (``generation.prepare_prompt``): ``load_vision`` loads the image and puts the budget
    on its item, and ``qwen_vl_utils.process_vision_info`` resizes it.
    """
    from qwen_vl_utils import process_vision_info

    images, _ = process_vision_info(load_vision(chat_messages("", image=ref), pixels=pixels))
    return image_to_data_uri(images[0])


def chat_request(item: RewardItem, image_uri: str, max_new_tokens: int) -> dict[str, Any]:
    """The OpenAI chat body that asks the proxy to judge ``item`` as the service does (greedy, length cap).

    No ``model``: vLLM then serves its one model, whatever path verl loaded it from.
    """
    text = proxy_prompt(item.question, item.chosen, item.rejected, item.rubric)
    return {"messages": openai_messages(text, image_uri), "temperature": 0.0, "max_tokens": max_new_tokens}


class RouterPool(ProxyPool):
    """``ProxyPool`` over verl's reward-model router: one chat request per payload, judged here."""

    def __init__(self, settings: RewardSettings):
        super().__init__(settings)
        self.max_new_tokens = settings.max_new_tokens
        self.pixels = pixel_budget()

    async def _judge_one(self, url: str, item: RewardItem) -> tuple[float, bool]:
        target = url + CHAT_PATH
        try:
            image_uri = await asyncio.to_thread(budget_image_uri, item.image, self.pixels)
        except ImageLoadError as error:  # the service answers 422 for it: the same failure here
            raise ProxyProtocolError(target, str(error)) from None
        text = await self._send(url, target, chat_request(item, image_uri, self.max_new_tokens))
        try:
            choice = json.loads(text)["choices"][0]
            critique = Completion(choice["message"]["content"] or "", choice["finish_reason"] == "length")
        except (ValueError, KeyError, IndexError, TypeError) as error:
            cause = f"not a chat completion ({type(error).__name__}): {text[:200]!r}"
            raise ProxyProtocolError(target, cause) from None
        result = judge(critique, item.answer)
        return result.reward, result.truncated

    async def _post_once(self, url: str, payloads: list[dict[str, Any]]) -> list[tuple[float, bool]]:
        """One attempt: every payload as its own chat request, all in flight together."""
        calls = [asyncio.ensure_future(self._judge_one(url, RewardItem.model_validate(p))) for p in payloads]
        try:
            return list(await asyncio.gather(*calls))
        finally:
            for call in calls:  # one failed: the attempt has failed, the other order's critique is not needed
                call.cancel()
