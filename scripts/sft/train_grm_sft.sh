#!/usr/bin/env bash
# Proxy-GRM cold start: full SFT of Qwen2.5-VL on the teacher's rubric/eval/answer critiques.
#   MODEL_PATH=Qwen/Qwen2.5-VL-7B-Instruct DATA_PATH=data/grm_sft.jsonl OUTPUT_DIR=ckpt/grm-sft \
#   CUDA_VISIBLE_DEVICES=0,1,2,3 bash scripts/sft/train_grm_sft.sh [extra swift sft flags]
# Settings: see sft_common.sh (every default is an environment variable).
set -euo pipefail
STAGE_NAME=grm
# shellcheck source=scripts/sft/sft_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/sft_common.sh"
