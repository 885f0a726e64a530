"""The parsers against the release's behaviour on a table of output shapes.

Columns: output text, release GRM verdict (answer span, else whole output),
release proxy verdict (answer span, else last 1/2), release format check,
rubric sent to the proxy (None: no ``</rubric>``, the one deliberate deviation).
"""

from __future__ import annotations

import pytest

from helpers import RUBRIC_LEAKS
from proxy_grm.parsing import (
    Fallback,
    accuracy_reward,
    extract_rubric,
    is_well_formatted,
    parse_label,
    parse_verdict,
    rubric_leak,
)

R = "<rubric>Accuracy 60%\nDetail 40%<justify>image shows a cat</justify></rubric>"
R_SENT = "<rubric>Accuracy 60%\nDetail 40%</rubric>"
E = "<eval><quote_1>cat</quote_1><summary_2>dog</summary_2></eval>"

CASES = [
    # well-formed
    (f"{R}{E}<answer>1</answer>", 1, 1, True, R_SENT),
    (f"{R}{E}<answer>2</answer>", 2, 2, True, R_SENT),
    (f"{R}\n{E}\n<answer>2</answer>", 2, 2, True, R_SENT),
    (f"{R}\n\n{E}\n\n<answer>1</answer>\n", 1, 1, True, R_SENT),
    # spaces inside and between tags
    (f"{R}{E}<answer> 2 </answer>", 2, 2, True, R_SENT),
    (f"{R} {E}<answer>1</answer>", 1, 1, False, R_SENT),
    (f"{R}{E} <answer>1</answer>", 1, 1, False, R_SENT),
    (f" {R}{E}<answer>1</answer>", 1, 1, False, " " + R_SENT),
    (f"{R}{E}<answer>1</answer> ", 1, 1, False, R_SENT),
    # answer span variants
    (f"{R}{E}<answer>Response 1</answer>", 1, 1, True, R_SENT),
    (f"{R}{E}<answer>\"2\"</answer>", 2, 2, True, R_SENT),
    (f"{R}{E}<answer>1/2</answer>", None, None, True, R_SENT),
    (f"{R}{E}<answer>12</answer>", None, None, True, R_SENT),
    (f"{R}{E}<answer></answer>", None, None, True, R_SENT),
    (f"{R}{E}<answer>none</answer>", None, None, True, R_SENT),
    (f"{R}{E}<answer>11</answer>", 1, 1, True, R_SENT),
    (f"{R}{E}<answer>3</answer>", None, None, True, R_SENT),
    # doubled tags
    (f"{R}{E}<answer>1</answer><answer>2</answer>", 1, 1, False, R_SENT),
    (f"{R}{R}{E}<answer>2</answer>", 2, 2, False, R_SENT),
    (f"{R}{E}{E}<answer>2</answer>", 2, 2, False, R_SENT),
    # missing tags
    (f"{R}{E}", None, 2, False, R_SENT),
    (f"{R}{E}answer: 1", None, 1, False, R_SENT),
    (f"{E}<answer>1</answer>", 1, 1, False, None),
    (f"<rubric>Accuracy 100%{E}<answer>1</answer>", 1, 1, False, None),
    (f"{R}<answer>2</answer>", 2, 2, False, R_SENT),
    ("<rubric>A</rubric><eval>B</eval><answer>2", 2, 2, False, "<rubric>A</rubric>"),
    ("<rubric>no justify</rubric><eval>x</eval><answer>2</answer>", 2, 2, True, "<rubric>no justify</rubric>"),
    # bare outputs
    ("1", 1, 1, False, None),
    ("2", 2, 2, False, None),
    ("Response 2 is better", 2, 2, False, None),
    ("Between 1 and 2, I prefer 2.", None, 2, False, None),
    ("", None, None, False, None),
    ("no digits at all", None, None, False, None),
    # the alternative think/summary format
    ("<think>t</think><summary>s</summary><answer>1</answer>", 1, 1, True, None),
    ("<think>t</think>\n<summary>s</summary>\n<answer>2</answer>", 2, 2, True, None),
    ("<think>t</think><answer>2</answer>", 2, 2, False, None),
    ("<think>t</think><summary>s</summary><summary>s</summary><answer>1</answer>", 1, 1, False, None),
    # text before the rubric is kept in what the proxy sees, as released
    (f"Sure.{R}{E}<answer>1</answer>", 1, 1, False, "Sure." + R_SENT),
    ("<rubric>A<justify>j</justify>B</rubric><eval>e</eval><answer>1</answer>", 1, 1, True, "<rubric>A</rubric>"),
    # the release's lazy regex lets a stray </rubric> through: kept as released
    ("<rubric>A</rubric>tail</rubric><eval>e</eval><answer>1</answer>", 1, 1, True, "<rubric>A</rubric>"),
]


@pytest.mark.parametrize(("output", "grm_verdict", "proxy_verdict", "formatted", "rubric"), CASES)
def test_parsers_match_release(output, grm_verdict, proxy_verdict, formatted, rubric):
    assert parse_verdict(output) == grm_verdict
    assert parse_verdict(output, Fallback.LAST_DIGIT) == proxy_verdict
    assert is_well_formatted(output) is formatted
    assert extract_rubric(output) == rubric


def test_table_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    ("output", "label", "reward"),
    [
        ("<answer>1</answer>", "1", 1.0),
        ("<answer>1</answer>", 1, 1.0),
        ("<answer>1</answer>", "<answer>1</answer>", 1.0),
        ("<answer>1</answer>", "2", -1.0),
        ("<answer>2</answer>", "2", 1.0),
        ("<answer>12</answer>", "1", -1.0),
        ("<answer>12</answer>", "2", -1.0),
        ("no verdict", "1", -1.0),
        ("<answer>1</answer>", "", -1.0),
        ("<answer>1</answer>", "12", -1.0),
    ],
)
def test_accuracy_reward(output, label, reward):
    assert accuracy_reward(output, label) == reward


def test_parse_label():
    assert parse_label("1") == 1
    assert parse_label(2) == 2
    assert parse_label(" <answer>2</answer> ") == 2
    assert parse_label("tie") is None


@pytest.mark.parametrize(("rubric", "kind"), RUBRIC_LEAKS)
def test_rubric_leak(rubric: str, kind: str | None) -> None:
    reason = rubric_leak(rubric)
    assert (reason.split(":")[0] if reason else None) == kind, reason
