#!/usr/bin/env bash
# Shared body of the ms-swift 4.x SFT launchers (sourced, not run directly).
# Defaults are the authors' release settings; every one is an environment variable.
# The caller sets STAGE_NAME before sourcing and passes "$@" through to `swift sft`.
set -euo pipefail

: "${STAGE_NAME:?sft_common.sh is sourced by train_grm_sft.sh / train_proxy_sft.sh}"

require() {
  local name="$1" what="$2"
  if [[ -z "${!name:-}" ]]; then
    echo "error: set $name ($what) before running $STAGE_NAME SFT" >&2
    exit 2
  fi
}

require MODEL_PATH "base model folder or hub id, e.g. Qwen/Qwen2.5-VL-7B-Instruct"
require DATA_PATH "ms-swift JSONL written by scripts/prepare_data.sh"
require OUTPUT_DIR "where checkpoints go"

SFT_DEVICE="${SFT_DEVICE:-cuda}"          # cuda | cpu (cpu: smoke runs on the tiny model)
REPORT_TO="${REPORT_TO:-none}"            # swanlab | wandb | none
MAX_PIXELS="${MAX_PIXELS:-1003520}"
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
SAVE_TOTAL_LIMIT="${SAVE_TOTAL_LIMIT:-10}"
LOGGING_STEPS="${LOGGING_STEPS:-5}"
NUM_WORKERS="${NUM_WORKERS:-4}"
DATASET_NUM_PROC="${DATASET_NUM_PROC:-8}"
DEEPSPEED="${DEEPSPEED:-zero2}"
SWIFT="${SWIFT:-swift}"

[[ -e "$DATA_PATH" ]] || { echo "error: DATA_PATH=$DATA_PATH does not exist" >&2; exit 2; }

case "$SFT_DEVICE" in
  cuda)
    if [[ -z "${CUDA_VISIBLE_DEVICES:-}" ]]; then
      echo "error: set CUDA_VISIBLE_DEVICES (e.g. 0,1,2,3): it picks the GPUs and their count" >&2
      exit 2
    fi
    IFS=',' read -ra gpu_list <<< "$CUDA_VISIBLE_DEVICES"
    export NPROC_PER_NODE="${#gpu_list[@]}"
    device_flags=(--torch_dtype bfloat16 --attn_impl "${ATTN_IMPL:-flash_attn}" --deepspeed "$DEEPSPEED")
    ;;
  cpu)
    # Only device, precision, attention and deepspeed change: the data, the model
    # and every hyperparameter stay as on a GPU node.
    export CUDA_VISIBLE_DEVICES="" NPROC_PER_NODE=1
    device_flags=(--torch_dtype float32 --attn_impl sdpa --use_cpu true)
    ;;
  *) echo "error: SFT_DEVICE must be cuda or cpu, got '$SFT_DEVICE'" >&2; exit 2 ;;
esac

case "$REPORT_TO" in
  swanlab)
    require SWANLAB_PROJECT "swanlab project name"
    report_flags=(--report_to swanlab --swanlab_project "$SWANLAB_PROJECT"
                  --swanlab_exp_name "${SWANLAB_EXP_NAME:-$STAGE_NAME}" --swanlab_mode "${SWANLAB_MODE:-cloud}")
    if [[ -n "${SWANLAB_TOKEN:-}" ]]; then report_flags+=(--swanlab_token "$SWANLAB_TOKEN"); fi
    ;;
  wandb) report_flags=(--report_to wandb --run_name "${WANDB_RUN_NAME:-$STAGE_NAME}") ;;
  none) report_flags=(--report_to none) ;;
  *) echo "error: REPORT_TO must be swanlab, wandb or none, got '$REPORT_TO'" >&2; exit 2 ;;
esac

export MAX_PIXELS
cmd=(
  "$SWIFT" sft
  --model "$MODEL_PATH"
  --model_type qwen2_5_vl
  --template qwen2_5_vl
  --tuner_type full
  --check_model false
  --dataset "$DATA_PATH"
  --split_dataset_ratio "$SPLIT_RATIO"
  --freeze_vit "$FREEZE_VIT"
  --freeze_llm "$FREEZE_LLM"
  --freeze_aligner "$FREEZE_ALIGNER"
  --num_train_epochs "$NUM_EPOCHS"
  --per_device_train_batch_size "$BATCH_SIZE"
  --learning_rate "$LEARNING_RATE"
  --gradient_accumulation_steps "$GRAD_ACCUM"
  --eval_steps -1
  --save_steps "$SAVE_STEPS"
  --save_total_limit "$SAVE_TOTAL_LIMIT"
  --logging_steps "$LOGGING_STEPS"
  --max_length "$MAX_LENGTH"
  --output_dir "$OUTPUT_DIR"
  --warmup_ratio "$WARMUP_RATIO"
  --dataloader_num_workers "$NUM_WORKERS"
  --dataset_num_proc "$DATASET_NUM_PROC"
  "${device_flags[@]}"
  "${report_flags[@]}"
  "$@"
)

echo "[$STAGE_NAME SFT] NPROC_PER_NODE=$NPROC_PER_NODE CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES MAX_PIXELS=$MAX_PIXELS"
printf '%q ' "${cmd[@]}"; echo
if [[ "${DRY_RUN:-0}" == "1" ]]; then
  exit 0
fi
"${cmd[@]}"
