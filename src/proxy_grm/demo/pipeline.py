"""The demo's stages: each calls the same scripts and modules a GPU user runs.

Heavy engines run as subprocesses: vLLM in ``.venv-vllm`` (teacher server, proxy
service), ms-swift through the SFT launchers, and the data and eval entry points
as their CLIs. Only the sizes are toy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy_grm.data.sources import iter_pairs
from proxy_grm.datafiles import iter_jsonl
from proxy_grm.demo.stages import StageFailed
from proxy_grm.servers import ServerProcess, free_port, vllm_env

REPO_ROOT = Path(__file__).resolve().parents[3]
BENCHMARKS = {
    "vl_rewardbench": ("eval/vl_reward_bench.py", "eval/get_acc_vl_reward_bench.py"),
    "multimodal_rewardbench": ("eval/multimodal_reward_bench.py", "eval/get_acc_multimodal_reward_bench.py"),
    "mm_rlhf_rewardbench": ("eval/mmrlhf_reward_bench.py", "eval/get_acc_mmrlhf_reward_bench.py"),
}
TRAINING_SETS = ("grm_sft.jsonl", "proxy_sft.jsonl", "proxy_rl.parquet", "grm_rl.parquet")


@dataclass
class DemoConfig:
    out_dir: Path
    pairs_per_source: int = 12
    teacher: str = "both"  # vllm | stub | both: which teacher feeds the training sets (stub when both)
    sft_steps: int = 8
    sft_learning_rate: str = "1e-3"
    proxy_backend: str = "vllm"
    eval_backend: str = "transformers"
    eval_pairs: int = 16
    rollout_groups: int = 4
    max_new_tokens: int = 48
    vllm_python: Path = REPO_ROOT / ".venv-vllm" / "bin" / "python"

    @property
    def python(self) -> str:
        return sys.executable

    def path(self, *parts: str) -> Path:
        return self.out_dir.joinpath(*parts)


def run_logged(argv: list[str], log: Path, env: dict[str, str] | None = None, what: str = "") -> None:
    """Run a command with its output in ``log``; fail naming the command and the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        code = subprocess.run(argv, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                              env=env or dict(os.environ)).returncode
    if code != 0:
        tail = log.read_bytes()[-3000:].decode(errors="replace")
        raise StageFailed(f"{what or argv[0]} exited with {code} (log {log}):\n{tail}")


def _vllm_server(config: DemoConfig, argv_tail: list[str], log: Path, health_path: str = "/health") -> ServerProcess:
    port = free_port()
    argv = [str(config.vllm_python), *argv_tail, "--host", "127.0.0.1", "--port", str(port)]
    server = ServerProcess(argv, f"http://127.0.0.1:{port}{health_path}", log, env=vllm_env())
    return server.wait_healthy(timeout_s=600)


# ---- stage 1-2: model and sources -------------------------------------------------------------

def build_model(config: DemoConfig) -> dict[str, Any]:
    from proxy_grm.tiny_model import make_tiny_model

    model_dir = make_tiny_model(config.path("model"))
    size_mb = sum(f.stat().st_size for f in model_dir.iterdir()) / 1e6
    return {"model": str(model_dir), "size_mb": round(size_mb, 1)}


def make_sources(config: DemoConfig) -> dict[str, Any]:
    from proxy_grm.data.fixtures import make_source_fixtures

    fixtures = make_source_fixtures(config.path("sources"), config.pairs_per_source, seed=0)
    return {"specs": {name: str(path) for name, path in fixtures.specs.items()},
            "good_rows": dict(fixtures.good_rows), "rows_to_skip": sum(fixtures.expected_skips.values())}


# ---- stage 3: data preparation (scripts/prepare_data.sh) ------------------------------------

def _prepare(config: DemoConfig, sources: dict[str, Any], teacher_url: str, model: str, out: Path,
             log: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(
        SOURCES=" ".join(f"{name}={spec}" for name, spec in sources["specs"].items()),
        TEACHER_URLS=teacher_url, TEACHER_MODEL=model, OUT_DIR=str(out), PYTHON=config.python,
        MAX_TOKENS=str(config.max_new_tokens), CONCURRENCY="8", GRM_SFT_SIZE="1000", PROXY_SFT_SIZE="1000",
        PROXY_RL_SIZE="1000", GRM_RL_SIZE="1000",
    )
    run_logged(["bash", "scripts/prepare_data.sh"], log, env, "scripts/prepare_data.sh")
    pairs = json.loads((out / "pairs.summary.json").read_text())
    split = json.loads((out / "sets" / "split.summary.json").read_text())
    return {"pairs": pairs, "split": split, "sets": str(out / "sets")}


def prepare_with_vllm_teacher(config: DemoConfig, sources: dict[str, Any], model_dir: str) -> dict[str, Any]:
    """The real path: a vLLM OpenAI-compatible server (here serving the tiny model) as the teacher."""
    argv = ["-m", "vllm.entrypoints.openai.api_server", "--model", model_dir, "--served-model-name", "teacher",
            "--max-model-len", "8192", "--dtype", "float32"]
    with _vllm_server(config, argv, config.path("logs", "teacher_vllm.log")) as server:
        base = server.health_url.removesuffix("/health") + "/v1"
        result = _prepare(config, sources, base, "teacher", config.path("work", "teacher_vllm"),
                          config.path("logs", "prepare_vllm_teacher.log"))
    categories = result["split"]["categories"]
    unparsed = categories.get("unparseable", 0)
    total = sum(categories.values())
    print(f"    vLLM teacher (tiny random model): {unparsed}/{total} critiques unparseable -> routed to the hard pool")
    return result


def prepare_with_stub_teacher(config: DemoConfig, sources: dict[str, Any]) -> dict[str, Any]:
    """A deterministic local teacher server whose critiques parse, so every later stage has data."""
    port = free_port()
    argv = [config.python, "-m", "proxy_grm.data.teacher_stub", "--host", "127.0.0.1", "--port", str(port)]
    with ServerProcess(argv, f"http://127.0.0.1:{port}/health", config.path("logs", "teacher_stub.log")) as server:
        server.wait_healthy(timeout_s=120)
        return _prepare(config, sources, f"http://127.0.0.1:{port}/v1", "teacher-stub",
                        config.path("work", "teacher_stub"), config.path("logs", "prepare_stub_teacher.log"))


def publish_training_sets(config: DemoConfig, sets_dir: str) -> dict[str, Any]:
    """Copy the four training sets to ``<out>/data/``, one file each."""
    target = config.path("data")
    target.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name in TRAINING_SETS:
        source = Path(sets_dir) / name
        if not source.exists():
            raise StageFailed(f"data: {source} was not written")
        shutil.copy2(source, target / name)
        rows[name] = _count_rows(target / name)
    empty = [name for name, count in rows.items() if count == 0]
    if empty:
        raise StageFailed(f"data: empty training sets {empty}; raise --pairs-per-source")
    return {"dir": str(target), "rows": rows}


def _count_rows(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return sum(1 for line in path.read_text().splitlines() if line.strip())


# ---- stage 4: SFT (scripts/sft/*.sh) --------------------------------------------------------

def sft(config: DemoConfig, launcher: str, model_dir: str, data: Path, name: str) -> dict[str, Any]:
    """A few real `swift sft` steps on CPU through the launcher's CPU switch."""
    out = config.path("checkpoints", name)
    env = dict(os.environ)
    env.update(
        PATH=f"{Path(config.python).parent}{os.pathsep}{env.get('PATH', '')}", SFT_DEVICE="cpu",
        MODEL_PATH=model_dir, DATA_PATH=str(data), OUTPUT_DIR=str(out), NUM_WORKERS="0", DATASET_NUM_PROC="1",
        SAVE_STEPS=str(config.sft_steps), LOGGING_STEPS="5", MAX_PIXELS=str(64 * 28 * 28), SPLIT_RATIO="0",
        LEARNING_RATE=config.sft_learning_rate, MAX_LENGTH="4096",
    )
    run_logged(["bash", launcher, "--max_steps", str(config.sft_steps)], config.path("logs", f"sft_{name}.log"),
               env, launcher)
    checkpoints = sorted(out.glob("v*/checkpoint-*"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        raise StageFailed(f"{launcher} wrote no checkpoint under {out}")
    state = json.loads((checkpoints[-1] / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    return {"checkpoint": str(checkpoints[-1]), "steps": state["global_step"],
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None}


# ---- stage 5: proxy service + reward loop ---------------------------------------------------

def start_proxy(config: DemoConfig, checkpoint: str) -> ServerProcess:
    """The proxy service (proxy/proxy.py) on the Proxy-SFT checkpoint."""
    common = ["proxy/proxy.py", "--model-path", checkpoint, "--max-new-tokens", str(config.max_new_tokens),
              "--dtype", "float32"]
    log = config.path("logs", f"proxy_{config.proxy_backend}.log")
    if config.proxy_backend == "vllm":
        return _vllm_server(config, [*common, "--backend", "vllm", "--max-model-len", "8192"], log)
    port = free_port()
    argv = [config.python, *common, "--backend", "transformers", "--host", "127.0.0.1", "--port", str(port)]
    return ServerProcess(argv, f"http://127.0.0.1:{port}/health", log).wait_healthy(timeout_s=300)


def _rollout_rows(config: DemoConfig, data_dir: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows = pq.read_table(data_dir / "grm_rl.parquet").to_pylist()[: config.rollout_groups]
    if not rows:
        raise StageFailed("rewards: grm_rl.parquet has no rows")
    return rows


def _grm_rollouts(config: DemoConfig, grm_checkpoint: str, rows: list[dict[str, Any]]) -> list[str]:
    """The SFT'd GRM's own outputs on the RL prompts (greedy, through the shared generator)."""
    from proxy_grm.generation import TransformersGenerator
    from proxy_grm.messages import chat_messages
    from proxy_grm.prompts import grm_prompt

    generator = TransformersGenerator(grm_checkpoint, device="cpu", dtype="float32")
    batch = [chat_messages(grm_prompt(row["extra_info"]["question"], row["extra_info"]["chosen"],
                                      row["extra_info"]["rejected"]), image=row["extra_info"]["image"])
             for row in rows]
    return generator.generate(batch, max_new_tokens=config.max_new_tokens * 3)


def _teacher_outputs(sets_dir: Path) -> dict[str, str]:
    cache = sets_dir.parent / "teacher_cache.jsonl"
    outputs = {}
    for line in cache.read_text().splitlines():
        entry = json.loads(line)
        outputs[entry["id"]] = entry["output"]
    return outputs


def _flip_verdict(text: str) -> str:
    from proxy_grm.parsing import answer_span

    span = answer_span(text)
    flipped = {"1": "2", "2": "1"}.get(span or "", "1")
    return text.replace(f"<answer>{span}</answer>", f"<answer>{flipped}</answer>")


def score_rollouts_all_modes(config: DemoConfig, proxy_url: str, grm_checkpoint: str, sets_dir: str,
                             model_dir: str) -> dict[str, Any]:
    """Score one batch of GRPO groups through verl's reward loop under every aggregation mode.

    Each group (one RL prompt) holds: the SFT'd GRM's own rollout, the teacher's critique,
    the same critique with its verdict flipped, and the critique with its rubric removed,
    so every reward branch (proxy called or not, right or wrong verdict) shows up.
    """
    from proxy_grm.reward import MODES
    from proxy_grm.demo.verl_loop import Rollout, score_rollouts, trainer_config

    data_dir = config.path("data")
    rows = _rollout_rows(config, data_dir)
    grm_texts = _grm_rollouts(config, grm_checkpoint, rows)
    teacher = _teacher_outputs(Path(sets_dir))
    rollouts: list[Rollout] = []
    kinds: list[str] = []
    for row, grm_text in zip(rows, grm_texts):
        info = dict(row["extra_info"])
        label = str(row["reward_model"]["ground_truth"])
        critique = teacher[info["id"]]
        no_rubric = critique[critique.index("</rubric>") + len("</rubric>"):].lstrip()
        for kind, text in (("grm", grm_text), ("teacher", critique), ("teacher_flipped", _flip_verdict(critique)),
                           ("teacher_no_rubric", no_rubric)):
            rollouts.append(Rollout(uid=info["id"], text=text, label=label, extra_info=info,
                                    data_source=row["data_source"]))
            kinds.append(kind)

    per_mode = {}
    for mode in MODES:
        config_ = trainer_config(Path(model_dir), {"proxy_url": proxy_url, "mode": mode, "timeout_s": 300})
        scored = score_rollouts(config_, rollouts)
        per_mode[mode] = {
            "mean_score": sum(scored.scores) / len(scored.scores),
            "scores": scored.scores,
            "advantages": scored.advantages,
            "components": scored.components,
        }
    first = per_mode[next(iter(MODES))]["components"]
    samples = [{"kind": kind, "uid": r.uid, "label": r.label, "text": r.text[:300],
                "verdict_correct": c["verdict_correct"], "proxy_called": c["proxy_called"],
                "proxy_judgement": c["proxy_judgement"], "well_formatted": c["well_formatted"]}
               for kind, r, c in zip(kinds, rollouts, first)]
    return {"groups": len(rows), "rollouts": len(rollouts), "samples": samples,
            "modes": {mode: {k: v for k, v in result.items() if k != "components"} | {
                "mean_accuracy_reward": _mean(result["components"], "accuracy_reward"),
                "mean_proxy_reward": _mean(result["components"], "proxy_reward"),
                "mean_format_reward": _mean(result["components"], "format_reward"),
                "proxy_calls": sum(c["proxy_called"] for c in result["components"]),
                "proxy_failures": sum(c["proxy_failed"] for c in result["components"]),
            } for mode, result in per_mode.items()}}


def _mean(components: list[dict[str, float]], key: str) -> float:
    return sum(c[key] for c in components) / len(components)


# ---- stage 6: evaluation + rubric transfer -------------------------------------------------

def evaluate(config: DemoConfig, grm_checkpoint: str) -> dict[str, Any]:
    """Generation + scoring on small fixtures of the three benchmarks, with the release's entry points."""
    from proxy_grm.evaluation.fixtures import make_benchmark_fixture

    results = {}
    for benchmark, (generate_script, score_script) in BENCHMARKS.items():
        folder = config.path("eval", benchmark)
        questions = make_benchmark_fixture(folder / "fixture", benchmark, config.eval_pairs)
        answers = folder / "answers.jsonl"
        if config.eval_backend == "vllm":
            python, env = str(config.vllm_python), vllm_env()
        else:
            python, env = config.python, dict(os.environ)
        run_logged([python, generate_script, "--model-path", grm_checkpoint, "--question-file", str(questions),
                    "--answers-file", str(answers), "--backend", config.eval_backend,
                    "--max-new-tokens", str(config.max_new_tokens * 3), "--dtype", "float32", "--num-frames", "8"],
                   config.path("logs", f"eval_{benchmark}.log"), env, generate_script)
        run_logged([config.python, score_script, "--file_path", str(answers)],
                   config.path("logs", f"score_{benchmark}.log"), what=score_script)
        metrics = json.loads(answers.with_name("answers_metrics.json").read_text())
        results[benchmark] = {"answers": str(answers), "metrics": metrics,
                              "table": str(answers.with_name("answers_metrics.md")),
                              "plot": str(answers.with_name("answers_metrics.png"))}
    return results


def teacher_answers_file(config: DemoConfig, sets_dir: str) -> Path:
    """The teacher's critiques of the training pairs, in the eval answers format (id, prompt, chosen,
    rejected, image, critic, reverse), so the rubric-transfer script can read their rubrics."""
    work = Path(sets_dir).parent
    pairs = {pair.id: pair for pair in iter_pairs(work / "pairs.jsonl")}
    rows = []
    for _, entry in iter_jsonl(work / "teacher_cache.jsonl"):
        pair = pairs[entry["id"]]
        rows.append({"id": pair.id, "prompt": pair.question, "chosen": pair.preferred,
                     "rejected": pair.dispreferred, "image": pair.image, "critic": entry["output"],
                     "reverse": bool(entry["reverse"])})
    path = config.path("eval", "teacher_critiques", "answers.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def rubric_transfer(config: DemoConfig, proxy_url: str, answers_files: list[str]) -> dict[str, Any]:
    """Ask the proxy to judge each pair with and without the rubric found in each answers file."""
    results = {}
    for answers in answers_files:
        name = Path(answers).parent.name
        run_logged([config.python, "eval/rubric_transfer.py", "--answers-file", answers, "--evaluator", "proxy",
                    "--url", proxy_url], config.path("logs", f"transfer_{name}.log"), what="eval/rubric_transfer.py")
        summary = Path(answers).with_name(Path(answers).stem + "_rubric_transfer.json")
        results[name] = json.loads(summary.read_text())
    return results
