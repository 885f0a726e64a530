"""What the tiny GRM (or proxy) learns of the toy colour task, step by step: a transformers loop with probes.

The demo's SFT runs ms-swift for a few hundred steps; this loop trains the same tiny Qwen2.5-VL on the same
targets (the stub teacher's GRM critiques, ``teacher_stub.grm_answer``, on fresh toy pairs of every colour but
the teacher's blind spot, in random order) with the loss on the critique only, and every ``--eval-every``
steps reads, by teacher forcing on held-out pairs in both orders, the share of the critique's decisive tokens
it predicts: the rubric's colour (the evidence from the image), the colours of Response 1 and Response 2 as the
eval restates them (copied from the prompt), the colour it judges by (the rubric's, restated), and the verdict
digit in the eval (the number written after that colour's first copy) and in ``<answer>``; and, writing the
whole critique itself (greedy), the share of right verdicts (``generated_verdict``: the figure the held-out
eval reports).
``--target proxy`` trains the proxy on the teacher's rubrics instead and reads its verdicts with the teacher's,
no and a counterfactual rubric (``PROXY_RUBRICS``). ``--instruction short`` replaces the release's GRM
instruction (~400 tokens) with one line, the pair template unchanged, to see what the instruction's length costs.

    python -m proxy_grm.toy.probe --out outputs/probe --steps 1200 [--target proxy] [--instruction short]
    python -m proxy_grm.toy.probe --checkpoint outputs/demo/checkpoints/grm_sft/v0-.../checkpoint-100
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from proxy_grm import prompts
from proxy_grm.evaluation.rubric_transfer import NEUTRAL_RUBRIC
from proxy_grm.generation import prepare_prompt
from proxy_grm.messages import chat_messages
from proxy_grm.parsing import parse_verdict
from proxy_grm.toy.colour_task import ColourPair, in_blind_spot, make_pair, seen_colour
from proxy_grm.toy.teacher_stub import grm_answer, proxy_answer, stub_rubric

SHORT_INSTRUCTION = "Judge which response answers the question about the image better."
# The decisive tokens of a critique: the first token of each regex's group.
PROBES = {name: re.compile(pattern) for name, pattern in {
    "rubric_colour": r"the image is mostly (\w)",
    "response_1_colour": r"Colours: (\w)",
    "response_2_colour": r"Colours: \w+ 1, (\w)",
    "judged_colour": r"\. The \w+: (\w)",
    "eval_verdict": r"\. The \w+: \w+ (\d)",
    "answer": r"<answer>(\d)",
}.items()}
# The proxy's held-out rubrics (as the demo's held-out stage builds them): the stub teacher's, one that names
# no colour, and a counterfactual one naming the wrong response's colour. A proxy that judges by the rubric
# is right with the first and wrong with the last.
PROXY_RUBRICS: dict[str, Callable[[ColourPair, Image.Image], str]] = {
    "teacher": lambda pair, image: stub_rubric(seen_colour(image)),
    "none": lambda pair, image: NEUTRAL_RUBRIC,
    "counterfactual": lambda pair, image: stub_rubric(pair.distractor),
}


@dataclass(frozen=True)
class Example:
    inputs: dict[str, Any]  # the processor's tensors: prompt and critique
    prompt_tokens: int
    probes: dict[str, int]  # probe name -> position of its token
    verdict: int  # the better response as shown, 1 or 2 (the rule's label, not the critique's)


def user_text(question: str, response_1: str, response_2: str, instruction: str) -> str:
    if instruction == "release":
        return prompts.grm_prompt(question, response_1, response_2)
    pair = prompts.GRM_PAIR_TEMPLATE.format(question=question, response_1=response_1, response_2=response_2)
    return f"{SHORT_INSTRUCTION}\n{pair}"


def make_example(processor: Any, key: int, rng: random.Random, swap: bool, instruction: str,
                 rubric: str | None = None) -> Example:
    """One toy pair, shown in order or swapped, with the stub teacher's critique as the target: the GRM's
    (``rubric`` None) or, with the rubric ``PROXY_RUBRICS[rubric]`` in the prompt, the proxy's."""
    pair = make_pair(rng, key)
    image = Image.open(io.BytesIO(pair.png)).convert("RGB")
    first, second = (pair.rejected, pair.chosen) if swap else (pair.chosen, pair.rejected)
    if rubric is None:
        text, critique = user_text(pair.question, first, second, instruction), grm_answer(first, second, image)
    else:
        shown_rubric = PROXY_RUBRICS[rubric](pair, image)
        text = prompts.proxy_prompt(pair.question, first, second, shown_rubric)
        critique = proxy_answer(first, second, shown_rubric, image)
    # The prompt as every stage builds it: chat template, image in the shared pixel budget.
    prompt = prepare_prompt(processor, chat_messages(text, image))
    inputs = processor(text=[prompt.text + critique + "<|im_end|>"], images=prompt.images, return_tensors="pt")
    prompt_tokens = len(processor(text=[prompt.text], images=prompt.images, return_tensors="pt")["input_ids"][0])
    tokenizer = processor.tokenizer
    critique_ids = inputs["input_ids"][0, prompt_tokens:].tolist()
    probes = {}
    for name, pattern in PROBES.items():
        if match := pattern.search(critique):
            end = len(critique[:match.start(1)].rstrip())  # a word's token holds its leading space
            probes[name] = prompt_tokens + next(i for i in range(len(critique_ids) + 1)
                                                if len(tokenizer.decode(critique_ids[:i])) >= end)
    return Example(inputs, prompt_tokens, probes, 2 if swap else 1)


def critique_loss(model: Any, example: Example) -> Any:
    """Cross-entropy on the critique's tokens only (the LM head runs on those positions alone)."""
    import torch

    hidden = model.model(**example.inputs).last_hidden_state[0]
    targets = example.inputs["input_ids"][0, example.prompt_tokens:]
    logits = model.lm_head(hidden[example.prompt_tokens - 1:-1])
    return torch.nn.functional.cross_entropy(logits, targets)


def probe(model: Any, tokenizer: Any, examples: list[Example]) -> dict[str, float]:
    """Share of held-out examples whose decisive tokens the model predicts (teacher forcing, greedy)."""
    import torch

    hits = dict.fromkeys(examples[0].probes, 0)
    model.eval()
    with torch.no_grad():
        for example in examples:
            hidden = model.model(**example.inputs).last_hidden_state[0]
            for name, position in example.probes.items():
                predicted = model.lm_head(hidden[position - 1]).argmax()
                hits[name] += int(predicted == example.inputs["input_ids"][0, position])
    model.train()
    return {name: round(count / len(examples), 3) for name, count in hits.items()}


def generated_accuracy(model: Any, tokenizer: Any, examples: list[Example]) -> float:
    """Share of held-out examples whose verdict is right when the model writes the whole critique itself
    (greedy, as the held-out eval decodes): the figure that counts, since each teacher-forced digit
    follows from the match words written before it."""
    import torch

    right = 0
    model.eval()
    with torch.no_grad():
        for example in examples:
            full = example.inputs["input_ids"].shape[1]
            prompt = {key: value[:, :example.prompt_tokens] if value.shape == (1, full) else value
                      for key, value in example.inputs.items()}
            written = model.generate(**prompt, max_new_tokens=full - example.prompt_tokens + 8, do_sample=False)
            right += parse_verdict(tokenizer.decode(written[0, example.prompt_tokens:], skip_special_tokens=True)) \
                == example.verdict
    model.train()
    return round(right / len(examples), 3)


def heldout_examples(processor: Any, pairs: int, seed: int, instruction: str = "release",
                     rubric: str | None = None) -> list[Example]:
    """``pairs`` toy pairs no training step draws (keys from 9,000,000), none of the teacher's blind spot,
    each in both orders."""
    keys = [key for key in range(9_000_000, 9_000_000 + 2 * pairs) if not in_blind_spot(key)][:pairs]
    return [make_example(processor, key, random.Random(f"{seed}-{key}"), swap, instruction, rubric)
            for key in keys for swap in (0, 1)]


def probe_checkpoint(checkpoint: str | Path, pairs: int = 32, seed: int = 0) -> dict[str, float]:
    """The teacher-forced probes of a trained GRM checkpoint (``swift sft``'s, say) on held-out pairs: what it
    has learned of each decisive token, read without letting an earlier wrong token decide the later ones."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(checkpoint)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float32)
    return probe(model, processor.tokenizer, heldout_examples(processor, pairs, seed))


def run(out: Path, steps: int, instruction: str, lr: float, batch: int, eval_every: int, heldout: int,
        seed: int = 0, target: str = "grm", layers: int = 2) -> list[dict[str, float]]:
    """Train the GRM or (``target`` "proxy", on the teacher's rubrics) the proxy and probe it; the log (one
    JSON line per probe) goes to ``out/probe.jsonl`` and is returned."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from proxy_grm.toy.tiny_model import make_tiny_model

    torch.manual_seed(seed)
    model_dir = out / "tiny-model"
    if not (model_dir / "config.json").exists():
        make_tiny_model(model_dir, seed=seed, layers=layers)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).train()
    train_keys = [key for key in range(4000) if not in_blind_spot(key)]
    train_rubric = None if target == "grm" else "teacher"
    held = {kind: heldout_examples(processor, heldout, seed, instruction, kind)
            for kind in ([None] if target == "grm" else PROXY_RUBRICS)}
    # Fused AdamW: the same update in one kernel; the tied 151,936-row embedding makes the unfused step
    # ~5x slower on CPU (0.36 s against 0.07 s per step, measured).
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, fused=True)
    rng, log, losses = random.Random(seed), [], []
    with (out / "probe.jsonl").open("w") as handle:
        for step in range(1, steps + 1):
            for group in optimizer.param_groups:
                group["lr"] = lr * min(1.0, step / 50)  # 50 warm-up steps
            optimizer.zero_grad()
            for _ in range(batch):
                example = make_example(processor, rng.choice(train_keys), rng, rng.random() < 0.5, instruction,
                                       train_rubric)
                loss = critique_loss(model, example) / batch
                loss.backward()
                losses.append(loss.item() * batch)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if step % eval_every == 0 or step == steps:
                recent = losses[-eval_every * batch:]
                line = {"step": step, "loss": round(sum(recent) / len(recent), 4),
                        **probe(model, processor.tokenizer, next(iter(held.values())))}
                for kind, examples in held.items():
                    line["generated_verdict" + (f"_{kind}" if kind else "")] = generated_accuracy(
                        model, processor.tokenizer, examples)
                handle.write(json.dumps(line) + "\n")
                handle.flush()
                print(json.dumps(line), flush=True)
                log.append(line)
    return log


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for the tiny model and probe.jsonl")
    parser.add_argument("--checkpoint", type=Path,
                        help="probe this trained GRM checkpoint on the held-out pairs instead of training one")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--target", choices=("grm", "proxy"), default="grm",
                        help="the GRM's critique, or the proxy's judgement by the teacher's rubric")
    parser.add_argument("--instruction", choices=("release", "short"), default="release",
                        help="the GRM's instruction (the proxy's prompt is the release's)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=4, help="fresh toy pairs per optimizer step")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--heldout", type=int, default=32, help="held-out pairs, each probed in both orders")
    parser.add_argument("--seed", type=int, default=0, help="model weights, training pairs and their order")
    parser.add_argument("--layers", type=int, default=2, help="text decoder layers of the tiny model (the demo's: 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.checkpoint:
        print(json.dumps(probe_checkpoint(args.checkpoint, args.heldout, args.seed)))
        return
    if args.out is None:
        parser.error("--out is required unless --checkpoint is given")
    args.out.mkdir(parents=True, exist_ok=True)
    run(args.out, args.steps, args.instruction, args.lr, args.batch, args.eval_every, args.heldout, args.seed,
        args.target, args.layers)


if __name__ == "__main__":
    main()
