"""Small benchmark files in the eval JSONL format, made by code (tests and the CPU demo).

Each fixture repeats ids, as the real benchmarks do (VL-RewardBench reuses a few
ids, MM-RLHF-RewardBench groups several pairs per question id), the Multimodal
RewardBench fixture uses the official category strings and records the released
order (``chosen_first``), and the MM-RLHF fixture holds a video given as a
folder of frames.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

BENCHMARK_NAMES = ("vl_rewardbench", "multimodal_rewardbench", "mm_rlhf_rewardbench")
VIDEO_FRAMES = 8
# The ``Category`` strings of the official Multimodal RewardBench data.
MULTIMODAL_REWARDBENCH_CATEGORIES = ("open_generation/correctness_task", "open_generation/preference_task",
                                     "knowledge", "reasoning", "safety", "vqa")


def _image(path: Path, color: tuple[int, int, int]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (56, 56), color).save(path)
    return str(path)


def make_benchmark_fixture(root: Path, benchmark: str, pairs: int = 16) -> Path:
    """Write ``<root>/<benchmark>.jsonl`` with ``pairs`` rows (media under ``root``); returns its path."""
    if benchmark not in BENCHMARK_NAMES:
        raise ValueError(f"benchmark must be one of {BENCHMARK_NAMES}, got {benchmark!r}")
    rows: list[dict] = []
    for i in range(pairs):
        row = {"prompt": f"What is in picture {i}?", "chosen": f"A red square, {i}.",
               "rejected": f"A blue circle, {i}.", "chosen_reason": "", "rejected_reason": ""}
        color = (40 * (i % 6), (255 - 10 * i) % 256, 90)
        if benchmark == "vl_rewardbench":
            data_id = rows[4]["id"] if i == 5 else f"{('RLAIF-V', 'mmmu', 'wildvision')[i % 3]}_{i}"
            row.update(id=data_id, image=_image(root / "images" / f"{i}.png", color))
        elif benchmark == "multimodal_rewardbench":
            category = MULTIMODAL_REWARDBENCH_CATEGORIES[i % len(MULTIMODAL_REWARDBENCH_CATEGORIES)]
            row.update(id=f"{'pairs' if i % 2 else 'math'}_{i // 2}", Category=category,
                       image=_image(root / "images" / f"{i}.png", color), chosen_first=i % 3 != 1)
        else:
            row["id"] = f"q{i // 3}"
            if i >= pairs - 2:
                frames = root / "video" / "clip"
                for frame in range(VIDEO_FRAMES):
                    _image(frames / f"{frame:03d}.jpg", (frame * 30, 0, 0))
                row["video"] = str(frames)
            else:
                kind = ("mcq", "long", "short", "safety")[(i // 3) % 4]
                row["image"] = _image(root / kind / f"{i}.png", color)
        rows.append(row)
    question_file = root / f"{benchmark}.jsonl"
    question_file.parent.mkdir(parents=True, exist_ok=True)
    question_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return question_file
