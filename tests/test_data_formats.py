"""The written training sets load through the real consumers: ms-swift (dataset loading, qwen2_5_vl
template encoding, a 2-step ``swift sft``) and verl (``RLHFDataset`` with the tiny model's processor)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_data_distill import start_stub

from proxy_grm.data.distill import TeacherConfig, distill
from proxy_grm.data.prepare_pairs import prepare_pairs
from proxy_grm.data.split import split_and_write
from proxy_grm.reward.score import proxy_payload
from proxy_grm.toy.source_fixtures import make_source_fixtures
from proxy_grm.toy.tiny_model import IMAGE_PAD_ID

# Images small enough for a fast CPU run; read by qwen_vl_utils and ms-swift at import time.
MAX_PIXELS = 16 * 28 * 28
SWIFT = Path(os.environ.get("VIRTUAL_ENV", Path(__file__).resolve().parents[1] / ".venv")) / "bin" / "swift"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sets_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The four training sets, made by the real chain against the stub teacher."""
    os.environ["MAX_PIXELS"] = str(MAX_PIXELS)
    tmp = tmp_path_factory.mktemp("chain")
    fixtures = make_source_fixtures(tmp / "src", 4, seed=2)
    prepare_pairs({k: str(v) for k, v in fixtures.specs.items()}, tmp / "out", progress=False)
    server, url = start_stub(tmp, "stub")
    try:
        config = TeacherConfig(base_urls=(url,), model="stub", concurrency=2)
        asyncio.run(distill(tmp / "out" / "pairs.jsonl", tmp / "cache.jsonl", config, progress=False))
    finally:
        server.stop()
    summary = split_and_write(tmp / "out" / "pairs.jsonl", tmp / "cache.jsonl", tmp / "sets",
                              {"grm_sft": 3, "proxy_sft": 2, "proxy_rl": 2, "grm_rl": 4})
    assert all(summary.written.values()), summary.report()
    yield tmp / "sets"


@pytest.mark.parametrize("name", ["grm_sft", "proxy_sft"])
def test_swift_loads_and_encodes_with_the_right_image_tokens(sets_dir: Path, tiny_model_dir: Path,
                                                             name: str) -> None:
    from qwen_vl_utils import fetch_image
    from swift.dataset import load_dataset
    from swift.model import get_processor
    from swift.template import get_template

    path = sets_dir / f"{name}.jsonl"
    train, _ = load_dataset([str(path)], num_proc=1)
    assert len(train) == len(path.read_text().splitlines())
    processor = get_processor(str(tiny_model_dir), model_type="qwen2_5_vl")
    template = get_template(processor, template_type="qwen2_5_vl")
    template.set_mode("train")
    merge = processor.image_processor.merge_size
    for row in train:
        encoded = template.encode(row)
        image = fetch_image({"image": row["images"][0]["path"]})
        grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"]
        assert encoded["input_ids"].count(IMAGE_PAD_ID) == int(grid.prod()) // merge**2
        assert encoded["image_grid_thw"].tolist() == grid.tolist()
        labelled = [t for t, label in zip(encoded["input_ids"], encoded["labels"]) if label != -100]
        assert processor.tokenizer.decode(labelled).startswith(row["messages"][-1]["content"][:20])


def test_swift_sft_two_steps_on_cpu(sets_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    argv = [str(SWIFT), "sft", "--model", str(tiny_model_dir), "--model_type", "qwen2_5_vl",
            "--template", "qwen2_5_vl", "--tuner_type", "full", "--torch_dtype", "float32", "--attn_impl", "sdpa",
            "--check_model", "false", "--report_to", "none", "--dataloader_num_workers", "0",
            "--dataset_num_proc", "1", "--dataset", str(sets_dir / "grm_sft.jsonl"), "--max_steps", "2",
            "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1",
            "--split_dataset_ratio", "0", "--save_strategy", "no", "--logging_steps", "1",
            "--output_dir", str(tmp_path / "run")]
    env = {**os.environ, "MAX_PIXELS": str(MAX_PIXELS), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = next((tmp_path / "run").rglob("logging.jsonl"))
    steps = [json.loads(line).get("global_step/max_steps") for line in log.read_text().splitlines()]
    assert "1/2" in steps and "2/2" in steps


@pytest.mark.parametrize("name", ["grm_rl", "proxy_rl"])
def test_verl_rlhf_dataset_yields_every_row(sets_dir: Path, tiny_model_dir: Path, tmp_path: Path,
                                            name: str) -> None:
    import pandas as pd
    from omegaconf import OmegaConf
    from transformers import AutoProcessor, AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    path = sets_dir / f"{name}.parquet"
    rows = len(pd.read_parquet(path))
    config = OmegaConf.create({"prompt_key": "prompt", "image_key": "images", "max_prompt_length": 4096,
                               "filter_overlong_prompts": True, "filter_overlong_prompts_workers": 1,
                               "cache_dir": str(tmp_path / "cache")})
    dataset = RLHFDataset(str(path), AutoTokenizer.from_pretrained(tiny_model_dir), config,
                          AutoProcessor.from_pretrained(tiny_model_dir))
    assert len(dataset) == rows
    for index in range(rows):
        item = dataset[index]
        content = item["raw_prompt"][0]["content"]
        assert content[0]["type"] == "image" and content[1]["type"] == "text"
        assert item["reward_model"]["ground_truth"] in ("1", "2")
        assert {"question", "response_1", "response_2", "image"} <= set(item["extra_info"])
        # What the reward function sends the proxy: the release's payload, from our names.
        payload = proxy_payload(item["extra_info"], item["reward_model"]["ground_truth"], "<rubric>r</rubric>", name)
        assert (payload["chosen"], payload["rejected"], payload["answer"]) == (
            item["extra_info"]["response_1"], item["extra_info"]["response_2"], item["reward_model"]["ground_truth"])
