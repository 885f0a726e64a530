#!/usr/bin/env bash
# Shared by the RL launchers (sourced, not run): variable checks and the launch/dry-run step.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"

# The reward function verl loads by path (absolute, so any working directory works).
reward_file() {
  echo "${REPO_ROOT}/verl/proxy_grm_reward.py"
}

# require_vars NAME="what to set" ...: fail before any work, naming every missing variable.
require_vars() {
  local missing=0 spec name
  for spec in "$@"; do
    name="${spec%%=*}"
    if [[ -z "${!name:-}" ]]; then
      echo "error: set ${name} (${spec#*=})" >&2
      missing=1
    fi
  done
  if (( missing )); then
    exit 2
  fi
}

# hydra_list "a, b,c" -> [a,b,c]
hydra_list() {
  local joined="${1// /}"
  echo "[${joined}]"
}

is_dry_run() {
  [[ "${DRY_RUN:-0}" == "1" ]]
}

# check_proxies "URL[,URL...]": every proxy replica must answer /health before any GPU work.
check_proxies() {
  "${PYTHON}" -m proxy_grm.launch.preflight --wait-s "${PROXY_WAIT_S:-60}" "$1"
}

# launch_verl OVERRIDE... : print the exact command (DRY_RUN=1) or run verl's PPO trainer.
launch_verl() {
  local cmd=("${PYTHON}" -m verl.trainer.main_ppo "$@")
  if is_dry_run; then
    printf '%q ' "${cmd[@]}"
    printf '\n'
    exit 0
  fi
  set -x
  exec "${cmd[@]}"
}
