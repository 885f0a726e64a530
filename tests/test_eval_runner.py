"""End to end on CPU: 16-pair fixtures through generation with the tiny model, then scoring.

Both backends run the real entry points; a run killed midway (SIGKILL) and
resumed must hold exactly the rows of an uninterrupted run, each once. The
fixtures repeat ids, as the real benchmarks do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy_grm.evaluation.cli import generate_main, score_main
from proxy_grm.evaluation.runner import row_key
from proxy_grm.toy.benchmark_fixtures import make_benchmark_fixture
from proxy_grm.toy.servers import vllm_env

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"vl_rewardbench": "eval/vl_reward_bench.py", "multimodal_rewardbench": "eval/multimodal_reward_bench.py",
           "mm_rlhf_rewardbench": "eval/mmrlhf_reward_bench.py"}
GEN_FLAGS = ["--max-new-tokens", "8", "--dtype", "float32", "--num-frames", "8"]
PAIRS = 16


def make_fixture(root: Path, benchmark: str) -> Path:
    return make_benchmark_fixture(root, benchmark, PAIRS)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_answers(answers: Path, questions: Path) -> list[dict]:
    """Each question row answered exactly once, keyed by row, with consistent fields."""
    rows = read_rows(answers)
    question_rows = read_rows(questions)
    assert sorted(r["row_index"] for r in rows) == list(range(PAIRS))
    for row in rows:
        assert row["row_key"] == row_key(question_rows[row["row_index"]])
        assert row["verdict"] in (1, 2, None) and isinstance(row["critic"], str)
        assert row["rewards"] in ([1, 0], [0, 1], [0, 0])
    assert len({r["reverse"] for r in rows}) == 2, "the seeded swap should show both orders on 16 pairs"
    return rows


def kill_when_rows_written(argv: list[str], answers: Path, env: dict[str, str], log: Path) -> None:
    """Start a generation process and SIGKILL it once some (not all) rows are on disk."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if answers.exists() and answers.read_text().count("\n") >= 2:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"run ended before it could be killed:\n{log.read_text()[-3000:]}"
    written = answers.read_text().count("\n")
    assert 2 <= written < PAIRS, written


def simulate_cut_write(answers: Path) -> None:
    """A kill in the middle of a write leaves half a line; resuming must drop and redo it."""
    with open(answers, "a") as handle:
        handle.write('{"id": "half-writ')


def compare_with_reference(resumed: list[dict], reference: list[dict]) -> None:
    assert sorted(resumed, key=lambda r: r["row_index"]) == sorted(reference, key=lambda r: r["row_index"])


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", sorted(SCRIPTS))
def test_transformers_generation_then_scoring(tmp_path, tiny_model_dir, capsys, benchmark):
    questions = make_fixture(tmp_path, benchmark)
    answers = tmp_path / "out" / "answers.jsonl"
    argv = ["--model-path", str(tiny_model_dir), "--question_file", str(questions), "--answers_file", str(answers),
            "--backend", "transformers", "--batch-size", "4", "--seed", "7", *GEN_FLAGS]
    summary = generate_main(benchmark, argv)
    assert (summary.generated, summary.skipped) == (PAIRS, 0)
    rows = check_answers(answers, questions)
    assert generate_main(benchmark, argv).generated == 0, "a finished run has nothing left to do"
    assert read_rows(answers) == rows
    for protocol in ("authors", "release"):
        metrics = score_main(benchmark, ["--file_path", str(answers), "--protocol", protocol])
        assert metrics["protocol"] == protocol
        assert metrics["unparsed"] == sum(r["verdict"] is None for r in rows)
    assert json.loads((tmp_path / "out" / "answers_metrics.json").read_text())["protocol"] == "release"


@pytest.mark.slow
def test_transformers_both_orders(tmp_path, tiny_model_dir, capsys):
    questions = make_fixture(tmp_path, "vl_rewardbench")
    answers = tmp_path / "answers.jsonl"
    generate_main("vl_rewardbench", ["--model-path", str(tiny_model_dir), "--question-file", str(questions),
                                     "--answers-file", str(answers), "--backend", "transformers",
                                     "--both-orders", *GEN_FLAGS])
    rows = check_answers(answers, questions)
    assert all("critic_swapped" in r and "verdict_swapped" in r for r in rows)
    metrics = score_main("vl_rewardbench", ["--file_path", str(answers), "--no-report"])
    assert metrics["pairs_in_both_orders"] == PAIRS and 0.0 <= metrics["position_consistency"] <= 1.0


@pytest.mark.slow
def test_transformers_killed_and_resumed(tmp_path, tiny_model_dir, capsys):
    benchmark = "mm_rlhf_rewardbench"
    questions = make_fixture(tmp_path, benchmark)
    flags = ["--backend", "transformers", "--batch-size", "1", *GEN_FLAGS]
    reference = tmp_path / "reference.jsonl"
    generate_main(benchmark, ["--model-path", str(tiny_model_dir), "--question_file", str(questions),
                              "--answers_file", str(reference), *flags])
    answers = tmp_path / "answers.jsonl"
    argv = [sys.executable, SCRIPTS[benchmark], "--model-path", str(tiny_model_dir), "--question_file",
            str(questions), "--answers_file", str(answers), *flags]
    kill_when_rows_written(argv, answers, dict(os.environ), tmp_path / "killed.log")
    simulate_cut_write(answers)
    summary = generate_main(benchmark, argv[2:])
    assert summary.skipped + summary.generated == PAIRS and summary.skipped >= 2
    compare_with_reference(check_answers(answers, questions), read_rows(reference))


def test_answers_from_another_question_file_are_refused(tmp_path, capsys):
    """Resuming never mixes files: a foreign answers file stops the run before any model loads."""
    questions = make_fixture(tmp_path, "vl_rewardbench")
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"row_index": 0, "row_key": "0000", "id": "x"}) + "\n")
    with pytest.raises(SystemExit):
        generate_main("vl_rewardbench", ["--model-path", "unused", "--question_file", str(questions),
                                         "--answers_file", str(answers), "--backend", "transformers"])
    assert "written for a different question row 0" in capsys.readouterr().err
    assert answers.exists()


VLLM_DRIVER = """
import json
import sys
import traceback
from pathlib import Path
from proxy_grm.evaluation.benchmarks import BENCHMARKS
from proxy_grm.evaluation.runner import RunConfig, pending_rows, run
from proxy_grm.generation import VllmGenerator

if __name__ == "__main__":
    model, status_file, jobs = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    generator = VllmGenerator(model, dtype="float32")
    status = {}
    for job in jobs:
        name, questions, answers, batch = job.split(",")
        config = RunConfig(BENCHMARKS[name], Path(questions), Path(answers), batch_size=int(batch),
                           max_new_tokens=8, num_frames=8)
        try:
            run(config, generator, *pending_rows(config))
            status[answers] = "ok"
        except Exception:
            status[answers] = traceback.format_exc()[-2000:]
    status_file.write_text(json.dumps(status))
"""


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_generation_killed_resumed_and_scored(tmp_path, tiny_model_dir, vllm_python, capsys):
    """One killed entry-point run, then one engine that resumes it and runs all three benchmarks."""
    env = vllm_env()
    killed_questions = make_fixture(tmp_path / "killed", "vl_rewardbench")
    killed = tmp_path / "killed" / "answers.jsonl"
    argv = [str(vllm_python), SCRIPTS["vl_rewardbench"], "--model-path", str(tiny_model_dir), "--question_file",
            str(killed_questions), "--answers_file", str(killed), "--backend", "vllm", "--batch-size", "1",
            *GEN_FLAGS]
    kill_when_rows_written(argv, killed, env, tmp_path / "killed.log")
    simulate_cut_write(killed)

    jobs = [f"vl_rewardbench,{killed_questions},{killed},1"]
    outputs = {}
    # The video benchmark last: the image-only ones are checked even if video input fails.
    for benchmark in ("vl_rewardbench", "multimodal_rewardbench", "mm_rlhf_rewardbench"):
        questions = make_fixture(tmp_path / benchmark, benchmark)
        outputs[benchmark] = (questions, tmp_path / benchmark / "answers.jsonl")
        jobs.append(f"{benchmark},{questions},{outputs[benchmark][1]},{1 if benchmark == 'vl_rewardbench' else 16}")
    driver, status_file = tmp_path / "driver.py", tmp_path / "status.json"
    driver.write_text(VLLM_DRIVER)
    result = subprocess.run([str(vllm_python), str(driver), str(tiny_model_dir), str(status_file), *jobs],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    status = json.loads(status_file.read_text())

    assert status[str(killed)] == "ok", status[str(killed)]
    assert status[str(outputs["vl_rewardbench"][1])] == "ok"
    reference = {r["row_index"]: r for r in check_answers(outputs["vl_rewardbench"][1],
                                                          outputs["vl_rewardbench"][0])}
    resumed = check_answers(killed, killed_questions)
    # Same fixture content in two folders: compare everything but the paths.
    for row in resumed:
        expected = reference[row["row_index"]]
        assert {k: v for k, v in row.items() if k not in ("image", "row_key")} == \
               {k: v for k, v in expected.items() if k not in ("image", "row_key")}
    for benchmark, (questions, answers) in outputs.items():
        assert status[str(answers)] == "ok", f"{benchmark}: {status[str(answers)]}"
        check_answers(answers, questions)
        assert score_main(benchmark, ["--file_path", str(answers), "--protocol", "release"])["rows"] == PAIRS
