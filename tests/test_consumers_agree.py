"""SFT (ms-swift), RL (verl) and serving/eval (chat template) feed the model the same tokens, images included."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf
from PIL import Image
from qwen_vl_utils import process_vision_info, smart_resize

from helpers import REPO_ROOT
from proxy_grm import messages, prompts
from proxy_grm.data.writers import VerlParquetWriter, verl_row
from proxy_grm.pairs import PairRecord
from proxy_grm.pixels import (
    DEFAULT_MIN_PIXELS,
    IMAGE_FACTOR,
    MAX_PIXELS_ENV,
    MIN_PIXELS_ENV,
    RELEASE_MAX_PIXELS,
    TOKEN_PIXELS,
    PixelBudget,
    pixel_budget,
)
from proxy_grm.toy.tiny_model import IMAGE_PAD_ID, TINY_MIN_PIXELS

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


# --- One pixel budget: a large image gets the same number of image tokens in SFT, RL, proxy and eval. ---

LARGE_IMAGE_SIZE = (2000, 1500)
# Inside the tiny processor's own range (TINY_MIN_PIXELS..TINY_MAX_PIXELS), as the release's budget is
# inside Qwen2.5-VL-7B's, so the processor's second resize changes nothing (see proxy_grm.pixels).
BUDGET = PixelBudget(max_pixels=32 * TOKEN_PIXELS, min_pixels=TINY_MIN_PIXELS)
SECOND_BUDGET = PixelBudget()  # the release's: what a stage that ignores BUDGET would use
CONSUMERS = ("ms-swift", "verl-bytes", "verl-path", "proxy", "eval")

SWIFT_SCRIPT = """
import json, sys
from swift import get_processor, get_template

processor = get_processor(sys.argv[1], model_type="qwen2_5_vl")
template = get_template(processor, template_type="qwen2_5_vl")
template.set_mode("pt")
print("IMAGE_TOKENS=%d" % template.encode(json.loads(sys.argv[2]))["input_ids"].count(int(sys.argv[3])))
"""


@pytest.fixture(scope="module")
def large_pair(tmp_path_factory: pytest.TempPathFactory) -> PairRecord:
    image = tmp_path_factory.mktemp("large") / "large.png"
    Image.new("RGB", LARGE_IMAGE_SIZE, (120, 40, 200)).save(image)
    return PairRecord(id="large", source="test", image=str(image), question="What is in the picture?",
                      preferred="A purple square.", dispreferred="A green circle.")


def _capture_input_ids(model) -> list:
    """Replace ``model.generate`` with a stub that records the input ids it is given."""
    seen: list = []

    def generate(**inputs):
        seen.append(inputs["input_ids"])
        return inputs["input_ids"]

    model.generate = generate
    return seen


def _swift_tokens(model_dir: Path, pair: PairRecord, budget: PixelBudget) -> int:
    """ms-swift reads the budget from MAX_PIXELS/MIN_PIXELS, as the SFT launcher exports it (own process:
    ms-swift writes the values into qwen_vl_utils' module globals once per process)."""
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGE_MAX_TOKEN_NUM", "IMAGE_MIN_TOKEN_NUM")}
    env.update({MAX_PIXELS_ENV: str(budget.max_pixels), MIN_PIXELS_ENV: str(budget.min_pixels)})
    row = messages.swift_row(prompts.grm_prompt(pair.question, pair.preferred, pair.dispreferred), pair.image)
    done = subprocess.run([sys.executable, "-c", SWIFT_SCRIPT, str(model_dir), json.dumps(row), str(IMAGE_PAD_ID)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return int(re.search(r"IMAGE_TOKENS=(\d+)", done.stdout).group(1))


def _verl_tokens(model_dir: Path, pair: PairRecord, budget: PixelBudget, image_mode: str, tmp_path: Path) -> int:
    """A row written by our parquet writer, read by RLHFDataset and turned into model inputs as verl's
    agent loop does (``process_multi_modal_info``, then the processor)."""
    from transformers import AutoProcessor, AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    parquet = tmp_path / f"rl-{image_mode}.parquet"
    with VerlParquetWriter(parquet, image_mode, pixels=budget) as writer:
        writer.write(verl_row(pair, reverse=False, index=0, split="grm_rl"))
    config = OmegaConf.create({"image_key": "images", "max_prompt_length": 4096, "filter_overlong_prompts": True,
                               "filter_overlong_prompts_workers": 1, "cache_dir": os.fspath(tmp_path / "cache")})
    processor = AutoProcessor.from_pretrained(model_dir)
    dataset = RLHFDataset(str(parquet), AutoTokenizer.from_pretrained(model_dir), config, processor=processor)
    raw_prompt = dataset[0]["raw_prompt"]
    images, _, _ = asyncio.run(RLHFDataset.process_multi_modal_info(raw_prompt, dataset.image_patch_size, config))
    text = processor.apply_chat_template(raw_prompt, add_generation_prompt=True, tokenize=False)
    return int((processor(text=[text], images=images, return_tensors="pt")["input_ids"] == IMAGE_PAD_ID).sum())


def _proxy_tokens(model_dir: Path, pair: PairRecord, budget: PixelBudget) -> int:
    """A real /get_reward_mllm request through the proxy service's transformers backend."""
    from fastapi.testclient import TestClient

    from proxy_grm.proxy_service.app import ServiceConfig, create_app
    from proxy_grm.proxy_service.backends import BackendConfig, load_backend

    captured: dict[str, list] = {}

    def loader(config: BackendConfig):
        backend = load_backend(config)
        captured["input_ids"] = _capture_input_ids(backend.generator.model)
        return backend

    config = ServiceConfig(BackendConfig(model_dir, backend="transformers", dtype="float32", pixels=budget))
    with TestClient(create_app(config, backend_loader=loader)) as client:
        body = {"question": pair.question, "chosen": pair.preferred, "rejected": pair.dispreferred, "image": pair.image,
                "answer": 1, "rubric": "<rubric>Accuracy 100%</rubric>"}
        assert client.post("/get_reward_mllm", json=body).status_code == 200
    (input_ids,) = captured["input_ids"]
    return int((input_ids == IMAGE_PAD_ID).sum())


def _eval_tokens(model_dir: Path, pair: PairRecord, budget: PixelBudget, tmp_path: Path) -> int:
    """The eval's generator, built from its command line (``--max-pixels``), on the eval's own messages."""
    from proxy_grm.evaluation.benchmarks import BENCHMARKS
    from proxy_grm.evaluation.cli import generate_parser, make_generator
    from proxy_grm.evaluation.runner import RunConfig, pair_messages

    benchmark = BENCHMARKS["vl_rewardbench"]
    args = generate_parser(benchmark).parse_args(
        ["--model-path", str(model_dir), "--question-file", "q.jsonl", "--answers-file", "a.jsonl",
         "--dtype", "float32", "--max-pixels", str(budget.max_pixels)])
    generator = make_generator(args, "transformers")
    seen = _capture_input_ids(generator.model)
    row = {"prompt": pair.question, "chosen": pair.preferred, "rejected": pair.dispreferred, "image": pair.image}
    generator.generate([pair_messages(row, False, RunConfig(benchmark, tmp_path / "q", tmp_path / "a"))], 1)
    (input_ids,) = seen
    return int((input_ids == IMAGE_PAD_ID).sum())


def _image_tokens(consumer: str, model_dir: Path, pair: PairRecord, budget: PixelBudget, tmp_path: Path) -> int:
    if consumer == "ms-swift":
        return _swift_tokens(model_dir, pair, budget)
    if consumer.startswith("verl-"):
        return _verl_tokens(model_dir, pair, budget, consumer.removeprefix("verl-"), tmp_path)
    if consumer == "proxy":
        return _proxy_tokens(model_dir, pair, budget)
    return _eval_tokens(model_dir, pair, budget, tmp_path)


def _budget_tokens(budget: PixelBudget) -> int:
    """The budget's arithmetic: qwen-vl-utils' resize of the large image, one token per 28x28."""
    width, height = LARGE_IMAGE_SIZE
    resized_h, resized_w = smart_resize(height, width, IMAGE_FACTOR, budget.min_pixels, budget.max_pixels)
    return resized_h * resized_w // TOKEN_PIXELS


@pytest.mark.slow
def test_every_stage_gives_a_large_image_the_same_tokens(tiny_model_dir: Path, large_pair: PairRecord,
                                                         tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(MIN_PIXELS_ENV, raising=False)  # the eval flag sets only the max; min is the default
    counts = {name: _image_tokens(name, tiny_model_dir, large_pair, BUDGET, tmp_path) for name in CONSUMERS}
    expected = _budget_tokens(BUDGET)
    assert expected == 4 * 6 and expected < _budget_tokens(SECOND_BUDGET)
    assert counts == dict.fromkeys(CONSUMERS, expected), f"image tokens per stage under {BUDGET}: {counts}"


@pytest.mark.slow
@pytest.mark.parametrize("consumer", CONSUMERS)
def test_a_stage_on_a_second_budget_disagrees(consumer: str, tiny_model_dir: Path, large_pair: PairRecord,
                                              tmp_path: Path, monkeypatch) -> None:
    """The agreement above is not vacuous: each stage follows the budget it is given."""
    monkeypatch.delenv(MIN_PIXELS_ENV, raising=False)
    tokens = _image_tokens(consumer, tiny_model_dir, large_pair, SECOND_BUDGET, tmp_path)
    assert tokens != _budget_tokens(BUDGET), f"{consumer} gives {tokens} image tokens under {SECOND_BUDGET} too"


def test_sft_launcher_default_is_the_shared_budget(tmp_path: Path, monkeypatch) -> None:
    """The SFT launcher's MAX_PIXELS (read from its dry run, not restated) is the Python default, and one
    exported MAX_PIXELS moves both."""
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")

    def launcher_max_pixels(**extra: str) -> int:
        env = {k: v for k, v in os.environ.items() if k not in (MAX_PIXELS_ENV, MIN_PIXELS_ENV)}
        env.update(MODEL_PATH="m", DATA_PATH=str(data), OUTPUT_DIR="o", CUDA_VISIBLE_DEVICES="0", DRY_RUN="1",
                   **extra)
        done = subprocess.run(["bash", str(REPO_ROOT / "scripts/sft/train_grm_sft.sh")], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return int(re.search(r"\bMAX_PIXELS=(\d+)", done.stdout).group(1))

    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    monkeypatch.delenv(MIN_PIXELS_ENV, raising=False)
    assert launcher_max_pixels() == pixel_budget().max_pixels == RELEASE_MAX_PIXELS
    monkeypatch.setenv(MAX_PIXELS_ENV, str(512 * TOKEN_PIXELS))
    assert launcher_max_pixels(MAX_PIXELS=str(512 * TOKEN_PIXELS)) == pixel_budget().max_pixels


def test_shell_pixel_default_is_the_python_budget() -> None:
    """``scripts/lib.sh`` writes the launchers' MAX_PIXELS default once, and it is ``RELEASE_MAX_PIXELS``."""
    env = {k: v for k, v in os.environ.items() if k != MAX_PIXELS_ENV}
    done = subprocess.run(["bash", "-c", f'source "{REPO_ROOT}/scripts/lib.sh" && export_max_pixels && '
                                         'echo "${MAX_PIXELS}"'], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == RELEASE_MAX_PIXELS
    restated = [str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "scripts").rglob("*.sh")
                if str(RELEASE_MAX_PIXELS) in path.read_text()]
    assert restated == ["scripts/lib.sh"], restated


def test_default_min_is_qwen_vl_utils_own() -> None:
    from qwen_vl_utils import vision_process

    assert DEFAULT_MIN_PIXELS == vision_process.IMAGE_MIN_TOKEN_NUM * IMAGE_FACTOR**2


@pytest.mark.parametrize("max_pixels, min_pixels", [(1000000, DEFAULT_MIN_PIXELS), (TOKEN_PIXELS, 2 * TOKEN_PIXELS),
                                                    (0, DEFAULT_MIN_PIXELS)])
def test_budget_refuses_values_ms_swift_would_round(max_pixels: int, min_pixels: int) -> None:
    with pytest.raises(ValueError):
        PixelBudget(max_pixels, min_pixels)


def test_every_command_line_refuses_a_bad_budget(tmp_path: Path, capsys) -> None:
    """A budget ms-swift would round is refused before any model loads, by each stage's flag."""
    from proxy_grm.data.split import main as split_main
    from proxy_grm.evaluation.cli import generate_main
    from proxy_grm.proxy_service.cli import build_parser, validate

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    for path in ("pairs.jsonl", "cache.jsonl", "questions.jsonl"):
        (tmp_path / path).write_text("")
    bad = ["--max-pixels", "1000000"]
    with pytest.raises(SystemExit, match="--max-pixels"):
        split_main(["--pairs", str(tmp_path / "pairs.jsonl"), "--cache", str(tmp_path / "cache.jsonl"),
                    "--out", str(tmp_path / "sets"), *bad])
    parser = build_parser()
    with pytest.raises(SystemExit):
        validate(parser.parse_args(["--model-path", str(model), "--backend", "transformers", "--port", "0", *bad]),
                 parser)
    with pytest.raises(SystemExit):
        generate_main("vl_rewardbench", ["--model-path", str(model), "--question-file",
                                         str(tmp_path / "questions.jsonl"), "--answers-file", str(tmp_path / "a"),
                                         "--backend", "transformers", *bad])
    assert capsys.readouterr().err.count("--max-pixels: max_pixels must be a positive multiple of 784") == 2
