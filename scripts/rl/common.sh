#!/usr/bin/env bash
# Shared by the RL launchers (sourced, not run): the release's variable names, cluster and logging
# defaults, the GRPO overrides both launchers pass to verl, and the preflight + launch step.

# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# The release README's names for the same settings.
release_alias MODEL_PATH model_path
release_alias TRAIN_FILES train_file
release_alias VAL_FILES test_file
release_alias SAVE_DIR save_path
release_alias PROJECT_NAME project_name
release_alias EXPERIMENT_NAME experiment_name
release_alias TOTAL_EPOCHS epochs
release_alias CUDA_VISIBLE_DEVICES gpus
release_proxy_urls
release_alias USE_PROXY use_api
release_alias USE_FORMAT use_format
select_logger

# Cluster and run-length defaults (the release: 1 node, 8 GPUs).
NNODES="${NNODES:-1}"
if [[ -z "${N_GPUS_PER_NODE:-}" && -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
  N_GPUS_PER_NODE="$(cuda_device_count)"
fi
N_GPUS_PER_NODE="${N_GPUS_PER_NODE:-8}"
ROLLOUT_ENGINE="${ROLLOUT_ENGINE:-vllm}"
ROLLOUT_TP="${ROLLOUT_TP:-2}"
TOTAL_EPOCHS="${TOTAL_EPOCHS:-1}"
PROJECT_NAME="${PROJECT_NAME:-proxy_grm}"
# The one pixel budget (docs/data.md, "Image size"): the RL rows carry it per image; this is the
# fallback qwen-vl-utils reads for rows written without one.
export_max_pixels

# The release's GRPO hyperparameters; each launcher may set other defaults before sourcing.
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-256}"
PPO_MINI_BATCH_SIZE="${PPO_MINI_BATCH_SIZE:-128}"
MICRO_BATCH_SIZE_PER_GPU="${MICRO_BATCH_SIZE_PER_GPU:-8}"
grpo_defaults  # LR, KL_LOSS_COEF, ROLLOUT_N (lib.sh)
GPU_MEMORY_UTILIZATION="${GPU_MEMORY_UTILIZATION:-0.6}"
# LoRA on the policy (verl 0.9.1: actor_rollout_ref.model.lora_rank / lora_alpha, model/hf_model.yaml; 0 = full
# fine-tuning, the release's); verl then also runs the reference as the actor without its adapter.
LORA_RANK="${LORA_RANK:-0}"
LORA_ALPHA="${LORA_ALPHA:-16}"
# ACTOR_OFFLOAD=1: the actor's parameters and optimizer state on the CPU outside its update
# (actor_rollout_ref.actor.fsdp_config.param_offload / optimizer_offload), so the rollout engine gets their room.
ACTOR_OFFLOAD="${ACTOR_OFFLOAD:-0}"
one_of ACTOR_OFFLOAD 0 1
SAVE_FREQ="${SAVE_FREQ:-5}"
TEST_FREQ="${TEST_FREQ:-1}"
# TRAINER_DEVICE=cpu: verl's own trainer on this host's CPU, for a tiny model (docs/grpo.md, "On CPU"). verl
# 0.9.1 has no CPU platform: proxy_grm.launch.verl_cpu registers one through verl's plugin switches and shims
# the few calls that have no CPU path; cpu_overrides sizes the run for a host.
TRAINER_DEVICE="${TRAINER_DEVICE:-cuda}"
one_of TRAINER_DEVICE cuda cpu

# The reward function verl loads by path (absolute, so any working directory works).
reward_file() {
  echo "${REPO_ROOT}/verl/proxy_grm_reward.py"
}

# hydra_list "a, b,c" -> [a,b,c]
hydra_list() {
  local joined="${1// /}"
  echo "[${joined}]"
}

# verl_logger: trainer.logger for REPORT_TO (verl/utils/tracking.py names the backends).
verl_logger() {
  if [[ "${REPORT_TO}" == "none" ]]; then
    echo '["console"]'
  else
    echo "[\"console\",\"${REPORT_TO}\"]"
  fi
}

# launch_verl OVERRIDE... : preflight on the composed config, then print (DRY_RUN=1) or run verl's trainer
# through proxy_grm.launch.verl_main (verl's main_ppo, plus the reward parts in every step's metrics), with
# LAUNCH_ENV's variables (TRAINER_DEVICE=cpu) in front, so a printed command runs as it is.
launch_verl() {
  preflight rl -- "$@"
  local command=("${PYTHON}" -m proxy_grm.launch.verl_main "$@")
  if (( ${#LAUNCH_ENV[@]} )); then
    command=(env "${LAUNCH_ENV[@]}" "${command[@]}")
  fi
  run_or_print "${command[@]}"
}

# grpo_overrides: the GRPO settings both launchers share (data, model, batch sizes, KL, rollout,
# trainer); the caller adds its reward overrides.
grpo_overrides() {
  # shellcheck disable=SC2034  # read by the launcher that called this
  GRPO_OVERRIDES=(
    algorithm.adv_estimator=grpo
    algorithm.use_kl_in_reward=False
    data.train_files="${TRAIN_FILES}"
    data.val_files="${VAL_FILES}"
    data.train_batch_size="${TRAIN_BATCH_SIZE}"
    data.max_prompt_length="${MAX_PROMPT_LENGTH}"
    data.max_response_length="${MAX_RESPONSE_LENGTH}"
    data.filter_overlong_prompts=True
    data.truncation=error
    data.image_key=images
    actor_rollout_ref.model.path="${MODEL_PATH}"
    actor_rollout_ref.model.use_remove_padding=True
    actor_rollout_ref.model.use_fused_kernels=True
    actor_rollout_ref.model.enable_gradient_checkpointing=True
    actor_rollout_ref.model.lora_rank="${LORA_RANK}"
    actor_rollout_ref.model.lora_alpha="${LORA_ALPHA}"
    # LoRA on the language model only. verl's target_modules (all-linear) would also wrap the vision tower and
    # its merger, whose adapters vLLM 0.24 does not apply unless enable_tower_connector_lora is set
    # (vllm/lora/model_manager.py, an experimental flag): the rollout would sample from another policy than the
    # one trained. verl and PEFT match exclude_modules as a regex on module names (verl/utils/model.py).
    actor_rollout_ref.model.exclude_modules='.*visual.*'
    actor_rollout_ref.actor.optim.lr="${LR}"
    actor_rollout_ref.actor.ppo_mini_batch_size="${PPO_MINI_BATCH_SIZE}"
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="${MICRO_BATCH_SIZE_PER_GPU}"
    actor_rollout_ref.actor.use_kl_loss=True
    actor_rollout_ref.actor.kl_loss_coef="${KL_LOSS_COEF}"
    actor_rollout_ref.actor.kl_loss_type=low_var_kl
    actor_rollout_ref.actor.entropy_coeff=0
    actor_rollout_ref.actor.fsdp_config.param_offload="$([[ "${ACTOR_OFFLOAD}" == 1 ]] && echo True || echo False)"
    actor_rollout_ref.actor.fsdp_config.optimizer_offload="$([[ "${ACTOR_OFFLOAD}" == 1 ]] && echo True || echo False)"
    actor_rollout_ref.rollout.name="${ROLLOUT_ENGINE}"
    actor_rollout_ref.rollout.n="${ROLLOUT_N}"
    actor_rollout_ref.rollout.tensor_model_parallel_size="${ROLLOUT_TP}"
    actor_rollout_ref.rollout.gpu_memory_utilization="${GPU_MEMORY_UTILIZATION}"
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu="${MICRO_BATCH_SIZE_PER_GPU}"
    actor_rollout_ref.rollout.enable_chunked_prefill=False
    # Without it verl takes the model's max_position_embeddings (128k for Qwen2.5-VL) and, chunked prefill
    # being off, raises max_num_batched_tokens to match, so vLLM profiles a 128k-token batch beside the actor
    # (verl/workers/rollout/vllm_rollout/vllm_async_server.py). A rollout never needs more than this.
    actor_rollout_ref.rollout.max_model_len="$((MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH))"
    # Chunked prefill off needs max_num_batched_tokens >= max_model_len (vLLM 0.24, vllm/config/scheduler.py).
    # verl would raise it itself, but RolloutConfig is frozen and that field is not one of its _mutable_fields
    # (workers/config/rollout.py): every rollout server would die with FrozenInstanceError at start-up.
    actor_rollout_ref.rollout.max_num_batched_tokens="$((MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH))"
    actor_rollout_ref.rollout.enforce_eager=True
    actor_rollout_ref.rollout.free_cache_engine=True
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu="${MICRO_BATCH_SIZE_PER_GPU}"
    actor_rollout_ref.ref.fsdp_config.param_offload=True
    trainer.critic_warmup=0
    trainer.logger="$(verl_logger)"
    trainer.project_name="${PROJECT_NAME}"
    trainer.experiment_name="${EXPERIMENT_NAME}"
    trainer.n_gpus_per_node="${N_GPUS_PER_NODE}"
    trainer.nnodes="${NNODES}"
    trainer.save_freq="${SAVE_FREQ}"
    trainer.test_freq="${TEST_FREQ}"
    trainer.log_val_generations=2
    trainer.default_local_dir="${SAVE_DIR}"
    trainer.total_epochs="${TOTAL_EPOCHS}"
  )
  cpu_overrides
  GRPO_OVERRIDES+=("${CPU_OVERRIDES[@]}")
}

# cpu_overrides: with TRAINER_DEVICE=cpu, verl's plugin variables in LAUNCH_ENV and CPU_OVERRIDES holding what
# differs from a GPU run (docs/grpo.md, "On CPU"), each because the GPU setting has no CPU path:
# - VERL_USE_EXTERNAL_MODULES (imported by `import verl` in every process), VERL_PLATFORM=cpu (the platform
#   proxy_grm.launch.verl_cpu registers), VERL_ENGINE_DEVICE=cuda (verl's FSDP engine, registered for
#   cuda/npu only, verl/workers/engine/base.py); VLLM_CPU_KVCACHE_SPACE: vLLM CPU's KV cache, in GiB;
# - Ray gets one logical GPU per trainer and pool GPU, so verl places its workers as on a GPU node;
# - sdpa attention, no remove-padding and no fused kernels (flash-attn and Triton are CUDA-only), FSDP2
#   (FSDP1 syncs module states over the device), no sleep mode (vLLM CPU has none); fp32 compute in the actor
#   and reference (FSDP's default bf16 falls back to torch's generic CPU GEMM without AVX512-BF16: a 4-sequence
#   update of the tiny model ran over 5 minutes);
# - one TransferQueue storage unit, agent-loop worker and reward worker, no dataloader workers: each is a
#   process, and a host has a few cores.
LAUNCH_ENV=()
cpu_overrides() {
  CPU_OVERRIDES=()
  [[ "${TRAINER_DEVICE}" == cpu ]] || return 0
  LAUNCH_ENV=(VERL_PLATFORM=cpu VERL_ENGINE_DEVICE=cuda
    VERL_USE_EXTERNAL_MODULES="${VERL_USE_EXTERNAL_MODULES:+${VERL_USE_EXTERNAL_MODULES},}proxy_grm.launch.verl_cpu"
    VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}")
  export "${LAUNCH_ENV[@]}"  # the preflight replays verl's start-up on the same platform
  local gpus=$((N_GPUS_PER_NODE * NNODES))
  if [[ "${PROXY_MODE:-service}" == pool ]]; then
    gpus=$((gpus + PROXY_GPUS_PER_NODE * ${PROXY_NNODES:-1}))
  fi
  # shellcheck disable=SC2034  # read by grpo_overrides
  CPU_OVERRIDES=(
    trainer.device=cpu
    +ray_kwargs.ray_init.num_gpus="${gpus}"
    ray_kwargs.ray_init.num_cpus="${RAY_NUM_CPUS:-8}"
    actor_rollout_ref.model.use_remove_padding=False
    actor_rollout_ref.model.use_fused_kernels=False
    +actor_rollout_ref.model.override_config.attn_implementation=sdpa
    actor_rollout_ref.actor.strategy=fsdp2
    actor_rollout_ref.ref.strategy=fsdp2
    +actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=fp32
    +actor_rollout_ref.ref.fsdp_config.mixed_precision.param_dtype=fp32
    actor_rollout_ref.rollout.free_cache_engine=False
    +actor_rollout_ref.rollout.enable_sleep_mode=False
    actor_rollout_ref.rollout.agent.num_workers=1
    transfer_queue.backend.SimpleStorage.num_data_storage_units=1
    reward.num_workers=1
    data.dataloader_num_workers=0
  )
  if [[ "${PROXY_MODE:-service}" == pool ]]; then
    CPU_OVERRIDES+=(+reward.reward_model.rollout.enable_sleep_mode=False reward.reward_model.rollout.enforce_eager=True)
  fi
}

# Where the proxy agent runs (docs/grpo.md, "Where the proxy runs"), PROXY_MODE:
#   service: our HTTP service (proxy/proxy.py) at PROXY_URLS, started by hand beside the trainer;
#   pool:    verl 0.9.1's own reward-model servers (vLLM on the Proxy-SFT checkpoint PROXY_MODEL_PATH, on
#            PROXY_NNODES x PROXY_GPUS_PER_NODE GPUs of their own) behind verl's router; verl hands our
#            reward function the router's address (proxy_grm.reward.router_client).
# proxy_mode_requirements: PROXY_MODE checked; the require_vars specs it needs in PROXY_REQUIREMENTS.
proxy_mode_requirements() {
  PROXY_MODE="${PROXY_MODE:-service}"
  one_of PROXY_MODE service pool
  if [[ "${PROXY_MODE}" == service ]]; then
    PROXY_REQUIREMENTS=(
      PROXY_URLS="the proxy service base URL(s), comma-separated: http://HOST:PORT[,http://HOST2:PORT]")
    return 0
  fi
  [[ -z "${PROXY_URLS:-}" ]] || die "PROXY_URLS is for PROXY_MODE=service; PROXY_MODE=pool asks verl's own servers"
  [[ "${USE_PROXY:-1}" == 1 ]] || die "PROXY_MODE=pool with USE_PROXY=${USE_PROXY}: the pool would judge nothing"
  # shellcheck disable=SC2034  # read by the launcher that called this
  PROXY_REQUIREMENTS=(
    PROXY_MODEL_PATH="the Proxy-SFT checkpoint verl's reward-model servers load (PROXY_MODE=pool)"
    PROXY_GPUS_PER_NODE="GPUs per node for the proxy pool, beside the trainer's N_GPUS_PER_NODE (PROXY_MODE=pool)")
}

# proxy_overrides: the reward overrides of PROXY_MODE, in PROXY_OVERRIDES. Every reward.reward_model key is
# read in verl 0.9.1's trainer/config/reward/reward.yaml (RewardModelConfig, RolloutConfig in
# verl/workers/config/reward.py, rollout.py):
# - enable_resource_pool=True, n_gpus_per_node, nnodes: a standalone pool (v1/trainer_base.py builds a
#   "reward_pool"). Colocated (False) is not offered: verl then scores after sampling with a DataProto that
#   holds only prompts, responses and raw_prompt (_compute_reward_colocate), so a custom reward function
#   gets no data_source, ground truth or extra_info (reward_manager/naive.py reads them) and fails;
# - rollout.free_cache_engine=False: RewardModelManager puts the servers to sleep at start-up when it is
#   True (experimental/reward_loop/reward_model.py), and only the colocated path wakes them;
# - rollout.engine_kwargs.vllm.override_generation_config={}: verl passes its engine kwargs after its own
#   override (temperature, top_k, top_p, repetition_penalty=1.0, max_new_tokens; vllm_async_server.py), so
#   the servers keep the checkpoint's generation_config.json, as the proxy service's engine does (vLLM
#   0.24.0 lays the flag's dict over it: vllm/config/model.py, get_diff_sampling_param);
# - rollout.name=vllm: the reward speaks vLLM's OpenAI API; tensor_model_parallel_size and
#   gpu_memory_utilization size each server (one server per PROXY_TP GPUs).
proxy_overrides() {
  if [[ "${PROXY_MODE}" == service ]]; then
    PROXY_OVERRIDES=(+reward.custom_reward_function.reward_kwargs.proxy_url="$(hydra_list "${PROXY_URLS}")")
    return 0
  fi
  # shellcheck disable=SC2034  # read by the launcher that called this
  PROXY_OVERRIDES=(
    reward.reward_model.enable=True
    reward.reward_model.model_path="${PROXY_MODEL_PATH}"
    reward.reward_model.enable_resource_pool=True
    reward.reward_model.n_gpus_per_node="${PROXY_GPUS_PER_NODE}"
    reward.reward_model.nnodes="${PROXY_NNODES:-1}"
    reward.reward_model.rollout.name=vllm
    reward.reward_model.rollout.tensor_model_parallel_size="${PROXY_TP:-1}"
    reward.reward_model.rollout.gpu_memory_utilization="${PROXY_GPU_MEMORY_UTILIZATION:-0.85}"
    reward.reward_model.rollout.free_cache_engine=False
    '+reward.reward_model.rollout.engine_kwargs.vllm.override_generation_config={}'
  )
}
