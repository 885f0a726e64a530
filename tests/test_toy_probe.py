"""The learning probe reads the critique's decisive tokens and logs them per step."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from proxy_grm.toy import probe
from proxy_grm.toy.colour_task import COLOURS


@pytest.fixture(scope="module")
def processor(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoProcessor

    from proxy_grm.toy.tiny_model import make_tiny_model

    return AutoProcessor.from_pretrained(make_tiny_model(tmp_path_factory.mktemp("probe-model")))


@pytest.mark.parametrize("instruction", ["release", "short"])
def test_probes_point_at_the_decisive_tokens(processor, instruction: str) -> None:
    example = probe.make_example(processor, key=7, rng=random.Random(0), swap=True, instruction=instruction)
    tokens = {name: processor.tokenizer.decode([int(example.inputs["input_ids"][0, position])]).strip()
              for name, position in example.probes.items()}
    assert tokens["rubric_colour"] == list(COLOURS)[7 % len(COLOURS)]
    assert {tokens["response_1_colour"], tokens["response_2_colour"]} <= set(COLOURS)
    assert tokens["response_1_colour"] != tokens["response_2_colour"]
    assert tokens["eval_verdict"] == tokens["answer"] == str(example.verdict)
    assert tokens["judged_colour"] == tokens["rubric_colour"]
    # The verdict is the number written after the judged colour's first copy (an induction step).
    chosen = 1 if tokens["response_1_colour"] == tokens["judged_colour"] else 2
    assert chosen == example.verdict
    prompt = processor.tokenizer.decode(example.inputs["input_ids"][0, :example.prompt_tokens])
    assert (probe.SHORT_INSTRUCTION in prompt) == (instruction == "short")


def test_run_logs_every_probe_per_step(tmp_path: Path) -> None:
    log = probe.run(tmp_path, steps=2, instruction="short", lr=1e-3, batch=1, eval_every=1, heldout=2)
    assert [line["step"] for line in log] == [1, 2]
    assert all({*probe.PROBES, "generated_verdict"} <= set(line) and 0.0 <= line["generated_verdict"] <= 1.0
               for line in log)
    assert [json.loads(line) for line in (tmp_path / "probe.jsonl").read_text().splitlines()] == log


def test_proxy_examples_judge_by_the_rubric_in_the_prompt(processor) -> None:
    shown = {kind: probe.make_example(processor, key=7, rng=random.Random(0), swap=False, instruction="release",
                                      rubric=kind) for kind in probe.PROXY_RUBRICS}
    text = {kind: processor.tokenizer.decode(example.inputs["input_ids"][0, example.prompt_tokens:])
            for kind, example in shown.items()}
    # Response 1 is the chosen one: the teacher's rubric leads the critique to it, the counterfactual away.
    assert "<answer>1</answer>" in text["teacher"] and "<answer>2</answer>" in text["counterfactual"]
    assert all(example.verdict == 1 and "rubric_colour" not in example.probes for example in shown.values())
    assert "The rubric:" in text["teacher"] and "The image:" in text["none"] and "rubric:" not in text["none"]


def test_proxy_run_reads_every_rubric(tmp_path: Path) -> None:
    log = probe.run(tmp_path, steps=1, instruction="release", lr=1e-3, batch=1, eval_every=1, heldout=1,
                    target="proxy")
    assert {f"generated_verdict_{kind}" for kind in probe.PROXY_RUBRICS} <= set(log[0])


def test_a_trained_checkpoint_is_probed_on_held_out_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from proxy_grm.toy.tiny_model import make_tiny_model

    checkpoint = make_tiny_model(tmp_path / "model")
    probe.main(["--checkpoint", str(checkpoint), "--heldout", "2"])
    shares = json.loads(capsys.readouterr().out)
    assert set(shares) == set(probe.PROBES) and all(share in (0.0, 0.25, 0.5, 0.75, 1.0) for share in shares.values())
    with pytest.raises(SystemExit):
        probe.main([])  # neither a checkpoint nor a folder to train in
