"""The eleven aggregation modes against the release's table, and every component of
``compute_score`` against the release's numbers on well-formed and malformed outputs.

Expected numbers come from ``SPEC_TABLE`` below (the release reward's ``use_fb``
branches, written out by hand) and hand-labelled outputs (verdict correct?, well
formatted?, has a rubric?), not from the code under test. The proxy is the real
proxy service on a local port with a fake backend whose judgement each rollout
controls through its rubric (``PICK1``/``PICK2``).
"""

from __future__ import annotations

import asyncio
import pytest

from proxy_grm.reward import MODES, RELEASE_MODE_IDS, SCORE_KEYS, compute_score, get_mode
from proxy_grm.reward.proxy_client import close_pools

# The release's use_fb branches, column order: (a=+1,p=+1) (a=+1,p=-1) (a=+1,p=0) (a=-1,p=+1) (a=-1,p=-1) (a=-1,p=0)
SPEC_TABLE = {
    0: [(1, 1), (1, -1), (1, 0), (-1, 1), (-1, -1), (-1, 0)],
    1: [(1, 1), (-1, -1), (1, 0), (-1, -1), (-1, -1), (-1, 0)],
    2: [(1, 0), (-1, 0), (1, 0), (-1, 0), (-1, 0), (-1, 0)],
    3: [(1.5, 1), (0.5, -1), (0.5, 0), (-1, 1), (-1, -1), (-1, 0)],
    4: [(1.5, 1), (0.5, -1), (0.5, 0), (-1.5, 1), (-1, -1), (-1, 0)],
    5: [(1.5, 1), (0.5, -1), (0.5, 0), (-1.5, 1), (-2, -1), (-2, 0)],
    6: [(1, 1), (0.5, -1), (0.5, 0), (-1, 1), (-1, -1), (-1, 0)],
    7: [(1.5, 0), (0.5, 0), (0.5, 0), (-1, 0), (-1, 0), (-1, 0)],
    8: [(1.5, 0), (0.5, 0), (0.5, 0), (-1.5, 0), (-1, 0), (-1, 0)],
    9: [(1.5, 0), (0.5, 0), (0.5, 0), (-1.5, 0), (-2, 0), (-2, 0)],
    10: [(1, 0), (0.5, 0), (0.5, 0), (-1, 0), (-1, 0), (-1, 0)],
}
CELLS = [(True, 1), (True, -1), (True, 0), (False, 1), (False, -1), (False, 0)]


def spec_cell(release_id: int, correct: bool, proxy: int) -> tuple[float, float]:
    return SPEC_TABLE[release_id][CELLS.index((correct, proxy))]


def test_release_ids_cover_0_to_10_with_distinct_names() -> None:
    assert sorted(RELEASE_MODE_IDS) == list(range(11))
    assert len(set(RELEASE_MODE_IDS.values())) == 11 == len(MODES)
    for name in MODES:
        assert name.startswith(("explicit_", "implicit_"))


@pytest.mark.parametrize("release_id", range(11))
def test_mode_table_matches_spec(release_id: int) -> None:
    mode = get_mode(release_id)
    assert get_mode(mode.name) is mode is get_mode(str(release_id))
    assert [mode.apply(correct, p) for correct, p in CELLS] == SPEC_TABLE[release_id]
    # "implicit" modes are exactly those that never keep a proxy term
    assert mode.name.startswith("implicit_") == all(p_out == 0 for _, p_out in SPEC_TABLE[release_id])


@pytest.mark.parametrize("bad", ["explicit", "11", -1, 11, True, "additive"])
def test_unknown_mode_is_an_error_naming_the_choices(bad: object) -> None:
    with pytest.raises(ValueError, match="mode"):
        get_mode(bad)


R1 = "<rubric>Accuracy PICK1 60%<justify>image shows a cat</justify></rubric>"
R2 = "<rubric>Detail PICK2 40%</rubric>"
E = "<eval><quote_1>cat</quote_1><summary_2>dog</summary_2></eval>"

# output, label, verdict correct, well formatted, has rubric, proxy judgement (+1/-1; -1 when no rubric)
OUTPUTS = {
    "well_formed_correct_proxy_agrees": (f"{R1}\n{E}\n<answer>1</answer>", "1", True, True, True, 1),
    "well_formed_wrong_proxy_right": (f"{R1}{E}<answer>2</answer>", "1", False, True, True, 1),
    "well_formed_correct_proxy_wrong": (f"{R2}{E}<answer>1</answer>", "1", True, True, True, -1),
    "well_formed_label_2": (f"{R2}{E}<answer> 2 </answer>", "2", True, True, True, 1),
    "space_between_blocks": (f"{R1} {E}<answer>1</answer>", "1", True, False, True, 1),
    "no_answer_tag_both_digits": (f"{R2}<eval>Response 1 is better</eval>", "1", False, False, True, -1),
    "no_answer_tag_one_digit": ("<rubric>PICK2</rubric><eval>best: Response</eval>", "2", True, False, True, 1),
    "answer_holds_both_digits": (f"{R1}{E}<answer>1 or 2</answer>", "1", False, True, True, 1),
    "duplicate_rubric": (f"{R1}<rubric>PICK2</rubric>{E}<answer>1</answer>", "1", True, False, True, 1),
    "justify_hides_pick": ("<rubric>PICK1<justify>PICK2</justify></rubric><eval>e</eval><answer>1</answer>", "1",
                           True, True, True, 1),
    "no_rubric_close_tag": (f"<rubric>PICK1 {E}<answer>1</answer>", "1", True, False, False, -1),
    "think_format_no_rubric": ("<think>t</think><summary>s</summary><answer>1</answer>", "1", True, True, False, -1),
    "empty_output": ("", "1", False, False, False, -1),
}

PAIR = {"question": "Which caption fits?", "chosen": "a cat", "rejected": "a dog", "image": "img/cat.png"}


def score(output: str, label: str, **kwargs: object) -> dict[str, float]:
    async def run() -> dict[str, float]:
        try:
            return await compute_score("rlaif_v", output, label, {**PAIR, "answer": label}, **kwargs)
        finally:
            await close_pools()

    return asyncio.run(run())


@pytest.mark.parametrize("release_id", range(11))
@pytest.mark.parametrize("case", OUTPUTS)
def test_components_match_release(stub_url: str, case: str, release_id: int) -> None:
    output, label, correct, formatted, has_rubric, proxy = OUTPUTS[case]
    result = score(output, label, proxy_url=stub_url, mode=get_mode(release_id).name)
    a, p = spec_cell(release_id, correct, proxy)
    f = 0.5 * formatted
    assert tuple(result) == SCORE_KEYS
    assert result == {
        "score": a + p + f, "accuracy_reward": a, "proxy_reward": p, "format_reward": f,
        "verdict_correct": float(correct), "well_formatted": float(formatted), "proxy_judgement": float(proxy),
        "has_rubric": float(has_rubric), "proxy_called": float(has_rubric), "proxy_failed": 0.0,
        "proxy_failed_replica": 0.0,
        "proxy_attempts": float(has_rubric), "proxy_truncated": 0.0, "rubric_leak": 0.0, "proxy_consistent": 0.0,
    }


@pytest.mark.parametrize("release_id", [0, 7])
@pytest.mark.parametrize("case", OUTPUTS)
def test_proxy_off_is_accuracy_plus_format_in_every_mode(case: str, release_id: int) -> None:
    output, label, correct, formatted, has_rubric, _ = OUTPUTS[case]
    result = score(output, label, use_proxy=False, mode=release_id)
    a, f = (1.0 if correct else -1.0), 0.5 * formatted
    assert tuple(result) == SCORE_KEYS
    assert (result["score"], result["accuracy_reward"], result["proxy_reward"], result["format_reward"]) == (
        a + f, a, 0.0, f)
    assert (result["proxy_called"], result["proxy_judgement"], result["has_rubric"]) == (0.0, 0.0, float(has_rubric))


def test_format_off_and_weight(stub_url: str) -> None:
    output, label = OUTPUTS["well_formed_correct_proxy_agrees"][:2]
    assert score(output, label, proxy_url=stub_url, use_format=False)["score"] == 2.0
    assert score(output, label, proxy_url=stub_url, format_weight=1.0)["score"] == 3.0


@pytest.mark.parametrize("release_id", range(11))
def test_failed_call_scored_as_release_is_p0_and_counted(release_id: int) -> None:
    from proxy_grm.toy.servers import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    for case in ("well_formed_correct_proxy_agrees", "well_formed_wrong_proxy_right", "space_between_blocks"):
        output, label, correct, formatted, _, _ = OUTPUTS[case]
        result = score(output, label, proxy_url=dead, mode=release_id, on_failure="score_as_release",
                       max_retries=1, backoff_s=0.01)
        a, p = spec_cell(release_id, correct, 0)
        assert (result["score"], result["accuracy_reward"], result["proxy_reward"]) == (a + p + 0.5 * formatted, a, p)
        assert (result["proxy_failed"], result["proxy_called"], result["proxy_attempts"]) == (1.0, 0.0, 2.0)
        assert tuple(result) == SCORE_KEYS


def test_truncated_critiques_are_counted(stub_url: str) -> None:
    """The proxy's ``truncated`` flag becomes ``proxy_truncated``; the judgement still counts."""
    output, label = OUTPUTS["well_formed_correct_proxy_agrees"][:2]
    cut_off = output.replace("PICK1", "PICK1 TRUNCATED", 1)
    assert cut_off != output
    result = score(cut_off, label, proxy_url=stub_url)
    assert (result["proxy_truncated"], result["proxy_called"], result["proxy_judgement"]) == (1.0, 1.0, 1.0)
    assert score(output, label, proxy_url=stub_url)["proxy_truncated"] == 0.0


def test_request_body_is_the_release_payload(stub_url: str) -> None:
    import httpx

    score(OUTPUTS["justify_hides_pick"][0], "1", proxy_url=stub_url)
    body = httpx.get(f"{stub_url}/received").json()[-1]
    assert body == {**PAIR, "answer": "1", "rubric": "<rubric>PICK1</rubric>"}
