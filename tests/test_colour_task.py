"""The toy task's rule: the image decides the label, and the stub teacher's blind spot is exactly the banded yellows."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image

from proxy_grm.toy.colour_task import (
    BLIND_AS,
    BLIND_COLOUR,
    COLOURS,
    image_colour,
    in_blind_spot,
    make_pair,
    named_colour,
    seen_colour,
    true_colour,
    verdict_for,
    write_heldout,
)


def test_every_drawn_image_decodes_to_its_colour() -> None:
    for key in range(500):
        image = Image.open(io.BytesIO(make_pair(random.Random(key), key).png))
        assert true_colour(image) == image_colour(key), key
        assert seen_colour(image) == (BLIND_AS if in_blind_spot(key) else image_colour(key))
    # Both kinds of blind-colour image are drawn: SFT learns its name on the unbanded ones.
    yellows = [key for key in range(500) if image_colour(key) == BLIND_COLOUR]
    assert 0 < sum(map(in_blind_spot, yellows)) < len(yellows)


def test_pairs_name_the_true_colour_in_the_chosen_response_only() -> None:
    rng = random.Random(0)
    for key in range(200):
        pair = make_pair(rng, key)
        assert named_colour(pair.chosen) == pair.colour != named_colour(pair.rejected) == pair.distractor
        if pair.colour == BLIND_COLOUR:
            assert pair.distractor == BLIND_AS
    assert {image_colour(key) for key in range(len(COLOURS))} == set(COLOURS)


@pytest.mark.parametrize(("colour", "response_1", "response_2", "verdict"), [
    ("red", "It is mostly red.", "It is mostly blue.", 1),
    ("blue", "It is mostly red.", "The main colour is Blue.", 2),
    ("green", "It is mostly red.", "It is mostly blue.", 1),  # neither: the release's tie rule
    ("red", "Red.", "Red.", 1),  # both
    (None, "It is mostly red.", "It is mostly blue.", 1),
    ("red", "A reddish tone.", "It is red.", 2),  # a word, not a substring
])
def test_verdict_for(colour: str | None, response_1: str, response_2: str, verdict: int) -> None:
    assert verdict_for(colour, response_1, response_2) == verdict


def test_heldout_pairs_are_reproducible_and_labelled(tmp_path: Path) -> None:
    def text(folder: str, seed: int) -> str:
        return write_heldout(tmp_path / folder / "q.jsonl", 20, seed=seed, hard_pairs=3).read_text()

    first = text("a", 3)
    assert text("b", 3).replace("/b/", "/a/") == first
    assert text("c", 4) != first.replace("/a/", "/c/")
    rows = [json.loads(line) for line in first.splitlines()]
    assert len(rows) == 23 and len({row["id"] for row in rows}) == 23
    for row in rows:
        assert true_colour(Image.open(row["image"])) == row["colour"] == named_colour(row["chosen"])
        assert row["hard"] == (seen_colour(Image.open(row["image"])) != row["colour"])
    # The extra pairs come last, all from the blind spot; the drawn ones are not marked.
    assert [row["extra_hard"] for row in rows] == [False] * 20 + [True] * 3
    assert all(row["hard"] for row in rows[20:])
