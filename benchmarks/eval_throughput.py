"""Eval throughput: the release's one-at-a-time loop vs. our vLLM runner vs. the bare engine.

Runs in the environment that has vLLM (it also has transformers):

    .venv-vllm/bin/python -m benchmarks.eval_throughput [--model-path DIR] [--pairs 64] [--max-new-tokens 64]

(a) the release's loop: one HF ``generate`` per pair, sequentially;
(b) our runner (``proxy_grm.evaluation.runner.run``) with the vLLM backend, answers file included;
(c) vLLM's offline ``LLM.generate`` on the same prompts, prepared beforehand.
Prints pairs/s for each and the ratios (a)/(b) in time (speed-up) and (b)/(c) (runner overhead).
Without ``--model-path`` it builds the tiny random Qwen2.5-VL, whose outputs run to the token limit.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from PIL import Image

from proxy_grm.supervise import supervise

from benchmarks.common import benchmark_model, use_local_vllm


def synthetic_pairs(root: Path, count: int) -> Path:
    """``count`` image pairs in the eval JSONL, with distinct small images."""
    rows = []
    for i in range(count):
        image = root / "images" / f"{i}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (112, 112), ((37 * i) % 256, (91 * i) % 256, 120)).save(image)
        rows.append({"id": f"pair_{i}", "prompt": f"Describe picture {i}.", "chosen": f"A coloured square {i}.",
                     "rejected": f"A photo of a cat {i}.", "image": str(image),
                     "chosen_reason": "", "rejected_reason": ""})
    path = root / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", type=Path, default=None)
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    supervise()  # the engine's processes must not outlive this one, even after a SIGKILL
    use_local_vllm()

    from vllm import SamplingParams

    from proxy_grm.evaluation.benchmarks import VL_REWARDBENCH
    from proxy_grm.evaluation.runner import RunConfig, load_questions, pair_messages, run
    from proxy_grm.pairs import is_reversed
    from proxy_grm.generation import TransformersGenerator, VllmGenerator, prepare_prompt

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_path = benchmark_model(args.model_path, root)
        questions_file = synthetic_pairs(root, args.pairs)
        config = RunConfig(VL_REWARDBENCH, questions_file, root / "answers.jsonl", batch_size=args.pairs,
                           max_new_tokens=args.max_new_tokens)
        questions = load_questions(questions_file)
        conversations = [pair_messages(q, is_reversed(config.seed, str(i)), config) for i, q in enumerate(questions)]

        hf = TransformersGenerator(model_path, dtype=args.dtype)
        start = time.perf_counter()
        for messages in conversations:
            hf.generate([messages], args.max_new_tokens)
        release_s = time.perf_counter() - start
        del hf

        generator = VllmGenerator(model_path, dtype=args.dtype)
        generator.generate(conversations[:2], args.max_new_tokens)  # warm-up
        start = time.perf_counter()
        run(config, generator, questions, list(range(len(questions))))
        ours_s = time.perf_counter() - start

        prepared = [prepare_prompt(generator.processor, m) for m in conversations]
        inputs = [{"prompt": p.text, "multi_modal_data": {"image": p.images}} for p in prepared]
        start = time.perf_counter()
        generator.llm.generate(inputs, SamplingParams(temperature=0.0, max_tokens=args.max_new_tokens),
                               use_tqdm=False)
        engine_s = time.perf_counter() - start

    n = args.pairs
    print(f"{n} pairs, max_new_tokens {args.max_new_tokens}, model {model_path}")
    print(f"(a) release loop (HF generate, one at a time): {release_s:8.2f} s  {n / release_s:8.2f} pairs/s")
    print(f"(b) our runner, vLLM backend:                  {ours_s:8.2f} s  {n / ours_s:8.2f} pairs/s")
    print(f"(c) vLLM offline batch, same prompts:          {engine_s:8.2f} s  {n / engine_s:8.2f} pairs/s")
    print(f"(a)/(b) = {release_s / ours_s:.2f}  (speed-up over the release; target >= 5)")
    print(f"(b)/(c) = {ours_s / engine_s:.2f}  (runner overhead over the bare engine; target <= 1.2)")


if __name__ == "__main__":
    main()
