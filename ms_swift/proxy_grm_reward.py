"""ms-swift entry point for the Proxy-GRM reward (CPU / alternative trainer of stage C.2).

    swift rlhf --rlhf_type grpo --external_plugins ms_swift/proxy_grm_reward.py --reward_funcs proxy_grm

ms-swift imports this file by path; the logic lives in ``proxy_grm.reward.swift_grpo``. Like
``verl/``, this folder has no ``__init__.py``, so it never shadows an installed package.
"""

from swift.rewards import orms

from proxy_grm.reward.swift_grpo import SwiftProxyGRMReward

orms["proxy_grm"] = SwiftProxyGRMReward
