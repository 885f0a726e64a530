"""``python -m proxy_grm.launch.verl_main``: verl's ``main_ppo`` whose training steps log the reward parts.

Takes exactly the Hydra overrides of ``python -m verl.trainer.main_ppo`` (same config, same
checks, same Ray start-up: ``main`` below is verl 0.9.1's, verl/trainer/main_ppo.py) and runs
``proxy_grm.launch.verl_trainer.TaskRunner``, so each step's metrics also hold ``reward_parts/*``:
the reward's means (accuracy, proxy, format, rubric share) and the proxy's calls, failures,
retries and truncated critiques. It runs verl's v1 trainer, verl's default.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from verl.trainer.main_ppo import run_ppo
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import validate_config
from verl.utils.device import auto_set_device


@hydra.main(config_path="pkg://verl.trainer.config", config_name="ppo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    if not config.trainer.use_v1:
        raise SystemExit("proxy_grm.launch.verl_main runs verl's v1 trainer: drop trainer.use_v1=False, or run "
                         "the deprecated v0 trainer with `python -m verl.trainer.main_ppo` "
                         "(no reward_parts/* per step)")
    auto_set_device(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    from proxy_grm.launch.verl_trainer import TaskRunner

    run_ppo(config, task_runner_class=TaskRunner)


if __name__ == "__main__":
    main()
