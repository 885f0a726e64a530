"""verl entry point for the Proxy-GRM reward.

    reward.custom_reward_function.path=verl/proxy_grm_reward.py
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.proxy_url=http://HOST:PORT

verl loads this file by path; the logic lives in ``proxy_grm.reward``. This folder
has no ``__init__.py`` on purpose, so it never shadows the installed ``verl``.
"""

from proxy_grm.reward import compute_score

__all__ = ["compute_score"]
