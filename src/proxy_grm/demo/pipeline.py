"""The demo's stages: each calls the same scripts and modules a GPU user runs.

Heavy engines run as subprocesses: vLLM in ``.venv-vllm`` (teacher server, proxy
service), ms-swift through the SFT and GRPO launchers, and the data and eval entry
points as their CLIs. Only the sizes and the toy training settings (``demo.config``) are toy.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from proxy_grm.data import split as split_stage
from proxy_grm.datafiles import iter_jsonl
from proxy_grm.demo.config import SPLIT_SIZES, DemoConfig
from proxy_grm.demo.results import (
    BenchmarkEval,
    Evaluation,
    Fluency,
    FluencyExample,
    GrpoRun,
    GrpoStep,
    ModeScores,
    PairsSummary,
    PreparedData,
    RewardLoop,
    RolloutSample,
    RubricTransfer,
    SftRun,
    Sources,
    SplitSummary,
    TinyModel,
    TrainingSets,
    TransferSummary,
)
from proxy_grm.demo.stages import StageFailed, run_logged
from proxy_grm.evaluation.rubric_transfer import TransferItem
from proxy_grm.proxy_contract import HEALTH_PATH, route_url
from proxy_grm.toy.servers import ServerProcess, free_port, vllm_env

# The four sets the split writes, in its order: the later stages read each by its file name.
TRAINING_SETS = tuple(split_stage.OUTPUT_FILES.values())


def _vllm_server(config: DemoConfig, argv_tail: list[str], log: Path, health_path: str = "/health") -> ServerProcess:
    """A vLLM-backed server in eager mode: on 2 busy cores the engine's compile warm-up took 73 s
    (eager: 0.5 s), and the toy model generates too little for compilation to pay."""
    port = free_port()
    argv = [str(config.vllm_python), *argv_tail, "--enforce-eager", "--host", "127.0.0.1", "--port", str(port)]
    server = ServerProcess(argv, f"http://127.0.0.1:{port}{health_path}", log, env=vllm_env())
    return server.wait_healthy(timeout_s=600)


# ---- stage 1-2: model and sources -------------------------------------------------------------

def build_model(config: DemoConfig) -> TinyModel:
    from proxy_grm.toy.tiny_model import make_tiny_model

    model_dir = make_tiny_model(config.path("model"))
    size_mb = sum(f.stat().st_size for f in model_dir.iterdir()) / 1e6
    return TinyModel(model=str(model_dir), size_mb=round(size_mb, 1))


def make_sources(config: DemoConfig) -> Sources:
    from proxy_grm.toy.source_fixtures import make_source_fixtures

    fixtures = make_source_fixtures(config.path("sources"), config.pairs_per_source, seed=0)
    return Sources(specs={name: str(path) for name, path in fixtures.specs.items()},
                   good_rows=dict(fixtures.good_rows), rows_to_skip=sum(fixtures.expected_skips.values()))


# ---- stage 3: data preparation (scripts/prepare_data.sh) ------------------------------------

def feeding_teacher(config: DemoConfig) -> str:
    """The teacher whose critiques become the training sets: the stub's parse, the tiny model's do not."""
    return "stub" if config.teacher in ("stub", "both") else "vllm"


def _prepare(config: DemoConfig, sources: Sources, teacher: str, teacher_url: str, model: str,
             log: Path) -> PreparedData:
    from proxy_grm.data import prepare_pairs as source_stage

    out = config.path("work", f"teacher_{teacher}")
    # The stage runs only when its inputs changed (or it never finished): the distil cache in ``out`` holds
    # critiques of the old pairs under the same ids, which the resumable distil would keep.
    shutil.rmtree(out, ignore_errors=True)
    sets = config.path("data") if teacher == feeding_teacher(config) else out / "sets"
    env = dict(os.environ)
    env.update(
        SOURCES=" ".join(f"{name}={spec}" for name, spec in sources.specs.items()),
        TEACHER_URLS=teacher_url, TEACHER_MODEL=model, OUT_DIR=str(out), SETS_DIR=str(sets), PYTHON=config.python,
        MAX_TOKENS=str(config.grm_max_new_tokens), CONCURRENCY="8",
        **{f"{name.upper()}_SIZE": str(size) for name, size in SPLIT_SIZES.items()},
    )
    run_logged(["bash", "scripts/prepare_data.sh"], log, env, "scripts/prepare_data.sh")
    pairs = PairsSummary.model_validate_json((out / source_stage.SUMMARY_FILE).read_text())
    split = SplitSummary.model_validate_json((sets / split_stage.SUMMARY_FILE).read_text())
    return PreparedData(pairs=pairs, split=split, sets=str(sets))


def prepare_with_vllm_teacher(config: DemoConfig, sources: Sources, model_dir: str) -> PreparedData:
    """The real path: a vLLM OpenAI-compatible server (here serving the tiny model) as the teacher."""
    argv = ["-m", "vllm.entrypoints.openai.api_server", "--model", model_dir, "--served-model-name", "teacher",
            "--max-model-len", "8192", "--dtype", "float32"]
    with _vllm_server(config, argv, config.path("logs", "teacher_vllm.log")) as server:
        base = server.health_url.removesuffix("/health") + "/v1"
        result = _prepare(config, sources, "vllm", base, "teacher", config.path("logs", "prepare_vllm_teacher.log"))
    categories = result.split.categories
    unparsed = categories.get("unparseable", 0)
    total = sum(categories.values())
    print(f"    vLLM teacher (tiny random model): {unparsed}/{total} critiques unparseable -> routed to the hard pool")
    return result


def prepare_with_stub_teacher(config: DemoConfig, sources: Sources) -> PreparedData:
    """A deterministic local teacher server whose critiques parse, so every later stage has data."""
    port = free_port()
    argv = [config.python, "-m", "proxy_grm.toy.teacher_stub", "--host", "127.0.0.1", "--port", str(port)]
    with ServerProcess(argv, f"http://127.0.0.1:{port}/health", config.path("logs", "teacher_stub.log")) as server:
        server.wait_healthy(timeout_s=120)
        return _prepare(config, sources, "stub", f"http://127.0.0.1:{port}/v1", "teacher-stub",
                        config.path("logs", "prepare_stub_teacher.log"))


def check_training_sets(config: DemoConfig) -> TrainingSets:
    """The four training sets the later stages read (``<out>/data/``), one file each, none empty."""
    target = config.path("data")
    rows = {}
    for name in TRAINING_SETS:
        if not (target / name).exists():
            raise StageFailed(f"data: {target / name} was not written")
        rows[name] = _count_rows(target / name)
    empty = [name for name, count in rows.items() if count == 0]
    if empty:
        raise StageFailed(f"data: empty training sets {empty}; raise --pairs-per-source")
    return TrainingSets(dir=str(target), rows=rows)


def _count_rows(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return sum(1 for line in path.read_text().splitlines() if line.strip())


# ---- stage 4: SFT (scripts/sft/*.sh) and GRPO (scripts/rl/train_proxy_grm_swift.sh) --------

def _launcher_env(config: DemoConfig, **values: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PATH=f"{Path(config.python).parent}{os.pathsep}{env.get('PATH', '')}", PYTHON=config.python, **values)
    return env


def _latest_checkpoint(out: Path, launcher: str) -> Path:
    checkpoints = sorted(out.glob("v*/checkpoint-*"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        raise StageFailed(f"{launcher} wrote no checkpoint under {out}")
    return checkpoints[-1]


# The GRM and the proxy SFT run at once (``StageRunner.run_together``), so each takes half the cores: two
# torch processes with a thread per core each ran 3-4x slower on 2 cores (a GRM step at batch 4: 3.9 s
# against 1.2 s with one thread each).
SFT_THREADS = max(1, (os.cpu_count() or 2) // 2)


def sft(config: DemoConfig, launcher: str, model_dir: str, data: Path, name: str, steps: int) -> SftRun:
    """Real `swift sft` steps on CPU through the launcher's CPU switch, with the toy settings."""
    out = config.path("checkpoints", name)
    env = _launcher_env(
        config, SFT_DEVICE="cpu", MODEL_PATH=model_dir, DATA_PATH=str(data), OUTPUT_DIR=str(out), NUM_WORKERS="0",
        DATASET_NUM_PROC="1", SAVE_STEPS=str(steps), LOGGING_STEPS="5", SPLIT_RATIO="0",
        LEARNING_RATE=config.sft_learning_rate, WARMUP_RATIO=config.sft_warmup_ratio, MAX_LENGTH="4096",
        GRAD_ACCUM=str(config.sft_gradient_accumulation), BATCH_SIZE=str(config.sft_batch_size),
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", str(SFT_THREADS)),
    )
    # Gradient checkpointing saves memory a 20M model does not need and costs a second forward pass. The
    # launchers pass extra flags on to `swift sft` last, so these win (ms-swift 4.6.0's TrainingArguments
    # fields, swift/trainers/arguments.py: weight_decay 0.1 and lr_scheduler_type 'cosine' by default).
    run_logged(["bash", launcher, "--max_steps", str(steps), "--gradient_checkpointing", "false",
                "--lr_scheduler_type", config.sft_lr_scheduler, "--weight_decay", config.sft_weight_decay],
               config.path("logs", f"sft_{name}.log"), env, launcher)
    checkpoint = _latest_checkpoint(out, launcher)
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    return SftRun(checkpoint=str(checkpoint), steps=state["global_step"], first_loss=losses[0] if losses else None,
                  last_loss=losses[-1] if losses else None)


GRPO_LAUNCHER = "scripts/rl/train_proxy_grm_swift.sh"


def grpo(config: DemoConfig, grm_checkpoint: str, proxy_url: str, name: str = "grpo",
         use_proxy: bool = True) -> GrpoRun:
    """Real GRPO steps (ms-swift on CPU) from the GRM-SFT checkpoint, rewarded through the proxy (or, for the
    ablation, by accuracy and format alone: ``USE_PROXY=0``, the same seed and steps). Per step, beside the
    reward parts: the share of rollouts whose rubric names the image's true colour (``heldout``)."""
    from proxy_grm.demo.heldout import rollout_evidence_by_step
    from proxy_grm.reward.swift_grpo import PARTS_FILE, summarise_steps

    out = config.path("checkpoints", f"grm_{name}")
    train_rows = config.path("data", "grm_rl.parquet")
    if (rows := _count_rows(train_rows)) < config.grpo_prompts_per_step:
        raise StageFailed(f"grpo: grm_rl.parquet has {rows} rows, fewer than a step's "
                          f"{config.grpo_prompts_per_step} prompts; raise --pairs-per-source")
    env = _launcher_env(
        config, MODEL_PATH=grm_checkpoint, TRAIN_FILES=str(train_rows),
        PROXY_URLS=proxy_url, OUTPUT_DIR=str(out), ROLLOUT_N=str(config.grpo_generations),
        BATCH_SIZE=str(config.grpo_generations * config.grpo_prompts_per_step), LR=config.grpo_learning_rate,
        KL_LOSS_COEF="0", MAX_RESPONSE_LENGTH=str(config.grm_max_new_tokens), MAX_STEPS=str(config.grpo_steps),
        SAVE_STEPS=str(config.grpo_steps), LOGGING_STEPS="1", PROXY_WAIT_S="300", USE_PROXY=str(int(use_proxy)),
        TEMPERATURE=config.grpo_temperature,
    )
    run_logged(["bash", GRPO_LAUNCHER, "--seed", "0"], config.path("logs", f"{name}_grm.log"), env, GRPO_LAUNCHER)
    checkpoint = _latest_checkpoint(out, GRPO_LAUNCHER)
    parts_file = checkpoint.parent / PARTS_FILE
    evidence = rollout_evidence_by_step(parts_file)
    steps = [GrpoStep(**step, rubric_names_colour=evidence.get(int(step["step"])))
             for step in summarise_steps(parts_file)]
    changed, total = changed_tensors(Path(grm_checkpoint), checkpoint)
    return GrpoRun(checkpoint=str(checkpoint), steps=steps, tensors_changed=changed, tensors=total,
                   parts_file=str(parts_file))


def changed_tensors(before: Path, after: Path) -> tuple[int, int]:
    """How many of the model's weight tensors differ between two checkpoints (the update happened)."""
    from safetensors.torch import load_file

    def weights(folder: Path) -> dict[str, Any]:
        tensors: dict[str, Any] = {}
        for shard in sorted(folder.glob("*.safetensors")):
            tensors.update(load_file(shard))
        return tensors

    old, new = weights(before), weights(after)
    changed = sum(1 for name, tensor in new.items() if name in old and not old[name].equal(tensor))
    return changed, len(new)


# ---- stage 5: proxy service + reward loop ---------------------------------------------------

def start_proxy(config: DemoConfig, checkpoint: str) -> ServerProcess:
    """The proxy service (proxy/proxy.py) on the Proxy-SFT checkpoint."""
    common = ["proxy/proxy.py", "--model-path", checkpoint, "--max-new-tokens", str(config.max_new_tokens),
              "--dtype", "float32"]
    log = config.path("logs", f"proxy_{config.proxy_backend}.log")
    if config.proxy_backend == "vllm":
        return _vllm_server(config, [*common, "--backend", "vllm", "--max-model-len", "8192"], log, HEALTH_PATH)
    port = free_port()
    argv = [config.python, *common, "--backend", "transformers", "--host", "127.0.0.1", "--port", str(port)]
    return ServerProcess(argv, route_url(f"http://127.0.0.1:{port}", HEALTH_PATH), log).wait_healthy(timeout_s=300)


def _rollout_rows(config: DemoConfig) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows = pq.read_table(config.path("data", "grm_rl.parquet")).to_pylist()[: config.rollout_groups]
    if not rows:
        raise StageFailed("rewards: grm_rl.parquet has no rows")
    return rows


def _grm_rollouts(config: DemoConfig, grm_checkpoint: str, pairs: list[TransferItem]) -> list[str]:
    """The GRM's own outputs on pairs as shown (greedy, through the shared generator)."""
    from proxy_grm.generation import TransformersGenerator
    from proxy_grm.messages import chat_messages
    from proxy_grm.prompts import grm_prompt

    generator = TransformersGenerator(grm_checkpoint, device="cpu", dtype="float32")
    batch = [chat_messages(grm_prompt(pair.question, pair.response_1, pair.response_2), image=pair.image)
             for pair in pairs]
    return generator.generate(batch, max_new_tokens=config.grm_max_new_tokens)


def _rl_row_pair(index: int, row: dict[str, Any]) -> TransferItem:
    """A GRM-RL row's pair as the policy sees it (``extra_info``) with its label."""
    info = row["extra_info"]
    return TransferItem(row_index=index, question=info["question"], response_1=info["response_1"],
                        response_2=info["response_2"], image=info["image"],
                        answer=int(row["reward_model"]["ground_truth"]), rubric="")


def _flip_verdict(text: str) -> str:
    from proxy_grm.parsing import answer_span

    span = answer_span(text)
    if span is None:
        return text + "<answer>1</answer>"
    flipped = {"1": "2", "2": "1"}.get(span, "1")
    return text.replace(f"<answer>{span}</answer>", f"<answer>{flipped}</answer>", 1)


def _without_rubric(text: str) -> str:
    return text.split("</rubric>", 1)[1].lstrip() if "</rubric>" in text else text


def score_rollouts_all_modes(config: DemoConfig, proxy_url: str, grm_checkpoint: str,
                             model_dir: str) -> RewardLoop:
    """Score one batch of GRPO groups through verl's reward loop under every aggregation mode.

    Each group (one RL prompt) holds the SFT'd GRM's own rollout, the same rollout with its
    verdict flipped, and the rollout with its rubric removed, so every reward branch (proxy
    called or not, right or wrong verdict) shows up.
    """
    from proxy_grm.reward import MODES
    from proxy_grm.demo.verl_loop import Rollout, score_rollouts, trainer_config

    rows = _rollout_rows(config)
    grm_texts = _grm_rollouts(config, grm_checkpoint, [_rl_row_pair(i, row) for i, row in enumerate(rows)])
    rollouts: list[Rollout] = []
    kinds: list[str] = []
    for row, grm_text in zip(rows, grm_texts):
        info = dict(row["extra_info"])
        label = str(row["reward_model"]["ground_truth"])
        for kind, text in (("grm", grm_text), ("grm_flipped_verdict", _flip_verdict(grm_text)),
                           ("grm_without_rubric", _without_rubric(grm_text))):
            rollouts.append(Rollout(uid=info["id"], text=text, label=label, extra_info=info,
                                    data_source=row["data_source"]))
            kinds.append(kind)

    modes: dict[str, ModeScores] = {}
    parts: dict[str, list[dict[str, float]]] = {}
    for mode in MODES:
        config_ = trainer_config(Path(model_dir), {"proxy_url": proxy_url, "mode": mode, "timeout_s": 300})
        scored = score_rollouts(config_, rollouts)
        parts[mode] = components = scored.components
        modes[mode] = ModeScores(
            mean_score=sum(scored.scores) / len(scored.scores), scores=scored.scores, advantages=scored.advantages,
            mean_accuracy_reward=_mean(components, "accuracy_reward"),
            mean_proxy_reward=_mean(components, "proxy_reward"),
            mean_format_reward=_mean(components, "format_reward"),
            proxy_calls=int(sum(c["proxy_called"] for c in components)),
            proxy_failures=int(sum(c["proxy_failed"] for c in components)))
    samples = [RolloutSample(kind=kind, uid=r.uid, label=r.label, text=r.text[:300],
                             verdict_correct=c["verdict_correct"], proxy_called=c["proxy_called"],
                             proxy_judgement=c["proxy_judgement"], well_formatted=c["well_formatted"])
               for kind, r, c in zip(kinds, rollouts, parts[next(iter(MODES))])]
    return RewardLoop(groups=len(rows), rollouts=len(rollouts), samples=samples, modes=modes)


def _mean(components: list[dict[str, float]], key: str) -> float:
    return sum(c[key] for c in components) / len(components)


# ---- stage 6: evaluation, protocol fluency, rubric transfer ----------------------------------

def evaluate(config: DemoConfig, grm_checkpoint: str, tag: str) -> Evaluation:
    """Generation + scoring on small fixtures of the three benchmarks, with the release's entry points."""
    from proxy_grm.evaluation.benchmarks import BENCHMARKS
    from proxy_grm.evaluation.report import output_paths
    from proxy_grm.toy.benchmark_fixtures import make_benchmark_fixture

    results: dict[str, BenchmarkEval] = {}
    for name, benchmark in BENCHMARKS.items():
        folder = config.path("eval", tag, name)
        questions = make_benchmark_fixture(folder / "fixture", name, config.eval_pairs)
        answers = folder / "answers.jsonl"
        if config.eval_backend == "vllm":
            python, env = str(config.vllm_python), vllm_env()
        else:
            python, env = config.python, dict(os.environ)
        run_logged([python, benchmark.generate_script, "--model-path", grm_checkpoint, "--question-file",
                    str(questions), "--answers-file", str(answers), "--backend", config.eval_backend,
                    "--max-new-tokens", str(config.grm_max_new_tokens), "--dtype", "float32", "--num-frames", "8"],
                   config.path("logs", f"eval_{tag}_{name}.log"), env, benchmark.generate_script)
        run_logged([config.python, benchmark.score_script, "--file_path", str(answers)],
                   config.path("logs", f"score_{tag}_{name}.log"), what=benchmark.score_script)
        paths = output_paths(answers)
        results[name] = BenchmarkEval(answers=str(answers), metrics=json.loads(paths["json"].read_text()),
                                      table=str(paths["md"]), plot=str(paths["png"]))
    return Evaluation(benchmarks=results)


def fluency(config: DemoConfig, proxy_url: str, grm_checkpoint: str, answers_files: list[str],
            questions: Path) -> Fluency:
    """Do the toy checkpoints speak the protocol on held-out prompts?

    Held out: the first ``fluency_pairs`` held-out toy pairs (``questions``, which no stage trained on), each
    shown the way round the held-out eval showed it (``heldout.shown_pairs``). GRM: the share of its critiques
    that pass the release's format check with a 1/2 verdict. Proxy: judging those pairs by the GRM's own rubrics
    (what GRPO asks of it), the share of its critiques in the ``<think>..</think><answer>1|2</answer>`` format, and
    its judgements (+1: it picked the labelled response given the GRM's rubric; -1: it did not). The same format
    check on the GRM's benchmark-fixture critiques (``answers_files``, other question and response styles) is
    reported beside it.
    """
    from proxy_grm.demo.heldout import shown_pairs
    from proxy_grm.evaluation.rubric_transfer import ProxyEvaluator
    from proxy_grm.parsing import extract_rubric, is_proxy_well_formatted, is_well_formatted, parse_verdict

    def grm_ok(text: str) -> bool:
        return is_well_formatted(text) and parse_verdict(text) is not None

    pairs = shown_pairs(questions, config.fluency_pairs)
    critiques = [str(text) for text in _grm_rollouts(config, grm_checkpoint, pairs)]
    items = [replace(pair, rubric=rubric) for pair, text in zip(pairs, critiques)
             if (rubric := extract_rubric(text)) is not None]
    results = ProxyEvaluator(proxy_url).results(items, [item.rubric for item in items]) if items else []
    fixture_critiques = [str(row.get("critic", "")) for answers in answers_files
                         for _, row in iter_jsonl(Path(answers))]
    return Fluency(
        grm_outputs=len(critiques), grm_well_formed=sum(map(grm_ok, critiques)), grm_with_rubric=len(items),
        proxy_judged=len(results), proxy_well_formed=sum(is_proxy_well_formatted(r.critique) for r in results),
        proxy_plus=sum(r.reward == 1 for r in results), proxy_minus=sum(r.reward == -1 for r in results),
        fixture_outputs=len(fixture_critiques), fixture_well_formed=sum(map(grm_ok, fixture_critiques)),
        examples=[FluencyExample(rubric=item.rubric[:300], critique=r.critique[:300], reward=r.reward)
                  for item, r in list(zip(items, results))[:2]])


def rubric_transfer(config: DemoConfig, proxy_url: str, answers_files: dict[str, str]) -> RubricTransfer:
    """Ask the proxy to judge each pair with and without the rubric found in each answers file."""
    from proxy_grm.evaluation.rubric_transfer import output_paths

    results: dict[str, TransferSummary] = {}
    for name, answers in answers_files.items():
        run_logged([config.python, "eval/rubric_transfer.py", "--answers-file", answers, "--evaluator", "proxy",
                    "--url", proxy_url], config.path("logs", f"transfer_{name.replace('/', '_')}.log"),
                   what="eval/rubric_transfer.py")
        summary, _ = output_paths(Path(answers))
        results[name] = TransferSummary.model_validate_json(summary.read_text())
    return RubricTransfer(summaries=results)
