#!/usr/bin/env bash
# Proxy-SFT: full SFT of the proxy agent (rubric-guided judge) on the teacher's correct critiques.
#   MODEL_PATH=Qwen/Qwen2.5-VL-7B-Instruct DATA_PATH=data/proxy_sft.jsonl OUTPUT_DIR=ckpt/proxy-sft \
#   CUDA_VISIBLE_DEVICES=0,1,2,3 bash scripts/sft/train_proxy_sft.sh [extra swift sft flags]
# Settings: see sft_common.sh (every default is an environment variable).
set -euo pipefail
STAGE_NAME=proxy
# shellcheck source=scripts/sft/sft_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/sft_common.sh"
