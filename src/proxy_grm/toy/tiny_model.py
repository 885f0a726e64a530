"""A tiny, randomly initialised Qwen2.5-VL that transformers, ms-swift and vLLM accept.

Built offline and deterministically (no hub): tests, the demo and GPU smoke runs
use it in place of a 7B checkpoint, through the same loading code.

Constraints it satisfies, and why:
- the vocabulary is 151,936 with Qwen's special tokens at their real ids:
  ms-swift's Qwen2-VL template hard-codes those ids (``<|image_pad|>`` = 151655
  and friends) and inserts the wrong number of image tokens otherwise;
- text head_dim is 64 (hidden 128 over 2 heads): vLLM's CPU attention rejects smaller heads;
- the embedding is tied to the LM head, keeping the model at ~20M parameters.
"""

from __future__ import annotations

import json
from pathlib import Path

# Qwen2 / Qwen2.5-VL special tokens, in id order from 151643.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
)
FIRST_SPECIAL_ID = 151643
VOCAB_SIZE = 151936
IMAGE_PAD_ID = 151655
VIDEO_PAD_ID = 151656
VISION_START_ID = 151652
VISION_END_ID = 151653

# The chat template of Qwen2-VL / Qwen2.5-VL instruct models.
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Small images keep tests fast: at most 64 patches of 28x28 per image.
TINY_MIN_PIXELS = 4 * 28 * 28
TINY_MAX_PIXELS = 64 * 28 * 28
BPE_VOCAB = 1024


def _training_text() -> list[str]:
    """Local text to learn BPE merges from: the protocol prompts, tag-heavy samples and the toy task's words
    (a colour is one token, as in a real tokenizer)."""
    from proxy_grm import prompts
    from proxy_grm.toy.colour_task import COLOURS

    samples = [
        prompts.GRM_INSTRUCTION,
        prompts.proxy_prompt("What is shown?", "A cat.", "A dog.", "<rubric>accuracy 100%</rubric>"),
        "<rubric>\n1. Accuracy (60%)\n2. Detail (40%)\n<justify>why</justify>\n</rubric>\n"
        "<eval>\n<quote_1>a</quote_1><summary_2>b</summary_2>\n</eval>\n<answer>1</answer>",
        "<think>Response 2 follows the rubric.</think><answer>2</answer>",
        "the quick brown fox jumps over the lazy dog 0123456789 .,;:!?()[]{}<>/\\'\"-_=+*&^%$#@~`|",
        *(f"It is mostly {colour}. Response 1 says {colour}. The image is mostly {colour}." for colour in COLOURS),
    ]
    return samples * 4


def build_tokenizer(output: Path) -> None:
    """Write a byte-level BPE tokenizer with Qwen's special tokens at their real ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(_training_text(), trainer=trainer)
    learned = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = dict(learned["vocab"])
    # Filler entries pad the ordinary vocabulary up to the first special id; no
    # merge produces them, so they never appear in encoded text.
    for filler_id in range(len(vocab), FIRST_SPECIAL_ID):
        vocab[f"<|filler_{filler_id}|>"] = filler_id
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]

    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(QWEN_SPECIAL_TOKENS))
    for offset, token in enumerate(QWEN_SPECIAL_TOKENS):
        assert tokenizer.token_to_id(token) == FIRST_SPECIAL_ID + offset, token

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
        chat_template=QWEN_VL_CHAT_TEMPLATE,
    )
    fast.save_pretrained(output)


def build_model(output: Path, seed: int = 0, repetition_penalty: float | None = None, layers: int = 2) -> None:
    """Write a random Qwen2.5-VL with the shape documented in the module docstring.

    ``repetition_penalty`` goes into ``generation_config.json``, as
    Qwen2.5-VL-7B-Instruct's 1.05 does: greedy decoding must apply it everywhere.
    ``layers``: text decoder layers (the learning probe's ``--layers``; each adds ~0.2M parameters).
    """
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": VOCAB_SIZE,
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": layers,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 32768,
            "rope_theta": 1000000.0,
            "rope_scaling": {"type": "mrope", "rope_type": "default", "mrope_section": [8, 12, 12]},
            "tie_word_embeddings": True,
            "bos_token_id": FIRST_SPECIAL_ID,
            "eos_token_id": FIRST_SPECIAL_ID + 2,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_heads": 2,
            "out_hidden_size": 128,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [1],
        },
        image_token_id=IMAGE_PAD_ID,
        video_token_id=VIDEO_PAD_ID,
        vision_start_token_id=VISION_START_ID,
        vision_end_token_id=VISION_END_ID,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    generation = model.generation_config
    generation.bos_token_id = FIRST_SPECIAL_ID
    generation.eos_token_id = [FIRST_SPECIAL_ID + 2, FIRST_SPECIAL_ID]
    generation.pad_token_id = FIRST_SPECIAL_ID
    generation.do_sample = False
    if repetition_penalty is not None:
        generation.repetition_penalty = repetition_penalty
    model.save_pretrained(output, safe_serialization=True)


def build_processor(output: Path) -> None:
    """Write a Qwen2.5-VL processor with small min/max pixels next to the tokenizer."""
    from transformers import AutoTokenizer, Qwen2_5_VLProcessor, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    size = {"shortest_edge": TINY_MIN_PIXELS, "longest_edge": TINY_MAX_PIXELS}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS),
        video_processor=Qwen2VLVideoProcessor(size=size, min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS),
        tokenizer=AutoTokenizer.from_pretrained(output),
        chat_template=QWEN_VL_CHAT_TEMPLATE,
    )
    processor.save_pretrained(output)


def make_tiny_model(output: Path, seed: int = 0, repetition_penalty: float | None = None, layers: int = 2) -> Path:
    """Build the whole checkpoint folder (config, weights, tokenizer, processor)."""
    output.mkdir(parents=True, exist_ok=True)
    build_tokenizer(output)
    build_model(output, seed=seed, repetition_penalty=repetition_penalty, layers=layers)
    build_processor(output)
    return output
