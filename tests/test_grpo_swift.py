"""Stage C.2 on the CPU trainer, at the smallest size: scripts/rl/train_proxy_grm_swift.sh runs real
ms-swift GRPO steps whose rewards come from compute_score and a proxy over HTTP.

The policy is the tiny model after a short real `swift sft` on targets that carry a rubric, half
``PICK1`` and half ``PICK2`` (the stub proxy picks the response its rubric names), so sampled
rollouts differ in reward and GRPO has an advantage to follow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from helpers import REPO_ROOT
from proxy_grm.data.writers import SwiftJsonlWriter, VerlParquetWriter, grm_sft_row, verl_row
from proxy_grm.demo.pipeline import changed_tensors
from proxy_grm.pairs import PairRecord
from proxy_grm.parsing import extract_rubric
from proxy_grm.pixels import pixel_budget
from proxy_grm.reward.swift_grpo import PARTS_FILE, summarise_steps
from proxy_grm.toy.tiny_model import TINY_MAX_PIXELS
from reward_stub_proxy import start_stub

pytestmark = pytest.mark.slow


def _pairs(image_root: Path, n: int) -> list[PairRecord]:
    from PIL import Image

    image_root.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(n):
        image = image_root / f"image-{i}.png"
        Image.new("RGB", (56, 56), (40 * i % 256, 90, 160)).save(image)
        pairs.append(PairRecord(id=f"p{i}", source="fixture", image=str(image), question=f"What is in picture {i}?",
                                preferred=f"A red square {i}.",
                                dispreferred=f"A blue circle {i}."))
    return pairs


def _critique(pick: int) -> str:
    return f"<rubric>PICK{pick} detail 100%</rubric><eval>Response {pick} is better.</eval><answer>{pick}</answer>"


def _run(argv: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("wb") as out:
        code = subprocess.run(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=900).returncode
    assert code == 0, log.read_text()[-4000:]


def _latest_checkpoint(out: Path) -> Path:
    return sorted(out.glob("v*/checkpoint-*"), key=lambda p: p.stat().st_mtime)[-1]


def test_grpo_calls_the_proxy_with_the_policys_rubrics_and_updates_the_weights(tiny_model_dir: Path,
                                                                              tmp_path: Path) -> None:
    pairs = _pairs(tmp_path / "stub-images", 4)  # start_stub serves images from under <tmp_path>/stub-images
    with SwiftJsonlWriter(tmp_path / "sft.jsonl") as writer:
        for i, pair in enumerate(pairs * 2):
            writer.write(grm_sft_row(pair, False, _critique(1 + i % 2)))
    with VerlParquetWriter(tmp_path / "grm_rl.parquet", pixels=pixel_budget(TINY_MAX_PIXELS)) as writer:
        for i, pair in enumerate(pairs):
            writer.write(verl_row(pair, i % 2 == 1, i, "grm_rl"))

    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHON=sys.executable, MAX_PIXELS=str(TINY_MAX_PIXELS))
    sft_env = dict(env, SFT_DEVICE="cpu", MODEL_PATH=str(tiny_model_dir), DATA_PATH=str(tmp_path / "sft.jsonl"),
                   OUTPUT_DIR=str(tmp_path / "sft"), NUM_WORKERS="0", DATASET_NUM_PROC="1", SAVE_STEPS="30",
                   SPLIT_RATIO="0", LEARNING_RATE="5e-3", MAX_LENGTH="2048", BATCH_SIZE="4")
    _run(["bash", "scripts/sft/train_grm_sft.sh", "--max_steps", "30", "--gradient_checkpointing", "false"],
         sft_env, tmp_path / "sft.log")
    policy = _latest_checkpoint(tmp_path / "sft")

    stub, proxy_url = start_stub(tmp_path)
    try:
        grpo_env = dict(env, MODEL_PATH=str(policy), TRAIN_FILES=str(tmp_path / "grm_rl.parquet"),
                        PROXY_URLS=proxy_url, OUTPUT_DIR=str(tmp_path / "grpo"), ROLLOUT_N="4", BATCH_SIZE="8",
                        LR="1e-3", KL_LOSS_COEF="0", MAX_RESPONSE_LENGTH="40", MAX_STEPS="2", SAVE_STEPS="2",
                        TEMPERATURE="1.5")
        _run(["bash", "scripts/rl/train_proxy_grm_swift.sh", "--seed", "0"], grpo_env, tmp_path / "grpo.log")
        received = httpx.get(f"{proxy_url}/received").json()
    finally:
        stub.stop()

    updated = _latest_checkpoint(tmp_path / "grpo")
    parts = [json.loads(line) for line in (updated.parent / PARTS_FILE).read_text().splitlines()]
    assert {row["step"] for row in parts} == {1, 2} and len(parts) == 16
    policy_rubrics = {extract_rubric(row["completion"]) for row in parts} - {None}
    assert received, "the proxy was never called"
    assert {body["rubric"] for body in received} <= policy_rubrics
    assert sum(row["proxy_called"] for row in parts) == len(received)
    assert len({row["score"] for row in parts}) > 1, "equal rewards give GRPO nothing to follow"
    assert all(step["proxy_failed"] == 0 for step in summarise_steps(updated.parent / PARTS_FILE))

    changed, total = changed_tensors(policy, updated)
    assert changed > 0, f"no weight changed in {total} tensors"


def test_dry_run_prints_the_swift_command_with_the_reward_plugin(tmp_path: Path) -> None:
    data = tmp_path / "grm_rl.parquet"
    data.write_bytes(b"")
    env = dict(os.environ, DRY_RUN="1", PYTHON=sys.executable, MODEL_PATH="ckpt", TRAIN_FILES=str(data),
               PROXY_URLS="http://10.0.0.7:8000", ROLLOUT_N="4", BATCH_SIZE="8")
    result = subprocess.run(["bash", "scripts/rl/train_proxy_grm_swift.sh", "--max_steps", "3"], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, check=True)
    command = result.stdout.strip().splitlines()[-1]  # after the launcher's settings line
    assert command.startswith("swift rlhf --rlhf_type grpo ")
    for flag in ("--reward_funcs proxy_grm", f"--external_plugins {REPO_ROOT}/ms_swift/proxy_grm_reward.py",
                 "--num_generations 4", "--per_device_train_batch_size 8", "--use_cpu true"):
        assert flag in command, flag
    assert command.rstrip().endswith("--max_steps 3")


def test_release_ip_and_api_port_name_the_proxy_as_in_the_verl_launcher(tmp_path: Path) -> None:
    data = tmp_path / "grm_rl.parquet"
    data.write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if k != "PROXY_URLS"}
    env.update(DRY_RUN="1", PYTHON=sys.executable, MODEL_PATH="ckpt", TRAIN_FILES=str(data), ip="10.0.0.9",
               api_port="8000")
    result = subprocess.run(["bash", "scripts/rl/train_proxy_grm_swift.sh"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "PROXY_URLS=http://10.0.0.9:8000 taken from the release's ip and api_port" in result.stderr
    both = subprocess.run(["bash", "scripts/rl/train_proxy_grm_swift.sh"], cwd=REPO_ROOT,
                          env={**env, "PROXY_URLS": "http://10.0.0.7:8000"}, capture_output=True, text=True)
    assert both.returncode == 0 and "the release's ip/api_port are ignored" in both.stderr, both.stderr


def test_batch_size_must_hold_whole_groups(tmp_path: Path) -> None:
    data = tmp_path / "grm_rl.parquet"
    data.write_bytes(b"")
    env = dict(os.environ, DRY_RUN="1", PYTHON=sys.executable, MODEL_PATH="ckpt", TRAIN_FILES=str(data),
               PROXY_URLS="http://10.0.0.7:8000", ROLLOUT_N="4", BATCH_SIZE="6")
    result = subprocess.run(["bash", "scripts/rl/train_proxy_grm_swift.sh"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "BATCH_SIZE (6) counts completions: it must be a multiple of ROLLOUT_N (4)" in result.stderr
