"""The eleven reward aggregations of the authors' release, as a named table.

Notation (see docs of ``compute_score``): ``a`` is the accuracy reward (+1 the
verdict matches the label, -1 otherwise), ``p`` the proxy reward (+1 the proxy
picked the labelled response using this rollout's rubric, -1 it did not, 0 no
proxy judgement). A mode maps ``(a correct?, p)`` to ``(a', p')`` and the score is
``a' + p' + format_weight * f``.

Names say what a mode does: ``explicit_*`` keep the proxy term ``p'`` in the sum,
``implicit_*`` fold the proxy's judgement into ``a'`` and set ``p' = 0`` (the
paper's "implicit" aggregation). The release selected a mode with the integer
switch ``use_fb``; ``RELEASE_MODE_IDS`` maps those integers to the names.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from collections.abc import Mapping

ProxyReward = int  # +1, -1 or 0
Cell = tuple[bool, ProxyReward]  # (verdict correct?, p)
PROXY_VALUES: tuple[ProxyReward, ...] = (1, -1, 0)


@dataclass(frozen=True)
class Aggregation:
    """One row of the table: ``(correct, p) -> (a', p')`` for all six cells."""

    name: str
    release_id: int
    summary: str
    cells: Mapping[Cell, tuple[float, float]]

    def __post_init__(self) -> None:
        expected = {(correct, p) for correct in (True, False) for p in PROXY_VALUES}
        if set(self.cells) != expected:
            raise ValueError(f"mode {self.name!r}: table must cover exactly {sorted(expected)}")

    def apply(self, correct: bool, proxy_reward: ProxyReward) -> tuple[float, float]:
        """``(a', p')`` for a rollout whose verdict is ``correct`` and whose proxy reward is ``p``."""
        return self.cells[(correct, proxy_reward)]


def _mode(name: str, release_id: int, summary: str, row: tuple[tuple[float, float], ...]) -> Aggregation:
    """Build a mode from a row in the spec's column order:
    (a=+1,p=+1), (a=+1,p=-1), (a=+1,p=0), (a=-1,p=+1), (a=-1,p=-1), (a=-1,p=0)."""
    order = [(True, 1), (True, -1), (True, 0), (False, 1), (False, -1), (False, 0)]
    return Aggregation(name, release_id, summary, MappingProxyType(dict(zip(order, row, strict=True))))


_ALL = (
    _mode("explicit_additive", 0, "a + p: verdict and proxy rewarded independently (the release's default)",
          ((1, 1), (1, -1), (1, 0), (-1, 1), (-1, -1), (-1, 0))),
    _mode("explicit_all_or_nothing", 1,
          "a judged rollout gets +2 only when the verdict is right and the proxy agrees, else -2",
          ((1, 1), (-1, -1), (1, 0), (-1, -1), (-1, -1), (-1, 0))),
    _mode("implicit_proxy_veto", 2, "a right verdict counts only if the proxy agrees; no proxy term",
          ((1, 0), (-1, 0), (1, 0), (-1, 0), (-1, 0), (-1, 0))),
    _mode("explicit_graded_correct", 3, "right verdict 1.5 if the proxy agrees else 0.5; wrong -1; plus p",
          ((1.5, 1), (0.5, -1), (0.5, 0), (-1, 1), (-1, -1), (-1, 0))),
    _mode("explicit_graded_inconsistent", 4,
          "as graded_correct, and a wrong verdict whose rubric led the proxy right gets -1.5; plus p",
          ((1.5, 1), (0.5, -1), (0.5, 0), (-1.5, 1), (-1, -1), (-1, 0))),
    _mode("explicit_graded_strict", 5,
          "as graded_correct, wrong verdict -1.5 if the proxy was right else -2; plus p",
          ((1.5, 1), (0.5, -1), (0.5, 0), (-1.5, 1), (-2, -1), (-2, 0))),
    _mode("explicit_discounted_correct", 6, "right verdict 1 if the proxy agrees else 0.5; wrong -1; plus p",
          ((1, 1), (0.5, -1), (0.5, 0), (-1, 1), (-1, -1), (-1, 0))),
    _mode("implicit_graded_correct", 7, "explicit_graded_correct without the proxy term",
          ((1.5, 0), (0.5, 0), (0.5, 0), (-1, 0), (-1, 0), (-1, 0))),
    _mode("implicit_graded_inconsistent", 8, "explicit_graded_inconsistent without the proxy term",
          ((1.5, 0), (0.5, 0), (0.5, 0), (-1.5, 0), (-1, 0), (-1, 0))),
    _mode("implicit_graded_strict", 9, "explicit_graded_strict without the proxy term",
          ((1.5, 0), (0.5, 0), (0.5, 0), (-1.5, 0), (-2, 0), (-2, 0))),
    _mode("implicit_discounted_correct", 10, "explicit_discounted_correct without the proxy term",
          ((1, 0), (0.5, 0), (0.5, 0), (-1, 0), (-1, 0), (-1, 0))),
)

MODES: Mapping[str, Aggregation] = MappingProxyType({mode.name: mode for mode in _ALL})
RELEASE_MODE_IDS: Mapping[int, str] = MappingProxyType({mode.release_id: mode.name for mode in _ALL})
DEFAULT_MODE = "explicit_additive"


def get_mode(mode: str | int) -> Aggregation:
    """A mode by name, or by the release's ``use_fb`` integer (an int or a digit string).

    >>> get_mode("implicit_graded_correct").apply(True, -1)
    (0.5, 0)
    >>> get_mode(7).name
    'implicit_graded_correct'
    """
    if isinstance(mode, bool):
        raise ValueError(f"mode: expected a name or an integer 0-10, got {mode!r}")
    key = mode.strip() if isinstance(mode, str) else mode
    if isinstance(key, str) and key.lstrip("-").isdigit():
        key = int(key)
    if isinstance(key, int):
        if key not in RELEASE_MODE_IDS:
            raise ValueError(f"mode: release id {key} is not one of 0-10")
        return MODES[RELEASE_MODE_IDS[key]]
    if key not in MODES:
        raise ValueError(f"mode: unknown name {mode!r}; choose one of {', '.join(MODES)} or an integer 0-10")
    return MODES[key]
