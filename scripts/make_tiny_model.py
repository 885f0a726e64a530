"""Build the tiny random Qwen2.5-VL used by tests, the demo and GPU smoke runs.

    python scripts/make_tiny_model.py --output outputs/tiny-qwen2.5-vl
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from proxy_grm.toy.tiny_model import make_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True, help="folder to write the checkpoint into")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    args = parser.parse_args()
    start = time.perf_counter()
    make_tiny_model(args.output, seed=args.seed)
    print(f"tiny Qwen2.5-VL written to {args.output} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
