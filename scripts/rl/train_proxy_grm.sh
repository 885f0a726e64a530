#!/usr/bin/env bash
# Proxy-GRM GRPO (stage C.2): verl 0.9 GRPO from the Proxy-GRM-SFT checkpoint on the hard
# pairs; each rollout's rubric is scored over HTTP by the proxy service (proxy/proxy.py).
# Defaults are the authors' release settings (8 GPUs, 1 node). See scripts/rl/README.md.
#
#   MODEL_PATH=ckpt/proxy_grm_sft TRAIN_FILES=data/rl/train.parquet VAL_FILES=data/rl/val.parquet \
#   PROXY_URLS=http://10.0.0.7:8000,http://10.0.0.8:8000 bash scripts/rl/train_proxy_grm.sh [hydra overrides]
#
# Environment: MODEL_PATH, TRAIN_FILES, VAL_FILES, PROXY_URLS (required); REWARD_MODE (aggregation
# name or release id 0-10, default explicit_additive), NNODES, N_GPUS_PER_NODE, ROLLOUT_ENGINE,
# ROLLOUT_TP, TOTAL_EPOCHS, PROJECT_NAME, EXPERIMENT_NAME, SAVE_DIR, LOGGER, PYTHON,
# PROXY_WAIT_S (pre-flight wait), PROXY_GRM_API_KEY (bearer key, read by the reward function on
# every node), DRY_RUN=1 (print the command and exit). Extra arguments are Hydra overrides,
# passed through last; to change a reward kwarg set here, drop the "+" (e.g.
# reward.custom_reward_function.reward_kwargs.timeout_s=300).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_vars \
  MODEL_PATH="the Proxy-GRM-SFT checkpoint (cold-start SFT output) or a Qwen2.5-VL model directory" \
  TRAIN_FILES="the RL train parquet (data_prep output), or a Hydra list [a.parquet,b.parquet]" \
  VAL_FILES="the RL validation parquet" \
  PROXY_URLS="the proxy service base URL(s), comma-separated: http://HOST:PORT[,http://HOST2:PORT]"

REWARD_MODE="${REWARD_MODE:-explicit_additive}"
EXPERIMENT_NAME="${EXPERIMENT_NAME:-grpo_${REWARD_MODE}}"
SAVE_DIR="${SAVE_DIR:-checkpoints/${PROJECT_NAME}/${EXPERIMENT_NAME}}"

# The release's hyperparameters.
train_batch_size=256
max_prompt_length=4096
max_response_length=8192
lr=3e-7
ppo_mini_batch_size=128
micro_batch_size_per_gpu=8
kl_loss_coef=0.01
rollout_n=8
gpu_memory_utilization=0.6
format_weight=0.5
save_freq=5
test_freq=1

is_dry_run || check_proxies "${PROXY_URLS}"

grpo_overrides
launch_verl "${GRPO_OVERRIDES[@]}" \
  reward.custom_reward_function.path="$(reward_file)" \
  reward.custom_reward_function.name=compute_score \
  +reward.custom_reward_function.reward_kwargs.proxy_url="$(hydra_list "${PROXY_URLS}")" \
  +reward.custom_reward_function.reward_kwargs.mode="${REWARD_MODE}" \
  +reward.custom_reward_function.reward_kwargs.use_proxy=true \
  +reward.custom_reward_function.reward_kwargs.use_format=true \
  +reward.custom_reward_function.reward_kwargs.format_weight="${format_weight}" \
  "$@"
