"""The tiny Qwen2.5-VL: deterministic, Qwen's special ids, generates with an image."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from PIL import Image
from qwen_vl_utils import process_vision_info
from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

from proxy_grm.messages import chat_messages
from proxy_grm.toy.tiny_model import IMAGE_PAD_ID, QWEN_SPECIAL_TOKENS, VOCAB_SIZE, make_tiny_model


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_is_deterministic(tiny_model_dir: Path, tmp_path: Path) -> None:
    again = make_tiny_model(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert _digest(again / name) == _digest(tiny_model_dir / name), name


def test_special_tokens_keep_qwen_ids(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer.convert_tokens_to_ids(list(QWEN_SPECIAL_TOKENS))
    assert ids == list(range(151643, 151643 + len(QWEN_SPECIAL_TOKENS)))
    assert tokenizer.convert_tokens_to_ids("<|image_pad|>") == IMAGE_PAD_ID
    assert tokenizer.eos_token == "<|im_end|>"
    text = "<rubric>Accuracy 60%</rubric><answer>2</answer>"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_generates_with_an_image_through_transformers(tiny_model_dir: Path) -> None:
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    assert model.config.text_config.vocab_size == VOCAB_SIZE
    assert model.config.text_config.hidden_size // model.config.text_config.num_attention_heads == 64
    messages = chat_messages("Describe the image.", image=Image.new("RGB", (120, 90), (200, 40, 40)))
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    images, _ = process_vision_info(messages)
    inputs = processor(text=[text], images=images, return_tensors="pt")
    grid = inputs["image_grid_thw"][0]
    expected_pads = int(grid.prod()) // processor.image_processor.merge_size**2
    assert int((inputs["input_ids"] == IMAGE_PAD_ID).sum()) == expected_pads > 0
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 8


def test_layers_sets_the_text_decoder_depth(tmp_path: Path) -> None:
    from proxy_grm.toy.tiny_model import build_model

    build_model(tmp_path, layers=3)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.float32)
    assert len(model.model.language_model.layers) == model.config.text_config.num_hidden_layers == 3
