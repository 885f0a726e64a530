#!/usr/bin/env bash
# Set up (or reuse) the three CPU environments, then run the test suite: every test but the toy learning chain
# and verl's trainer on CPU (each a check of its own, run with -m).
#   bash scripts/test.sh                 # the suite (what CI runs)
#   bash scripts/test.sh -k reward -x    # extra arguments go to pytest
#   bash scripts/test.sh -m learning     # the toy learning chain alone (26-50 minutes)
#   bash scripts/test.sh -m trainer      # verl's GRPO trainer on CPU, both proxy modes (docs/grpo.md, "On CPU")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh all
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$SECONDS
# The learning chain (docs/development.md, "The learning check") and verl's trainer on CPU (docs/grpo.md,
# "On CPU") are checks of their own: `-m learning` / `-m trainer` runs one, a later -m wins over this one.
.venv/bin/python -m pytest -ra --durations=15 -m "not learning and not trainer" "$@"
echo "test suite wall time: $((SECONDS - start)) s"
