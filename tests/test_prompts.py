"""The protocol prompts are word for word, and the three message shapes agree."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

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


# sha256 of the release's ``system_prompt`` (the same in its three eval scripts), and of its
# ``make_conv("What is in picture 0?", "A blue circle, 0.", "A red square, 0.")`` (the snapshot).
RELEASE_INSTRUCTION_SHA256 = "a7d1d31ba75e6a7837cbbb5bc68b57c5214ab37b962e79f061424f6bafbf6868"
RELEASE_QS_SHA256 = "3b404a7f9f1a7ba7b987df3f21c9456a2320585fe3cbe1d924c7745be436478e"


def test_release_instruction_is_the_release_text() -> None:
    """Character for character, its trailing space and blank lines included (hashes, as editors strip)."""
    text = prompts.RELEASE_GRM_INSTRUCTION
    assert hashlib.sha256(text.encode()).hexdigest() == RELEASE_INSTRUCTION_SHA256
    assert "Explain why these criteria (including the mandatory and custom ones) and weights" in text
    assert "  <justify> \n" in text and text.endswith("\n<answer>1/2</answer>\n")


def test_release_prompt_equals_release_qs() -> None:
    text = prompts.release_grm_prompt("What is in picture 0?", "A blue circle, 0.", "A red square, 0.")
    assert hashlib.sha256(text.encode()).hexdigest() == RELEASE_QS_SHA256
    assert text == (SNAPSHOTS / "release_grm_prompt_example.txt").read_text()
    assert "<answer>1/2</answer>\n<image>\n[Client Question]\nWhat is in picture 0?\n\n" in text
