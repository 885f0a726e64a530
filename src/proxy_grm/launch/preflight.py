"""Preflight: the checks a launch needs, in seconds, before any GPU hour burns.

    bash scripts/preflight.sh rl  -- HYDRA_OVERRIDES...   # what scripts/rl/*.sh run first
    bash scripts/preflight.sh sft --gpus 8 --attn-impl flash_attn --report-to none --data D --model-path M --save-dir O
    bash scripts/preflight.sh proxy                       # a node that will serve proxy/proxy.py
    bash scripts/preflight.sh health URL[,URL...]         # only: every proxy replica answers /health

Prints one line per problem with what to do, ``ok`` lines for the checks that
pass, and exits 1 when anything failed. The RL stage reads everything from verl's
own config composed from the launcher's overrides (so the GPU count, batch sizes,
logger, data files, proxy URLs and save dir are the ones the trainer will see).
``PREFLIGHT_SKIP=images,disk`` skips named checks (the names are ``CHECK_ORDER``'s).
``PROXY_GRM_API_KEY`` is sent to the proxies.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from proxy_grm.launch import checks
from proxy_grm.launch.checks import Problem
from proxy_grm.proxy_contract import DEFAULT_MAX_NEW_TOKENS

Check = tuple[str, Callable[[], list[Problem]]]


def run_checks(selected: list[Check], skip: set[str]) -> int:
    """Run each check (none raises: an unexpected error is a problem line too); 1 if any failed."""
    failed = 0
    for name, check in selected:
        if name in skip:
            print(f"preflight: skip {name}", file=sys.stderr)
            continue
        try:
            problems = check()
        except Exception as error:  # a check that breaks is a failed check, shown as one line, not a traceback
            problems = [Problem(name, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")]
        for problem in problems:
            print(f"preflight: FAIL {problem}", file=sys.stderr)
        if not problems:
            print(f"preflight: ok {name}", file=sys.stderr)
        failed += bool(problems)
    if failed:
        print(f"preflight: {failed} check(s) failed", file=sys.stderr)
    return 1 if failed else 0


# Every check, in the order a stage runs those it selects: the node itself first (GPUs, installed
# versions, compiled extensions, the trainer's imports), then the launch's own config, then what it
# talks to (the proxy before the images it will be asked about), then the disk and stray engines.
CHECK_ORDER = ("cuda", "versions", "flash-attn", "trainer", "batch", "rollout", "proxy", "memory", "logger",
               "images", "disk", "engines")


def in_order(selected: dict[str, Callable[[], list[Problem]]]) -> list[Check]:
    """A stage's checks, by name, as the list ``run_checks`` runs: in ``CHECK_ORDER``.

    >>> [name for name, _ in in_order({"disk": list, "cuda": list, "proxy": list})]
    ['cuda', 'proxy', 'disk']
    """
    unknown = sorted(set(selected) - set(CHECK_ORDER))
    if unknown:
        raise ValueError(f"checks {unknown} have no place in CHECK_ORDER")
    return [(name, selected[name]) for name in CHECK_ORDER if name in selected]


def rl_checks(repo: Path, overrides: list[str], wait_s: float, api_key: str | None) -> list[Check]:
    """The RL launch, read from verl's composed config."""
    config, batch_problems = checks.verl_problems(overrides)
    model, trainer = config.actor_rollout_ref.model, config.trainer
    reward = config.reward.custom_reward_function.get("reward_kwargs") or {}
    proxy_urls = [str(url) for url in reward.get("proxy_url") or []] if reward.get("use_proxy", True) else []
    attention = (model.get("override_config") or {}).get("attn_implementation", "flash_attention_2")
    files = checks.split_files(config.data.train_files)
    reward_model = config.reward.reward_model
    pool_gpus = reward_model.n_gpus_per_node if reward_model.enable and reward_model.enable_resource_pool else 0
    selected: dict[str, Callable[[], list[Problem]]] = {
        "versions": lambda: checks.check_versions(repo / "requirements_rl.txt"),
        "trainer": checks.check_trainer_imports,
        "batch": lambda: batch_problems,
        "rollout": lambda: checks.check_rollout_startup(
            config, int(reward.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)),
        "logger": lambda: checks.check_logger(list(trainer.logger)),
        "images": lambda: checks.check_images(files, proxy_urls, api_key),
        "disk": lambda: checks.check_disk(Path(trainer.default_local_dir), str(model.path)),
        "engines": lambda: checks.check_stray_engines(proxy_urls),
    }
    on_gpu = trainer.device != "cpu"  # TRAINER_DEVICE=cpu (docs/grpo.md, "On CPU"): no GPU to count or plan
    if on_gpu:
        selected["cuda"] = lambda: checks.check_cuda(trainer.n_gpus_per_node + pool_gpus)
    if attention == "flash_attention_2":
        selected["flash-attn"] = lambda: checks.check_flash_attn(
            "verl's actor (attn_implementation=flash_attention_2, verl/workers/config/model.py)")
    if reward_model.enable:
        selected["proxy"] = lambda: checks.check_proxy_pool(reward_model)
    elif proxy_urls:
        selected["proxy"] = lambda: checks.check_proxies(proxy_urls, wait_s, api_key)
    one_gpu = trainer.n_gpus_per_node * trainer.nnodes == 1
    if on_gpu and one_gpu and not reward_model.enable and checks.proxies_on_this_node(proxy_urls):
        if (gpu_gib := checks.gpu_memory_gib()) is not None:
            selected["memory"] = lambda: checks.check_memory_plan(
                config, os.environ.get("PROXY_MODEL_PATH") or checks.proxy_model_from_health(proxy_urls[0], api_key),
                gpu_gib, float(os.environ["PROXY_GPU_MEMORY_UTILIZATION"])
                if os.environ.get("PROXY_GPU_MEMORY_UTILIZATION") else None)
    return in_order(selected)


def sft_checks(args: argparse.Namespace) -> list[Check]:
    selected: dict[str, Callable[[], list[Problem]]] = {
        "cuda": lambda: checks.check_cuda(args.gpus),
        "versions": lambda: checks.check_versions(args.repo / "requirements_sft.txt"),
        "logger": lambda: checks.check_logger([args.report_to]),
        "images": lambda: checks.check_images([args.data], [], None),
        "disk": lambda: checks.check_disk(args.save_dir, args.model_path),
        "engines": checks.check_stray_engines,
    }
    if args.attn_impl == "flash_attn":
        selected["flash-attn"] = lambda: checks.check_flash_attn("ms-swift's --attn_impl flash_attn")
    return in_order(selected)


def proxy_checks(repo: Path) -> list[Check]:
    return in_order({
        "cuda": lambda: checks.check_cuda(1),
        "versions": lambda: checks.check_versions(repo / "requirements_rl.txt"),
        "engines": checks.check_stray_engines,
    })


def split_urls(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=Path.cwd(),
                        help="the checkout whose requirement files hold the pins (the launchers pass theirs)")
    stages = parser.add_subparsers(dest="stage", required=True)
    rl = stages.add_parser("rl", help="a verl GRPO launch (pass the launcher's Hydra overrides after --)")
    rl.add_argument("overrides", nargs="*")
    rl.add_argument("--wait-s", type=float, default=float(os.environ.get("PROXY_WAIT_S", 60)),
                    help="how long to wait for proxy replicas that are still loading")
    sft = stages.add_parser("sft", help="an ms-swift SFT launch")
    sft.add_argument("--gpus", type=int, required=True)
    sft.add_argument("--attn-impl", default="flash_attn")
    sft.add_argument("--report-to", default="none")
    sft.add_argument("--data", type=Path, required=True)
    sft.add_argument("--model-path", required=True)
    sft.add_argument("--save-dir", type=Path, required=True)
    stages.add_parser("proxy", help="a node that serves the proxy with vLLM")
    health = stages.add_parser("health", help="proxy replicas answer /health")
    health.add_argument("urls", nargs="+", help="base URLs (comma-separated lists are split)")
    health.add_argument("--wait-s", type=float, default=60.0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    api_key = os.environ.get("PROXY_GRM_API_KEY") or None
    skip = set(split_urls([os.environ.get("PREFLIGHT_SKIP", "")]))
    if args.stage == "health":
        urls = split_urls(args.urls)
        return run_checks(in_order({"proxy": lambda: checks.check_proxies(urls, args.wait_s, api_key)}), skip)
    if args.stage == "rl":
        try:
            selected = rl_checks(args.repo, args.overrides, args.wait_s, api_key)
        except Exception as error:  # Hydra rejects an override: one line, as every other problem
            print(f"preflight: FAIL config: {type(error).__name__}: {error}".splitlines()[0], file=sys.stderr)
            return 1
    elif args.stage == "sft":
        selected = sft_checks(args)
    else:
        selected = proxy_checks(args.repo)
    return run_checks(selected, skip)


if __name__ == "__main__":
    sys.exit(main())
