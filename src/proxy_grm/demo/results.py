"""What each demo stage returns: one pydantic model per stage, named for what it holds.

The stage runner stores ``model_dump(mode="json")`` in ``<out>/stages/<name>.json`` and validates it back into
the same model on reuse, so a result written under an older field name reads as stale (the stage reruns) instead of
failing in the report at the end of a run. Stage models forbid unknown fields: a misspelt field fails where the
result is built. ``FileSummary`` models hold another CLI's summary file (the scorer's metrics, the rubric-transfer
summary): the fields the report reads are typed and required, the file's other figures travel with them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StageResult(BaseModel):
    """A stage's result: typed fields only."""

    model_config = ConfigDict(extra="forbid")


class FileSummary(BaseModel):
    """A summary another entry point wrote: the fields read here are typed, the rest kept as they are."""

    model_config = ConfigDict(extra="allow")


# ---- model and data -------------------------------------------------------------------------

class TinyModel(StageResult):
    model: str  # the model folder
    size_mb: float


class Sources(StageResult):
    specs: dict[str, str]  # source name -> the spec prepare_data.sh reads
    good_rows: dict[str, int]  # convertible rows per source
    rows_to_skip: int  # rows built to be skipped


class PairsSummary(StageResult):
    """``data.prepare_pairs``' summary file: counts per source (skipped and removed: per reason, then source)."""

    read: dict[str, int]
    kept: dict[str, int]
    skipped: dict[str, dict[str, int]]
    removed: dict[str, dict[str, int]]


class SplitSummary(StageResult):
    """``data.split``'s summary file: the teacher's verdict categories and the rows of each training set."""

    categories: dict[str, int]
    written: dict[str, int]
    not_distilled: int
    labels: dict[str, dict[str, int]]


class PreparedData(StageResult):
    """One teacher's pass through ``scripts/prepare_data.sh``."""

    pairs: PairsSummary
    split: SplitSummary
    sets: str  # the folder of its training sets


class TrainingSets(StageResult):
    dir: str
    rows: dict[str, int]  # file name -> rows


# ---- training ---------------------------------------------------------------------------------

class SftRun(StageResult):
    checkpoint: str
    steps: int
    first_loss: float | None
    last_loss: float | None


class GrpoStep(StageResult):
    """One GRPO step: ``step_metrics.step_summary`` of its rollouts' reward parts (means; proxy calls, failures
    and truncations: counts), plus the share of its rollouts whose rubric names the image's true colour."""

    step: int
    rollouts: int
    score: float
    accuracy_reward: float
    proxy_reward: float
    format_reward: float
    verdict_correct: float
    well_formatted: float
    proxy_judgement: float
    has_rubric: float
    proxy_called: int
    proxy_failed: int
    proxy_attempts: float
    proxy_truncated: int
    rubric_leak: float
    proxy_consistent: float
    proxy_retries: float
    rubric_names_colour: float | None  # None: no rollout of the step had a readable image


class GrpoRun(StageResult):
    checkpoint: str
    steps: list[GrpoStep]
    tensors_changed: int
    tensors: int
    parts_file: str  # ms-swift's per-rollout reward parts


# ---- held-out toy pairs -------------------------------------------------------------------------

class HeldoutPairs(StageResult):
    questions: str
    pairs: int
    hard: int  # of ``pairs``, those in the teacher's blind spot
    extra_hard: int  # more pairs, all from the blind spot, counted on the hard slice only
    seed: int
    rule: str


class GrmHeldout(StageResult):
    """The GRM's both-orders accuracy per slice, and its evidence (rubric names the true colour) per slice."""

    answers: str
    overall: float | None
    hard: float | None
    other: float | None
    evidence_overall: float | None
    evidence_hard: float | None
    evidence_other: float | None


class ProxyHeldout(StageResult):
    """The proxy's accuracy over both orders of each held-out pair, per rubric (``heldout.RUBRICS``)."""

    judged: int
    grm_rubrics: int  # critiques of the GRM that held a rubric
    teacher: float
    rule: float
    grm: float
    none: float
    counterfactual: float
    # Per rubric, on the pairs off the teacher's blind spot: there the teacher's rubric names the wrong
    # response's colour, so a proxy that follows the rubric scores at most the other pairs' share overall.
    other: dict[str, float | None]


# ---- rewards through verl's loop ----------------------------------------------------------------

class RolloutSample(StageResult):
    kind: str  # grm | grm_flipped_verdict | grm_without_rubric
    uid: str
    label: str
    text: str
    verdict_correct: float
    proxy_called: float
    proxy_judgement: float
    well_formatted: float


class ModeScores(StageResult):
    mean_score: float
    scores: list[float]
    advantages: list[float]
    mean_accuracy_reward: float
    mean_proxy_reward: float
    mean_format_reward: float
    proxy_calls: int
    proxy_failures: int


class RewardLoop(StageResult):
    groups: int
    rollouts: int
    samples: list[RolloutSample]
    modes: dict[str, ModeScores]  # aggregation mode -> its scores


# ---- evaluation, fluency, transfer --------------------------------------------------------------

class BenchmarkMetrics(FileSummary):
    """The scorer's ``*_metrics.json`` (authors protocol); ``acc_plus`` only for grouped benchmarks."""

    overall: float | None
    unparsed: int
    unparsed_policy: str
    macro: float | None = None
    acc_plus: float | None = None


class BenchmarkEval(StageResult):
    answers: str
    metrics: BenchmarkMetrics
    table: str
    plot: str


class Evaluation(StageResult):
    benchmarks: dict[str, BenchmarkEval]  # benchmark name -> its answers and metrics


class FluencyExample(StageResult):
    rubric: str
    critique: str
    reward: float


class Fluency(StageResult):
    grm_outputs: int
    grm_well_formed: int
    grm_with_rubric: int
    proxy_judged: int
    proxy_well_formed: int
    proxy_plus: int
    proxy_minus: int
    fixture_outputs: int
    fixture_well_formed: int
    examples: list[FluencyExample]


class Accuracy(FileSummary):
    accuracy: float | None
    correct: int


class TransferSummary(FileSummary):
    """``eval/rubric_transfer.py``'s summary file."""

    pairs: int
    skipped_no_rubric: int
    with_rubric: Accuracy
    without_rubric: Accuracy


class RubricTransfer(StageResult):
    summaries: dict[str, TransferSummary]  # "<checkpoint tag>/<benchmark>" -> the proxy's summary


class DemoResults(StageResult):
    """Every stage's result by stage name, as the report reads them; None: the stage did not run."""

    model: TinyModel | None = None
    sources: Sources | None = None
    data_vllm_teacher: PreparedData | None = None
    data_stub_teacher: PreparedData | None = None
    data: TrainingSets | None = None
    sft_grm: SftRun | None = None
    sft_proxy: SftRun | None = None
    heldout_pairs: HeldoutPairs | None = None
    heldout_sft: GrmHeldout | None = None
    heldout_grpo: GrmHeldout | None = None
    heldout_grpo_no_proxy: GrmHeldout | None = None
    heldout_proxy: ProxyHeldout | None = None
    rewards: RewardLoop | None = None
    grpo: GrpoRun | None = None
    grpo_no_proxy: GrpoRun | None = None
    eval_sft: Evaluation | None = None
    eval_grpo: Evaluation | None = None
    fluency_sft: Fluency | None = None
    fluency_grpo: Fluency | None = None
    transfer: RubricTransfer | None = None
