"""The demo's typed stage results: stored and read back by model, stale when they no longer validate, read by
attribute in the report; and the GRPO evidence per step (the rubric names the image's true colour)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from proxy_grm.demo import heldout
from proxy_grm.demo.heldout import RUBRICS, evidence_share, rollout_evidence_by_step
from proxy_grm.demo.__main__ import build_parser, parse_args
from proxy_grm.demo.config import LEARNING_RUN, DemoConfig
from proxy_grm.demo.report import learning_figures, write_report
from proxy_grm.demo.results import (
    DemoResults,
    GrmHeldout,
    GrpoRun,
    GrpoStep,
    HeldoutPairs,
    ProxyHeldout,
    StageResult,
)
from proxy_grm.demo.stages import StageRecord, StageRunner, content_digest, source_digest
from proxy_grm.demo.targets import targets_met
from proxy_grm.reward import SCORE_KEYS
from proxy_grm.reward.step_metrics import step_summary
from proxy_grm.toy.colour_task import draw_image, image_colour
from proxy_grm.toy.teacher_stub import stub_rubric


class Count(StageResult):
    rows: int


class CountRenamed(StageResult):
    row_count: int


def test_a_stage_result_is_stored_as_json_and_read_back_as_its_model(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    calls = []

    def stage() -> Count:
        calls.append(1)
        return Count(rows=3)

    first = StageRunner(tmp_path).run("count", "Count", stage, Count, depends=[1])
    again = StageRunner(tmp_path).run("count", "Count", stage, Count, depends=[1])
    assert first == again == Count(rows=3) and isinstance(again, Count)
    assert len(calls) == 1 and ": reused" in capsys.readouterr().out
    assert json.loads((tmp_path / "stages" / "count.json").read_text())["result"] == {"rows": 3}


def test_a_stored_result_that_no_longer_validates_is_stale(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # An older version stored the field under another name; the depends are the same.
    StageRunner(tmp_path).run("count", "Count", lambda: Count(rows=3), Count, depends=[1])
    capsys.readouterr()
    result = StageRunner(tmp_path).run("count", "Count", lambda: CountRenamed(row_count=4), CountRenamed,
                                       depends=[1])
    assert result == CountRenamed(row_count=4)
    out = capsys.readouterr().out
    stale = [line for line in out.splitlines() if "not a CountRenamed any more" in line]
    assert len(stale) == 1 and "row_count" in stale[0] and "running it again" in stale[0], out
    assert "reused" not in out
    assert json.loads((tmp_path / "stages" / "count.json").read_text())["result"] == {"row_count": 4}


def test_a_result_in_depends_counts_by_its_fields(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runner = StageRunner(tmp_path)
    runner.run("after", "After", lambda: Count(rows=1), Count, depends=[Count(rows=3)])
    runner.run("after", "After", lambda: Count(rows=1), Count, depends=[Count(rows=3)])
    runner.run("after", "After", lambda: Count(rows=1), Count, depends=[Count(rows=4)])
    out = capsys.readouterr().out
    assert out.count(": reused") == 1 and out.count("inputs changed since it ran") == 1, out


def test_a_change_upstream_reruns_the_stages_below_it_even_where_a_result_reads_the_same(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """New images under the same paths and counts: the sources stage reruns and returns the same result,
    and the stage that read the old images must not be reused."""
    def chain(code: str) -> None:
        runner = StageRunner(tmp_path)
        sources = runner.run("sources", "Sources", lambda: Count(rows=3), Count, depends=[code])
        runner.run("data", "Data", lambda: Count(rows=1), Count, depends=[sources])

    chain("v1")
    chain("v1")
    assert capsys.readouterr().out.count(": reused") == 2
    chain("v2")
    out = capsys.readouterr().out
    assert "reused" not in out and out.count("inputs changed since it ran") == 2, out


def test_a_package_digest_changes_with_any_module_in_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    package = tmp_path / "toy_pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "split.py").write_text("LABEL = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("toy_pkg")
    before = source_digest(module)
    (package / "sub" / "split.py").write_text("LABEL = 2\n")
    assert source_digest(module) != before


def test_a_content_digest_follows_the_bytes_not_the_stages_above(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """An SFT stage keyed by its base model's and set's bytes is reused when the data stage reran and wrote the
    same rows, and runs again when a row or a model file changes."""
    model, rows = tmp_path / "model", tmp_path / "grm_sft.jsonl"
    model.mkdir()
    (model / "config.json").write_text("{}")
    rows.write_text('{"row": 1}\n')

    def chain(data_code: str) -> None:
        runner = StageRunner(tmp_path / "out")
        runner.run("data", "Data", lambda: Count(rows=1), Count, depends=[data_code])
        runner.run("sft", "SFT", lambda: Count(rows=2), Count, depends=[content_digest(model), content_digest(rows)])

    chain("v1")
    chain("v2")  # the data stage reran and wrote the same bytes
    out = capsys.readouterr().out
    assert "SFT: reused" in out and out.count("inputs changed since it ran") == 1, out
    before = content_digest(model)
    (model / "config.json").rename(model / "generation_config.json")
    assert content_digest(model) != before  # a folder's digest counts its files' names too
    rows.write_text('{"row": 2}\n')
    chain("v2")
    assert "SFT: its settings or inputs changed" in capsys.readouterr().out


def test_the_learning_run_flag_sets_its_settings_and_flags_beside_it_win() -> None:
    args = parse_args(build_parser(), ["--learning-run", "--grpo-steps", "8"])
    assert {name: getattr(args, name) for name in LEARNING_RUN} == {**LEARNING_RUN, "grpo_steps": 8}
    assert parse_args(build_parser(), []).sft_steps == DemoConfig.sft_steps != LEARNING_RUN["sft_steps"]


def test_a_stage_returning_another_type_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="stage 'count' returned a dict, not a Count"):
        StageRunner(tmp_path).run("count", "Count", lambda: {"rows": 3}, Count)


# ---- the report reads typed results ------------------------------------------------------------

def _grm_heldout(**fields: float | None) -> dict:
    return {"answers": "a.jsonl", "overall": 0.5, "hard": 0.5, "other": 0.5, "evidence_overall": 0.25,
            "evidence_hard": 0.0, "evidence_other": 1 / 3} | fields


def test_a_misspelt_field_fails_where_the_result_is_built() -> None:
    with pytest.raises(ValidationError, match="overal"):
        GrmHeldout(**{k: v for k, v in _grm_heldout().items() if k != "overall"}, overal=0.5)
    with pytest.raises(ValidationError, match="heldout_sfft"):  # a stage name the report does not know
        DemoResults(heldout_sfft=GrmHeldout(**_grm_heldout()))
    with pytest.raises(ValidationError, match="heldout_sft"):  # another stage's result under its name
        DemoResults(heldout_sft=HeldoutPairs(questions="q.jsonl", pairs=4, hard=1, extra_hard=0, seed=0, rule="r"))
    with pytest.raises(AttributeError, match="overal"):
        GrmHeldout(**_grm_heldout()).overal  # noqa: B018  (a misspelt read fails at once, not as None)


def test_the_report_gathers_its_results_at_once(tmp_path: Path) -> None:
    # write_report validates every record before it writes anything: no half-written report.
    pairs = HeldoutPairs(questions="q", pairs=4, hard=1, extra_hard=0, seed=0, rule="r")
    records = [StageRecord("heldout_sft", "t", 1.0, False, pairs)]
    config = DemoConfig(out_dir=tmp_path, sft_steps=2)
    with pytest.raises(ValidationError, match="heldout_sft"):
        write_report(config, records, 1.0)
    assert not (tmp_path / "results.json").exists()


def _step(step: int, names_colour: float | None) -> GrpoStep:
    parts = dict.fromkeys(SCORE_KEYS, 0.0) | {"score": float(step)}
    return GrpoStep(step=step, **step_summary([parts]), rubric_names_colour=names_colour)


def test_grpo_steps_are_what_step_summary_gives_for_the_reward_parts() -> None:
    # The per-step table's model is the summary of compute_score's keys: a key renamed there fails here.
    summary = step_summary([dict.fromkeys(SCORE_KEYS, 1.0), dict.fromkeys(SCORE_KEYS, 0.0)])
    step = GrpoStep(step=1, **summary, rubric_names_colour=None)
    assert step.rollouts == 2 and step.proxy_called == 1 and step.score == 0.5


def test_the_held_out_models_hold_every_rubric_and_slice() -> None:
    assert set(RUBRICS) <= set(ProxyHeldout.model_fields)
    assert {f"evidence_{slice_}" for slice_ in heldout.SLICES} | set(heldout.SLICES) <= set(GrmHeldout.model_fields)


def test_figures_hold_the_grpo_evidence_per_step() -> None:
    run = GrpoRun(checkpoint="c", steps=[_step(1, 0.25), _step(2, None), _step(3, 0.75)], tensors_changed=1,
                  tensors=2, parts_file="p")
    ablation = run.model_copy(update={"steps": [_step(1, 0.0)]})
    figures = learning_figures(DemoResults(heldout_sft=GrmHeldout(**_grm_heldout(hard=0.25)), grpo=run,
                                           grpo_no_proxy=ablation))
    assert figures["grpo_rubric_names_colour_by_step"] == [0.25, None, 0.75]
    assert figures["grpo_no_proxy_rubric_names_colour_by_step"] == [0.0]
    assert figures["grm_sft_hard"] == 0.25 and figures["grm_sft_rubric_names_colour_other"] == 1 / 3
    assert figures["grm_grpo_overall"] is None and figures["proxy_teacher_rubric"] is None
    assert figures["grpo_first_quarter_reward"] == 1.0 and figures["grpo_minus_sft_hard"] is None
    assert json.loads(json.dumps(figures)) == figures


@pytest.mark.parametrize(("name", "figure", "met"), [
    ("grm_sft_overall", 0.75, True), ("grm_sft_overall", 0.7, False),
    ("proxy_counterfactual_rubric", 0.25, True), ("proxy_counterfactual_rubric", 0.5, False),
    ("grpo_last_minus_first_quarter_reward", 0.0, False),  # a flat reward has not risen
    ("grpo_last_minus_first_quarter_reward", 0.05, True),
    ("grpo_minus_sft_hard", 0.0, True), ("grpo_minus_sft_hard", -0.05, False),
    ("proxy_teacher_rubric", None, None),  # not run
])
def test_targets_compare_each_figure_with_its_bound(name: str, figure: float | None, met: bool | None) -> None:
    assert targets_met({name: figure})[name] is met


def test_the_grpo_table_has_the_evidence_column(tmp_path: Path) -> None:
    run = GrpoRun(checkpoint="c", steps=[_step(1, 0.25), _step(2, None)], tensors_changed=1, tensors=2,
                  parts_file="p")
    config = DemoConfig(out_dir=tmp_path, sft_steps=2)
    report = write_report(config, [StageRecord("grpo", "GRPO", 1.0, False, run)], 1.0).read_text()
    header = next(line for line in report.splitlines() if line.startswith("| step |"))
    assert "| rubric names the colour |" in header
    assert "| 25.0% |" in report and "| n/a |" in report
    assert json.loads((tmp_path / "results.json").read_text())["grpo_rubric_names_colour_by_step"] == [0.25, None]


# ---- the evidence share over GRPO rollouts ------------------------------------------------------

def test_evidence_share_counts_rubrics_that_name_the_true_colour() -> None:
    rollouts = [(f"{stub_rubric('red')}<eval>..</eval><answer>1</answer>", "red"),  # right evidence
                (f"{stub_rubric('green')}<answer>1</answer>", "yellow"),  # the teacher's blind spot: wrong
                ("<eval>the image is red</eval><answer>1</answer>", "red"),  # no rubric: names nothing
                (f"{stub_rubric('blue')}<eval>it is red</eval>", "blue")]  # only the rubric counts
    assert evidence_share(rollouts) == 2 / 4
    assert evidence_share([]) is None


def _image(folder: Path, key: int) -> str:
    path = folder / f"{key}.png"
    path.write_bytes(draw_image(key))
    return str(path)


def test_rollout_evidence_reads_the_colour_from_each_rollouts_image(tmp_path: Path) -> None:
    red, yellow = _image(tmp_path, 0), _image(tmp_path, 3)
    assert (image_colour(0), image_colour(3)) == ("red", "yellow")
    rows = [(1, stub_rubric("red"), red), (1, stub_rubric("red"), yellow), (1, "<answer>1</answer>", red),
            (1, stub_rubric("yellow"), yellow),
            (2, stub_rubric("green"), yellow), (2, stub_rubric("yellow"), str(tmp_path / "missing.png")),
            (3, stub_rubric("red"), None)]
    parts = tmp_path / "reward_parts.jsonl"
    parts.write_text("".join(json.dumps({"step": step, **dict.fromkeys(SCORE_KEYS, 0.0), "completion": text,
                                         "image": image}) + "\n" for step, text, image in rows))
    # Step 2: the missing image is left out; step 3: no rollout has an image, so no share.
    assert rollout_evidence_by_step(parts) == {1: 2 / 4, 2: 0.0, 3: None}


def test_every_stage_result_forbids_unknown_fields() -> None:
    from proxy_grm.demo import results

    models = [m for m in vars(results).values() if isinstance(m, type) and issubclass(m, StageResult)]
    assert len(models) > 15
    assert all(m.model_config.get("extra") == "forbid" for m in models)
    assert not issubclass(results.FileSummary, StageResult) and issubclass(results.FileSummary, BaseModel)
