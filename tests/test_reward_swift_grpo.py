"""The ms-swift GRPO adapter: compute_score's scores and parts, called as ms-swift's trainer calls a reward."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from proxy_grm.reward import SCORE_KEYS, compute_score
from proxy_grm.reward.swift_grpo import (
    PARTS_FILE,
    REWARD_KWARGS_ENV,
    SwiftProxyGRMReward,
    reward_kwargs_from_env,
    summarise_steps,
)
from reward_stub_proxy import start_stub

PAIR = {"question": "What is shown?", "chosen": "A cat.", "rejected": "A dog.", "image": "i.png", "answer": "1"}
COMPLETIONS = [
    "<rubric>PICK1 accuracy 100%</rubric><eval>1 is right</eval><answer>1</answer>",  # right, proxy +1
    "<rubric>PICK2 accuracy 100%</rubric><eval>2 is right</eval><answer>2</answer>",  # wrong, proxy -1
    "<eval>no rubric</eval><answer>1</answer>",  # right, no proxy call: -1
]


@pytest.fixture
def stub_proxy(tmp_path: Path):
    server, base = start_stub(tmp_path)
    yield base
    server.stop()


def _columns(n: int) -> dict:
    """The dataset columns as ms-swift hands them to a reward: one aligned list per column."""
    return {"data_source": ["proxy_grm/grm"] * n, "reward_model": [{"style": "rule", "ground_truth": "1"}] * n,
            "extra_info": [dict(PAIR)] * n, "messages": [[{"role": "user", "content": "..."}]] * n,
            "images": [[{"bytes": None, "path": "i.png"}]] * n, "is_truncated": [False] * n}


def test_scores_and_parts_match_compute_score(stub_proxy: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(REWARD_KWARGS_ENV, json.dumps({"proxy_url": stub_proxy, "mode": "explicit_additive"}))
    reward = SwiftProxyGRMReward(args=SimpleNamespace(output_dir=str(tmp_path)))
    # ms-swift runs an async reward under asyncio.run, a new event loop per call: twice here.
    for step in (0, 1):
        scores = asyncio.run(reward(COMPLETIONS, trainer_state=SimpleNamespace(global_step=step),
                                    **_columns(len(COMPLETIONS))))

    async def expected() -> list[dict]:
        return [await compute_score("proxy_grm/grm", c, "1", dict(PAIR), proxy_url=stub_proxy) for c in COMPLETIONS]

    parts = asyncio.run(expected())
    assert scores == [p["score"] for p in parts]
    assert scores == [1.0 + 1.0 + 0.5, -1.0 - 1.0 + 0.5, 1.0 - 1.0]

    logged = [json.loads(line) for line in (tmp_path / PARTS_FILE).read_text().splitlines()]
    assert [row["step"] for row in logged] == [1, 1, 1, 2, 2, 2]
    assert all(set(SCORE_KEYS) <= set(row) for row in logged)
    assert logged[0]["completion"] == COMPLETIONS[0]
    assert {row["image"] for row in logged} == {PAIR["image"]}  # the pair's image: the evidence a rubric should name

    # The proxy received each rubric-bearing rollout's rubric, with the row's pair.
    received = httpx.get(f"{stub_proxy}/received").json()
    assert sorted(r["rubric"] for r in received)[:2] == ["<rubric>PICK1 accuracy 100%</rubric>",
                                                         "<rubric>PICK1 accuracy 100%</rubric>"]
    assert all(r["question"] == PAIR["question"] and r["answer"] == "1" for r in received)

    steps = summarise_steps(tmp_path / PARTS_FILE)
    assert [s["step"] for s in steps] == [1, 2]
    assert steps[0]["rollouts"] == 3
    assert steps[0]["has_rubric"] == pytest.approx(2 / 3)
    assert steps[0]["proxy_called"] == 2 and steps[0]["proxy_failed"] == 0
    assert steps[0]["score"] == pytest.approx(sum(scores) / 3)


@pytest.mark.parametrize(("raw", "message"), [
    ("{not json", "is not JSON"),
    ('["a"]', "must be a JSON object"),
])
def test_bad_reward_kwargs_are_named(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reward_kwargs_from_env({REWARD_KWARGS_ENV: raw})


def test_a_row_without_the_label_is_an_error(monkeypatch) -> None:
    monkeypatch.setenv(REWARD_KWARGS_ENV, json.dumps({"use_proxy": False}))
    columns = _columns(1) | {"reward_model": [{"style": "rule"}]}
    with pytest.raises(ValueError, match="rollout 0: column 'reward_model'"):
        asyncio.run(SwiftProxyGRMReward()(COMPLETIONS[:1], **columns))


def test_a_bad_parts_line_names_the_file_and_line(tmp_path: Path) -> None:
    parts = tmp_path / PARTS_FILE
    full = json.dumps({"step": 1, **dict.fromkeys(SCORE_KEYS, 0.0)})
    parts.write_text(f"{full}\nnot json\n")
    with pytest.raises(ValueError, match=f"{PARTS_FILE}:2"):
        summarise_steps(parts)
    parts.write_text(f'{full}\n{{"step": 1, "score": 0}}\n')
    with pytest.raises(ValueError, match=f"{PARTS_FILE}:2"):  # a line without every reward key
        summarise_steps(parts)
