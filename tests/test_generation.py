"""Generation backends on the tiny model: batching, images, and transformers == vLLM greedy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from helpers import VLLM_PYTHON
from proxy_grm.generation import TransformersGenerator, load_vision, prepare_prompt
from proxy_grm.images import ImageLoadError, image_to_data_uri
from proxy_grm.messages import chat_messages
from proxy_grm.toy.servers import vllm_env
from proxy_grm.toy.tiny_model import IMAGE_PAD_ID

MAX_NEW_TOKENS = 12

VLLM_SCRIPT = """
import json, sys
from proxy_grm.generation import VllmGenerator

if __name__ == "__main__":
    model_path, batch_path = sys.argv[1], sys.argv[2]
    batch = json.loads(open(batch_path).read())
    generator = VllmGenerator(model_path, dtype="float32", max_model_len=4096, enforce_eager=True)
    print("OUTPUTS=" + json.dumps(generator.generate(batch, %d)))
""" % MAX_NEW_TOKENS


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> list[list[dict]]:
    """Two image prompts with different image sizes (one a path, one a data URI) and texts."""
    folder = tmp_path_factory.mktemp("images")
    Image.new("RGB", (64, 48), (200, 30, 30)).save(folder / "wide.png")
    tall = Image.new("RGB", (90, 160), (10, 200, 30))
    return [
        chat_messages("What is shown in the image?", image=str(folder / "wide.png")),
        chat_messages("Describe the colours, please.", image=image_to_data_uri(tall)),
    ]


@pytest.fixture(scope="module")
def generator(tiny_model_dir: Path) -> TransformersGenerator:
    return TransformersGenerator(tiny_model_dir, dtype="float32")


@pytest.fixture(scope="module")
def transformers_outputs(generator: TransformersGenerator, batch: list[list[dict]]) -> list[str]:
    return generator.generate(batch, MAX_NEW_TOKENS)


def test_prepare_prompt_renders_image_tokens(generator: TransformersGenerator, batch: list[list[dict]]) -> None:
    prompt = prepare_prompt(generator.processor, batch[1])
    assert prompt.text.count("<|vision_start|><|image_pad|><|vision_end|>") == 1
    assert prompt.text.endswith("<|im_start|>assistant\n")
    assert len(prompt.images) == 1 and prompt.images[0].size[0] % 28 == 0
    inputs = generator.processor(text=[prompt.text], images=prompt.images, return_tensors="pt")
    assert int((inputs["input_ids"] == IMAGE_PAD_ID).sum()) > 1


def test_bad_image_reference_raises_image_load_error(generator: TransformersGenerator) -> None:
    with pytest.raises(ImageLoadError, match="no such file"):
        generator.generate([chat_messages("q", image="/no/such/image.png")], MAX_NEW_TOKENS)


def test_load_vision_replaces_references_only(batch: list[list[dict]]) -> None:
    loaded = load_vision(batch[0])
    assert isinstance(loaded[0]["content"][0]["image"], Image.Image)
    assert loaded[0]["content"][1] == batch[0][0]["content"][1]
    assert isinstance(batch[0][0]["content"][0]["image"], str)  # the input is not modified


def test_transformers_batch_equals_one_at_a_time(
    generator: TransformersGenerator, batch: list[list[dict]], transformers_outputs: list[str]
) -> None:
    assert len(transformers_outputs) == 2 and all(isinstance(text, str) for text in transformers_outputs)
    assert transformers_outputs == [generator.generate([messages], MAX_NEW_TOKENS)[0] for messages in batch]
    assert generator.generate([], MAX_NEW_TOKENS) == []


def test_transformers_video_frames(generator: TransformersGenerator, tmp_path: Path) -> None:
    for i in range(4):
        Image.new("RGB", (56, 56), (60 * i, 0, 0)).save(tmp_path / f"{i:02d}.jpg")
    outputs = generator.generate([chat_messages("What happens?", video=str(tmp_path))], MAX_NEW_TOKENS)
    assert len(outputs) == 1 and isinstance(outputs[0], str)


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_greedy_matches_transformers(
    tiny_model_dir: Path, batch: list[list[dict]], transformers_outputs: list[str], tmp_path: Path
) -> None:
    """vLLM's offline engine (in .venv-vllm) and transformers agree token for token in float32."""
    if not VLLM_PYTHON.exists():
        pytest.fail(f"{VLLM_PYTHON} is missing: run `bash scripts/setup_env.sh vllm`")
    script, batch_path = tmp_path / "generate_vllm.py", tmp_path / "batch.json"
    script.write_text(VLLM_SCRIPT)
    batch_path.write_text(json.dumps(batch))
    run = subprocess.run(
        [str(VLLM_PYTHON), str(script), str(tiny_model_dir), str(batch_path)],
        capture_output=True, text=True, env=vllm_env(), timeout=600,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("OUTPUTS=")]
    assert run.returncode == 0 and lines, run.stderr[-4000:]
    assert json.loads(lines[-1].removeprefix("OUTPUTS=")) == transformers_outputs


PENALTY_SCRIPT = """
import asyncio, json, sys
from proxy_grm.generation import AsyncVllmGenerator, VllmGenerator

async def run_async(model_path, batch, max_new_tokens):
    generator = AsyncVllmGenerator(model_path, dtype="float32", max_model_len=4096, enforce_eager=True)
    engine_generate, yields = generator.engine.generate, []

    async def counting_generate(*args, **kwargs):
        count = 0
        async for output in engine_generate(*args, **kwargs):
            count += 1
            yield output
        yields.append(count)

    generator.engine.generate = counting_generate
    try:
        texts = await generator.generate(batch, max_new_tokens)
        print("ASYNC_YIELDS=" + json.dumps(yields), flush=True)
        return texts
    finally:
        generator.shutdown()

if __name__ == "__main__":
    model_path, batch_path, max_new_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
    batch = json.loads(open(batch_path).read())
    offline = VllmGenerator(model_path, dtype="float32", max_model_len=4096, enforce_eager=True)
    print("OFFLINE=" + json.dumps(offline.generate(batch, max_new_tokens)), flush=True)
    offline.shutdown()
    print("ASYNC=" + json.dumps(asyncio.run(run_async(model_path, batch, max_new_tokens))), flush=True)
"""
PENALTY_TOKENS = 24


@pytest.fixture(scope="module")
def penalised_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with Qwen2.5-VL-7B-Instruct's ``repetition_penalty`` 1.05 in generation_config.json."""
    from proxy_grm.toy.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-penalised"), repetition_penalty=1.05)


@pytest.mark.vllm
@pytest.mark.slow
def test_greedy_applies_the_checkpoint_generation_config_everywhere(
    penalised_model_dir: Path, batch: list[list[dict]], tmp_path: Path
) -> None:
    """transformers batches, ``model.generate(do_sample=False)`` one by one, and vLLM's offline and async
    engines give the same text, and the penalty changes it (so it is applied, not ignored by all)."""
    generator = TransformersGenerator(penalised_model_dir, dtype="float32")
    ours = generator.generate(batch, PENALTY_TOKENS)
    plain = []
    for messages in batch:
        prompt = prepare_prompt(generator.processor, messages)
        inputs = generator.processor(text=[prompt.text], images=prompt.images, return_tensors="pt")
        output = generator.model.generate(**inputs, do_sample=False, max_new_tokens=PENALTY_TOKENS)
        plain.append(generator.processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    assert ours == plain
    generator.model.generation_config.repetition_penalty = 1.0
    assert generator.generate(batch, PENALTY_TOKENS) != ours, "the penalty should change the tiny model's output"

    script, batch_path = tmp_path / "penalised_vllm.py", tmp_path / "batch.json"
    script.write_text(PENALTY_SCRIPT)
    batch_path.write_text(json.dumps(batch))
    run = subprocess.run(
        [str(VLLM_PYTHON), str(script), str(penalised_model_dir), str(batch_path), str(PENALTY_TOKENS)],
        capture_output=True, text=True, env=vllm_env(), timeout=900,
    )
    outputs = {line.split("=", 1)[0]: json.loads(line.split("=", 1)[1]) for line in run.stdout.splitlines()
               if line.startswith(("OFFLINE=", "ASYNC=", "ASYNC_YIELDS="))}
    assert run.returncode == 0 and len(outputs) == 3, run.stderr[-4000:]
    # The async engine hands each request its final output only, not one per decoded token.
    assert outputs.pop("ASYNC_YIELDS") == [1] * len(batch)
    assert outputs == {"OFFLINE": ours, "ASYNC": ours}


def test_completions_say_when_they_hit_the_limit(generator: TransformersGenerator, batch: list[list[dict]]) -> None:
    """The random tiny model writes filler and no end token: every completion is cut off at the limit."""
    from proxy_grm.generation import Completion

    outputs = generator.generate(batch, 4)
    assert all(isinstance(text, Completion) and text.truncated for text in outputs)
