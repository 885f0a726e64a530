#!/usr/bin/env bash
# One GRPO step end to end on a GPU node: the tiny model after a short SFT that teaches it to write
# rubrics, the vLLM rollout, our reward function and a local proxy service (vLLM backend), with
# production's settings (flash-attn actor, fused kernels, remove-padding, the preflight). It fails unless
# the step's console metrics show the proxy was called (reward_parts/proxy_called > 0) and every rollout
# came back (reward_parts/rollouts = batch x n). Needs a CUDA GPU, the RL environment
# (requirements_rl.txt) and ms-swift for the SFT (requirements_sft.txt; SWIFT names its `swift`).
#   bash scripts/gpu_smoke.sh            # writes outputs/gpu_smoke/
# Environment: OUT_DIR [outputs/gpu_smoke], PYTHON [python3], SWIFT [swift], PROXY_PORT [18000],
# CUDA_VISIBLE_DEVICES [0]. Extra arguments are Hydra overrides for the GRPO step.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
OUT_DIR="${OUT_DIR:-outputs/gpu_smoke}"
PROXY_PORT="${PROXY_PORT:-18000}"
TEACHER_PORT="${TEACHER_PORT:-18001}"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "== tiny model and data (deterministic local teacher)"
"$PYTHON" scripts/make_tiny_model.py --output "$OUT_DIR/model"
"$PYTHON" data_prep/make_fixtures.py --out "$OUT_DIR/sources" --n-per-source 24
"$PYTHON" -m proxy_grm.toy.teacher_stub --host 127.0.0.1 --port "$TEACHER_PORT" > "$OUT_DIR/teacher.log" 2>&1 &
pids+=("$!")
bash scripts/preflight.sh health --wait-s 60 "http://127.0.0.1:$TEACHER_PORT"
sources=""
for spec in "$OUT_DIR"/sources/*; do sources+="$(basename "$spec")=$spec "; done
SOURCES="$sources" TEACHER_URLS="http://127.0.0.1:$TEACHER_PORT/v1" TEACHER_MODEL=teacher-stub \
  OUT_DIR="$OUT_DIR/data" PYTHON="$PYTHON" MAX_TOKENS=512 \
  bash scripts/prepare_data.sh
rl_file="$OUT_DIR/data/sets/grm_rl.parquet"

echo "== short SFT: the random tiny model learns to write <rubric>...</rubric> (else no rollout calls the proxy)"
MODEL_PATH="$OUT_DIR/model" DATA_PATH="$OUT_DIR/data/sets/grm_sft.jsonl" OUTPUT_DIR="$OUT_DIR/sft" \
  SWIFT="${SWIFT:-swift}" ATTN_IMPL=sdpa REPORT_TO=none SPLIT_RATIO=0 LEARNING_RATE=5e-3 WARMUP_RATIO=0.15 \
  BATCH_SIZE=4 MAX_LENGTH=4096 SAVE_STEPS=100 NUM_WORKERS=0 DATASET_NUM_PROC=1 PREFLIGHT=0 \
  bash scripts/sft/train_grm_sft.sh --max_steps 100
policy="$(find "$OUT_DIR/sft" -maxdepth 2 -type d -name 'checkpoint-*' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)"
[[ -n "$policy" ]] || { echo "gpu_smoke: the SFT wrote no checkpoint under $OUT_DIR/sft" >&2; exit 1; }

echo "== proxy service (vLLM backend) on the tiny model"
"$PYTHON" proxy/proxy.py --model-path "$OUT_DIR/model" --backend vllm --host 127.0.0.1 --port "$PROXY_PORT" \
  --gpu-memory-utilization 0.15 --max-model-len 8192 > "$OUT_DIR/proxy.log" 2>&1 &
pids+=("$!")

echo "== one GRPO step from $policy"
batch=4 rollout_n=2
MODEL_PATH="$policy" TRAIN_FILES="$rl_file" VAL_FILES="$rl_file" \
  PROXY_URLS="http://127.0.0.1:$PROXY_PORT" PROXY_WAIT_S=600 N_GPUS_PER_NODE=1 ROLLOUT_TP=1 \
  REPORT_TO=none SAVE_DIR="$OUT_DIR/checkpoints" PYTHON="$PYTHON" \
  bash scripts/rl/train_proxy_grm.sh \
  data.train_batch_size="$batch" data.max_prompt_length=4096 data.max_response_length=256 \
  actor_rollout_ref.actor.ppo_mini_batch_size=4 actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2 \
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2 \
  actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2 \
  actor_rollout_ref.rollout.n="$rollout_n" actor_rollout_ref.rollout.gpu_memory_utilization=0.3 \
  trainer.total_training_steps=1 trainer.save_freq=-1 trainer.test_freq=-1 trainer.val_before_train=False \
  "$@" | tee "$OUT_DIR/grpo.log"
# verl's console logger prints each step's metrics as "step:1 - key:value - ..." (verl/utils/logger/
# aggregate_logger.py, concat_dict_to_str): the proxy must have judged rollouts, and none may be missing.
metric() {
  grep -o "reward_parts/$1:[0-9.e+-]*" "$OUT_DIR/grpo.log" | tail -1 | cut -d: -f2
}
called="$(metric proxy_called)" rollouts="$(metric rollouts)"
if [[ -z "$called" || -z "$rollouts" ]]; then
  echo "gpu_smoke: the GRPO step logged no reward_parts/* metrics (see $OUT_DIR/grpo.log)" >&2
  exit 1
fi
if ! awk -v c="$called" 'BEGIN { exit !(c > 0) }'; then
  echo "gpu_smoke: reward_parts/proxy_called is $called: no rollout reached the proxy (see $OUT_DIR/grpo.log)" >&2
  exit 1
fi
if ! awk -v r="$rollouts" -v want="$((batch * rollout_n))" 'BEGIN { exit !(r == want) }'; then
  echo "gpu_smoke: reward_parts/rollouts is $rollouts, the step asked for $((batch * rollout_n))" >&2
  exit 1
fi
echo "== GPU smoke passed: one GRPO step, $called of $rollouts rollouts judged by the proxy"
