"""The Proxy-GRM GRPO reward: accuracy + proxy + format, aggregated by a named mode."""

from proxy_grm.reward.modes import MODES, RELEASE_MODE_IDS, Aggregation, get_mode
from proxy_grm.reward.proxy_client import ProxyCallError, ProxyProtocolError, ProxyUnavailableError
from proxy_grm.reward.score import compute_score, score_rollout
from proxy_grm.reward.score_parts import SCORE_KEYS, ScoreParts
from proxy_grm.reward.settings import RewardSettings, resolve_settings

__all__ = [
    "MODES", "RELEASE_MODE_IDS", "SCORE_KEYS", "Aggregation", "ProxyCallError", "ProxyProtocolError",
    "ProxyUnavailableError", "RewardSettings", "ScoreParts", "compute_score", "get_mode", "resolve_settings",
    "score_rollout",
]
