#!/usr/bin/env bash
# Shared body of the ms-swift 4.x SFT launchers (sourced, not run directly).
# Defaults are the authors' release settings; every one is an environment variable.
# The caller sets STAGE_NAME before sourcing and passes "$@" through to `swift sft`.
# The release README's names (gpus, data_path, model_path, output_path, swanlab_*, freeze_*) work too.
set -euo pipefail

: "${STAGE_NAME:?sft_common.sh is sourced by train_grm_sft.sh / train_proxy_sft.sh}"
# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

release_alias MODEL_PATH model_path
release_alias DATA_PATH data_path
release_alias OUTPUT_DIR output_path
release_alias CUDA_VISIBLE_DEVICES gpus
release_alias EXPERIMENT_NAME swanlab_exp_name
release_alias FREEZE_VIT freeze_vit
release_alias FREEZE_LLM freeze_llm
release_alias FREEZE_ALIGNER freeze_aligner
require_vars \
  MODEL_PATH="base model folder or hub id, e.g. Qwen/Qwen2.5-VL-7B-Instruct" \
  DATA_PATH="ms-swift JSONL written by scripts/prepare_data.sh" \
  OUTPUT_DIR="where checkpoints go"
select_logger

SFT_DEVICE="${SFT_DEVICE:-cuda}"          # cuda | cpu (cpu: smoke runs on the tiny model)
# The one pixel budget: SFT, the RL rows, the proxy and the eval all read MAX_PIXELS (docs/data.md, "Image size").
export_max_pixels
ATTN_IMPL="${ATTN_IMPL:-flash_attn}"      # flash_attn (the release) | sdpa (no flash-attn needed)
FREEZE_VIT="${FREEZE_VIT:-false}"
FREEZE_LLM="${FREEZE_LLM:-false}"
FREEZE_ALIGNER="${FREEZE_ALIGNER:-false}"
LEARNING_RATE="${LEARNING_RATE:-5e-6}"
NUM_EPOCHS="${NUM_EPOCHS:-1}"
BATCH_SIZE="${BATCH_SIZE:-2}"
GRAD_ACCUM="${GRAD_ACCUM:-1}"
MAX_LENGTH="${MAX_LENGTH:-8192}"
WARMUP_RATIO="${WARMUP_RATIO:-0.05}"
SPLIT_RATIO="${SPLIT_RATIO:-0.01}"
SAVE_STEPS="${SAVE_STEPS:-100}"
# The held-out split (SPLIT_RATIO) is evaluated with every checkpoint (ms-swift's own default when
# eval_steps is unset, swift/arguments/sft_args.py _init_eval_strategy), so each saved checkpoint has a
# held-out loss beside it; the release's --eval_steps -1 evaluated it once, at the very end. -1 restores that.
EVAL_STEPS="${EVAL_STEPS:-${SAVE_STEPS}}"
SAVE_TOTAL_LIMIT="${SAVE_TOTAL_LIMIT:-10}"
LOGGING_STEPS="${LOGGING_STEPS:-5}"
NUM_WORKERS="${NUM_WORKERS:-4}"
DATASET_NUM_PROC="${DATASET_NUM_PROC:-8}"
DEEPSPEED="${DEEPSPEED:-zero2}"
SWIFT="${SWIFT:-swift}"
EXPERIMENT_NAME="${EXPERIMENT_NAME:-${STAGE_NAME}_sft}"

[[ -e "${DATA_PATH}" ]] || die "DATA_PATH=${DATA_PATH} does not exist"
one_of SFT_DEVICE cuda cpu

case "${SFT_DEVICE}" in
  cuda)
    [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]] || die "set CUDA_VISIBLE_DEVICES (e.g. 0,1,2,3): it picks the GPUs and their count"
    NPROC_PER_NODE="$(cuda_device_count)"
    export NPROC_PER_NODE
    device_flags=(--torch_dtype bfloat16 --attn_impl "${ATTN_IMPL}" --deepspeed "${DEEPSPEED}")
    ;;
  cpu)
    # Only device, precision, attention and deepspeed change: the data, the model
    # and every hyperparameter stay as on a GPU node.
    export CUDA_VISIBLE_DEVICES="" NPROC_PER_NODE=1
    device_flags=(--torch_dtype float32 --attn_impl sdpa --use_cpu true)
    ;;
esac

case "${REPORT_TO}" in
  swanlab)
    report_flags=(--report_to swanlab --swanlab_project "${SWANLAB_PROJECT:-${PROJECT_NAME:-proxy_grm}}"
                  --swanlab_exp_name "${EXPERIMENT_NAME}" --swanlab_mode "${SWANLAB_MODE:-cloud}")
    ;;
  wandb) report_flags=(--report_to wandb --run_name "${EXPERIMENT_NAME}") ;;
  *) report_flags=(--report_to "${REPORT_TO}") ;;
esac

cmd=(
  "${SWIFT}" sft
  --model "${MODEL_PATH}"
  --model_type qwen2_5_vl
  --template qwen2_5_vl
  --tuner_type full
  --check_model false
  --dataset "${DATA_PATH}"
  --split_dataset_ratio "${SPLIT_RATIO}"
  --freeze_vit "${FREEZE_VIT}"
  --freeze_llm "${FREEZE_LLM}"
  --freeze_aligner "${FREEZE_ALIGNER}"
  --num_train_epochs "${NUM_EPOCHS}"
  --per_device_train_batch_size "${BATCH_SIZE}"
  --learning_rate "${LEARNING_RATE}"
  --gradient_accumulation_steps "${GRAD_ACCUM}"
  --eval_steps "${EVAL_STEPS}"
  --save_steps "${SAVE_STEPS}"
  --save_total_limit "${SAVE_TOTAL_LIMIT}"
  --logging_steps "${LOGGING_STEPS}"
  --max_length "${MAX_LENGTH}"
  --output_dir "${OUTPUT_DIR}"
  --warmup_ratio "${WARMUP_RATIO}"
  --dataloader_num_workers "${NUM_WORKERS}"
  --dataset_num_proc "${DATASET_NUM_PROC}"
  "${device_flags[@]}"
  "${report_flags[@]}"
  "$@"
)

echo "[${STAGE_NAME} SFT] NPROC_PER_NODE=${NPROC_PER_NODE} CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES} MAX_PIXELS=${MAX_PIXELS}"
if [[ "${SFT_DEVICE}" == "cuda" ]]; then
  preflight sft --gpus "${NPROC_PER_NODE}" --attn-impl "${ATTN_IMPL}" --report-to "${REPORT_TO}" \
    --data "${DATA_PATH}" --model-path "${MODEL_PATH}" --save-dir "${OUTPUT_DIR}"
fi
run_or_print "${cmd[@]}"
