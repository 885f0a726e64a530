#!/usr/bin/env bash
# Set up (or reuse) both CPU environments, then run the whole test suite.
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh -k reward -x    # extra arguments go to pytest
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh all
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$SECONDS
.venv/bin/python -m pytest -ra --durations=15 "$@"
echo "test suite wall time: $((SECONDS - start)) s"
