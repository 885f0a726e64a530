#!/usr/bin/env bash
# Check a GPU node before a launch: CUDA and the driver, pinned versions, flash-attn, verl's batch rules
# for the GPU count, proxy health, logger credentials, training images (here and on the proxy), free disk,
# stray vLLM engines. One line per problem; exit 1 if any. The launchers run it first (PREFLIGHT=0 skips).
#   bash scripts/preflight.sh proxy                  # a node that will serve proxy/proxy.py
#   bash scripts/preflight.sh health URL[,URL...]    # proxy replicas answer /health
#   DRY_RUN=1 bash scripts/rl/train_proxy_grm.sh     # prints the launch; the launcher itself runs `preflight rl`
# Environment: PYTHON, PREFLIGHT_SKIP (comma-separated check names), PROXY_GRM_API_KEY, PROXY_WAIT_S.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec "${PYTHON}" -m proxy_grm.launch.preflight --repo "${REPO_ROOT}" "$@"
