#!/usr/bin/env bash
# Proxy-RL (stage B): GRPO of the proxy agent on the Proxy-RL split. The proxy reads
# (image, question, two responses, rubric) and answers <think>..</think><answer>1|2</answer>;
# its reward is the accuracy of its own verdict (+1/-1), computed by the same reward module
# with the proxy call switched off and the format reward off (the GRM's rubric/eval/answer
# check does not apply to the proxy's output). The release does not publish this stage's reward or
# settings; we reuse the Proxy-GRM GRPO settings (ours). See scripts/rl/README.md.
#
#   MODEL_PATH=ckpt/proxy_sft TRAIN_FILES=data/proxy_rl/train.parquet VAL_FILES=data/proxy_rl/val.parquet \
#   bash scripts/rl/train_proxy_rl.sh [hydra overrides]
#
# Environment: MODEL_PATH, TRAIN_FILES, VAL_FILES (required); NNODES, N_GPUS_PER_NODE,
# ROLLOUT_ENGINE, ROLLOUT_TP, TOTAL_EPOCHS, PROJECT_NAME, EXPERIMENT_NAME, SAVE_DIR, LOGGER,
# PYTHON, DRY_RUN=1 (print the command and exit). Extra arguments are Hydra overrides, passed last.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_vars \
  MODEL_PATH="the Proxy-SFT checkpoint (or Qwen2.5-VL-7B-Instruct) to train" \
  TRAIN_FILES="the Proxy-RL train parquet (data_prep output, proxy prompts with rubrics)" \
  VAL_FILES="the Proxy-RL validation parquet"

NNODES="${NNODES:-1}"
N_GPUS_PER_NODE="${N_GPUS_PER_NODE:-8}"
ROLLOUT_ENGINE="${ROLLOUT_ENGINE:-vllm}"
ROLLOUT_TP="${ROLLOUT_TP:-2}"
TOTAL_EPOCHS="${TOTAL_EPOCHS:-1}"
PROJECT_NAME="${PROJECT_NAME:-proxy_grm}"
EXPERIMENT_NAME="${EXPERIMENT_NAME:-proxy_rl}"
SAVE_DIR="${SAVE_DIR:-checkpoints/${PROJECT_NAME}/${EXPERIMENT_NAME}}"
LOGGER="${LOGGER:-[\"console\",\"swanlab\"]}"

# The Proxy-GRM GRPO settings; the proxy prompt carries a rubric, its answer is short.
train_batch_size=256
max_prompt_length=6144
max_response_length=4096
lr=3e-7
ppo_mini_batch_size=128
micro_batch_size_per_gpu=8
kl_loss_coef=0.01
rollout_n=8
gpu_memory_utilization=0.6
save_freq=5
test_freq=1

launch_verl \
  algorithm.adv_estimator=grpo \
  algorithm.use_kl_in_reward=False \
  data.train_files="${TRAIN_FILES}" \
  data.val_files="${VAL_FILES}" \
  data.train_batch_size="${train_batch_size}" \
  data.max_prompt_length="${max_prompt_length}" \
  data.max_response_length="${max_response_length}" \
  data.filter_overlong_prompts=True \
  data.truncation=error \
  data.image_key=images \
  actor_rollout_ref.model.path="${MODEL_PATH}" \
  actor_rollout_ref.model.use_remove_padding=True \
  actor_rollout_ref.model.use_fused_kernels=True \
  actor_rollout_ref.model.enable_gradient_checkpointing=True \
  actor_rollout_ref.actor.optim.lr="${lr}" \
  actor_rollout_ref.actor.ppo_mini_batch_size="${ppo_mini_batch_size}" \
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="${micro_batch_size_per_gpu}" \
  actor_rollout_ref.actor.use_kl_loss=True \
  actor_rollout_ref.actor.kl_loss_coef="${kl_loss_coef}" \
  actor_rollout_ref.actor.kl_loss_type=low_var_kl \
  actor_rollout_ref.actor.entropy_coeff=0 \
  actor_rollout_ref.actor.fsdp_config.param_offload=False \
  actor_rollout_ref.actor.fsdp_config.optimizer_offload=False \
  actor_rollout_ref.rollout.name="${ROLLOUT_ENGINE}" \
  actor_rollout_ref.rollout.n="${rollout_n}" \
  actor_rollout_ref.rollout.tensor_model_parallel_size="${ROLLOUT_TP}" \
  actor_rollout_ref.rollout.gpu_memory_utilization="${gpu_memory_utilization}" \
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu="${micro_batch_size_per_gpu}" \
  actor_rollout_ref.rollout.enable_chunked_prefill=False \
  actor_rollout_ref.rollout.enforce_eager=True \
  actor_rollout_ref.rollout.free_cache_engine=True \
  +actor_rollout_ref.rollout.engine_kwargs.vllm.disable_mm_preprocessor_cache=True \
  actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu="${micro_batch_size_per_gpu}" \
  actor_rollout_ref.ref.fsdp_config.param_offload=True \
  reward.custom_reward_function.path="$(reward_file)" \
  reward.custom_reward_function.name=compute_score \
  +reward.custom_reward_function.reward_kwargs.use_proxy=false \
  +reward.custom_reward_function.reward_kwargs.use_format=false \
  trainer.critic_warmup=0 \
  trainer.logger="${LOGGER}" \
  trainer.project_name="${PROJECT_NAME}" \
  trainer.experiment_name="${EXPERIMENT_NAME}" \
  trainer.n_gpus_per_node="${N_GPUS_PER_NODE}" \
  trainer.nnodes="${NNODES}" \
  trainer.save_freq="${save_freq}" \
  trainer.test_freq="${test_freq}" \
  trainer.log_val_generations=2 \
  trainer.default_local_dir="${SAVE_DIR}" \
  trainer.total_epochs="${TOTAL_EPOCHS}" \
  "$@"
