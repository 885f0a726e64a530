"""Stages 2-3 against the deterministic stub teacher (real uvicorn servers on 127.0.0.1).

Checks: every pair answered once, the image reached the endpoint, retries and several endpoints work,
the correct/hard split follows the teacher's verdicts, labels are ~50/50, and a SIGKILLed run resumes
to exactly the ids of an uninterrupted one.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from proxy_grm.toy.servers import ServerProcess, free_port

from proxy_grm.data.distill import TeacherCache, TeacherConfig, distill
from proxy_grm.data.prepare_pairs import prepare_pairs
from proxy_grm.data.split import allocate, classify, main as split_main, split_and_write
from proxy_grm.datafiles import repair_torn_tail
from proxy_grm.images import file_to_data_uri
from proxy_grm.images import load_image
from proxy_grm.pairs import iter_pairs
from proxy_grm.pixels import pixel_budget
from proxy_grm.toy.colour_task import BLIND_COLOUR, seen_colour, true_colour
from proxy_grm.toy.source_fixtures import make_source_fixtures
from proxy_grm.toy.teacher_stub import stub_verdict

N = 12
SIZES = {"grm_sft": 6, "proxy_sft": 4, "proxy_rl": 4, "grm_rl": 100}


def start_stub(tmp: Path, name: str, *flags: str) -> tuple[ServerProcess, str]:
    """A stub teacher subprocess and its OpenAI base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "proxy_grm.toy.teacher_stub", "--port", str(port), *flags]
    server = ServerProcess(argv, f"http://127.0.0.1:{port}/health", tmp / f"{name}.log")
    server.wait_healthy(60)
    return server, f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def stub_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two stub endpoints; the second fails every 3rd request with 503."""
    tmp = tmp_path_factory.mktemp("stubs")
    (plain, plain_url), (flaky, flaky_url) = start_stub(tmp, "plain"), start_stub(tmp, "flaky", "--fail-every", "3")
    yield plain_url, flaky_url
    plain.stop()
    flaky.stop()


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pairs")
    fixtures = make_source_fixtures(tmp / "src", N, seed=1)
    prepare_pairs({k: str(v) for k, v in fixtures.specs.items()}, tmp / "out", progress=False)
    return tmp / "out" / "pairs.jsonl"


@pytest.fixture(scope="module")
def distilled(stub_urls: tuple[str, str], pairs_file: Path,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    cache = tmp_path_factory.mktemp("cache") / "teacher.jsonl"
    config = TeacherConfig(base_urls=stub_urls, model="stub", concurrency=4)
    summary = asyncio.run(distill(pairs_file, cache, config, progress=False))
    return cache, summary


def test_every_pair_answered_once_with_retries(distilled, pairs_file: Path) -> None:
    cache, summary = distilled
    ids = [e["id"] for e in TeacherCache(cache).entries()]
    assert sorted(ids) == sorted(p.id for p in iter_pairs(pairs_file))
    assert summary.done == 4 * N and not summary.failed and summary.retries > 0


def test_image_reached_the_teacher(distilled, pairs_file: Path) -> None:
    """The stub's rubric names the colour it decoded from the image it was sent: that pair's image."""
    cache, _ = distilled
    pairs = {p.id: p for p in iter_pairs(pairs_file)}
    for entry in TeacherCache(cache).entries():
        seen = seen_colour(load_image(pairs[entry["id"]].image))
        assert f"the image is mostly {seen}." in entry["output"]


def test_rerun_sends_nothing(distilled, pairs_file: Path, stub_urls: tuple[str, str]) -> None:
    cache, _ = distilled
    before = cache.read_bytes()
    config = TeacherConfig(base_urls=stub_urls[:1], model="stub")
    summary = asyncio.run(distill(pairs_file, cache, config, progress=False))
    assert (summary.cached_before, summary.done) == (4 * N, 0)
    assert cache.read_bytes() == before


def test_split_follows_teacher_verdicts_and_labels_balance(distilled, pairs_file: Path, tmp_path: Path) -> None:
    cache, _ = distilled
    summary = split_and_write(pairs_file, cache, tmp_path, SIZES)
    pairs = {p.id: p for p in iter_pairs(pairs_file)}
    expected: Counter[str] = Counter()
    labels = Counter()
    for entry in TeacherCache(cache).entries():
        shown = pairs[entry["id"]].shown(entry["reverse"])
        response_1, response_2, label = shown.response_1, shown.response_2, shown.label
        assert label == entry["label"]
        labels[label] += 1
        image = load_image(pairs[entry["id"]].image)
        expected["correct" if stub_verdict(response_1, response_2, image) == label else "wrong"] += 1
    assert summary.categories == expected
    assert expected["correct"] > 0 and expected["wrong"] > 0
    assert 0.3 <= labels[1] / sum(labels.values()) <= 0.7

    hard = pd.read_parquet(tmp_path / "grm_rl.parquet")
    assert len(hard) == expected["wrong"]
    for row in hard.itertuples():
        info = row.extra_info
        image = load_image(info["image"])
        assert stub_verdict(info["response_1"], info["response_2"], image) != int(row.reward_model["ground_truth"])
        assert true_colour(image) == BLIND_COLOUR != seen_colour(image)  # the teacher's blind spot is the hard pool
        assert "answer" not in info and "chosen" not in info  # the label once, the shown order by its name
        assert row.prompt[0]["content"].startswith("<image>")
        assert row.images[0]["bytes"] == Path(info["image"]).read_bytes()
        assert {k: row.images[0][k] for k in ("max_pixels", "min_pixels")} == pixel_budget().image_kwargs()
    correct_ids = set()
    for name in ("grm_sft", "proxy_sft", "proxy_rl"):
        assert summary.written[name] == min(SIZES[name], expected["correct"])
    proxy_rl = pd.read_parquet(tmp_path / "proxy_rl.parquet")
    for row in proxy_rl.itertuples():
        info = row.extra_info
        correct_ids.add(info["id"])
        assert info["rubric"].startswith("<rubric>") and "<justify>" not in info["rubric"]
        assert info["rubric"] in row.prompt[0]["content"]
        image = load_image(info["image"])
        assert stub_verdict(info["response_1"], info["response_2"], image) == int(row.reward_model["ground_truth"])
        assert seen_colour(image) == true_colour(image)
    for line in (tmp_path / "proxy_sft.jsonl").read_text().splitlines():
        row = json.loads(line)
        target = row["messages"][1]["content"]
        assert target.startswith("<think>") and target.endswith("</answer>")
        assert "**Evaluation Rubric:** <rubric>" in row["messages"][0]["content"]
    assert len(correct_ids) == len(proxy_rl)


def test_unparseable_and_malformed_critiques_are_counted_and_routed() -> None:
    good = "<rubric>r<justify>j</justify></rubric><eval>e</eval><answer>1</answer>"
    assert classify(good, 1) == "correct"
    assert classify(good, 2) == "wrong"
    assert classify("gibberish 1 2", 1) == "unparseable"
    assert classify("<answer>1</answer>", 1) == "correct_malformed"
    assert classify("<rubric>r</rubric> <eval>e</eval> <answer>1</answer>", 1) == "correct_malformed"
    assert classify("<rubric>r</rubric> <eval>e</eval> <answer>1</answer>", 1, require_format=False) == "correct"


@pytest.mark.parametrize("pool, sizes, shares", [
    (100, {"a": 10, "b": 20}, {"a": 10, "b": 20}),
    (10, {"a": 10, "b": 5, "c": 10}, {"a": 4, "b": 2, "c": 4}),
    (3, {"a": 1, "b": 1, "c": 1, "d": 0}, {"a": 1, "b": 1, "c": 1, "d": 0}),
])
def test_allocate(pool: int, sizes: dict[str, int], shares: dict[str, int]) -> None:
    assert allocate(pool, sizes) == shares
    assert sum(allocate(pool, sizes).values()) == min(pool, sum(sizes.values()))


def test_split_cli_path_images(distilled, pairs_file: Path, tmp_path: Path) -> None:
    cache, _ = distilled
    split_main(["--pairs", str(pairs_file), "--cache", str(cache), "--out", str(tmp_path), "--verl-images", "path",
                "--grm-rl-size", "3", "--max-pixels", str(256 * 28 * 28)])
    table = pd.read_parquet(tmp_path / "grm_rl.parquet")
    assert len(table) == 3
    for row in table.itertuples():
        assert row.images[0] == {"image": row.extra_info["image"], "max_pixels": 256 * 28 * 28,
                                 "min_pixels": pixel_budget().min_pixels}


def test_torn_last_line_is_cut(tmp_path: Path) -> None:
    cache = TeacherCache(tmp_path / "c.jsonl")
    cache.path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "outp')
    assert repair_torn_tail(cache.path) == len('{"id": "c", "outp')
    assert cache.ids() == {"a", "b"}
    assert repair_torn_tail(cache.path) == 0
    cache.path.write_text('{"id": "a"}\nnot json\n')
    with pytest.raises(ValueError, match="c.jsonl:2"):
        cache.ids()


def test_data_uri_keeps_file_bytes(pairs_file: Path) -> None:
    pair = next(iter_pairs(pairs_file))
    uri = file_to_data_uri(pair.image)
    assert uri.startswith("data:image/png;base64,")
    assert load_image(uri).size == load_image(pair.image).size


def _distill_cmd(pairs: Path, cache: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "proxy_grm.data.distill", "--pairs", str(pairs), "--cache", str(cache),
            "--base-url", url, "--model", "stub", "--concurrency", "2", "--no-progress"]


def test_sigkill_midway_then_resume_matches_uninterrupted_run(pairs_file: Path, tmp_path: Path,
                                                              distilled) -> None:
    slow, slow_url = start_stub(tmp_path, "slow", "--delay-s", "0.2")
    try:
        cache = tmp_path / "killed.jsonl"
        proc = subprocess.Popen(_distill_cmd(pairs_file, cache, slow_url))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not cache.exists() or cache.read_text().count("\n") < 6):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        partial = cache.read_text().count("\n")
        assert 6 <= partial < 4 * N, "the kill must land midway"
        with cache.open("a") as handle:  # what a kill during a write leaves behind
            handle.write('{"id": "torn')
        subprocess.run(_distill_cmd(pairs_file, cache, slow_url), check=True, timeout=300)
    finally:
        slow.stop()
    ids = [json.loads(line)["id"] for line in cache.read_text().splitlines()]
    uninterrupted = [e["id"] for e in TeacherCache(distilled[0]).entries()]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(uninterrupted)
    resumed = {e["id"]: e for e in TeacherCache(cache).entries()}
    for entry in TeacherCache(distilled[0]).entries():
        assert resumed[entry["id"]]["output"] == entry["output"]
        assert resumed[entry["id"]]["reverse"] == entry["reverse"]


def test_prepare_data_script_runs_the_whole_chain(stub_urls: tuple[str, str], tmp_path: Path) -> None:
    fixtures = make_source_fixtures(tmp_path / "src", 4, seed=4)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "SOURCES": " ".join(f"{k}={v}" for k, v in fixtures.specs.items()),
           "TEACHER_URLS": " ".join(stub_urls), "TEACHER_MODEL": "stub", "OUT_DIR": str(tmp_path / "data"),
           "GRM_SFT_SIZE": "2", "PROXY_SFT_SIZE": "2", "PROXY_RL_SIZE": "2", "GRM_RL_SIZE": "5",
           "CONCURRENCY": "2", "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(root / "scripts" / "prepare_data.sh"), "--max-length-ratio", "5"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "removed by filter" not in done.stdout and "grm_rl" in done.stdout
    sets = tmp_path / "data" / "sets"
    assert sorted(p.name for p in sets.iterdir() if not p.name.startswith(".")) == [
        "grm_rl.parquet", "grm_sft.jsonl", "proxy_rl.parquet", "proxy_sft.jsonl", "split.summary.json"]
