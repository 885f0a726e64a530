#!/usr/bin/env bash
# Proxy-GRM GRPO (stage C.2) on ms-swift: the CPU / alternative trainer. verl
# (scripts/rl/train_proxy_grm.sh) stays the GPU path; this one runs `swift rlhf --rlhf_type grpo`
# with transformers generation on the policy, so it needs no vLLM and no GPU. It reads the same
# RL parquet and scores each rollout with the same compute_score (ms_swift/proxy_grm_reward.py),
# which sends the rollout's rubric to the proxy service. The parquet must embed its images
# (prepare_data.sh's default VERL_IMAGES=bytes): ms-swift reads {"bytes": ...} images, not paths.
#
#   MODEL_PATH=ckpt/grm_sft TRAIN_FILES=data/grm_rl.parquet PROXY_URLS=http://127.0.0.1:8000 \
#   OUTPUT_DIR=ckpt/grm_grpo bash scripts/rl/train_proxy_grm_swift.sh [extra swift rlhf flags]
#
# Environment: MODEL_PATH, TRAIN_FILES, PROXY_URLS (required; the release's model_path, train_file,
# ip + api_port work too), OUTPUT_DIR (the release's save_path); the reward as in
# train_proxy_grm.sh: REWARD_MODE, USE_PROXY, USE_FORMAT, FORMAT_WEIGHT; GRPO sizes: ROLLOUT_N
# (generations per prompt), BATCH_SIZE (completions per step, a multiple of ROLLOUT_N), LR,
# KL_LOSS_COEF (0 loads no reference model), MAX_RESPONSE_LENGTH, TEMPERATURE, TOTAL_EPOCHS,
# MAX_STEPS, SAVE_STEPS, LOGGING_STEPS; GRPO_DEVICE (cpu | cuda), MAX_PIXELS, REPORT_TO,
# PROXY_WAIT_S, PROXY_GRM_API_KEY, PYTHON, SWIFT; DRY_RUN=1 prints the command.
# Per-rollout reward parts go to OUTPUT_DIR/<run>/reward_parts.jsonl (proxy_grm.reward.swift_grpo).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

release_alias MODEL_PATH model_path
release_alias TRAIN_FILES train_file
release_alias OUTPUT_DIR save_path
release_alias USE_PROXY use_api
release_alias USE_FORMAT use_format
release_proxy_urls
require_vars \
  MODEL_PATH="the Proxy-GRM-SFT checkpoint (cold-start SFT output)" \
  TRAIN_FILES="the GRM-RL parquet written by scripts/prepare_data.sh (grm_rl.parquet)" \
  PROXY_URLS="the proxy service base URL(s), comma-separated: http://HOST:PORT[,http://HOST2:PORT]"
select_logger

REWARD_MODE="${REWARD_MODE:-explicit_additive}"
USE_PROXY="${USE_PROXY:-1}"
USE_FORMAT="${USE_FORMAT:-1}"
FORMAT_WEIGHT="${FORMAT_WEIGHT:-0.5}"
OUTPUT_DIR="${OUTPUT_DIR:-checkpoints/proxy_grm/grpo_swift_${REWARD_MODE}}"
# The release's GRPO hyperparameters (LR, KL_LOSS_COEF, ROLLOUT_N: lib.sh, as for verl), per device.
grpo_defaults
BATCH_SIZE="${BATCH_SIZE:-${ROLLOUT_N}}"
MAX_RESPONSE_LENGTH="${MAX_RESPONSE_LENGTH:-8192}"
TEMPERATURE="${TEMPERATURE:-1.0}"
TOTAL_EPOCHS="${TOTAL_EPOCHS:-1}"
MAX_STEPS="${MAX_STEPS:--1}"
SAVE_STEPS="${SAVE_STEPS:-100}"
LOGGING_STEPS="${LOGGING_STEPS:-1}"
GRPO_DEVICE="${GRPO_DEVICE:-cpu}"
# The one pixel budget (docs/data.md, "Image size"): ms-swift reads MAX_PIXELS for the policy's images.
export_max_pixels
SWIFT="${SWIFT:-swift}"

one_of GRPO_DEVICE cpu cuda
[[ -e "${TRAIN_FILES}" ]] || die "TRAIN_FILES=${TRAIN_FILES} does not exist"
(( BATCH_SIZE % ROLLOUT_N == 0 )) || die "BATCH_SIZE (${BATCH_SIZE}) counts completions: it must be a multiple of ROLLOUT_N (${ROLLOUT_N})"

# ms-swift has no reward-kwargs field: compute_score's settings travel as one JSON object.
PROXY_GRM_REWARD_KWARGS="$("${PYTHON}" -c 'import json, sys
print(json.dumps({"proxy_url": sys.argv[1], "mode": sys.argv[2], "use_proxy": sys.argv[3] == "1",
                  "use_format": sys.argv[4] == "1", "format_weight": float(sys.argv[5])}))' \
  "${PROXY_URLS}" "${REWARD_MODE}" "${USE_PROXY}" "${USE_FORMAT}" "${FORMAT_WEIGHT}")"
export PROXY_GRM_REWARD_KWARGS

case "${GRPO_DEVICE}" in
  cpu) export CUDA_VISIBLE_DEVICES=""; device_flags=(--torch_dtype float32 --attn_impl sdpa --use_cpu true) ;;
  cuda) device_flags=(--torch_dtype bfloat16 --attn_impl sdpa) ;;
esac

cmd=(
  "${SWIFT}" rlhf
  --rlhf_type grpo
  --model "${MODEL_PATH}"
  --model_type qwen2_5_vl
  --template qwen2_5_vl
  --tuner_type full
  --check_model false
  --dataset "${TRAIN_FILES}"
  --columns '{"prompt": "messages"}'
  --external_plugins "${REPO_ROOT}/ms_swift/proxy_grm_reward.py"
  --reward_funcs proxy_grm
  --use_vllm false
  --num_generations "${ROLLOUT_N}"
  --per_device_train_batch_size "${BATCH_SIZE}"
  --learning_rate "${LR}"
  --beta "${KL_LOSS_COEF}"
  --max_completion_length "${MAX_RESPONSE_LENGTH}"
  --temperature "${TEMPERATURE}"
  --num_train_epochs "${TOTAL_EPOCHS}"
  --max_steps "${MAX_STEPS}"
  --save_steps "${SAVE_STEPS}"
  --logging_steps "${LOGGING_STEPS}"
  --output_dir "${OUTPUT_DIR}"
  --dataset_num_proc 1
  --dataloader_num_workers 0
  --report_to "${REPORT_TO}"
  "${device_flags[@]}"
  "$@"
)

echo "[GRM GRPO, ms-swift] device=${GRPO_DEVICE} MAX_PIXELS=${MAX_PIXELS} PROXY_URLS=${PROXY_URLS} REWARD_MODE=${REWARD_MODE}"
# No GPU preflight (the CPU trainer); the proxy must answer before any model loads.
if ! is_dry_run && [[ "${USE_PROXY}" == 1 && "${PREFLIGHT:-1}" != 0 ]]; then
  "${PYTHON}" -m proxy_grm.launch.preflight health "${PROXY_URLS}" --wait-s "${PROXY_WAIT_S:-60}" \
    || die "the proxy at ${PROXY_URLS} is not healthy (start it with python proxy/proxy.py ...); PREFLIGHT=0 skips this"
fi
run_or_print "${cmd[@]}"
