"""The RL launchers' overrides, read from their real ``DRY_RUN=1`` output and composed
with verl's own trainer config (Hydra, strict), land where verl 0.9 reads them.

Script and test cannot drift: the test never restates the overrides, it parses
what the script would run. A misspelled key fails composition.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO_ROOT, RL_PYTHON
from proxy_grm.toy.servers import free_port
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig

from proxy_grm.reward import RewardSettings, resolve_settings
from proxy_grm.reward.score import verl_compute_score

GRM_SCRIPT = REPO_ROOT / "scripts" / "rl" / "train_proxy_grm.sh"
RL_SCRIPT = REPO_ROOT / "scripts" / "rl" / "train_proxy_rl.sh"
REQUIRED = {"MODEL_PATH": "/models/proxy_grm_sft", "TRAIN_FILES": "/data/rl/train.parquet",
            "VAL_FILES": "/data/rl/val.parquet"}
PROXIES = "http://10.0.0.7:8000, http://10.0.0.8:8000"


def run_script(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in {*REQUIRED, "PROXY_URLS", "DRY_RUN", "REPORT_TO", "PROXY_MODE", "PROXY_MODEL_PATH"}}
    return subprocess.run(["bash", str(script), *args], env={**clean, "PYTHON": sys.executable, **env},
                          capture_output=True, text=True, timeout=120)


def dry_run_overrides(script: Path, env: dict[str, str], *args: str) -> list[str]:
    """The Hydra overrides of the exact ``python -m proxy_grm.launch.verl_main`` command the script prints."""
    result = run_script(script, {"DRY_RUN": "1", **env}, *args)
    assert result.returncode == 0, result.stderr
    argv = shlex.split(result.stdout)
    if argv[0] == "env":  # TRAINER_DEVICE=cpu: verl's plugin variables in front (scripts/rl/common.sh)
        argv = argv[1 + sum(1 for _ in itertools.takewhile(lambda arg: "=" in arg, argv[1:])):]
    assert argv[:3] == [sys.executable, "-m", "proxy_grm.launch.verl_main"], argv[:3]
    return argv[3:]


def compose(overrides: list[str]) -> DictConfig:
    import verl
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return hydra_compose(config_name="ppo_trainer", overrides=overrides)


def validate_like_main_ppo(config: DictConfig) -> None:
    """What verl's ``main_ppo.main`` (and ``proxy_grm.launch.verl_main``) runs on the config before starting Ray."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))


@pytest.fixture(scope="module")
def grm_config() -> DictConfig:
    return compose(dry_run_overrides(GRM_SCRIPT, {**REQUIRED, "PROXY_URLS": PROXIES,
                                                  "REWARD_MODE": "implicit_graded_correct"}))


def test_grm_reward_function_path_name_kwargs(grm_config: DictConfig) -> None:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    reward = grm_config.reward.custom_reward_function
    assert reward.path == str(REPO_ROOT / "verl" / "proxy_grm_reward.py") and Path(reward.path).is_file()
    assert reward.name == "compute_score"
    assert dict(reward.reward_kwargs) == {
        "proxy_url": ["http://10.0.0.7:8000", "http://10.0.0.8:8000"], "mode": "implicit_graded_correct",
        "use_proxy": True, "use_format": True, "format_weight": 0.5}
    # verl's own loader finds our async function and binds exactly these kwargs
    bound = get_custom_reward_fn(grm_config)
    raw_fn, kwargs = bound.args
    # the trainer's variant: a proxy failure is recorded for the trainer's guard, not raised into verl's agent loop
    assert raw_fn is verl_compute_score and asyncio.iscoroutinefunction(raw_fn)
    settings = resolve_settings(kwargs, env={})
    assert settings.proxy_endpoints == ("http://10.0.0.7:8000/get_reward_mllm", "http://10.0.0.8:8000/get_reward_mllm")
    assert settings.mode.release_id == 7
    # the release's top-level key is not set (verl 0.9's main_ppo would ignore it)
    assert grm_config.custom_reward_function.path is None


def test_grm_data_rollout_batch_and_kl_settings(grm_config: DictConfig) -> None:
    data, actor = grm_config.data, grm_config.actor_rollout_ref.actor
    rollout = grm_config.actor_rollout_ref.rollout
    assert (data.train_files, data.val_files, data.image_key) == (
        REQUIRED["TRAIN_FILES"], REQUIRED["VAL_FILES"], "images")
    assert (data.train_batch_size, data.max_prompt_length, data.max_response_length) == (256, 4096, 8192)
    assert grm_config.actor_rollout_ref.model.path == REQUIRED["MODEL_PATH"]
    assert (rollout.name, rollout.n, rollout.tensor_model_parallel_size, rollout.gpu_memory_utilization) == (
        "vllm", 8, 2, 0.6)
    assert dict(rollout.engine_kwargs.vllm) == {}, "every key here becomes a vLLM flag: see test_rollout_engine_flags"
    # prompt + response, not the model's 128k max_position_embeddings, which verl would take and, with chunked
    # prefill off, raise max_num_batched_tokens to (verl/workers/rollout/vllm_rollout/vllm_async_server.py)
    assert (rollout.max_model_len, rollout.enable_chunked_prefill) == (4096 + 8192, False)
    assert (actor.ppo_mini_batch_size, actor.ppo_micro_batch_size_per_gpu, actor.optim.lr) == (128, 8, 3e-7)
    assert (actor.use_kl_loss, actor.kl_loss_coef, actor.kl_loss_type, actor.entropy_coeff) == (
        True, 0.01, "low_var_kl", 0)
    assert grm_config.algorithm.adv_estimator == "grpo" and grm_config.algorithm.use_kl_in_reward is False
    assert grm_config.actor_rollout_ref.ref.fsdp_config.param_offload is True
    assert (grm_config.trainer.n_gpus_per_node, grm_config.trainer.nnodes, grm_config.trainer.save_freq) == (8, 1, 5)
    assert list(grm_config.trainer.logger) == ["console"], "a logger needs credentials: only with REPORT_TO"
    validate_like_main_ppo(grm_config)


@pytest.mark.slow
def test_entry_point_composes_verls_config(grm_config: DictConfig) -> None:
    """``proxy_grm.launch.verl_main`` reads verl's own config: Hydra's ``--cfg job`` on the launcher's overrides
    prints the config composed from verl's config folder, and the trainer stays verl's default v1 ``sync``."""
    from omegaconf import OmegaConf

    overrides = dry_run_overrides(GRM_SCRIPT, {**REQUIRED, "PROXY_URLS": PROXIES,
                                               "REWARD_MODE": "implicit_graded_correct"})
    result = subprocess.run([sys.executable, "-m", "proxy_grm.launch.verl_main", "--cfg", "job", *overrides],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    printed = OmegaConf.create(result.stdout)
    assert OmegaConf.to_container(printed) == OmegaConf.to_container(grm_config)
    assert (grm_config.trainer.use_v1, grm_config.trainer.v1.trainer_mode) == (True, "sync")


def test_entry_point_refuses_the_v0_trainer() -> None:
    result = subprocess.run([sys.executable, "-m", "proxy_grm.launch.verl_main", "trainer.use_v1=False"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "runs verl's v1 trainer: drop trainer.use_v1=False" in result.stderr


def test_release_top_level_key_is_ignored_by_verl() -> None:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = compose(["custom_reward_function.path=/release/grm_reward_with_instruct.py",
                      "custom_reward_function.name=compute_score"])
    assert config.reward.custom_reward_function.path is None
    assert get_custom_reward_fn(config) is None, "verl would train with its default reward"


def test_extra_overrides_pass_through_last_and_win() -> None:
    env = {**REQUIRED, "PROXY_URLS": PROXIES}
    extra = ["trainer.total_epochs=3", 'trainer.logger=["console"]',
             "reward.custom_reward_function.reward_kwargs.mode=explicit_graded_strict",  # set by the script: no +
             "+reward.custom_reward_function.reward_kwargs.timeout_s=300"]  # a new kwarg: +
    overrides = dry_run_overrides(GRM_SCRIPT, env, *extra)
    assert overrides[-4:] == extra
    config = compose(overrides)
    assert (config.trainer.total_epochs, list(config.trainer.logger)) == (3, ["console"])
    kwargs = config.reward.custom_reward_function.reward_kwargs
    assert (kwargs.mode, kwargs.timeout_s) == ("explicit_graded_strict", 300)


def test_misspelled_override_fails_composition() -> None:
    overrides = dry_run_overrides(GRM_SCRIPT, {**REQUIRED, "PROXY_URLS": PROXIES}, "actor_rollout_ref.rollout.nn=4")
    with pytest.raises(ConfigCompositionException, match="rollout.nn"):
        compose(overrides)


@pytest.mark.parametrize("script, needed", [(GRM_SCRIPT, [*REQUIRED, "PROXY_URLS"]), (RL_SCRIPT, list(REQUIRED))])
def test_missing_variables_are_named(script: Path, needed: list[str]) -> None:
    result = run_script(script, {"DRY_RUN": "1"})
    assert result.returncode != 0 and result.stdout == ""
    for name in needed:
        assert f"set {name} (" in result.stderr


def test_preflight_stops_before_training_when_a_proxy_is_down(tmp_path: Path) -> None:
    from reward_stub_proxy import start_stub

    server, live = start_stub(tmp_path)
    dead = f"http://127.0.0.1:{free_port()}"
    try:
        result = run_script(GRM_SCRIPT, {**REQUIRED, "PROXY_URLS": f"{live},{dead}", "PROXY_WAIT_S": "0"})
        healthy = subprocess.run([sys.executable, "-m", "proxy_grm.launch.preflight", "health", live],
                                 capture_output=True, text=True, timeout=60)
    finally:
        server.stop()
    assert result.returncode == 1
    assert f"{dead}/health is not healthy" in result.stderr and live not in result.stderr
    assert "verl.trainer.main_ppo" not in result.stderr + result.stdout
    assert healthy.returncode == 0, healthy.stderr


def test_proxy_rl_accuracy_only_reward_without_proxy() -> None:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = compose(dry_run_overrides(RL_SCRIPT, REQUIRED))
    reward = config.reward.custom_reward_function
    assert reward.path == str(REPO_ROOT / "verl" / "proxy_grm_reward.py") and reward.name == "compute_score"
    assert dict(reward.reward_kwargs) == {"use_proxy": False, "use_format": False}
    assert resolve_settings(reward.reward_kwargs, env={}) == RewardSettings(use_proxy=False, use_format=False)
    assert (config.data.image_key, config.actor_rollout_ref.rollout.n, config.algorithm.adv_estimator) == (
        "images", 8, "grpo")
    assert config.actor_rollout_ref.actor.use_kl_loss is True
    validate_like_main_ppo(config)

    score = get_custom_reward_fn(config)
    proxy_output = "<think>Response 2 follows the rubric.</think><answer>2</answer>"
    right = asyncio.run(score(data_source="proxy_rl", solution_str=proxy_output, ground_truth="2", extra_info={}))
    wrong = asyncio.run(score(data_source="proxy_rl", solution_str=proxy_output, ground_truth="1", extra_info={}))
    assert (right["score"], wrong["score"], right["proxy_called"]) == (1.0, -1.0, 0.0)


def test_reward_folder_never_shadows_installed_verl() -> None:
    assert not (REPO_ROOT / "verl" / "__init__.py").exists()
    found = subprocess.run([sys.executable, "-c", "import verl; print(verl.__file__)"], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=120)
    assert found.returncode == 0 and "site-packages" in found.stdout, found.stdout + found.stderr


VLLM_PARSE = """
import json, sys
from vllm.entrypoints.cli import serve
from vllm.utils.argparse_utils import FlexibleArgumentParser
from verl.workers.rollout.vllm_rollout.utils import build_cli_args_from_config

flags = build_cli_args_from_config(json.loads(sys.argv[1]))

# As verl 0.9.1 builds its rollout server's parser (vllm_async_server.py, launch_server).
parser = FlexibleArgumentParser(description="vLLM CLI")
subparsers = parser.add_subparsers(required=False, dest="subparser")
for cmd in serve.cmd_init():
    cmd.subparser_init(subparsers).set_defaults(dispatch_function=cmd.cmd)
parser.parse_args(["serve", "/models/policy", *flags])
"""


@pytest.mark.vllm
@pytest.mark.parametrize("extra, ok", [
    ([], True),
    (["+actor_rollout_ref.rollout.engine_kwargs.vllm.disable_mm_preprocessor_cache=True"], False),
    (["+actor_rollout_ref.rollout.engine_kwargs.vllm.mm_processor_cache_gb=0"], True),
])
def test_rollout_engine_flags_parse_in_vllm(extra: list[str], ok: bool) -> None:
    """The launcher's ``engine_kwargs.vllm``, turned into flags by verl's own converter, parse in vLLM's parser.

    Both run in ``.venv-rl``: verl 0.9.1's converter and vLLM 0.24.0's parser, the versions GPU nodes run.
    """
    config = compose(dry_run_overrides(GRM_SCRIPT, {**REQUIRED, "PROXY_URLS": PROXIES}, *extra))
    engine_kwargs = {k: v for k, v in dict(config.actor_rollout_ref.rollout.engine_kwargs.vllm).items()
                     if v is not None}
    parsed = subprocess.run([str(RL_PYTHON), "-c", VLLM_PARSE, json.dumps(engine_kwargs)],
                            capture_output=True, text=True, timeout=300)
    assert (parsed.returncode == 0) is ok, parsed.stderr[-2000:]
    if not ok:
        assert "unrecognized arguments: --disable-mm-preprocessor-cache" in parsed.stderr


@pytest.mark.parametrize("report_to, logger", [("none", ["console"]), ("swanlab", ["console", "swanlab"]),
                                               ("wandb", ["console", "wandb"])])
def test_one_logger_switch(report_to: str, logger: list[str]) -> None:
    config = compose(dry_run_overrides(GRM_SCRIPT, {**REQUIRED, "PROXY_URLS": PROXIES, "REPORT_TO": report_to}))
    assert list(config.trainer.logger) == logger


def test_release_variable_names_are_aliases_and_ours_win() -> None:
    release = {"model_path": "/release/model", "train_file": "/release/train.parquet",
               "test_file": "/release/test.parquet", "save_path": "/release/save", "ip": "10.0.0.9",
               "api_port": "8000", "gpus": "0,1,2,3"}
    result = run_script(GRM_SCRIPT, {"DRY_RUN": "1", **release})
    assert result.returncode == 0, result.stderr
    config = compose(shlex.split(result.stdout)[3:])
    assert (config.actor_rollout_ref.model.path, config.data.train_files, config.data.val_files) == (
        "/release/model", "/release/train.parquet", "/release/test.parquet")
    assert config.trainer.default_local_dir == "/release/save" and config.trainer.n_gpus_per_node == 4
    assert list(config.reward.custom_reward_function.reward_kwargs.proxy_url) == ["http://10.0.0.9:8000"]
    assert "MODEL_PATH taken from the release's model_path" in result.stderr

    both = run_script(GRM_SCRIPT, {"DRY_RUN": "1", **release, **REQUIRED, "PROXY_URLS": PROXIES})
    config = compose(shlex.split(both.stdout)[3:])
    assert config.actor_rollout_ref.model.path == REQUIRED["MODEL_PATH"]
    assert list(config.reward.custom_reward_function.reward_kwargs.proxy_url)[0] == "http://10.0.0.7:8000"
    assert "MODEL_PATH is set; the release's model_path is ignored" in both.stderr
    assert "the release's ip/api_port are ignored" in both.stderr


@pytest.fixture
def verl_lora_rank_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """verl's ``validate_config`` checks a LoRA rank with ``get_vllm_max_lora_rank``, whose module imports the GPU
    vLLM it pins: run verl's own function, taken from its source (it falls back to vLLM's rank list, the same
    ``MaxLoRARanks`` as vllm/config/lora.py), as that module."""
    import ast
    import types
    from typing import Literal, get_args

    import verl

    path = Path(verl.__file__).parent / "workers" / "rollout" / "vllm_rollout" / "utils.py"
    found = [node for node in ast.parse(path.read_text()).body
             if isinstance(node, ast.FunctionDef) and node.name == "get_vllm_max_lora_rank"]
    module = types.ModuleType("verl.workers.rollout.vllm_rollout.utils")
    module.__dict__.update(Literal=Literal, get_args=get_args)
    exec(compile(ast.Module(found, type_ignores=[]), str(path), "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)


def test_lora_and_offload_from_the_environment_compose_with_verls_config(verl_lora_rank_check: None) -> None:
    """LORA_RANK / LORA_ALPHA / ACTOR_OFFLOAD land on verl 0.9.1's keys (actor_rollout_ref.model.lora_rank,
    lora_alpha; actor.fsdp_config.param_offload, optimizer_offload) and pass verl's own validation."""
    from verl.trainer.ppo.utils import need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import FSDPEngineConfig

    env = {**REQUIRED, "PROXY_URLS": PROXIES, "N_GPUS_PER_NODE": "1", "ROLLOUT_TP": "1"}
    default = compose(dry_run_overrides(GRM_SCRIPT, env))
    assert (default.actor_rollout_ref.model.lora_rank, default.actor_rollout_ref.actor.fsdp_config.param_offload,
            default.actor_rollout_ref.actor.fsdp_config.optimizer_offload) == (0, False, False)

    config = compose(dry_run_overrides(GRM_SCRIPT, {**env, "LORA_RANK": "64", "LORA_ALPHA": "32",
                                                    "ACTOR_OFFLOAD": "1"}))
    model, fsdp = config.actor_rollout_ref.model, config.actor_rollout_ref.actor.fsdp_config
    assert (model.lora_rank, model.lora_alpha, model.target_modules) == (64, 32, "all-linear")
    built = omega_conf_to_dataclass(fsdp)
    assert isinstance(built, FSDPEngineConfig) and (built.param_offload, built.optimizer_offload) == (True, True)
    # the KL reference stays on: with LoRA verl takes it from the actor without its adapter (ref_in_actor)
    assert need_reference_policy(config)
    validate_like_main_ppo(config)

    too_big = compose(dry_run_overrides(GRM_SCRIPT, {**env, "LORA_RANK": "1024"}))
    with pytest.raises(ValueError, match="lora_rank must be less than or equal to 512"):
        validate_like_main_ppo(too_big)
    refused = run_script(GRM_SCRIPT, {"DRY_RUN": "1", **env, "ACTOR_OFFLOAD": "yes"})
    assert refused.returncode != 0 and "ACTOR_OFFLOAD must be one of: 0 1" in refused.stderr


# One 8-GPU node, half for the trainer and half for the proxy (verl asserts the trainer's GPUs divide batch x n).
POOL = {**REQUIRED, "PROXY_MODE": "pool", "PROXY_MODEL_PATH": "/models/proxy_sft", "PROXY_GPUS_PER_NODE": "4",
        "N_GPUS_PER_NODE": "4"}


@pytest.fixture(scope="module")
def pool_config() -> DictConfig:
    return compose(dry_run_overrides(GRM_SCRIPT, POOL))


def test_pool_mode_runs_the_proxy_in_verls_reward_model_pool(pool_config: DictConfig) -> None:
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import RewardModelConfig, RolloutConfig

    rm = pool_config.reward.reward_model
    assert (rm.enable, rm.model_path, rm.enable_resource_pool, rm.n_gpus_per_node, rm.nnodes) == (
        True, "/models/proxy_sft", True, 4, 1)
    rollout = rm.rollout
    assert (rollout.name, rollout.tensor_model_parallel_size, rollout.gpu_memory_utilization) == ("vllm", 1, 0.85)
    # servers that never sleep (only the colocated path wakes them), keeping the checkpoint's generation config
    assert rm.rollout.free_cache_engine is False
    assert dict(rm.rollout.engine_kwargs.vllm) == {"override_generation_config": {}}
    # every key lands in verl's own dataclasses, built from their _target_ as the rollout replica builds its
    # config (verl/workers/rollout/replica.py)
    built = omega_conf_to_dataclass(rm)
    assert isinstance(built, RewardModelConfig) and isinstance(built.rollout, RolloutConfig)
    assert (built.model_path, built.rollout.free_cache_engine, dict(built.rollout.engine_kwargs["vllm"])) == (
        "/models/proxy_sft", False, {"override_generation_config": {}})
    kwargs = pool_config.reward.custom_reward_function.reward_kwargs
    assert "proxy_url" not in kwargs and kwargs.use_proxy is True
    # the address verl adds on every call is where the proxy is asked
    settings = resolve_settings({**kwargs, "reward_router_address": "10.0.0.3:41234"}, env={})
    assert (settings.via_router, settings.proxy_endpoints) == (True, ("http://10.0.0.3:41234",))
    assert pool_config.trainer.n_gpus_per_node == 4
    validate_like_main_ppo(pool_config)


def test_the_run_guard_names_verls_router_in_pool_mode(pool_config: DictConfig) -> None:
    """The trainer reads the failure policy before verl starts the router: a failure names the pool's router."""
    from proxy_grm.launch.verl_trainer import VERL_ROUTER_NAME, RolloutGuard

    guard = RolloutGuard()
    guard.config = pool_config
    assert guard._proxy_failure_policy() == ((f"http://{VERL_ROUTER_NAME}",), True)


def test_service_mode_is_the_default_and_unchanged() -> None:
    env = {**REQUIRED, "PROXY_URLS": PROXIES}
    assert dry_run_overrides(GRM_SCRIPT, {**env, "PROXY_MODE": "service"}) == dry_run_overrides(GRM_SCRIPT, env)
    config = compose(dry_run_overrides(GRM_SCRIPT, env))
    assert config.reward.reward_model.enable is False


@pytest.mark.parametrize("env, message", [
    ({**POOL, "PROXY_URLS": PROXIES}, "PROXY_URLS is for PROXY_MODE=service"),
    ({**POOL, "USE_PROXY": "0"}, "the pool would judge nothing"),
    ({**REQUIRED, "PROXY_MODE": "remote"}, "PROXY_MODE must be one of: service pool"),
    ({**REQUIRED, "PROXY_MODE": "pool"}, "set PROXY_MODEL_PATH ("),
])
def test_pool_mode_refuses_what_it_cannot_run(env: dict[str, str], message: str) -> None:
    result = run_script(GRM_SCRIPT, {"DRY_RUN": "1", **env})
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_lora_adapts_the_language_model_only_as_vllm_serves_it(verl_lora_rank_check: None,
                                                              tiny_model_dir: Path) -> None:
    """With LORA_RANK, verl's FSDP engine wraps the modules PEFT picks from the launcher's target_modules and
    exclude_modules (``verl/workers/engine/fsdp/transformer_impl.py``, the same LoraConfig fields, built here on
    the tiny Qwen2.5-VL): none in the vision tower or its merger, whose adapters vLLM 0.24 would not apply."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForImageTextToText
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import HFModelConfig

    env = {**REQUIRED, "PROXY_URLS": PROXIES, "N_GPUS_PER_NODE": "1", "ROLLOUT_TP": "1", "LORA_RANK": "8",
           "MODEL_PATH": str(tiny_model_dir)}
    model = omega_conf_to_dataclass(compose(dry_run_overrides(GRM_SCRIPT, env)).actor_rollout_ref.model,
                                    dataclass_type=HFModelConfig)
    lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=model.lora_rank, lora_alpha=model.lora_alpha,
                      target_modules=model.target_modules, exclude_modules=model.exclude_modules, bias="none")
    peft = get_peft_model(AutoModelForImageTextToText.from_pretrained(tiny_model_dir), lora)
    adapted = {name.rsplit(".lora_A", 1)[0] for name, _ in peft.named_parameters() if ".lora_A." in name}
    assert adapted and not any(".visual." in name for name in adapted), sorted(adapted)[:5]
    assert any(".language_model." in name and name.endswith("self_attn.q_proj") for name in adapted)


SMOKE_SCRIPT = REPO_ROOT / "scripts" / "grpo_smoke.sh"


@pytest.mark.parametrize("mode", ["service", "pool"])
def test_grpo_smoke_dry_run_prints_its_grpo_step(tmp_path: Path, mode: str) -> None:
    """``scripts/grpo_smoke.sh`` with ``DRY_RUN=1``: the GRPO step it would run, composed by verl's own config, and
    nothing built or started (no tiny model, no proxy service). Pool mode hands the tiny model to verl's pool."""
    from proxy_grm.launch.checks import check_proxy_pool

    out = tmp_path / "smoke"
    env = {"PROXY_MODE": mode, "OUT_DIR": str(out)}
    result = run_script(SMOKE_SCRIPT, {"DRY_RUN": "1", **env})
    assert result.returncode == 0, result.stderr
    assert "proxy/proxy.py" not in result.stdout + result.stderr and not out.exists()
    config = compose(dry_run_overrides(SMOKE_SCRIPT, env))
    validate_like_main_ppo(config)
    assert config.trainer.n_gpus_per_node == 1
    assert config.data.train_batch_size * config.actor_rollout_ref.rollout.n == 8  # the success check's batch x n
    assert config.actor_rollout_ref.model.path == str(out / "sft" / "checkpoint-LAST")
    rm = config.reward.reward_model
    kwargs = config.reward.custom_reward_function.reward_kwargs
    if mode == "service":
        assert rm.enable is False and list(kwargs.proxy_url) == ["http://127.0.0.1:18000"]
        return
    assert "proxy_url" not in kwargs
    assert (rm.enable, rm.model_path, rm.enable_resource_pool, rm.n_gpus_per_node, rm.nnodes) == (
        True, str(out / "model"), True, 1, 1)
    # production's length path: unset, verl takes the model's max_position_embeddings (test_rollout_startup.py
    # runs verl's start-up and vLLM's length checks on it)
    assert (rm.rollout.tensor_model_parallel_size, rm.rollout.max_model_len) == (1, None)
    # the preflight's pool checks pass but for the tiny model, which the smoke builds before the step
    assert [problem.message for problem in check_proxy_pool(rm)] == [
        f"reward.reward_model.model_path {out / 'model'}: no such directory "
        "(PROXY_MODEL_PATH: the Proxy-SFT checkpoint)"]


def test_grpo_smoke_pool_mode_needs_two_visible_gpus(tmp_path: Path) -> None:
    """One visible GPU at most: refused in one line before the data, the SFT or any server (torch counts them)."""
    out = tmp_path / "smoke"
    result = run_script(SMOKE_SCRIPT, {"PROXY_MODE": "pool", "OUT_DIR": str(out), "CUDA_VISIBLE_DEVICES": "0"})
    assert result.returncode == 1
    assert "grpo_smoke: PROXY_MODE=pool needs 2 visible GPU(s) (1 actor + 1 reward-model pool); torch sees" in (
        result.stderr), result.stderr
    assert "(CUDA_VISIBLE_DEVICES=0)" in result.stderr and not out.exists() and result.stdout == ""


def test_grpo_smoke_refuses_an_unknown_proxy_mode(tmp_path: Path) -> None:
    result = run_script(SMOKE_SCRIPT, {"DRY_RUN": "1", "PROXY_MODE": "colocated", "OUT_DIR": str(tmp_path)})
    assert result.returncode != 0 and "PROXY_MODE must be one of: service pool" in result.stderr, result.stderr


@pytest.mark.vllm
def test_pool_engine_flags_parse_in_vllm(pool_config: DictConfig) -> None:
    """The pool's ``engine_kwargs.vllm``, through verl's converter, parse in vLLM's own ``serve`` parser.

    Both in ``.venv-rl`` (verl 0.9.1, vLLM 0.24.0): ``--override-generation-config`` is a JSON dict flag there
    (vllm/engine/arg_utils.py, lines 376-377 and 857).
    """
    from omegaconf import OmegaConf

    engine_kwargs = OmegaConf.to_container(pool_config.reward.reward_model.rollout.engine_kwargs.vllm)
    parsed = subprocess.run([str(RL_PYTHON), "-c", VLLM_PARSE, json.dumps(engine_kwargs)],
                            capture_output=True, text=True, timeout=300)
    assert parsed.returncode == 0, parsed.stderr[-2000:]


@pytest.mark.parametrize("mode", ["service", "pool"])
def test_trainer_device_cpu_runs_verl_on_its_cpu_platform(mode: str) -> None:
    """``TRAINER_DEVICE=cpu`` prints verl's plugin variables in front of the command (a printed command runs as it
    is) and the CPU settings after the launcher's, before the user's; verl composes and validates the result."""
    env = {**REQUIRED, "TRAINER_DEVICE": "cpu", "PROXY_URLS": PROXIES}
    if mode == "pool":
        env = {**REQUIRED, "TRAINER_DEVICE": "cpu", "PROXY_MODE": "pool", "PROXY_MODEL_PATH": "/models/proxy_sft",
               "PROXY_GPUS_PER_NODE": "2"}
    user_override = "actor_rollout_ref.actor.strategy=fsdp"
    printed = shlex.split(run_script(GRM_SCRIPT, {**env, "DRY_RUN": "1"}, user_override).stdout)
    assert printed[:5] == ["env", "VERL_PLATFORM=cpu", "VERL_ENGINE_DEVICE=cuda",
                           "VERL_USE_EXTERNAL_MODULES=proxy_grm.launch.verl_cpu", "VLLM_CPU_KVCACHE_SPACE=1"]
    assert printed[-1] == user_override  # the user's overrides come last
    config = compose(dry_run_overrides(GRM_SCRIPT, env))
    model, rollout = config.actor_rollout_ref.model, config.actor_rollout_ref.rollout
    assert config.trainer.device == "cpu"
    assert config.ray_kwargs.ray_init.num_gpus == (10 if mode == "pool" else 8)  # the trainer's 8 (+ the pool's)
    assert (model.use_remove_padding, model.use_fused_kernels, model.override_config.attn_implementation) == (
        False, False, "sdpa")
    assert config.actor_rollout_ref.actor.strategy == config.actor_rollout_ref.ref.strategy == "fsdp2"
    assert config.actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype == "fp32"
    assert (rollout.free_cache_engine, rollout.enable_sleep_mode) == (False, False)
    if mode == "pool":
        assert config.reward.reward_model.rollout.enable_sleep_mode is False
