"""Quality, difficulty and similarity filters over the converted pairs.

The paper names the three filters but not their rules; these are ours, each a named, configurable rule
so the removal table says exactly what happened:

quality
  ``quality:short_question`` / ``quality:short_response``: too little text to judge.
  ``quality:long_response``: a response longer than ``max_response_chars`` would not fit the training
  context (the release trains with max_length 8192 tokens, image included).
  ``quality:unreadable_image``: bytes PIL cannot identify.
  ``quality:small_image`` / ``quality:extreme_aspect``: the Qwen2-VL processor needs both sides >= 28 px
  and refuses aspect ratios above 200.
difficulty
  ``difficulty:length_ratio``: one response more than ``max_length_ratio`` times longer than the other;
  length alone then gives the answer away, which teaches the length bias the GRM prompt warns against.
similarity
  ``similarity:near_identical``: word-set Jaccard of the two responses >= ``max_response_jaccard``
  (the preference then hinges on a few words; the label is mostly noise).
  ``similarity:duplicate_pair``: the same image, question and responses (case, spacing and punctuation
  ignored) seen before.
  ``similarity:prompt_cap``: more than ``max_pairs_per_prompt`` pairs for one image + question (LLaVA-Critic
  has many pairs per prompt; the cap keeps one prompt from dominating).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field

from proxy_grm.data.records import SourcePair

_WORD_RE = re.compile(r"\w+")
_NORM_RE = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class FilterConfig:
    """Thresholds of every rule; ``0`` disables a ``max_*`` rule."""

    min_question_chars: int = 3
    min_response_chars: int = 2
    max_response_chars: int = 8000
    min_image_side: int = 28
    max_aspect_ratio: float = 200.0
    max_length_ratio: float = 4.0
    max_response_jaccard: float = 0.9
    max_pairs_per_prompt: int = 4


def _norm(text: str) -> str:
    return _NORM_RE.sub(" ", text.lower()).strip()


def _digest(*parts: str) -> bytes:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()


def jaccard(a: str, b: str) -> float:
    """Word-set Jaccard similarity, 1.0 for two empty texts."""
    words_a, words_b = set(_WORD_RE.findall(a.lower())), set(_WORD_RE.findall(b.lower()))
    union = words_a | words_b
    return len(words_a & words_b) / len(union) if union else 1.0


@dataclass
class PairFilter:
    """Applies the rules in a fixed order and remembers what it has seen (for the similarity rules).

    Memory is one 8-byte digest per kept pair plus one counter per prompt: ~100 bytes per pair.
    """

    config: FilterConfig = field(default_factory=FilterConfig)
    _seen_pairs: set[bytes] = field(default_factory=set)
    _per_prompt: Counter[bytes] = field(default_factory=Counter)

    def text_rule(self, pair: SourcePair) -> str | None:
        """The first text rule the pair fails, or None (no state changes)."""
        c = self.config
        if len(pair.question) < c.min_question_chars:
            return "quality:short_question"
        shorter, longer = sorted((len(pair.preferred), len(pair.dispreferred)))
        if shorter < c.min_response_chars:
            return "quality:short_response"
        if c.max_response_chars and longer > c.max_response_chars:
            return "quality:long_response"
        if c.max_length_ratio and longer > c.max_length_ratio * shorter:
            return "difficulty:length_ratio"
        if c.max_response_jaccard and jaccard(pair.preferred, pair.dispreferred) >= c.max_response_jaccard:
            return "similarity:near_identical"
        return None

    def image_rule(self, width: int, height: int) -> str | None:
        """The image rule the decoded size fails, or None."""
        if min(width, height) < self.config.min_image_side:
            return "quality:small_image"
        if max(width, height) > self.config.max_aspect_ratio * min(width, height):
            return "quality:extreme_aspect"
        return None

    def seen_rule(self, pair: SourcePair, image_digest: str) -> str | None:
        """The duplicate / per-prompt cap rules; records the pair when it passes."""
        pair_key = _digest(image_digest, _norm(pair.question), _norm(pair.preferred), _norm(pair.dispreferred))
        if pair_key in self._seen_pairs:
            return "similarity:duplicate_pair"
        prompt_key = _digest(image_digest, _norm(pair.question))
        cap = self.config.max_pairs_per_prompt
        if cap and self._per_prompt[prompt_key] >= cap:
            return "similarity:prompt_cap"
        self._seen_pairs.add(pair_key)
        self._per_prompt[prompt_key] += 1
        return None


def format_table(counts: Counter[tuple[str, str]], title: str) -> str:
    """A plain-text table of ``counts[(reason, source)]``: one row per reason, one column per source."""
    sources = sorted({source for _, source in counts})
    reasons = sorted({reason for reason, _ in counts})
    width = max([len(title), *(len(r) for r in reasons), 5])
    header = f"{title:<{width}}" + "".join(f" {s:>12}" for s in sources) + f" {'total':>9}"
    lines = [header, "-" * len(header)]
    for reason in reasons:
        cells = [counts[(reason, s)] for s in sources]
        lines.append(f"{reason:<{width}}" + "".join(f" {n:>12}" for n in cells) + f" {sum(cells):>9}")
    return "\n".join(lines)
