#!/usr/bin/env bash
# One GRPO step end to end through verl's own trainer: the tiny model after a short SFT that teaches it to
# write rubrics, the vLLM rollout, our reward function and the proxy on the tiny model, launched by
# scripts/rl/train_proxy_grm.sh with the preflight. It fails unless the step's console metrics show the proxy
# was called (reward_parts/proxy_called > 0) and every rollout came back (reward_parts/rollouts = batch x n).
# On GPUs (the default) it runs production's settings (flash-attn actor, fused kernels, remove-padding; not yet
# run on a GPU); with TRAINER_DEVICE=cpu the same step runs on this host (docs/grpo.md, "On CPU").
#   bash scripts/grpo_smoke.sh                  # PROXY_MODE=service: a local proxy service (vLLM backend), 1 GPU
#   PROXY_MODE=pool bash scripts/grpo_smoke.sh  # verl's own reward-model pool: 2 GPUs, 1 actor + 1 pool
#   TRAINER_DEVICE=cpu PYTHON=.venv-rl/bin/python SWIFT=.venv/bin/swift bash scripts/grpo_smoke.sh
# Needs the RL environment (requirements_rl.txt; on CPU .venv-rl) as PYTHON and ms-swift for the SFT
# (requirements_sft.txt; on CPU .venv) as SWIFT.
# PROXY_MODE=pool starts no proxy service: verl's trainer starts vLLM servers on the tiny model in a standalone
# pool of one GPU (docs/grpo.md, "Where the proxy runs"; colocated is refused there).
# Environment: PROXY_MODE [service], TRAINER_DEVICE [cuda] or cpu, OUT_DIR [outputs/grpo_smoke], PYTHON
# [python3], SWIFT [swift], PROXY_PORT [18000], CUDA_VISIBLE_DEVICES [0; pool: 0,1], SFT_STEPS [100], DRY_RUN=1
# (print the GRPO step's command, with the SFT checkpoint it would start from named checkpoint-LAST, and exit
# before any work; the GPU count is not checked). Extra arguments are Hydra overrides for the GRPO step.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
PROXY_MODE="${PROXY_MODE:-service}"
one_of PROXY_MODE service pool
OUT_DIR="${OUT_DIR:-outputs/grpo_smoke}"
export TRAINER_DEVICE="${TRAINER_DEVICE:-cuda}"
one_of TRAINER_DEVICE cuda cpu
SFT_STEPS="${SFT_STEPS:-100}"
[[ "$OUT_DIR" == /* ]] || OUT_DIR="$REPO_ROOT/$OUT_DIR"
PROXY_PORT="${PROXY_PORT:-18000}"
TEACHER_PORT="${TEACHER_PORT:-18001}"
batch=4 rollout_n=2
# The proxy is the random tiny model, which never stops on its own: on a GPU it writes production's 16,384-token
# critiques; on CPU 8 of them took over the reward's 120 s timeout on 2 cores, so there it writes 64 tokens.
proxy_service_flags=()
prompt_length=4096  # the toy prompts hold ~700 tokens; verl pads every prompt to it, and on CPU each token costs
if [[ "$TRAINER_DEVICE" == cpu ]]; then
  proxy_service_flags=(--max-new-tokens 64)
  prompt_length=1024
fi
if [[ "$PROXY_MODE" == pool ]]; then
  # A GPU for the trainer and one for the pool: the launcher refuses a colocated pool (verl 0.9.1 would
  # score there without the rows' fields).
  export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0,1}"
  gpus_needed=2 gpu_roles="1 actor + 1 reward-model pool"
  # The tiny model is the proxy, as the service mode's. Its servers' length is production's: max_model_len
  # unset, so verl takes the model's max_position_embeddings (32,768), which holds the longest proxy prompt
  # plus the reward's max_new_tokens (16,384); vLLM answers 400 to a request whose max_tokens does not fit.
  proxy_env=(PROXY_MODE=pool PROXY_MODEL_PATH="$OUT_DIR/model" PROXY_GPUS_PER_NODE=1 PROXY_TP=1)
  proxy_overrides=()
  if [[ "$TRAINER_DEVICE" == cpu ]]; then
    proxy_overrides=(+reward.custom_reward_function.reward_kwargs.max_new_tokens=64)
  fi
else
  export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}"
  gpus_needed=1 gpu_roles="actor and proxy service"
  proxy_env=(PROXY_MODE=service PROXY_URLS="http://127.0.0.1:$PROXY_PORT" PROXY_WAIT_S=600)
  proxy_overrides=()
fi

# grpo_step POLICY OVERRIDE...: one GRPO step of scripts/rl/train_proxy_grm.sh from POLICY (the short SFT's
# checkpoint), its output on stdout.
grpo_step() {
  local policy="$1"
  shift
  env "${proxy_env[@]}" MODEL_PATH="$policy" TRAIN_FILES="$OUT_DIR/data/sets/grm_rl.parquet" \
    VAL_FILES="$OUT_DIR/data/sets/grm_rl.parquet" N_GPUS_PER_NODE=1 ROLLOUT_TP=1 \
    REPORT_TO=none SAVE_DIR="$OUT_DIR/checkpoints" PYTHON="$PYTHON" \
    bash scripts/rl/train_proxy_grm.sh \
    data.train_batch_size="$batch" data.max_prompt_length="$prompt_length" data.max_response_length=256 \
    actor_rollout_ref.actor.ppo_mini_batch_size=4 actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2 \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2 \
    actor_rollout_ref.rollout.n="$rollout_n" actor_rollout_ref.rollout.gpu_memory_utilization=0.3 \
    trainer.total_training_steps=1 trainer.save_freq=-1 trainer.test_freq=-1 trainer.val_before_train=False \
    "${proxy_overrides[@]}" "$@"
}

if is_dry_run; then
  grpo_step "$OUT_DIR/sft/checkpoint-LAST" "$@"
  exit 0
fi
# Before the data and the SFT: a missing GPU would otherwise surface minutes later, inside Ray.
if [[ "$TRAINER_DEVICE" == cuda ]]; then
  gpus_visible="$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')" \
    || { echo "grpo_smoke: $PYTHON cannot count GPUs with torch (the RL environment: requirements_rl.txt)" >&2; exit 1; }
  if (( gpus_visible < gpus_needed )); then
    echo "grpo_smoke: PROXY_MODE=$PROXY_MODE needs $gpus_needed visible GPU(s) ($gpu_roles);" \
      "torch sees $gpus_visible (CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES)" >&2
    exit 1
  fi
fi
mkdir -p "$OUT_DIR"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "== tiny model and data (deterministic local teacher)"
[[ -f "$OUT_DIR/model/config.json" ]] || "$PYTHON" scripts/make_tiny_model.py --output "$OUT_DIR/model"
"$PYTHON" data_prep/make_fixtures.py --out "$OUT_DIR/sources" --n-per-source 24
"$PYTHON" -m proxy_grm.toy.teacher_stub --host 127.0.0.1 --port "$TEACHER_PORT" > "$OUT_DIR/teacher.log" 2>&1 &
pids+=("$!")
bash scripts/preflight.sh health --wait-s 60 "http://127.0.0.1:$TEACHER_PORT"
sources=""
for spec in "$OUT_DIR"/sources/*; do sources+="$(basename "$spec")=$spec "; done
SOURCES="$sources" TEACHER_URLS="http://127.0.0.1:$TEACHER_PORT/v1" TEACHER_MODEL=teacher-stub \
  OUT_DIR="$OUT_DIR/data" PYTHON="$PYTHON" MAX_TOKENS=512 \
  bash scripts/prepare_data.sh

# latest_checkpoint: the newest checkpoint the SFT wrote (nothing when there is none).
latest_checkpoint() {
  [[ -d "$OUT_DIR/sft" ]] || return 0
  find "$OUT_DIR/sft" -maxdepth 2 -type d -name 'checkpoint-*' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2
}
policy="$(latest_checkpoint)"
if [[ -n "$policy" ]]; then
  echo "== short SFT: done before, $policy (delete $OUT_DIR/sft to redo it)"
else
  echo "== short SFT: the random tiny model learns to write <rubric>...</rubric> (else no rollout calls the proxy)"
  SFT_DEVICE="$TRAINER_DEVICE" MODEL_PATH="$OUT_DIR/model" DATA_PATH="$OUT_DIR/data/sets/grm_sft.jsonl" \
    OUTPUT_DIR="$OUT_DIR/sft" \
    SWIFT="${SWIFT:-swift}" ATTN_IMPL=sdpa REPORT_TO=none SPLIT_RATIO=0 LEARNING_RATE=5e-3 WARMUP_RATIO=0.15 \
    BATCH_SIZE=4 MAX_LENGTH=4096 SAVE_STEPS="$SFT_STEPS" NUM_WORKERS=0 DATASET_NUM_PROC=1 PREFLIGHT=0 \
    bash scripts/sft/train_grm_sft.sh --max_steps "$SFT_STEPS"
  policy="$(latest_checkpoint)"
  [[ -n "$policy" ]] || { echo "grpo_smoke: the SFT wrote no checkpoint under $OUT_DIR/sft" >&2; exit 1; }
fi

if [[ "$PROXY_MODE" == service ]]; then
  echo "== proxy service (vLLM backend) on the tiny model"
  "$PYTHON" proxy/proxy.py --model-path "$OUT_DIR/model" --backend vllm --host 127.0.0.1 --port "$PROXY_PORT" \
    --gpu-memory-utilization 0.15 --max-model-len 8192 "${proxy_service_flags[@]}" > "$OUT_DIR/proxy.log" 2>&1 &
  pids+=("$!")
fi

echo "== one GRPO step from $policy (PROXY_MODE=$PROXY_MODE)"
grpo_step "$policy" "$@" | tee "$OUT_DIR/grpo.log"
# verl's console logger prints each step's metrics as "step:1 - key:value - ..." (verl/utils/logger/
# aggregate_logger.py, concat_dict_to_str): the proxy must have judged rollouts, and none may be missing.
metric() {
  grep -o "reward_parts/$1:[0-9.e+-]*" "$OUT_DIR/grpo.log" | tail -1 | cut -d: -f2
}
called="$(metric proxy_called)" rollouts="$(metric rollouts)"
if [[ -z "$called" || -z "$rollouts" ]]; then
  echo "grpo_smoke: the GRPO step logged no reward_parts/* metrics (see $OUT_DIR/grpo.log)" >&2
  exit 1
fi
if ! awk -v c="$called" 'BEGIN { exit !(c > 0) }'; then
  echo "grpo_smoke: reward_parts/proxy_called is $called: no rollout reached the proxy (see $OUT_DIR/grpo.log)" >&2
  exit 1
fi
if ! awk -v r="$rollouts" -v want="$((batch * rollout_n))" 'BEGIN { exit !(r == want) }'; then
  echo "grpo_smoke: reward_parts/rollouts is $rollouts, the step asked for $((batch * rollout_n))" >&2
  exit 1
fi
echo "== GRPO smoke passed (PROXY_MODE=$PROXY_MODE, TRAINER_DEVICE=$TRAINER_DEVICE): one GRPO step, $called of $rollouts rollouts judged by the proxy"
