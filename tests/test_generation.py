"""Generation backends on the tiny model: batching, images, and transformers == vLLM greedy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from conftest import VLLM_PYTHON, vllm_env
from proxy_grm.generation import TransformersGenerator, load_vision, prepare_prompt
from proxy_grm.images import ImageLoadError, image_to_data_uri
from proxy_grm.messages import chat_messages
from proxy_grm.tiny_model import IMAGE_PAD_ID

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
