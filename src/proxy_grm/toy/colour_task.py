"""The toy preference the demo's models must learn: the preferred response names the image's main colour.

Each image is filled mostly by one of ``COLOURS`` (its shade jittered, its size varied, a smaller patch of
another colour on it), so telling the colour is recognition, not memorised pixels. The question asks for
the colour; one response names the true colour, the other a wrong one. The label follows from the image
alone, so a pipeline that flips labels, swaps the pair against its label or loses the image scores at
chance on held-out pairs, and a working one does not.

The teacher stub judges by the same rule from the decoded image (``seen_colour``), with one named blind
spot: it reads the dark, olive ``BLIND_COLOUR`` images (fill red below ``BLIND_RED_BELOW``) as ``BLIND_AS``,
and on every ``BLIND_COLOUR`` image the wrong response names ``BLIND_AS``. So the teacher is right on every
other image, bright yellows included, and wrong on the olive ones: the teacher-correct pool (SFT) teaches
the word ``BLIND_COLOUR`` on bright images, and the hard pool (GRPO) holds exactly the olive ones, where a
GRM that carries the word over to them is right, its rubric makes the proxy right, and the reward can say so.
"""

from __future__ import annotations

import io
import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 210), "yellow": (225, 205, 45),
    "purple": (140, 50, 170),
}
BLIND_COLOUR, BLIND_AS = "yellow", "green"
# Two ``BLIND_COLOUR`` images in three are drawn olive: nearer yellow than any other named colour (the rule's
# truth), their red at most 180, where a bright yellow's is at least 195 (225 - SHADE_JITTER).
OLIVE, OLIVE_JITTER, BLIND_RED_BELOW = (165, 185, 45), 15, 190
RULE = (f"the preferred response names the colour that fills most of the image (one of {', '.join(COLOURS)}); "
        f"the teacher reads dark {BLIND_COLOUR} (olive, red below {BLIND_RED_BELOW}) as {BLIND_AS}")
_QUESTIONS = ("What colour fills most of this image?", "Which colour covers most of the picture?",
              "What is the main colour of the image?")
# One answer template: the colour word sits at the same place in every response.
ANSWER = "It is mostly {colour}."
_COLOUR_WORD = re.compile(r"\b(" + "|".join(COLOURS) + r")\b", re.IGNORECASE)
SHADE_JITTER = 30


@dataclass(frozen=True)
class ColourPair:
    """One toy pair: the image's main colour, the wrong colour the other response names, and the texts."""

    colour: str
    distractor: str
    question: str
    chosen: str
    rejected: str
    png: bytes


def image_colour(key: int) -> str:
    """The main colour of the image drawn for ``key`` (every ``len(COLOURS)``-th key shares one)."""
    return list(COLOURS)[key % len(COLOURS)]


def in_blind_spot(key: int) -> bool:
    """Whether the image drawn for ``key`` is olive ``BLIND_COLOUR``, the slice the teacher gets wrong."""
    return image_colour(key) == BLIND_COLOUR and (key // len(COLOURS)) % 3 != 0


def draw_image(key: int) -> bytes:
    """A PNG filled mostly by ``image_colour(key)``: jittered shade (olive in the blind spot), 56-112 px a
    side, a patch of another colour over at most a quarter of it. The same key gives the same bytes."""
    rng = random.Random(key)
    colour = image_colour(key)
    width, height = rng.choice((56, 84, 112)), rng.choice((56, 84))

    def shade(base: tuple[int, int, int], jitter: int = SHADE_JITTER) -> tuple[int, int, int]:
        return tuple(min(255, max(0, c + rng.randint(-jitter, jitter))) for c in base)

    fill = shade(OLIVE, OLIVE_JITTER) if in_blind_spot(key) else shade(COLOURS[colour])
    image = Image.new("RGB", (width, height), fill)
    other = rng.choice([name for name in COLOURS if name != colour])
    patch_w, patch_h = rng.randint(width // 6, width // 2), rng.randint(height // 6, height // 2)
    left, top = rng.randint(0, width - patch_w), rng.randint(0, height - patch_h)
    image.paste(shade(COLOURS[other]), (left, top, left + patch_w, top + patch_h))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_pair(rng: random.Random, key: int, question: int | None = None) -> ColourPair:
    """A pair about the image ``key``: the chosen response names its colour, the rejected another.
    ``question`` picks the question (pairs on one image then differ; the filters drop duplicates)."""
    colour = image_colour(key)
    distractor = BLIND_AS if colour == BLIND_COLOUR else rng.choice([c for c in COLOURS if c != colour])
    asked = rng.choice(_QUESTIONS) if question is None else _QUESTIONS[question % len(_QUESTIONS)]
    return ColourPair(colour, distractor, asked, ANSWER.format(colour=colour),
                      ANSWER.format(colour=distractor), draw_image(key))


def _pixels(image: Image.Image) -> list[tuple[int, int, int]]:
    return list(image.convert("RGB").resize((28, 28), Image.NEAREST).get_flattened_data())


def true_colour(image: Image.Image) -> str:
    """The named colour nearest to most pixels (the rule's ground truth; the fixtures draw it so)."""
    votes: dict[str, int] = dict.fromkeys(COLOURS, 0)
    for pixel in _pixels(image):
        votes[min(COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(pixel, COLOURS[name])))] += 1
    return max(votes, key=votes.__getitem__)


def seen_colour(image: Image.Image) -> str:
    """What the teacher stub sees: the true colour, except on its blind spot, the olive yellows (the fill,
    the most common pixel, has red below ``BLIND_RED_BELOW``)."""
    colour = true_colour(image)
    fill = Counter(_pixels(image)).most_common(1)[0][0]
    return BLIND_AS if colour == BLIND_COLOUR and fill[0] < BLIND_RED_BELOW else colour


def named_colour(text: str) -> str | None:
    """The first colour a text names (a response, a rubric), or None."""
    match = _COLOUR_WORD.search(text)
    return match.group(1).lower() if match else None


def verdict_for(colour: str | None, response_1: str, response_2: str) -> int:
    """The response that names ``colour``; 1 when neither or both do (the release's tie rule picks 1)."""
    return 2 if colour is not None and named_colour(response_2) == colour != named_colour(response_1) else 1


def write_heldout(out: Path, pairs: int, seed: int) -> Path:
    """``pairs`` toy pairs no stage saw (their own image keys and seed) as an eval question file
    (VL-RewardBench JSONL: id, prompt, chosen, rejected, image path); images under ``out.parent/images``."""
    rng = random.Random(f"heldout-{seed}")
    images = out.parent / "images"
    images.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for i in range(pairs):
            key = 9_000_000 + 1000 * seed + i
            pair = make_pair(rng, key)
            path = images / f"heldout-{seed}-{i}.png"
            path.write_bytes(pair.png)
            row = {"id": f"heldout-{seed}-{i}", "prompt": pair.question, "chosen": pair.chosen,
                   "rejected": pair.rejected, "chosen_reason": "", "rejected_reason": "", "image": str(path),
                   "colour": pair.colour, "hard": in_blind_spot(key)}
            handle.write(json.dumps(row) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=f"Write held-out toy pairs as an eval question file. Rule: {RULE}.")
    parser.add_argument("--out", type=Path, required=True, help="the question file (JSONL) to write")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(write_heldout(args.out, args.pairs, args.seed))


if __name__ == "__main__":
    main()
