"""verl 0.9.1's own GRPO trainer on CPU, through the launcher a GPU user runs (docs/grpo.md, "On CPU").

``scripts/grpo_smoke.sh`` with ``TRAINER_DEVICE=cpu``: the tiny model after a short ms-swift SFT, verl's
``main_ppo`` (``proxy_grm.launch.verl_main``), Ray, TransferQueue, FSDP2 on gloo, the vLLM 0.24 rollout server,
verl's reward loop with our ``compute_score``, the actor update and the weight sync, one step in each proxy
mode. Then the proxy dies under the running trainer, in verl's default mode and in an async one: the run stops
with ``RolloutsLostError`` naming the URL. Marked ``trainer``: ``bash scripts/test.sh -m trainer`` (about
25 minutes on 2 cores; the SFT runs once).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from helpers import REPO_ROOT, RL_PYTHON
from reward_stub_proxy import start_stub

pytestmark = pytest.mark.trainer

SMOKE = REPO_ROOT / "scripts" / "grpo_smoke.sh"
GRM_SCRIPT = REPO_ROOT / "scripts" / "rl" / "train_proxy_grm.sh"
SWIFT = REPO_ROOT / ".venv" / "bin" / "swift"
BATCH, ROLLOUT_N = 4, 2  # grpo_smoke.sh's step
STEP_LINE = re.compile(r"step:1 - (.*)")


def step_metrics(log: str) -> dict[str, float]:
    """verl's console line for step 1 (``step:1 - key:value - ...``, verl/utils/logger/aggregate_logger.py)."""
    lines = STEP_LINE.findall(log)
    assert lines, f"no step line in the log:\n{log[-4000:]}"
    metrics = {}
    for part in lines[-1].split(" - "):
        key, _, value = part.partition(":")
        try:
            metrics[key.strip()] = float(value)
        except ValueError:
            continue
    return metrics


def run_env(out_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "TRAINER_DEVICE": "cpu", "PYTHON": str(RL_PYTHON), "SWIFT": str(SWIFT),
            "OUT_DIR": str(out_dir), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", **extra}


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One output folder for the module: the model, data and SFT checkpoint are made once (``GRPO_SMOKE_DIR``
    names a folder to reuse across runs, as ``grpo_smoke.sh`` reuses its ``OUT_DIR``)."""
    if os.environ.get("GRPO_SMOKE_DIR"):
        return Path(os.environ["GRPO_SMOKE_DIR"]).resolve()
    return tmp_path_factory.mktemp("grpo-smoke")


@pytest.mark.parametrize("mode", ["service", "pool"])
def test_one_grpo_step_through_verls_trainer(smoke_dir: Path, mode: str) -> None:
    """The step finishes, every rollout comes back, the proxy judged rollouts, and the rollout engine sampled
    with the actor's weights (verl's own rollout-vs-actor probability gap stays small: a failed weight sync
    leaves vLLM on its dummy start-up weights)."""
    started = time.monotonic()
    result = subprocess.run(["bash", str(SMOKE)], env=run_env(smoke_dir, PROXY_MODE=mode), cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=1800)
    log = result.stdout + result.stderr
    (smoke_dir / f"test-{mode}.log").write_text(log)
    assert result.returncode == 0, log[-6000:]
    metrics = step_metrics(log)
    print(f"{mode}: {time.monotonic() - started:.0f} s in all, step {metrics['timing_s/step']:.0f} s")
    assert metrics["reward_parts/rollouts"] == BATCH * ROLLOUT_N
    assert metrics["reward_parts/proxy_called"] > 0
    assert metrics["reward_parts/proxy_failed"] == 0
    assert metrics["training/rollout_probs_diff_max"] < 0.05
    assert f"GRPO smoke passed (PROXY_MODE={mode}, TRAINER_DEVICE=cpu)" in log


def kill_on_first_request(server, base: str, stop: threading.Event) -> None:
    """Kill the stub once a reward request has reached it (the trainer is then inside its step)."""
    while not stop.is_set():
        try:
            if httpx.get(f"{base}/received", timeout=2.0).json():
                server.stop(grace_s=0)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)


@pytest.mark.parametrize("trainer_mode", ["sync", "colocate_async"])
def test_a_proxy_dying_mid_step_stops_the_run(smoke_dir: Path, tmp_path: Path, trainer_mode: str) -> None:
    """The proxy is killed while it holds the step's first reward request: verl's trainer (which would log the
    reward function's failure and train on) stops with ``RolloutsLostError`` naming the replica."""
    checkpoints = sorted((smoke_dir / "sft").glob("*/checkpoint-*")) + sorted((smoke_dir / "sft").glob("checkpoint-*"))
    if not checkpoints:
        pytest.skip("needs the SFT checkpoint of test_one_grpo_step_through_verls_trainer (same module)")
    # The rows' images lie under smoke_dir (the stub's own --image-root is overridden: argparse keeps the last).
    server, base = start_stub(tmp_path, "--delay-s", "60", "--image-root", str(smoke_dir))
    stop = threading.Event()
    killer = threading.Thread(target=kill_on_first_request, args=(server, base, stop), daemon=True)
    killer.start()
    rows = smoke_dir / "data" / "sets" / "grm_rl.parquet"
    env = run_env(smoke_dir, PROXY_URLS=base, MODEL_PATH=str(checkpoints[-1]), TRAIN_FILES=str(rows),
                  VAL_FILES=str(rows), N_GPUS_PER_NODE="1", ROLLOUT_TP="1", REPORT_TO="none", PREFLIGHT="0",
                  SAVE_DIR=str(tmp_path / "checkpoints"))
    try:
        result = subprocess.run(
            ["bash", str(GRM_SCRIPT), f"data.train_batch_size={BATCH}", "data.max_prompt_length=1024",
             "data.max_response_length=256", f"actor_rollout_ref.rollout.n={ROLLOUT_N}",
             "actor_rollout_ref.actor.ppo_mini_batch_size=4", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
             "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
             "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2", "trainer.total_training_steps=1",
             "trainer.save_freq=-1", "trainer.test_freq=-1", "trainer.val_before_train=False",
             f"trainer.v1.trainer_mode={trainer_mode}"],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    finally:
        stop.set()
        server.stop()
    log = result.stdout + result.stderr
    (tmp_path / "grpo.log").write_text(log)
    assert result.returncode != 0, log[-4000:]
    assert "RolloutsLostError" in log, log[-6000:]
    print(f"{trainer_mode}: {next(line for line in log.splitlines() if 'RolloutsLostError' in line)[:400]}")
    assert base in log[log.index("RolloutsLostError"):], log[-6000:]
    assert not STEP_LINE.search(log), "a step was logged after the proxy died"
