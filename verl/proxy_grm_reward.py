"""verl entry point for the Proxy-GRM reward.

    reward.custom_reward_function.path=verl/proxy_grm_reward.py
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.proxy_url=http://HOST:PORT

verl loads this file by path; the logic lives in ``proxy_grm.reward``. This folder
has no ``__init__.py`` on purpose, so it never shadows the installed ``verl``.

verl 0.9.1 drops a rollout whose reward function raised and trains on the rest, so the
function verl gets records a proxy failure in the reward dict instead of raising it; the
launchers' trainer (``proxy_grm.launch.verl_trainer``) stops the run on it (``on_failure=raise``).
"""

from proxy_grm.reward.score import verl_compute_score as compute_score

__all__ = ["compute_score"]
