"""Converters from the benchmarks' released formats to the eval JSONL, on crafted rows."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from proxy_grm.evaluation.converters import ConversionError, convert

REPO_ROOT = Path(__file__).resolve().parents[1]
EVAL_FIELDS = {"id", "prompt", "chosen", "rejected", "chosen_reason", "rejected_reason"}


def png_bytes(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


def read_output(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_vl_rewardbench_from_parquet_with_embedded_images(tmp_path):
    rows = [
        {"id": "RLAIF-V_1", "query": "What is shown?", "response": ["good", "bad"], "human_ranking": [0, 1],
         "image": {"bytes": png_bytes("red"), "path": None}, "models": ["a", "b"]},
        {"id": "mmmu_2", "query": "Solve.", "response": ["worse", "better"], "human_ranking": [1, 0],
         "image": {"bytes": png_bytes("blue"), "path": None}, "models": ["a", "b"]},
        {"id": "mmmu_2", "query": "Solve again.", "response": ["x", "y"], "human_ranking": [0, 1],
         "image": {"bytes": png_bytes("green"), "path": None}, "models": ["a", "b"]},
    ]
    source = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source)
    output = tmp_path / "out" / "vl.jsonl"
    subprocess.run([sys.executable, str(REPO_ROOT / "data_prep/convert_benchmark.py"), "vl_rewardbench",
                    "--input", str(source), "--output", str(output)], check=True, capture_output=True)
    converted = read_output(output)
    assert [(r["chosen"], r["rejected"]) for r in converted] == [("good", "bad"), ("better", "worse"), ("x", "y")]
    assert all(EVAL_FIELDS | {"image", "chosen_first"} == set(r) for r in converted)
    assert [r["chosen_first"] for r in converted] == [True, False, True]
    images = [Path(r["image"]) for r in converted]
    assert len(set(images)) == 3, "repeated ids must not overwrite each other's image"
    assert Image.open(images[1]).getpixel((0, 0)) == (0, 0, 255)


def test_vl_rewardbench_github_schema(tmp_path):
    """The first public release (GitHub ``data/data.jsonl``): ``image_path`` relative to ``data``."""
    rows = [
        {"id": "LRVInstruction-000000007746", "image_path": "images/vlfeedback/LRVInstruction-000000007746.jpg",
         "query": "The dog has one floppy ear.", "response": ["worse", "better"], "human_ranking": [1, 0],
         "models": ["a", "b"], "judge": "human", "rationale": None, "query_source": "LRVInstruction",
         "meta": {"note": "majority vote"}, "human_error_analysis": ["recognition(object)"]},
        {"id": "RLAIF-V-14", "image_path": "images/rlaif-v/RLAIF-V-14.jpg", "query": "Describe.",
         "response": ["good", "bad"], "human_ranking": [0, 1], "models": ["a", "a"]},
    ]
    source = tmp_path / "data.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    convert("vl_rewardbench", source, tmp_path / "vl.jsonl", media_root=tmp_path / "data")
    first, second = read_output(tmp_path / "vl.jsonl")
    assert (first["chosen"], first["rejected"], first["chosen_first"]) == ("better", "worse", False)
    assert first["image"] == str(tmp_path / "data" / "images/vlfeedback/LRVInstruction-000000007746.jpg")
    assert (second["chosen"], second["chosen_first"], second["id"]) == ("good", True, "RLAIF-V-14")


def test_multimodal_rewardbench_keeps_category_and_follows_better(tmp_path):
    rows = [
        {"ID": "pairs_1", "Text": "Q1", "Image": "imgs/1.png", "Output1": "o1", "Output2": "o2",
         "Better": "Output2", "Category": "safety"},
        {"ID": "vqa_3", "Text": "Q3", "Image": "imgs/3.png", "Output1": "q1", "Output2": "q2",
         "Better": "Output1", "Category": "open_generation/correctness_task"},
        {"ID": "math_2", "Text": "Q2", "Image": "imgs/2.png", "Output1": "p1", "Output2": "p2",
         "Better": "Output1", "Category": "reasoning"},
    ]
    source = tmp_path / "all_data.json"
    source.write_text(json.dumps(rows))
    convert("multimodal_rewardbench", source, tmp_path / "mm.jsonl", media_root=tmp_path / "data")
    converted = read_output(tmp_path / "mm.jsonl")
    assert converted[0] == {"id": "pairs_1", "prompt": "Q1", "chosen": "o2", "rejected": "o1",
                            "image": str(tmp_path / "data" / "imgs/1.png"), "chosen_reason": "",
                            "rejected_reason": "", "Category": "safety", "chosen_first": False}
    assert (converted[1]["chosen"], converted[1]["Category"]) == ("q1", "open_generation/correctness_task")
    assert (converted[2]["chosen"], converted[2]["Category"], converted[2]["chosen_first"]) == ("p1", "reasoning", True)


def test_mm_rlhf_rewardbench_image_and_video_rows(tmp_path):
    rows = [
        {"id": "7", "prompt": "Q", "chosen": "c", "rejected": "r", "chosen_reason": "why", "rejected_reason": None,
         "image": "mcq/7.jpg"},
        {"id": "7", "prompt": "Q", "chosen": "c2", "rejected": "r2", "video": "video/clip_7"},
    ]
    source = tmp_path / "bench.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    convert("mm_rlhf_rewardbench", source, tmp_path / "out.jsonl", media_root=tmp_path)
    first, second = read_output(tmp_path / "out.jsonl")
    assert first["image"] == str(tmp_path / "mcq/7.jpg") and first["chosen_reason"] == "why"
    assert first["rejected_reason"] == "" and "video" not in first
    assert second["video"] == str(tmp_path / "video/clip_7") and "image" not in second


@pytest.mark.parametrize(("benchmark", "row", "message"), [
    ("multimodal_rewardbench", {"ID": "1", "Text": "Q", "Image": "i", "Output1": "a", "Output2": "b",
                                "Better": "Output3", "Category": "vqa"}, "record 0: field 'Better'"),
    ("multimodal_rewardbench", {"ID": "1", "Text": "Q", "Image": "i", "Output1": "a", "Output2": "b",
                                "Better": "Output1"}, "record 0: missing field 'Category'"),
    ("vl_rewardbench", {"id": "1", "query": "Q", "image": "a.png", "response": ["a", "b"],
                        "human_ranking": [0, 0]}, "record 0: field 'human_ranking'"),
    ("vl_rewardbench", {"id": "1", "query": "Q", "response": ["a", "b"], "human_ranking": [0, 1]},
     "record 0: missing field 'image' \\(hub\\) or 'image_path'"),
    ("mm_rlhf_rewardbench", {"id": "1", "prompt": "Q", "chosen": "a", "rejected": "b"},
     "record 0: needs exactly one of 'image' and 'video'"),
])
def test_bad_records_name_the_record_and_field(tmp_path, benchmark, row, message):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(row) + "\n")
    with pytest.raises(ConversionError, match=message):
        convert(benchmark, source, tmp_path / "out.jsonl")
