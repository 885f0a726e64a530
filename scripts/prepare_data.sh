#!/usr/bin/env bash
# The whole training-data chain: sources -> filters -> teacher distillation -> split -> training sets.
#
# Every stage is resumable: stage 1 rewrites pairs.jsonl (images are written once), stage 2 appends to
# its cache and skips pairs already answered, stage 3 rewrites the four sets. Rerun after any failure.
#
# Required:
#   SOURCES        space-separated NAME=SPEC, NAME in llava_critic rlaif_v rlhf_v mmif; SPEC a hub id, a
#                  local file (.parquet/.jsonl/.json) or a folder of them, e.g.
#                  "llava_critic=lmms-lab/llava-critic-113k rlaif_v=/data/RLAIF-V-Dataset"
#   TEACHER_URLS   space-separated OpenAI-compatible base URLs (ending in /v1)
# Optional (defaults in brackets):
#   OUT_DIR [outputs/data]  SETS_DIR [$OUT_DIR/sets]  TEACHER_MODEL [Qwen/Qwen3-VL-235B-A22B-Instruct]  API_KEY_ENV [OPENAI_API_KEY]
#   MAX_PAIRS [60000]  GRM_SFT_SIZE [10000]  PROXY_SFT_SIZE [5000]  PROXY_RL_SIZE [10000]  GRM_RL_SIZE [35000]
#   CONCURRENCY [16]  MAX_TOKENS [4096]  SEED [0]  VERL_IMAGES [bytes|path]  PYTHON [python3]
# Extra arguments go to stage 1 (filter thresholds, e.g. --max-length-ratio 3 --limit mmif=10000).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_vars \
  SOURCES="space-separated NAME=SPEC, e.g. SOURCES=\"rlaif_v=openbmb/RLAIF-V-Dataset\"" \
  TEACHER_URLS="OpenAI-compatible base URLs, e.g. TEACHER_URLS=\"http://127.0.0.1:8000/v1\""
OUT_DIR="${OUT_DIR:-outputs/data}"
TEACHER_MODEL="${TEACHER_MODEL:-Qwen/Qwen3-VL-235B-A22B-Instruct}"
API_KEY_ENV="${API_KEY_ENV:-OPENAI_API_KEY}"
MAX_PAIRS="${MAX_PAIRS:-60000}"
GRM_SFT_SIZE="${GRM_SFT_SIZE:-10000}"
PROXY_SFT_SIZE="${PROXY_SFT_SIZE:-5000}"
PROXY_RL_SIZE="${PROXY_RL_SIZE:-10000}"
GRM_RL_SIZE="${GRM_RL_SIZE:-35000}"
CONCURRENCY="${CONCURRENCY:-16}"
MAX_TOKENS="${MAX_TOKENS:-4096}"
SEED="${SEED:-0}"
VERL_IMAGES="${VERL_IMAGES:-bytes}"
SETS_DIR="${SETS_DIR:-${OUT_DIR}/sets}"

source_args=()
read -r -a source_specs <<< "${SOURCES}"
for spec in "${source_specs[@]}"; do
  source_args+=(--source "${spec}")
done
url_args=()
# shellcheck disable=SC2153  # TEACHER_URLS is checked by require_vars
read -r -a teacher_urls <<< "${TEACHER_URLS}"
for url in "${teacher_urls[@]}"; do
  url_args+=(--base-url "${url}")
done

echo "== stage 1: load and filter -> ${OUT_DIR}/pairs.jsonl"
"${PYTHON}" -m proxy_grm.data.prepare_pairs "${source_args[@]}" --out "${OUT_DIR}" --max-pairs "${MAX_PAIRS}" "$@"

echo "== stage 2: teacher ${TEACHER_MODEL} -> ${OUT_DIR}/teacher_cache.jsonl"
"${PYTHON}" -m proxy_grm.data.distill --pairs "${OUT_DIR}/pairs.jsonl" --cache "${OUT_DIR}/teacher_cache.jsonl" \
  "${url_args[@]}" --model "${TEACHER_MODEL}" --api-key-env "${API_KEY_ENV}" \
  --concurrency "${CONCURRENCY}" --max-tokens "${MAX_TOKENS}" --seed "${SEED}"

echo "== stage 3: split -> ${SETS_DIR}"
"${PYTHON}" -m proxy_grm.data.split --pairs "${OUT_DIR}/pairs.jsonl" --cache "${OUT_DIR}/teacher_cache.jsonl" \
  --out "${SETS_DIR}" --grm-sft-size "${GRM_SFT_SIZE}" --proxy-sft-size "${PROXY_SFT_SIZE}" \
  --proxy-rl-size "${PROXY_RL_SIZE}" --grm-rl-size "${GRM_RL_SIZE}" --seed "${SEED}" --verl-images "${VERL_IMAGES}"
