#!/usr/bin/env bash
# README command 1: set up (or reuse) .venv and .venv-vllm, then run the whole Proxy-GRM pipeline at
# toy scale on CPU. Writes outputs/demo/ (report.md, plots/, data/, checkpoints/, logs/); a rerun
# reuses finished stages (delete outputs/demo/stages/ to run everything again).
#   bash scripts/demo.sh [--out DIR] [--proxy-backend vllm|transformers] [...]   (see --help)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh cpu
bash scripts/setup_env.sh vllm  # not .venv-rl: only the tests use it
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$SECONDS
.venv/bin/python -m proxy_grm.demo "$@"
echo "demo wall time (after set-up): $((SECONDS - start)) s"
