#!/usr/bin/env bash
# Proxy-RL (stage B): GRPO of the proxy agent on the Proxy-RL split. The proxy reads
# (image, question, two responses, rubric) and answers <think>..</think><answer>1|2</answer>;
# its reward is the accuracy of its own verdict (+1/-1), computed by the same reward module
# with the proxy call switched off and the format reward off (the GRM's rubric/eval/answer
# check does not apply to the proxy's output). The release does not publish this stage's reward or
# settings; we reuse the Proxy-GRM GRPO settings (ours). See docs/grpo.md.
#
#   MODEL_PATH=ckpt/proxy_sft TRAIN_FILES=data/proxy_rl/train.parquet VAL_FILES=data/proxy_rl/val.parquet \
#   bash scripts/rl/train_proxy_rl.sh [hydra overrides]
#
# Environment: MODEL_PATH, TRAIN_FILES, VAL_FILES (required); the cluster, logger, size and
# PREFLIGHT/DRY_RUN variables of train_proxy_grm.sh. Extra arguments are Hydra overrides, passed last.
set -euo pipefail

# The proxy prompt carries a rubric, its answer is short.
MAX_PROMPT_LENGTH="${MAX_PROMPT_LENGTH:-6144}"
MAX_RESPONSE_LENGTH="${MAX_RESPONSE_LENGTH:-4096}"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_vars \
  MODEL_PATH="the Proxy-SFT checkpoint (or Qwen2.5-VL-7B-Instruct) to train" \
  TRAIN_FILES="the Proxy-RL train parquet (data_prep output, proxy prompts with rubrics)" \
  VAL_FILES="the Proxy-RL validation parquet"

EXPERIMENT_NAME="${EXPERIMENT_NAME:-proxy_rl}"
SAVE_DIR="${SAVE_DIR:-checkpoints/${PROJECT_NAME}/${EXPERIMENT_NAME}}"

grpo_overrides
launch_verl "${GRPO_OVERRIDES[@]}" \
  reward.custom_reward_function.path="$(reward_file)" \
  reward.custom_reward_function.name=compute_score \
  +reward.custom_reward_function.reward_kwargs.use_proxy=false \
  +reward.custom_reward_function.reward_kwargs.use_format=false \
  "$@"
