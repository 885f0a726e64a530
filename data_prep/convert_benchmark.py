"""Convert a benchmark's released file to the eval JSONL.

python data_prep/convert_benchmark.py vl_rewardbench --input test.parquet --output data/vl_rewardbench.jsonl
python data_prep/convert_benchmark.py multimodal_rewardbench --input all_data.json --media-root DATA_DIR --output ...
python data_prep/convert_benchmark.py mm_rlhf_rewardbench --input mm_reward_bench.jsonl --media-root DIR --output ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from proxy_grm.evaluation.benchmarks import BENCHMARKS
from proxy_grm.evaluation.converters import ConversionError, convert


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=sorted(BENCHMARKS))
    parser.add_argument("--input", type=Path, required=True, help="released .jsonl, .json or .parquet file")
    parser.add_argument("--output", type=Path, required=True, help="eval JSONL to write")
    parser.add_argument("--media-root", type=Path, default=None,
                        help="folder that relative image/video paths in the input are relative to")
    parser.add_argument("--image-dir", type=Path, default=None,
                        help="VL-RewardBench: where embedded images are written (default: <output stem>_images/)")
    args = parser.parse_args()
    try:
        count = convert(args.benchmark, args.input, args.output, args.media_root, args.image_dir)
    except ConversionError as error:
        sys.exit(f"error: {error}")
    print(f"{BENCHMARKS[args.benchmark].title}: wrote {count} pairs to {args.output}")


if __name__ == "__main__":
    main()
