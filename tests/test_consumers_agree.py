"""SFT (ms-swift), RL (verl) and serving/eval (chat template) feed the model the same tokens."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf
from PIL import Image
from qwen_vl_utils import process_vision_info

from proxy_grm import messages, prompts

MAX_PIXELS = 64 * 28 * 28


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    image = tmp_path_factory.mktemp("pair") / "chart.png"
    Image.new("RGB", (150, 100), (30, 60, 90)).save(image)
    return prompts.grm_prompt("What does the chart show?", "Sales rise.", "Sales fall."), str(image)


def _chat_template_ids(processor, text: str, image: str) -> list[int]:
    chat = messages.chat_messages(text, image=image)
    rendered = processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    images, _ = process_vision_info(chat)
    return processor(text=[rendered], images=images, return_tensors="pt")["input_ids"][0].tolist()


def test_swift_template_encodes_like_the_chat_template(tiny_model_dir: Path, pair, monkeypatch) -> None:
    monkeypatch.setenv("MAX_PIXELS", str(MAX_PIXELS))
    from swift import get_processor, get_template

    text, image = pair
    processor = get_processor(str(tiny_model_dir), model_type="qwen2_5_vl")
    template = get_template(processor, template_type="qwen2_5_vl")
    template.set_mode("pt")
    swift_ids = template.encode(messages.swift_row(text, image))["input_ids"]
    assert swift_ids == _chat_template_ids(processor, text, image)


def test_verl_dataset_builds_the_chat_messages(tiny_model_dir: Path, pair, tmp_path: Path) -> None:
    from transformers import AutoProcessor, AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    text, image = pair
    parquet = tmp_path / "rl.parquet"
    pd.DataFrame(
        [{"data_source": "test", "prompt": messages.verl_prompt(text), "images": [image], "ability": "judge",
          "reward_model": {"style": "rule", "ground_truth": "1"}, "extra_info": {"index": 0}}]
    ).to_parquet(parquet)
    config = OmegaConf.create(
        {"image_key": "images", "max_prompt_length": 4096, "cache_dir": os.fspath(tmp_path / "cache")}
    )
    dataset = RLHFDataset(
        str(parquet), AutoTokenizer.from_pretrained(tiny_model_dir), config,
        processor=AutoProcessor.from_pretrained(tiny_model_dir),
    )
    assert len(dataset) == 1
    assert dataset[0]["raw_prompt"] == messages.chat_messages(text, image=image)
