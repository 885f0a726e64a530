"""What an answers row says about its pair (the files are read with ``proxy_grm.datafiles``).

An answers row holds the benchmark's own fields plus what generation wrote:
``reverse`` (the pair was shown rejected-first), ``rewards`` ([r0, r1] as the
release writes them) and, from our runner, ``verdict`` (1, 2 or null: the
parsed choice in the order shown). Files written by the release carry no
``verdict``; it is then read back from ``rewards``.
"""

from __future__ import annotations

from typing import Any

from proxy_grm.datafiles import DataFileError


class AnswersFileError(DataFileError):
    """A malformed question or answers file; the message names the file, the line and the field."""


def require(row: dict[str, Any], field: str, where: str) -> Any:
    """``row[field]``, or an error naming where the row came from."""
    if field not in row:
        raise AnswersFileError(f"{where}: missing field {field!r}")
    return row[field]


def label_of(row: dict[str, Any], where: str) -> int:
    """The position (1 or 2) of the preferred response in the order shown to the model."""
    reverse = require(row, "reverse", where)
    if not isinstance(reverse, bool):
        raise AnswersFileError(f"{where}: field 'reverse' must be true or false, got {reverse!r}")
    return 2 if reverse else 1


def rewards_of(row: dict[str, Any], where: str) -> tuple[float, float]:
    """The row's ``rewards`` pair, validated."""
    rewards = require(row, "rewards", where)
    if not (isinstance(rewards, (list, tuple)) and len(rewards) >= 2
            and all(isinstance(r, (int, float)) for r in rewards[:2])):
        raise AnswersFileError(f"{where}: field 'rewards' must be a list of two numbers, got {rewards!r}")
    return rewards[0], rewards[1]


def verdict_of(row: dict[str, Any], where: str) -> int | None:
    """The parsed verdict in the order shown: ``verdict`` if written, else from ``rewards``.

    From ``rewards`` alone a tie is unparsed; the release also wrote [0, 1] for
    some unparsed outputs, which cannot be told apart from a real "2".
    """
    if "verdict" in row:
        verdict = row["verdict"]
        if verdict not in (1, 2, None):
            raise AnswersFileError(f"{where}: field 'verdict' must be 1, 2 or null, got {verdict!r}")
        return verdict
    r0, r1 = rewards_of(row, where)
    if r0 == r1:
        return None
    return 1 if r0 > r1 else 2


def release_correct(row: dict[str, Any], where: str) -> bool:
    """The release's rule: r0 > r1 when not reversed, r0 < r1 when reversed."""
    r0, r1 = rewards_of(row, where)
    return r0 < r1 if label_of(row, where) == 2 else r0 > r1
