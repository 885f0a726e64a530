#!/usr/bin/env bash
# The launchers' shared library (sourced, not run): one way to name missing variables, to accept the
# authors' README variable names, to pick a logger, to run the preflight and to honour DRY_RUN, and the
# defaults several launchers share (the pixel budget, the GRPO hyperparameters).
# Every default a launcher has is written once, as ${NAME:-value}, in that launcher or here.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

log() {
  echo "[proxy-grm] $*" >&2
}

die() {
  echo "error: $*" >&2
  exit 2
}

# release_alias OURS THEIRS: take OURS from the release README's name THEIRS when only THEIRS is set.
# Ours wins when both are set; one line says which was used.
release_alias() {
  local ours="$1" theirs="$2"
  [[ -n "${!theirs:-}" ]] || return 0
  if [[ -n "${!ours:-}" ]]; then
    log "${ours} is set; the release's ${theirs} is ignored"
  else
    printf -v "${ours}" '%s' "${!theirs}"
    export "${ours?}"
    log "${ours} taken from the release's ${theirs}"
  fi
}

# release_proxy_urls: PROXY_URLS from the release's ip and api_port (default port 20240) when only they are
# set, by the same rule as release_alias. Both GRPO launchers call it.
release_proxy_urls() {
  [[ -n "${ip:-}" ]] || return 0
  if [[ -n "${PROXY_URLS:-}" ]]; then
    log "PROXY_URLS is set; the release's ip/api_port are ignored"
  else
    export PROXY_URLS="http://${ip}:${api_port:-20240}"
    log "PROXY_URLS=${PROXY_URLS} taken from the release's ip and api_port"
  fi
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

# one_of NAME VALUE...: the variable NAME holds one of the VALUEs.
one_of() {
  local name="$1" value
  shift
  for value in "$@"; do
    [[ "${!name}" == "${value}" ]] && return 0
  done
  die "${name} must be one of: $*; got '${!name}'"
}

# export_max_pixels: MAX_PIXELS, by default the release's budget (docs/data.md, "Image size"): SFT, the RL
# rows, the proxy and the eval all resize to it. It is proxy_grm.pixels.RELEASE_MAX_PIXELS, which
# tests/test_consumers_agree.py checks; every launcher takes it from here.
export_max_pixels() {
  export MAX_PIXELS="${MAX_PIXELS:-1003520}"
}

# grpo_defaults: the release's GRPO hyperparameters both GRPO launchers start from (verl through
# scripts/rl/common.sh, ms-swift in scripts/rl/train_proxy_grm_swift.sh).
grpo_defaults() {
  LR="${LR:-3e-7}"
  KL_LOSS_COEF="${KL_LOSS_COEF:-0.01}"
  ROLLOUT_N="${ROLLOUT_N:-8}"
}

is_dry_run() {
  [[ "${DRY_RUN:-0}" == "1" ]]
}

# The logger, one switch for SFT and RL: REPORT_TO=none|swanlab|wandb|tensorboard. The release's
# swanlab variables (swanlab_project, swanlab_token, swanlab_mode) turn swanlab on when REPORT_TO is unset.
select_logger() {
  release_alias SWANLAB_PROJECT swanlab_project
  release_alias SWANLAB_API_KEY swanlab_token
  release_alias SWANLAB_MODE swanlab_mode
  if [[ -z "${REPORT_TO:-}" && -n "${SWANLAB_PROJECT:-}" ]]; then
    REPORT_TO=swanlab
    log "REPORT_TO=swanlab (the release's swanlab variables are set)"
  fi
  REPORT_TO="${REPORT_TO:-none}"
  one_of REPORT_TO none swanlab wandb tensorboard
  export REPORT_TO
}

# cuda_device_count: how many GPUs CUDA_VISIBLE_DEVICES names (the release's `gpus` is accepted).
cuda_device_count() {
  local devices
  IFS=',' read -ra devices <<< "${CUDA_VISIBLE_DEVICES}"
  echo "${#devices[@]}"
}

# preflight STAGE ARG...: the checks of `python -m proxy_grm.launch.preflight` before any GPU work.
# PREFLIGHT=0 skips them; DRY_RUN=1 only prints the command, so it skips them too.
preflight() {
  if is_dry_run || [[ "${PREFLIGHT:-1}" == "0" ]]; then
    return 0
  fi
  if ! "${PYTHON}" -m proxy_grm.launch.preflight --repo "${REPO_ROOT}" "$@"; then
    echo "error: preflight failed (the lines above say what to fix); PREFLIGHT=0 skips it" >&2
    exit 1
  fi
}

# run_or_print CMD...: print the exact command (DRY_RUN=1) or replace this shell with it.
run_or_print() {
  if is_dry_run; then
    printf '%q ' "$@"
    printf '\n'
    exit 0
  fi
  printf '%q ' "$@" >&2
  printf '\n' >&2
  exec "$@"
}
