"""Loaders, filters and stage 1 (convert + filter + write pairs) on fixtures in each source's real shape."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from proxy_grm.data import llava_critic, mmif, rlaif_v, rlhf_v
from proxy_grm.data.filters import FilterConfig, PairFilter, format_table, jaccard
from proxy_grm.data.prepare_pairs import main, prepare_pairs
from proxy_grm.data.records import SkipRow, SourcePair
from proxy_grm.data.source_specs import _iter_hub_rows
from proxy_grm.datafiles import DataFileError, iter_json_array
from proxy_grm.pairs import iter_pairs
from proxy_grm.pairs import PairRecord, ShownPair, is_reversed
from proxy_grm.toy.source_fixtures import make_source_fixtures

N = 6


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory):
    return make_source_fixtures(tmp_path_factory.mktemp("sources"), N, seed=0)


@pytest.mark.parametrize("judgement, winner", [
    ("The better response: [first]", 1),
    ("The better response: [second] because it is right", 2),
    ("The better response: 2", 2),
    ("The better response: [A]", 1),
    ("Overall, the second response is better.", 2),
    ("Response 1 is better than Response 2.", 1),
])
def test_llava_critic_winner_wordings(judgement: str, winner: int) -> None:
    assert llava_critic.parse_winner(judgement) == winner


@pytest.mark.parametrize("judgement, reason", [
    ("Two responses are equally good.", "tie"),
    ("Both are fine.", "unparseable_winner"),
])
def test_llava_critic_skips(judgement: str, reason: str) -> None:
    with pytest.raises(SkipRow) as skip:
        llava_critic.parse_winner(judgement)
    assert skip.value.reason == reason


def _critic_row(judgement: str) -> dict:
    human = ("<image>\nJudge.\nQuestion: [What?]\nThe first response: [A cat.]\n"
             "The second response: [A dog.]\nASSISTANT:\n")
    return {"id": "x", "image": {"bytes": b"png", "path": None},
            "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": judgement}]}


def test_llava_critic_converts_second_as_chosen() -> None:
    pair = llava_critic.convert(_critic_row("The better response: [second]"))
    assert (pair.id, pair.question, pair.preferred, pair.dispreferred, pair.image) == (
        "llava_critic:x", "What?", "A dog.", "A cat.", b"png")


@pytest.mark.parametrize("module, row, reason", [
    (rlaif_v, {"question": "Q?", "chosen": "a", "rejected": "a", "image": {"bytes": b"x"}}, "identical_responses"),
    (rlaif_v, {"question": "Q?", "chosen": "a", "rejected": "", "image": {"bytes": b"x"}}, "empty_response"),
    (rlaif_v, {"question": "Q?", "chosen": "a", "rejected": "b", "image": {"bytes": None, "path": None}},
     "missing_image"),
    (rlhf_v, {"conversations": [{"from": "human", "value": "<image>"}], "chosen": {"value": "a"},
              "rejected": {"value": "b"}, "images": ["x.png"]}, "empty_question"),
    (mmif, {"conversations": [{"from": "human", "value": "Q?"}], "chosen": {"value": "a"},
            "rejected": {"value": "b"}, "images": []}, "missing_image"),
    (llava_critic, {"conversations": [{"from": "human", "value": "no pair here"}]}, "unparseable_pair"),
])
def test_unconvertible_rows_raise_skip_with_reason(module, row: dict, reason: str) -> None:
    with pytest.raises(SkipRow) as skip:
        module.convert(row)
    assert skip.value.reason == reason


def test_rows_without_ids_get_stable_content_ids() -> None:
    row = {"conversations": [{"from": "human", "value": "<image>Q?"}], "chosen": {"value": "a"},
           "rejected": {"value": "b"}, "images": ["x.png"]}
    assert rlhf_v.convert(row).id == rlhf_v.convert(dict(row)).id
    assert rlhf_v.convert(row).id != rlhf_v.convert({**row, "chosen": {"value": "c"}}).id
    # The same question and responses about another image is another pair (the dedup keeps both).
    assert rlhf_v.convert(row).id != rlhf_v.convert({**row, "images": ["y.png"]}).id
    as_bytes = {**row, "images": [{"bytes": b"png-1", "path": None}]}
    assert rlhf_v.convert(as_bytes).id == rlhf_v.convert(dict(as_bytes)).id
    assert rlhf_v.convert(as_bytes).id != rlhf_v.convert({**row, "images": [{"bytes": b"png-2"}]}).id


def test_stage1_counts_skips_by_reason_and_writes_each_image_once(fixtures, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = prepare_pairs({k: str(v) for k, v in fixtures.specs.items()}, out, progress=False)
    assert dict(summary.kept) == fixtures.good_rows
    assert summary.skipped == fixtures.expected_skips
    assert not summary.removed
    pairs = list(iter_pairs(out / "pairs.jsonl"))
    assert len(pairs) == 4 * N and len({p.id for p in pairs}) == 4 * N
    images = sorted((out / "images").rglob("*.png"))
    assert {Path(p.image) for p in pairs} == set(images)
    # LLaVA-Critic fixture rows come two per image: the shared image is one file.
    assert len(images) == 4 * N - N // 2
    mtimes = {p: p.stat().st_mtime_ns for p in images}
    prepare_pairs({k: str(v) for k, v in fixtures.specs.items()}, out, progress=False)
    assert {p: p.stat().st_mtime_ns for p in sorted((out / "images").rglob("*.png"))} == mtimes
    saved = json.loads((out / "pairs.summary.json").read_text())
    assert saved["skipped"]["tie"] == {"llava_critic": 1}


def test_limits_and_total_cap_sample_every_source(fixtures, tmp_path: Path) -> None:
    specs = {k: str(v) for k, v in fixtures.specs.items()}
    summary = prepare_pairs(specs, tmp_path / "a", limits={"mmif": 2}, progress=False)
    assert summary.kept["mmif"] == 2 and summary.kept["rlaif_v"] == N
    summary = prepare_pairs(specs, tmp_path / "b", max_pairs=8, progress=False)
    assert sum(summary.kept.values()) == 8 and set(summary.kept) == set(specs)


def test_cli_prints_tables(fixtures, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [arg for k, v in fixtures.specs.items() for arg in ("--source", f"{k}={v}")]
    # Two of the toy task's three questions are shorter than 39 characters.
    main([*argv, "--out", str(tmp_path), "--no-progress", "--min-question-chars", "39"])
    printed = capsys.readouterr().out
    assert "skipped (cannot convert)" in printed and "removed by filter" in printed
    assert "quality:short_question" in printed


def _pair(question: str = "What is shown?", preferred: str = "a red car on the road",
          dispreferred: str = "a blue bird in the sky") -> SourcePair:
    return SourcePair("s:1", "s", b"", question, preferred, dispreferred)


@pytest.mark.parametrize("pair, rule", [
    (_pair(question="Q"), "quality:short_question"),
    (_pair(dispreferred="x"), "quality:short_response"),
    (_pair(preferred="word " * 2000), "quality:long_response"),
    (_pair(preferred="a red car " * 10), "difficulty:length_ratio"),
    (_pair(dispreferred="a red car on the road!"), "similarity:near_identical"),
    (_pair(), None),
])
def test_text_rules(pair: SourcePair, rule: str | None) -> None:
    assert PairFilter().text_rule(pair) == rule


def test_image_and_seen_rules() -> None:
    rules = PairFilter(FilterConfig(max_pairs_per_prompt=2))
    assert rules.image_rule(20, 100) == "quality:small_image"
    assert rules.image_rule(28, 28 * 201) == "quality:extreme_aspect"
    assert rules.image_rule(56, 84) is None
    assert rules.seen_rule(_pair(), "img") is None
    assert rules.seen_rule(_pair(preferred="A red car, on the road."), "img") == "similarity:duplicate_pair"
    assert rules.seen_rule(_pair(preferred="a green car"), "img") is None
    assert rules.seen_rule(_pair(preferred="a black car"), "img") == "similarity:prompt_cap"
    assert rules.seen_rule(_pair(preferred="a black car"), "other image") is None
    assert jaccard("", "") == 1.0


def test_format_table_has_a_row_per_reason_and_totals() -> None:
    table = format_table(Counter({("tie", "a"): 2, ("tie", "b"): 1, ("empty", "b"): 4}), "skipped")
    assert table.splitlines()[2].split() == ["empty", "0", "4", "4"]
    assert table.splitlines()[3].split() == ["tie", "2", "1", "3"]


def test_json_array_streams_and_a_cut_file_names_itself(tmp_path: Path) -> None:
    rows = [{"i": i, "x": i / 2, "text": "x" * (i * 7)} for i in range(50)]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows, indent=1))
    assert list(iter_json_array(path)) == rows
    path.write_text("[{\"a\": 1}, {\"a\": ")
    with pytest.raises(DataFileError, match="rows.json"):
        list(iter_json_array(path))


def test_hub_reader_keeps_image_bytes_undecoded(fixtures) -> None:
    """The hub path (datasets streaming) yields Image-feature structs the loaders accept."""
    row, _ = next(_iter_hub_rows(str(fixtures.specs["llava_critic"]), None, "train"))
    assert isinstance(row["image"]["bytes"], bytes)
    assert llava_critic.convert(row).image == row["image"]["bytes"]


def test_order_is_fixed_per_id_and_balanced() -> None:
    ids = [f"src:{i}" for i in range(2000)]
    assert [is_reversed(0, i) for i in ids] == [is_reversed(0, i) for i in ids]
    assert 900 < sum(is_reversed(0, i) for i in ids) < 1100
    pair = PairRecord("a", "s", "img.png", "Q?", "good", "bad")
    assert pair.shown(False) == ShownPair("good", "bad", False) and pair.shown(False).label == 1
    assert pair.shown(True) == ShownPair("bad", "good", True) and pair.shown(True).label == 2


def test_records_round_trip_and_bad_lines_name_the_place() -> None:
    pair = PairRecord("a", "s", "img.png", "Q?", "good", "bad")
    assert PairRecord.from_dict(json.loads(pair.to_json())) == pair
    with pytest.raises(ValueError, match="pairs.jsonl:3"):
        PairRecord.from_dict({"id": "a"}, "pairs.jsonl:3")


def test_unknown_source_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown source"):
        prepare_pairs({"nope": str(tmp_path)}, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="no such file or folder"):
        prepare_pairs({"mmif": str(tmp_path / "absent")}, tmp_path / "out", progress=False)
