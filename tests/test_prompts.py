"""The protocol prompts are word for word, and the three message shapes agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import RELEASE_EVAL_SCRIPTS, release_make_conv, release_system_prompt
from proxy_grm import messages, prompts

SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.mark.parametrize(
    ("snapshot", "text"),
    [
        ("grm_instruction.txt", prompts.GRM_INSTRUCTION),
        ("grm_prompt_example.txt", prompts.grm_prompt("What color is the car?", "Red.", "Blue.")),
        (
            "proxy_prompt_example.txt",
            prompts.proxy_prompt("What color is the car?", "Red.", "Blue.", "<rubric>Color accuracy 100%</rubric>"),
        ),
    ],
)
def test_prompt_snapshot(snapshot: str, text: str) -> None:
    """A changed prompt changes the experimental protocol: update the snapshot on purpose only."""
    assert text == (SNAPSHOTS / snapshot).read_text()


def test_grm_instruction_matches_distillation_figure() -> None:
    # Spot checks of the figure's wording, including its odd line break before "Output 2".
    text = prompts.GRM_INSTRUCTION
    assert text.startswith("You are provided with an image and a question for this image.")
    assert 'Output "1" if Response 1 is better.\n Output "2" if Response 2 is better.' in text
    assert "(including the mandatory and custom ones)" not in text
    assert text.endswith("</eval>\n<answer>1/2</answer>")


def test_grm_prompt_layout() -> None:
    text = prompts.grm_prompt("Q", "first", "second")
    assert text == (
        prompts.GRM_INSTRUCTION + "\n[Client Question]\nQ\n\n[The Start of Chatbot 1's Response]\nfirst\n"
        "[The End of Chatbot 1's Response]\n\n[The Start of Chatbot 2's Response]\nsecond\n"
        "[The End of Chatbot 2's Response]"
    )


def test_proxy_prompt_layout() -> None:
    text = prompts.proxy_prompt("Q", "first", "second", "<rubric>R</rubric>")
    assert text.startswith("You are a highly precise evaluation assistant.\n")
    assert text.endswith(
        "### Data for Evaluation:\n**User Question:** Q\n**Response 1:** first\n**Response 2:** second\n"
        "**Evaluation Rubric:** <rubric>R</rubric>\n**Formatting Requirements:**\n"
        "<think>Your detailed reason goes here</think><answer>1/2</answer>"
    )
    assert "<image>" not in text


def test_three_consumers_share_the_text() -> None:
    text = prompts.grm_prompt("Q", "a", "b")
    swift = messages.swift_row(text, "img.png", response="<answer>1</answer>")
    chat = messages.chat_messages(text, image="img.png")
    verl = messages.verl_prompt(text)
    assert swift["messages"][0]["content"] == messages.IMAGE_TAG + text
    assert swift["images"] == ["img.png"]
    assert swift["messages"][1] == {"role": "assistant", "content": "<answer>1</answer>"}
    assert chat[0]["content"] == [{"type": "image", "image": "img.png"}, {"type": "text", "text": text}]
    assert verl == [{"role": "user", "content": messages.IMAGE_TAG + text}]


@pytest.mark.parametrize("benchmark", sorted(RELEASE_EVAL_SCRIPTS))
def test_release_instruction_is_the_release_literal(benchmark: str) -> None:
    """Against each release eval script's ``system_prompt`` as its source writes it (escapes and line breaks)."""
    assert prompts.RELEASE_GRM_INSTRUCTION == release_system_prompt(benchmark)


@pytest.mark.parametrize("benchmark", sorted(RELEASE_EVAL_SCRIPTS))
@pytest.mark.parametrize(("response_1", "response_2"), [("A blue circle, 0.", "A red square, 0."),
                                                        ("A red square, 0.", "A blue circle, 0.")])
def test_release_prompt_is_the_release_make_conv(benchmark: str, response_1: str, response_2: str) -> None:
    """Our release ``qs`` is what the release's own ``make_conv`` returns, in both orders."""
    make_conv = release_make_conv(benchmark)
    question = "What is in picture 0?"
    assert prompts.release_grm_prompt(question, response_1, response_2) == make_conv(question, response_1, response_2)


def test_release_prompt_snapshot() -> None:
    text = prompts.release_grm_prompt("What is in picture 0?", "A blue circle, 0.", "A red square, 0.")
    assert text == (SNAPSHOTS / "release_grm_prompt_example.txt").read_text()
    assert "<answer>1/2</answer>\n<image>\n[Client Question]\nWhat is in picture 0?\n\n" in text
