"""The toy preference the demo's models must learn: the preferred response names the image's main colour.

Each image is filled mostly by one of ``COLOURS`` (its shade jittered, its size varied, a smaller patch of
another colour on it), so telling the colour is recognition, not memorised pixels. The question asks for
the colour; one response names the true colour, the other a wrong one. The label follows from the image
alone, so a pipeline that flips labels, swaps the pair against its label or loses the image scores at
chance on held-out pairs, and a working one does not.

The teacher stub judges by the same rule from the decoded image (``seen_colour``), with one named blind
spot: a ``BLIND_AS`` area over ``BLIND_SHARE`` of an image sways it, so it reads the ``BLIND_COLOUR`` images
drawn with a wide ``BLIND_AS`` band (one in ``BLIND_ONE_IN``; the fill still covers most of the image) as
``BLIND_AS``; on every ``BLIND_COLOUR`` image the wrong response names ``BLIND_AS``. So the teacher is right on
every other image, the other ``BLIND_COLOUR`` images included, and wrong on the banded ones: the
teacher-correct pool (SFT) teaches the word ``BLIND_COLOUR``, and the hard pool (GRPO) holds exactly the banded
images, where two colours compete and a GRM trained on small patches is unsure (measured: about even odds
between the two words at the rubric's colour), so its rollouts differ, the proxy rewards those whose rubric
names the fill, and GRPO can make them more frequent.
"""

from __future__ import annotations

import io
import itertools
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
# One ``BLIND_COLOUR`` image in ``BLIND_ONE_IN`` carries a full-height ``BLIND_AS`` band over ``BAND_WIDTH`` of
# its width (every other image's patch covers at most a quarter of it), and the teacher reads a ``BLIND_AS`` area
# over ``BLIND_SHARE`` of an image as the image's colour. The slice is 1 image in 20, so a proxy that follows the
# teacher's rubric can score 95% (the held-out target is 90%), and GRPO's hard pool holds about 200 prompts at
# the learning run's 1,024 pairs per source.
BLIND_ONE_IN, BAND_WIDTH, BLIND_SHARE = 4, (0.36, 0.44), 1 / 3
RULE = (f"the preferred response names the colour that fills most of the image (one of {', '.join(COLOURS)}); "
        f"the teacher reads {BLIND_COLOUR} with a {BLIND_AS} band over a third of the image as {BLIND_AS}")
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
    """Whether the image drawn for ``key`` is a banded ``BLIND_COLOUR`` one, the slice the teacher gets wrong."""
    return image_colour(key) == BLIND_COLOUR and (key // len(COLOURS)) % BLIND_ONE_IN == 0


def draw_image(key: int) -> bytes:
    """A PNG filled mostly by ``image_colour(key)``: jittered shade, 56-112 px a side, a patch of another colour
    over at most a quarter of it, or, in the blind spot, a full-height ``BLIND_AS`` band over ``BAND_WIDTH`` of
    its width. The same key gives the same bytes."""
    rng = random.Random(key)
    colour = image_colour(key)
    width, height = rng.choice((56, 84, 112)), rng.choice((56, 84))

    def shade(base: tuple[int, int, int]) -> tuple[int, int, int]:
        return tuple(min(255, max(0, c + rng.randint(-SHADE_JITTER, SHADE_JITTER))) for c in base)

    image = Image.new("RGB", (width, height), shade(COLOURS[colour]))
    if in_blind_spot(key):
        band = round(width * rng.uniform(*BAND_WIDTH))
        left = rng.randint(0, width - band)
        image.paste(shade(COLOURS[BLIND_AS]), (left, 0, left + band, height))
    else:
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


def _votes(image: Image.Image) -> Counter[str]:
    """How many of the image's pixels (resized to 28x28) are nearest each named colour."""
    pixels = image.convert("RGB").resize((28, 28), Image.NEAREST).get_flattened_data()
    return Counter(min(COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(pixel, COLOURS[name])))
                   for pixel in pixels)


def true_colour(image: Image.Image) -> str:
    """The named colour nearest to most pixels (the rule's ground truth; the fixtures draw it so)."""
    votes = _votes(image)
    return max(COLOURS, key=lambda name: votes[name])


def seen_colour(image: Image.Image) -> str:
    """What the teacher stub sees: the true colour, unless ``BLIND_AS`` covers over ``BLIND_SHARE`` of the
    image (its blind spot: only the banded ``BLIND_COLOUR`` images have such an area of another colour)."""
    votes = _votes(image)
    return BLIND_AS if votes[BLIND_AS] > BLIND_SHARE * sum(votes.values()) else true_colour(image)


def named_colour(text: str) -> str | None:
    """The first colour a text names (a response, a rubric), or None."""
    match = _COLOUR_WORD.search(text)
    return match.group(1).lower() if match else None


def verdict_for(colour: str | None, response_1: str, response_2: str) -> int:
    """The response that names ``colour``; 1 when neither or both do (the release's tie rule picks 1)."""
    return 2 if colour is not None and named_colour(response_2) == colour != named_colour(response_1) else 1


def write_heldout(out: Path, pairs: int, seed: int, hard_pairs: int = 0) -> Path:
    """``pairs`` toy pairs no stage saw (their own image keys and seed) as an eval question file
    (VL-RewardBench JSONL: id, prompt, chosen, rejected, image path); images under ``out.parent/images``.

    The pairs are drawn as the sources draw theirs, so about one in 20 falls in the teacher's blind spot
    (``hard``). ``hard_pairs`` more pairs follow, all from the blind spot (``extra_hard``), so the hard slice
    can be measured on more than a few pairs; overall figures leave them out.
    """
    rng = random.Random(f"heldout-{seed}")
    images = out.parent / "images"
    images.mkdir(parents=True, exist_ok=True)
    keys = [(9_000_000 + 1000 * seed + i, False) for i in range(pairs)]
    blind = (key for key in itertools.count(9_500_000 + 100_000 * seed) if in_blind_spot(key))
    keys += [(next(blind), True) for _ in range(hard_pairs)]
    with out.open("w", encoding="utf-8") as handle:
        for i, (key, extra) in enumerate(keys):
            pair = make_pair(rng, key)
            path = images / f"heldout-{seed}-{i}.png"
            path.write_bytes(pair.png)
            row = {"id": f"heldout-{seed}-{i}", "prompt": pair.question, "chosen": pair.chosen,
                   "rejected": pair.rejected, "chosen_reason": "", "rejected_reason": "", "image": str(path),
                   "colour": pair.colour, "hard": in_blind_spot(key), "extra_hard": extra}
            handle.write(json.dumps(row) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=f"Write held-out toy pairs as an eval question file. Rule: {RULE}.")
    parser.add_argument("--out", type=Path, required=True, help="the question file (JSONL) to write")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hard-pairs", type=int, default=0,
                        help="more pairs, all from the teacher's blind spot (rows marked extra_hard)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(write_heldout(args.out, args.pairs, args.seed, args.hard_pairs))


if __name__ == "__main__":
    main()
