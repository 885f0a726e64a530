#!/usr/bin/env bash
# Proxy-GRM GRPO (stage C.2): verl 0.9 GRPO from the Proxy-GRM-SFT checkpoint on the hard
# pairs; each rollout's rubric is scored over HTTP by the proxy service (proxy/proxy.py).
# Defaults are the authors' release settings (8 GPUs, 1 node). See docs/grpo.md.
#
#   MODEL_PATH=ckpt/proxy_grm_sft TRAIN_FILES=data/rl/train.parquet VAL_FILES=data/rl/val.parquet \
#   PROXY_URLS=http://10.0.0.7:8000,http://10.0.0.8:8000 bash scripts/rl/train_proxy_grm.sh [hydra overrides]
#
# Environment: MODEL_PATH, TRAIN_FILES, VAL_FILES, PROXY_URLS (required; the release's model_path,
# train_file, test_file, ip + api_port work too); PROXY_MODE=service (default: the proxy service at
# PROXY_URLS) or pool (verl's own reward-model servers: PROXY_MODEL_PATH and PROXY_GPUS_PER_NODE instead of
# PROXY_URLS; PROXY_NNODES (1), PROXY_TP (1), PROXY_GPU_MEMORY_UTILIZATION (0.85); common.sh);
# REWARD_MODE (aggregation name or release id 0-10, default explicit_additive), USE_PROXY, USE_FORMAT, FORMAT_WEIGHT, REPORT_TO (none|swanlab|wandb|
# tensorboard), NNODES, N_GPUS_PER_NODE, ROLLOUT_ENGINE, ROLLOUT_TP, TOTAL_EPOCHS, PROJECT_NAME,
# EXPERIMENT_NAME, SAVE_DIR, MAX_PIXELS, PYTHON, the GRPO sizes in common.sh (TRAIN_BATCH_SIZE,
# ROLLOUT_N, ...), LORA_RANK (0), LORA_ALPHA (16), ACTOR_OFFLOAD (0|1), PROXY_WAIT_S (how long the
# preflight waits for loading replicas), PROXY_MODEL_PATH + PROXY_GPU_MEMORY_UTILIZATION in service mode with
# the proxy on this GPU (the preflight's memory plan; docs/grpo.md, "One GPU"),
# PROXY_GRM_API_KEY (bearer key, read by the reward function on every node), PREFLIGHT=0 (skip the
# checks), DRY_RUN=1 (print the command and exit). Extra arguments are Hydra overrides, passed through
# last; to change a reward kwarg set here, drop the "+" (reward.custom_reward_function.reward_kwargs.timeout_s=300).
set -euo pipefail

MAX_PROMPT_LENGTH="${MAX_PROMPT_LENGTH:-4096}"
MAX_RESPONSE_LENGTH="${MAX_RESPONSE_LENGTH:-8192}"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

proxy_mode_requirements
require_vars \
  MODEL_PATH="the Proxy-GRM-SFT checkpoint (cold-start SFT output) or a Qwen2.5-VL model directory" \
  TRAIN_FILES="the RL train parquet (data_prep output), or a Hydra list [a.parquet,b.parquet]" \
  VAL_FILES="the RL validation parquet" \
  "${PROXY_REQUIREMENTS[@]}"

REWARD_MODE="${REWARD_MODE:-explicit_additive}"
USE_PROXY="${USE_PROXY:-1}"
USE_FORMAT="${USE_FORMAT:-1}"
FORMAT_WEIGHT="${FORMAT_WEIGHT:-0.5}"
EXPERIMENT_NAME="${EXPERIMENT_NAME:-grpo_${REWARD_MODE}}"
SAVE_DIR="${SAVE_DIR:-checkpoints/${PROJECT_NAME}/${EXPERIMENT_NAME}}"

grpo_overrides
proxy_overrides
launch_verl "${GRPO_OVERRIDES[@]}" \
  reward.custom_reward_function.path="$(reward_file)" \
  reward.custom_reward_function.name=compute_score \
  "${PROXY_OVERRIDES[@]}" \
  +reward.custom_reward_function.reward_kwargs.mode="${REWARD_MODE}" \
  +reward.custom_reward_function.reward_kwargs.use_proxy="$([[ "${USE_PROXY}" == 1 ]] && echo true || echo false)" \
  +reward.custom_reward_function.reward_kwargs.use_format="$([[ "${USE_FORMAT}" == 1 ]] && echo true || echo false)" \
  +reward.custom_reward_function.reward_kwargs.format_weight="${FORMAT_WEIGHT}" \
  "$@"
