#!/usr/bin/env bash
# Shared by the RL launchers (sourced, not run): variable checks and the launch/dry-run step.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"

# Cluster, run-length and logging defaults both launchers share (the release: 1 node, 8 GPUs).
NNODES="${NNODES:-1}"
N_GPUS_PER_NODE="${N_GPUS_PER_NODE:-8}"
ROLLOUT_ENGINE="${ROLLOUT_ENGINE:-vllm}"
ROLLOUT_TP="${ROLLOUT_TP:-2}"
TOTAL_EPOCHS="${TOTAL_EPOCHS:-1}"
PROJECT_NAME="${PROJECT_NAME:-proxy_grm}"
LOGGER="${LOGGER:-[\"console\",\"swanlab\"]}"

# The reward function verl loads by path (absolute, so any working directory works).
reward_file() {
  echo "${REPO_ROOT}/verl/proxy_grm_reward.py"
}

# require_vars NAME="what to set" ...: fail before any work, naming every missing variable.
require_vars() {
  local missing=0 spec name
  for spec in "$@"; do
    name="${spec%%=*}"
    if [[ -z "${!name:-}" ]]; then
      echo "error: set ${name} (${spec#*=})" >&2
      missing=1
    fi
  done
  if (( missing )); then
    exit 2
  fi
}

# hydra_list "a, b,c" -> [a,b,c]
hydra_list() {
  local joined="${1// /}"
  echo "[${joined}]"
}

is_dry_run() {
  [[ "${DRY_RUN:-0}" == "1" ]]
}

# check_proxies "URL[,URL...]": every proxy replica must answer /health before any GPU work.
check_proxies() {
  "${PYTHON}" -m proxy_grm.launch.preflight --wait-s "${PROXY_WAIT_S:-60}" "$1"
}

# launch_verl OVERRIDE... : print the exact command (DRY_RUN=1) or run verl's PPO trainer.
launch_verl() {
  local cmd=("${PYTHON}" -m verl.trainer.main_ppo "$@")
  if is_dry_run; then
    printf '%q ' "${cmd[@]}"
    printf '\n'
    exit 0
  fi
  set -x
  exec "${cmd[@]}"
}

# grpo_overrides: the GRPO settings both launchers share, from the variables the caller set
# (data, model, batch sizes, KL, rollout, trainer); the caller adds its reward overrides.
grpo_overrides() {
  # shellcheck disable=SC2034  # read by the launcher that called this
  GRPO_OVERRIDES=(
    algorithm.adv_estimator=grpo
    algorithm.use_kl_in_reward=False
    data.train_files="${TRAIN_FILES}"
    data.val_files="${VAL_FILES}"
    data.train_batch_size="${train_batch_size}"
    data.max_prompt_length="${max_prompt_length}"
    data.max_response_length="${max_response_length}"
    data.filter_overlong_prompts=True
    data.truncation=error
    data.image_key=images
    actor_rollout_ref.model.path="${MODEL_PATH}"
    actor_rollout_ref.model.use_remove_padding=True
    actor_rollout_ref.model.use_fused_kernels=True
    actor_rollout_ref.model.enable_gradient_checkpointing=True
    actor_rollout_ref.actor.optim.lr="${lr}"
    actor_rollout_ref.actor.ppo_mini_batch_size="${ppo_mini_batch_size}"
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="${micro_batch_size_per_gpu}"
    actor_rollout_ref.actor.use_kl_loss=True
    actor_rollout_ref.actor.kl_loss_coef="${kl_loss_coef}"
    actor_rollout_ref.actor.kl_loss_type=low_var_kl
    actor_rollout_ref.actor.entropy_coeff=0
    actor_rollout_ref.actor.fsdp_config.param_offload=False
    actor_rollout_ref.actor.fsdp_config.optimizer_offload=False
    actor_rollout_ref.rollout.name="${ROLLOUT_ENGINE}"
    actor_rollout_ref.rollout.n="${rollout_n}"
    actor_rollout_ref.rollout.tensor_model_parallel_size="${ROLLOUT_TP}"
    actor_rollout_ref.rollout.gpu_memory_utilization="${gpu_memory_utilization}"
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu="${micro_batch_size_per_gpu}"
    actor_rollout_ref.rollout.enable_chunked_prefill=False
    actor_rollout_ref.rollout.enforce_eager=True
    actor_rollout_ref.rollout.free_cache_engine=True
    +actor_rollout_ref.rollout.engine_kwargs.vllm.disable_mm_preprocessor_cache=True
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu="${micro_batch_size_per_gpu}"
    actor_rollout_ref.ref.fsdp_config.param_offload=True
    trainer.critic_warmup=0
    trainer.logger="${LOGGER}"
    trainer.project_name="${PROJECT_NAME}"
    trainer.experiment_name="${EXPERIMENT_NAME}"
    trainer.n_gpus_per_node="${N_GPUS_PER_NODE}"
    trainer.nnodes="${NNODES}"
    trainer.save_freq="${save_freq}"
    trainer.test_freq="${test_freq}"
    trainer.log_val_generations=2
    trainer.default_local_dir="${SAVE_DIR}"
    trainer.total_epochs="${TOTAL_EPOCHS}"
  )
}
