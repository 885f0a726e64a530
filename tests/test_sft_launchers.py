"""The ms-swift SFT launchers: real `swift sft` steps on CPU, checks before launch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

from helpers import REPO_ROOT
from proxy_grm import messages, prompts

LAUNCHERS = ["scripts/sft/train_grm_sft.sh", "scripts/sft/train_proxy_sft.sh"]


def _sft_rows(tmp_path: Path, stage: str) -> Path:
    rows = []
    for i in range(4):
        image = tmp_path / f"image_{i}.png"
        Image.new("RGB", (56 + 28 * i, 56), (40 * i, 120, 60)).save(image)
        if stage == "grm":
            text = prompts.grm_prompt(f"What is shown in picture {i}?", "A red square.", "A blue circle.")
            target = "<rubric>Accuracy 100%<justify>color</justify></rubric><eval>1 is right</eval><answer>1</answer>"
        else:
            text = prompts.proxy_prompt(f"Question {i}?", "A red square.", "A blue circle.", "<rubric>Color</rubric>")
            target = "<think>Response 2 matches the rubric.</think><answer>2</answer>"
        rows.append(messages.swift_row(text, str(image), response=target))
    path = tmp_path / f"{stage}_sft.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _run(launcher: str, env_overrides: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(env_overrides)
    return subprocess.run(
        ["bash", str(REPO_ROOT / launcher), *extra], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_two_cpu_steps_write_a_checkpoint_transformers_reloads(launcher: str, tiny_model_dir: Path, tmp_path: Path):
    stage = "grm" if "grm" in launcher else "proxy"
    data = _sft_rows(tmp_path, stage)
    result = _run(
        launcher,
        {
            "SFT_DEVICE": "cpu", "MODEL_PATH": str(tiny_model_dir), "DATA_PATH": str(data),
            "OUTPUT_DIR": str(tmp_path / "out"), "NUM_WORKERS": "0", "DATASET_NUM_PROC": "1",
            "SAVE_STEPS": "2", "MAX_PIXELS": str(64 * 28 * 28),
        },
        "--max_steps", "2",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checkpoints = sorted((tmp_path / "out").glob("v*/checkpoint-2"))
    assert len(checkpoints) == 1, list((tmp_path / "out").rglob("*"))
    state = json.loads((checkpoints[0] / "trainer_state.json").read_text())
    assert state["global_step"] == 2

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(checkpoints[0], dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(checkpoints[0])
    chat = messages.chat_messages("Which is better?", image=Image.new("RGB", (56, 56), (1, 2, 3)))
    text = processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    from qwen_vl_utils import process_vision_info

    images, _ = process_vision_info(chat)
    inputs = processor(text=[text], images=images, return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("missing", ["MODEL_PATH", "DATA_PATH", "OUTPUT_DIR"])
def test_missing_variable_is_named(launcher: str, missing: str, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    env = {"MODEL_PATH": "m", "DATA_PATH": str(data), "OUTPUT_DIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": "0"}
    env[missing] = ""
    result = _run(launcher, env)
    assert result.returncode == 2
    assert f"set {missing}" in result.stderr


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_gpu_dry_run_uses_the_release_settings(launcher: str, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    env = {"MODEL_PATH": "m", "DATA_PATH": str(data), "OUTPUT_DIR": "o", "CUDA_VISIBLE_DEVICES": "0,1,2,3",
           "DRY_RUN": "1"}
    result = _run(launcher, env, "--seed", "7")
    assert result.returncode == 0, result.stderr
    assert "NPROC_PER_NODE=4" in result.stdout
    command = result.stdout.strip().splitlines()[-1].split()
    flags = dict(zip(command[2::2], command[3::2]))
    assert command[1] == "sft"
    expected = {
        "--tuner_type": "full", "--learning_rate": "5e-6", "--num_train_epochs": "1",
        "--per_device_train_batch_size": "2", "--max_length": "8192", "--deepspeed": "zero2",
        "--warmup_ratio": "0.05", "--torch_dtype": "bfloat16", "--attn_impl": "flash_attn",
        "--freeze_vit": "false", "--report_to": "none", "--seed": "7",
    }
    assert {k: flags.get(k) for k in expected} == expected


def test_cuda_requires_visible_devices(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    env = {"MODEL_PATH": "m", "DATA_PATH": str(data), "OUTPUT_DIR": "o", "CUDA_VISIBLE_DEVICES": ""}
    result = _run(LAUNCHERS[0], env)
    assert result.returncode == 2 and "CUDA_VISIBLE_DEVICES" in result.stderr


def test_release_variable_names_are_aliases(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    env = {"model_path": "/release/model", "data_path": str(data), "output_path": "/release/out", "gpus": "0,1",
           "swanlab_project": "proj", "swanlab_exp_name": "exp", "DRY_RUN": "1", "MODEL_PATH": "", "DATA_PATH": "",
           "OUTPUT_DIR": "", "CUDA_VISIBLE_DEVICES": "", "REPORT_TO": ""}
    result = _run(LAUNCHERS[1], env)
    assert result.returncode == 0, result.stderr
    assert "NPROC_PER_NODE=2 CUDA_VISIBLE_DEVICES=0,1" in result.stdout
    command = result.stdout.strip().splitlines()[-1].split()
    flags = dict(zip(command[2::2], command[3::2]))
    assert (flags["--model"], flags["--dataset"], flags["--output_dir"]) == (
        "/release/model", str(data), "/release/out")
    assert (flags["--report_to"], flags["--swanlab_project"], flags["--swanlab_exp_name"]) == ("swanlab", "proj", "exp")
    for ours, theirs in [("MODEL_PATH", "model_path"), ("DATA_PATH", "data_path"), ("OUTPUT_DIR", "output_path"),
                         ("CUDA_VISIBLE_DEVICES", "gpus")]:
        assert f"{ours} taken from the release's {theirs}" in result.stderr


def test_sdpa_needs_no_flash_attn(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    env = {"MODEL_PATH": "m", "DATA_PATH": str(data), "OUTPUT_DIR": "o", "CUDA_VISIBLE_DEVICES": "0",
           "ATTN_IMPL": "sdpa", "DRY_RUN": "1"}
    command = _run(LAUNCHERS[0], env).stdout.strip().splitlines()[-1].split()
    assert dict(zip(command[2::2], command[3::2]))["--attn_impl"] == "sdpa"
