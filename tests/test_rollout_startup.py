"""verl 0.9.1's own rollout-server start-up, replayed on every launcher's exact overrides in ``.venv-rl``
(verl with the vLLM it pins, 0.24.0), through the preflight's ``rollout`` check; and vLLM 0.24.0's own length
checks on the request our reward sends to verl's reward-model pool.

Composing the config and instantiating its dataclasses passed while every rollout server would have died at
start-up (``FrozenInstanceError: Field 'max_num_batched_tokens' is frozen``): only running verl's code on the
launchers' settings shows it. The launchers' model paths are swapped for the tiny model (verl reads its config
and processor); nothing else changes. One test runs the preflight's command as a user does; the others run its
check in one ``.venv-rl`` process (``tests/rl_env_probe.py``), as each start imports verl and vLLM (~20 s).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from helpers import REPO_ROOT
from test_verl_launch_config import GRM_SCRIPT, PROXIES, REQUIRED, RL_SCRIPT, dry_run_overrides

from proxy_grm.launch import checks
from proxy_grm.launch.preflight import CHECK_ORDER
from proxy_grm.proxy_contract import DEFAULT_MAX_NEW_TOKENS

SMOKE_SCRIPT = REPO_ROOT / "scripts" / "grpo_smoke.sh"
ONE_GPU = {"N_GPUS_PER_NODE": "1", "ROLLOUT_TP": "1", "GPU_MEMORY_UTILIZATION": "0.16",
           "MICRO_BATCH_SIZE_PER_GPU": "1", "PROXY_URLS": "http://127.0.0.1:8000"}
MODEL_KEYS = ("actor_rollout_ref.model.path=", "reward.reward_model.model_path=")

LAUNCHES = {
    "production": (GRM_SCRIPT, {"PROXY_URLS": PROXIES}),
    "production-pool": (GRM_SCRIPT, {"PROXY_MODE": "pool", "PROXY_MODEL_PATH": "/models/proxy_sft",
                                     "PROXY_GPUS_PER_NODE": "8"}),
    "one-gpu": (GRM_SCRIPT, ONE_GPU),
    "one-gpu-lora": (GRM_SCRIPT, {**ONE_GPU, "LORA_RANK": "64", "ACTOR_OFFLOAD": "1"}),
    "proxy-rl": (RL_SCRIPT, {}),
    "gpu-smoke": (SMOKE_SCRIPT, {"PROXY_MODE": "service"}),
    "gpu-smoke-pool": (SMOKE_SCRIPT, {"PROXY_MODE": "pool"}),
}


def launcher_overrides(name: str, model_dir: Path) -> list[str]:
    """The launcher's ``DRY_RUN`` overrides, its model paths pointing at ``model_dir``."""
    script, env = LAUNCHES[name]
    overrides = dry_run_overrides(script, {**REQUIRED, **env})
    return [f"{override.split('=', 1)[0]}={model_dir}" if override.startswith(MODEL_KEYS) else override
            for override in overrides]


def preflight_rollout(rl_python: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    """The preflight with its ``rollout`` check alone, as a GPU node's RL environment runs it."""
    skip = ",".join(name for name in CHECK_ORDER if name != "rollout")
    env = {**os.environ, "PREFLIGHT_SKIP": skip, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(rl_python), "-m", "proxy_grm.launch.preflight", "rl", "--", *overrides], env=env,
                          capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


def probe(rl_python: Path, *args: str) -> str:
    """``tests/rl_env_probe.py`` run by ``.venv-rl``; its last line."""
    argv = [str(rl_python), str(REPO_ROOT / "tests" / "rl_env_probe.py"), *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_verls_rollout_startup_accepts_every_launchers_settings(rl_python: Path, tiny_model_dir: Path,
                                                                tmp_path: Path) -> None:
    """And the check fails a pool too short for the proxy's request: grpo_smoke.sh's pool once held 8,192 tokens
    while the reward asked for 16,384 new ones, so vLLM would have refused every call with a 400."""
    launches = {name: launcher_overrides(name, tiny_model_dir) for name in LAUNCHES}
    launches["short-pool"] = [*launches["gpu-smoke-pool"], "reward.reward_model.rollout.max_model_len=8192"]
    path = tmp_path / "launches.json"
    path.write_text(json.dumps(launches))
    problems = json.loads(probe(rl_python, "rollout", str(path)))
    assert {name: found for name, found in problems.items() if name != "short-pool"} == {name: [] for name in LAUNCHES}
    (short,) = problems["short-pool"]
    assert short.startswith("rollout: verl's reward-model servers hold 8192 tokens"), short
    assert f"max_new_tokens={DEFAULT_MAX_NEW_TOKENS}" in short


def test_the_replay_runs_verls_code_and_catches_the_frozen_field(rl_python: Path, tiny_model_dir: Path) -> None:
    """Without the launcher's max_num_batched_tokens, verl's start-up assigns a frozen field: the check says so."""
    overrides = [o for o in launcher_overrides("production", tiny_model_dir)
                 if not o.startswith("actor_rollout_ref.rollout.max_num_batched_tokens=")]
    result = preflight_rollout(rl_python, overrides)
    assert result.returncode == 1
    assert ("preflight: FAIL rollout: verl's vLLM server start-up rejects actor_rollout_ref.rollout: "
            "FrozenInstanceError") in result.stderr, result.stderr
    assert "max_num_batched_tokens" in result.stderr and "Traceback" not in result.stderr


def test_vllms_own_checks_agree_with_the_preflights_bound(rl_python: Path, tiny_model_dir: Path) -> None:
    """The longest proxy request the preflight allows for grpo_smoke.sh's pool passes vLLM 0.24.0's checks at
    the length the pool now serves (the model's 32,768), and vLLM refuses the request at the old 8,192."""
    from hydra import compose, initialize_config_dir
    from transformers import AutoTokenizer
    import verl

    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        config = compose(config_name="ppo_trainer", overrides=launcher_overrides("gpu-smoke-pool", tiny_model_dir))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    need = checks.proxy_request_tokens(config, tokenizer, DEFAULT_MAX_NEW_TOKENS)
    prompt = need - DEFAULT_MAX_NEW_TOKENS
    at_32k, at_8k, at_need, below_need = json.loads(probe(
        rl_python, "budget", str(DEFAULT_MAX_NEW_TOKENS), str(prompt), str(tiny_model_dir), "32768", "8192",
        str(need), str(need - 1)))
    assert at_32k == "ok" and checks.check_pool_length(config, tokenizer, 32768, DEFAULT_MAX_NEW_TOKENS) == []
    assert at_8k.startswith("refused: VLLMValidationError: max_tokens=16384 cannot be greater than"), at_8k
    assert checks.check_pool_length(config, tokenizer, 8192, DEFAULT_MAX_NEW_TOKENS) != []
    # A pool just long enough for the preflight is long enough for vLLM, and one token less is not.
    assert at_need == "ok" and below_need.startswith("refused: VLLMValidationError: This model's maximum context")
