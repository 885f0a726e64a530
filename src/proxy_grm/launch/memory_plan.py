"""Memory plan for one GPU that holds the GRPO policy (verl) and the proxy service (vLLM) together.

    python -m proxy_grm.launch.memory_plan --policy 7b --proxy 3b --gpu-gb 80 [--lora-rank 64] [--offload]
    python -m proxy_grm.launch.memory_plan --policy ckpt/proxy_grm_sft --proxy ckpt/proxy_sft --gpu-gb 48

The layout: verl's trainer on the GPU with its vLLM rollout at ``actor_rollout_ref.rollout.gpu_memory_utilization``
= X, and ``proxy/proxy.py --backend vllm --gpu-memory-utilization Y`` started on the same GPU (PROXY_MODE=service,
PROXY_URLS on localhost). These are estimates from the models' shapes, not measurements: each formula is one
line below, with the verl 0.9.1 setting it follows (every key cited is in verl's
``trainer/config/_generated_ppo_trainer.yaml``).

- A vLLM engine claims ``utilization x GPU`` (vLLM refuses to start when less is free) and holds in it its bf16
  weights, a working reserve (profiled activations, vision encoder, non-torch memory: ``ENGINE_RESERVE_GIB``)
  and the KV cache, which takes the rest and must hold at least one ``max_model_len`` sequence.
- verl's FSDP actor keeps its parameters in ``actor_rollout_ref.actor.fsdp_config.model_dtype`` (fp32 by default:
  the master copy; FSDP casts each layer to bf16 to compute), fp32 gradients while it trains (freed on leaving
  train mode, ``EngineTrainModeCtx``) and AdamW's two fp32 moments. With ``actor_rollout_ref.model.lora_rank`` > 0
  the base is frozen: gradients and moments exist for the adapter only.
- ``actor_rollout_ref.actor.fsdp_config.param_offload`` / ``optimizer_offload`` move parameters / optimizer state
  to the CPU outside train mode: it frees them during the rollout, not during the update, when verl loads them
  back (``workers/engine/fsdp/transformer_impl.py``, ``FSDPEngine.to``).
- The reference model (``actor_rollout_ref.actor.use_kl_loss``) is a separate forward-only copy unless LoRA is on
  (then verl runs the actor with the adapter disabled: ``ref_in_actor``, ``trainer/ppo/v1/trainer_base.py``).
  verl's FSDP engine keeps a forward-only model on the CPU (``CPUOffload``); it is counted on the GPU only when
  ``actor_rollout_ref.ref.fsdp_config.param_offload`` is False (then in its ``model_dtype``, fp32), to stay on
  the safe side.
- With ``actor_rollout_ref.rollout.free_cache_engine`` (the launcher sets it) the rollout engine sleeps during the
  update (weights and KV cache released, ``vllm_async_server.py``); the proxy engine never sleeps.

So the GPU holds, at its two peaks:
  rollout: trainer overhead + actor state not offloaded + X x GPU + Y x GPU
  update:  trainer overhead + actor weights, gradients, moments + activations + reference (if on GPU)
           + sleeping rollout engine + Y x GPU
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

GIB = 2**30
BF16, FP32 = 2, 4
TRAINER_OVERHEAD_GIB = 2.0  # the trainer process: CUDA context, NCCL buffers, allocator fragmentation
ENGINE_RESERVE_GIB = 2.0  # inside a vLLM engine's share: profiled activations, vision encoder, non-torch memory
SLEEPING_ENGINE_GIB = 1.0  # a sleeping rollout engine still holds its CUDA context
MARGIN_GIB = 1.0  # a plan with less headroom than this does not fit: estimates are not measurements
# What an engine share sized by ``auto_utilization`` must hold in its KV cache: a whole GRPO group (n=8) of
# full-length rollouts, and four full-length proxy critiques at once. vLLM only needs one to start.
ROLLOUT_KV_SEQUENCES, PROXY_KV_SEQUENCES = 8, 4
DTYPE_BYTES = {"fp32": FP32, "float32": FP32, "bf16": BF16, "bfloat16": BF16, "fp16": BF16, "float16": BF16}


@dataclass(frozen=True)
class VisionShape:
    """A Qwen2.5-VL vision tower (``vision_config``): ViT blocks with a gated MLP, then a 2x2 patch merger."""

    hidden: int = 1280
    depth: int = 32
    intermediate: int = 3420
    out_hidden: int = 2048
    patch: int = 14
    temporal_patch: int = 2
    merge: int = 2
    channels: int = 3

    @property
    def params(self) -> int:
        h = self.hidden
        patch_embed = self.channels * self.temporal_patch * self.patch**2 * h
        block = (h * 3 * h + 3 * h) + (h * h + h) + 3 * h * self.intermediate + 2 * self.intermediate + h + 2 * h
        merged = h * self.merge**2
        merger = h + merged * merged + merged + merged * self.out_hidden + self.out_hidden
        return patch_embed + self.depth * block + merger

    @property
    def linear_dims(self) -> list[tuple[int, int]]:
        """(in, out) of every linear layer LoRA's ``all-linear`` wraps in the tower."""
        h, i = self.hidden, self.intermediate
        merged = h * self.merge**2
        block = [(h, 3 * h), (h, h), (h, i), (h, i), (i, h)]
        return block * self.depth + [(merged, merged), (merged, self.out_hidden)]


@dataclass(frozen=True)
class ModelShape:
    """What the plan needs of a Qwen2-style decoder (and its vision tower), read from ``config.json``."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied_embeddings: bool
    vision: VisionShape | None = None
    total_params: int | None = None  # from the safetensors index, when there is one

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def decoder_linear_dims(self) -> list[tuple[int, int]]:
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)] * self.layers

    @property
    def params(self) -> int:
        """Parameters: the safetensors index's count when known, else embeddings + layers + vision tower.

        Per layer: q/k/v projections with bias (Qwen2), o projection, gated MLP, two RMSNorms.
        """
        if self.total_params is not None:
            return self.total_params
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        linears = sum(i * o for i, o in self.decoder_linear_dims)
        per_layer_extra = (q + 2 * kv) + 2 * self.hidden  # qkv bias, two norms
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        vision = self.vision.params if self.vision else 0
        return embeddings + linears + self.layers * per_layer_extra + self.hidden + vision

    def lora_params(self, rank: int) -> int:
        """Adapter parameters for ``target_modules: all-linear`` (verl's default): r x (in + out) per linear."""
        dims = self.decoder_linear_dims + (self.vision.linear_dims if self.vision else [])
        return rank * sum(i + o for i, o in dims)

    @property
    def kv_bytes_per_token(self) -> int:
        """bf16 K and V for every layer's KV heads."""
        return 2 * self.layers * self.kv_heads * self.head_dim * BF16

    def activation_bytes(self, tokens: int) -> int:
        """Training activations with gradient checkpointing (rough): each layer's bf16 input kept, plus one layer
        recomputed with its backward (attention and MLP intermediates, ~8 x hidden + 4 x intermediate per token).
        Log-probs come from verl's fused kernels (``use_fused_kernels``, the launcher's), so no full vocab logits."""
        return tokens * BF16 * (self.layers * self.hidden + 8 * self.hidden + 4 * self.intermediate)


# The published config.json numbers of the two base models (no hub access here: typed in, not downloaded).
# Qwen2.5-VL-3B-Instruct ties its embeddings; 7B does not. Both have the same 32-block, 1280-wide vision tower.
KNOWN_SHAPES = {
    "3b": ModelShape("Qwen2.5-VL-3B-Instruct (published config)", hidden=2048, layers=36, heads=16, kv_heads=2,
                     intermediate=11008, vocab=151936, tied_embeddings=True, vision=VisionShape(out_hidden=2048)),
    "7b": ModelShape("Qwen2.5-VL-7B-Instruct (published config)", hidden=3584, layers=28, heads=28, kv_heads=4,
                     intermediate=18944, vocab=152064, tied_embeddings=False, vision=VisionShape(out_hidden=3584)),
}


def shape_from_config(config: dict[str, Any], name: str = "config.json", total_params: int | None = None) -> ModelShape:
    """A ``ModelShape`` from a Hugging Face ``config.json`` (text keys at the top or under ``text_config``).

    >>> shape = shape_from_config({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    ...                            "intermediate_size": 128, "vocab_size": 1000})
    >>> (shape.kv_heads, shape.head_dim, shape.tied_embeddings, shape.vision)
    (4, 16, False, None)
    """
    text = config.get("text_config") or config

    def key(name: str, default: Any = None) -> Any:
        value = text.get(name, config.get(name, default))
        if value is None:
            raise ValueError(f"config.json has no {name}")
        return value

    vision = None
    if vc := config.get("vision_config"):
        vision = VisionShape(hidden=vc.get("hidden_size", 1280), depth=vc.get("depth", 32),
                             intermediate=vc.get("intermediate_size", 3420),
                             out_hidden=vc.get("out_hidden_size", key("hidden_size")),
                             patch=vc.get("patch_size", 14), temporal_patch=vc.get("temporal_patch_size", 2),
                             merge=vc.get("spatial_merge_size", 2), channels=vc.get("in_chans", 3))
    return ModelShape(name, hidden=key("hidden_size"), layers=key("num_hidden_layers"),
                      heads=key("num_attention_heads"),
                      kv_heads=key("num_key_value_heads", key("num_attention_heads")),
                      intermediate=key("intermediate_size"), vocab=key("vocab_size"),
                      tied_embeddings=bool(key("tie_word_embeddings", False)), vision=vision,
                      total_params=total_params)


def load_shape(spec: str) -> ModelShape:
    """``3b`` / ``7b`` (the table above, also for a hub id such as ``Qwen/Qwen2.5-VL-7B-Instruct``) or a checkpoint
    directory (its ``config.json``; the parameter count from ``model.safetensors.index.json``'s
    ``metadata.total_size`` when present, in the config's dtype).

    >>> load_shape("Qwen/Qwen2.5-VL-7B-Instruct") is KNOWN_SHAPES["7b"]
    True
    """
    if spec.lower() in KNOWN_SHAPES:
        return KNOWN_SHAPES[spec.lower()]
    folder = Path(spec)
    if not folder.exists():  # a hub id of a base model verl would download
        known = [shape for key, shape in KNOWN_SHAPES.items() if f"qwen2.5-vl-{key}" in spec.lower()]
        if known:
            return known[0]
    if not (folder / "config.json").is_file():
        raise ValueError(f"{spec}: neither {' nor '.join(KNOWN_SHAPES)} nor a directory with config.json")
    config = json.loads((folder / "config.json").read_text())
    total_params = None
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        total_size = json.loads(index.read_text()).get("metadata", {}).get("total_size")
        dtype = (config.get("text_config") or {}).get("torch_dtype") or config.get("torch_dtype") or config.get(
            "dtype") or "bfloat16"
        if total_size:
            total_params = int(total_size) // DTYPE_BYTES.get(str(dtype), BF16)
    return shape_from_config(config, name=str(folder), total_params=total_params)


@dataclass(frozen=True)
class Layout:
    """One GPU: verl's actor and rollout plus the proxy service.

    Defaults: the one-GPU recipe (docs/grpo.md, "One GPU").
    """

    gpu_gib: float
    rollout_utilization: float | None = None  # actor_rollout_ref.rollout.gpu_memory_utilization; None: auto
    proxy_utilization: float | None = None  # proxy/proxy.py --gpu-memory-utilization; None: auto
    lora_rank: int = 0  # actor_rollout_ref.model.lora_rank (LORA_RANK)
    param_offload: bool = False  # actor_rollout_ref.actor.fsdp_config.param_offload (ACTOR_OFFLOAD)
    optimizer_offload: bool = False  # actor_rollout_ref.actor.fsdp_config.optimizer_offload (ACTOR_OFFLOAD)
    actor_dtype: str = "fp32"  # actor_rollout_ref.actor.fsdp_config.model_dtype
    use_kl_loss: bool = True  # actor_rollout_ref.actor.use_kl_loss (the launcher's)
    ref_param_offload: bool = True  # actor_rollout_ref.ref.fsdp_config.param_offload (the launcher's)
    train_tokens: int = 12288  # tokens per micro-batch: ppo_micro_batch_size_per_gpu x (prompt + response)
    rollout_max_model_len: int = 12288  # actor_rollout_ref.rollout.max_model_len (prompt + response)
    proxy_max_model_len: int = 24576  # proxy/proxy.py --max-model-len: 8k prompt + its 16,384-token critique cap


@dataclass(frozen=True)
class Plan:
    layout: Layout  # with the engine shares resolved
    rows: list[tuple[str, float, str]]  # component, GiB, when it is on the GPU
    rollout_peak_gib: float
    update_peak_gib: float
    gpu_gib: float
    problems: list[str]

    @property
    def peak_gib(self) -> float:
        return max(self.rollout_peak_gib, self.update_peak_gib)

    @property
    def margin_gib(self) -> float:
        return self.gpu_gib - self.peak_gib

    @property
    def fits(self) -> bool:
        return not self.problems

    def verdict(self) -> str:
        if self.fits:
            return f"FITS: peak {self.peak_gib:.1f} of {self.gpu_gib:g} GiB, margin {self.margin_gib:.1f} GiB"
        return f"DOES NOT FIT ({self.gpu_gib:g} GiB): " + "; ".join(self.problems)

    def table(self) -> str:
        width = max(len(name) for name, _, _ in self.rows)
        lines = [f"{'component':<{width}}  {'GiB':>6}  on the GPU"]
        lines += [f"{name:<{width}}  {gib:6.1f}  {when}" for name, gib, when in self.rows]
        lines += [f"{'peak during the rollout':<{width}}  {self.rollout_peak_gib:6.1f}",
                  f"{'peak during the update':<{width}}  {self.update_peak_gib:6.1f}", self.verdict()]
        return "\n".join(lines)


def engine_kv_gib(shape: ModelShape, utilization: float, gpu_gib: float) -> float:
    """KV cache left in a vLLM engine's share after its bf16 weights and working reserve."""
    return utilization * gpu_gib - shape.params * BF16 / GIB - ENGINE_RESERVE_GIB


def auto_utilization(shape: ModelShape, gpu_gib: float, max_model_len: int, sequences: int) -> float:
    """The smallest engine share (to 0.01) that holds the weights, the reserve and ``sequences`` full sequences.

    >>> auto_utilization(KNOWN_SHAPES["3b"], 80, 12288, 8)
    0.16
    """
    need = shape.params * BF16 / GIB + ENGINE_RESERVE_GIB + sequences * max_model_len * shape.kv_bytes_per_token / GIB
    return min(0.95, math.ceil(100 * need / gpu_gib) / 100)


def plan(policy: ModelShape, proxy: ModelShape, layout: Layout) -> Plan:
    """The memory plan of ``layout`` for these two models.

    >>> p = plan(KNOWN_SHAPES["7b"], KNOWN_SHAPES["7b"], Layout(gpu_gib=24))
    >>> p.fits, p.problems[0].startswith("the rollout needs")
    (False, True)
    """
    g = layout.gpu_gib
    if layout.rollout_utilization is None:
        layout = replace(layout, rollout_utilization=auto_utilization(
            policy, g, layout.rollout_max_model_len, ROLLOUT_KV_SEQUENCES))
    if layout.proxy_utilization is None:
        layout = replace(layout, proxy_utilization=auto_utilization(
            proxy, g, layout.proxy_max_model_len, PROXY_KV_SEQUENCES))
    n = policy.params
    trained = policy.lora_params(layout.lora_rank) if layout.lora_rank > 0 else n
    weight_bytes = DTYPE_BYTES[layout.actor_dtype]
    weights = n * weight_bytes / GIB + (trained * FP32 / GIB if layout.lora_rank > 0 else 0.0)
    gradients = trained * FP32 / GIB
    moments = 2 * trained * FP32 / GIB
    activations = policy.activation_bytes(layout.train_tokens) / GIB
    ref_on_gpu = layout.use_kl_loss and layout.lora_rank == 0 and not layout.ref_param_offload
    reference = n * FP32 / GIB if ref_on_gpu else 0.0  # ref.fsdp_config.model_dtype: fp32 by default
    rollout_engine = layout.rollout_utilization * g
    proxy_engine = layout.proxy_utilization * g

    what = "LoRA adapter" if layout.lora_rank > 0 else "full model"
    weights_when = "update" if layout.param_offload else "always"
    moments_when = "update" if layout.optimizer_offload else "always"
    rows = [
        ("trainer process overhead", TRAINER_OVERHEAD_GIB, "always"),
        (f"policy weights ({layout.actor_dtype}{' + fp32 adapter' if layout.lora_rank > 0 else ''})", weights,
         weights_when),
        (f"gradients (fp32, {what})", gradients, "update"),
        (f"AdamW moments (2 x fp32, {what})", moments, moments_when),
        (f"activations ({layout.train_tokens} tokens, checkpointed)", activations, "update"),
        ("reference model (fp32)" + ("" if ref_on_gpu else ": on CPU" if layout.use_kl_loss and layout.lora_rank == 0
                                     else ": none (LoRA: the actor without adapter)" if layout.use_kl_loss
                                     else ": none (no KL)"), reference, "update"),
        (f"rollout vLLM share ({layout.rollout_utilization:g} x GPU)", rollout_engine, "rollout"),
        (f"  of which KV cache ({policy.kv_bytes_per_token // 1024} KiB/token)",
         engine_kv_gib(policy, layout.rollout_utilization, g), "rollout"),
        ("rollout engine asleep", SLEEPING_ENGINE_GIB, "update"),
        (f"proxy vLLM share ({layout.proxy_utilization:g} x GPU)", proxy_engine, "always"),
        (f"  of which KV cache ({proxy.kv_bytes_per_token // 1024} KiB/token)",
         engine_kv_gib(proxy, layout.proxy_utilization, g), "always"),
    ]
    rollout_peak = (TRAINER_OVERHEAD_GIB + (0.0 if layout.param_offload else weights)
                    + (0.0 if layout.optimizer_offload else moments) + rollout_engine + proxy_engine)
    update_peak = (TRAINER_OVERHEAD_GIB + weights + gradients + moments + activations + reference
                   + SLEEPING_ENGINE_GIB + proxy_engine)

    problems = []
    for phase, peak in (("the rollout", rollout_peak), ("the update", update_peak)):
        if peak > g - MARGIN_GIB:
            problems.append(f"{phase} needs {peak:.1f} GiB, {peak - g + MARGIN_GIB:.1f} over the card less a "
                            f"{MARGIN_GIB:g} GiB margin")
    for engine, shape, utilization, max_len in (
            ("rollout", policy, layout.rollout_utilization, layout.rollout_max_model_len),
            ("proxy", proxy, layout.proxy_utilization, layout.proxy_max_model_len)):
        kv = engine_kv_gib(shape, utilization, g)
        need = max_len * shape.kv_bytes_per_token / GIB
        if kv < need:
            problems.append(f"the {engine} engine's KV cache ({kv:.1f} GiB at {utilization:g} x {g:g} GiB) holds less "
                            f"than one {max_len}-token sequence ({need:.1f} GiB): raise its gpu_memory_utilization")
    return Plan(layout, rows, rollout_peak, update_peak, g, problems)


def layout_from_verl(config: Any, gpu_gib: float, proxy_utilization: float,
                     proxy_max_model_len: int = Layout.proxy_max_model_len) -> Layout:
    """The layout a composed verl config describes (every key read here is in verl 0.9.1's trainer yaml)."""
    arr = config.actor_rollout_ref
    actor, rollout = arr.actor, arr.rollout
    if actor.use_dynamic_bsz:
        tokens = int(actor.ppo_max_token_len_per_gpu)
    else:
        tokens = int(actor.ppo_micro_batch_size_per_gpu) * int(config.data.max_prompt_length
                                                                 + config.data.max_response_length)
    max_len = rollout.max_model_len or config.data.max_prompt_length + config.data.max_response_length
    return Layout(gpu_gib=gpu_gib, rollout_utilization=float(rollout.gpu_memory_utilization),
                  proxy_utilization=proxy_utilization, lora_rank=int(arr.model.lora_rank),
                  param_offload=bool(actor.fsdp_config.param_offload),
                  optimizer_offload=bool(actor.fsdp_config.optimizer_offload),
                  actor_dtype=str(actor.fsdp_config.model_dtype or "fp32"), use_kl_loss=bool(actor.use_kl_loss),
                  ref_param_offload=bool(arr.ref.fsdp_config.param_offload), train_tokens=tokens,
                  rollout_max_model_len=int(max_len), proxy_max_model_len=proxy_max_model_len)


def summary(policy_spec: str, proxy_spec: str, result: Plan) -> str:
    """One line of a comparison table (several --policy / --proxy / --gpu-gb values)."""
    layout = result.layout
    verdict = f"FITS, margin {result.margin_gib:.1f}" if result.fits else "DOES NOT FIT"
    return (f"| {policy_spec} | {proxy_spec} | {layout.gpu_gib:g} | {layout.rollout_utilization:g} | "
            f"{layout.proxy_utilization:g} | {result.rollout_peak_gib:.1f} | {result.update_peak_gib:.1f} | "
            f"{verdict} |")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", required=True, nargs="+",
                        help="3b, 7b or a checkpoint directory (its config.json); several: one line each")
    parser.add_argument("--proxy", required=True, nargs="+", help="3b, 7b or the Proxy-SFT checkpoint directory")
    parser.add_argument("--gpu-gb", type=float, required=True, nargs="+",
                        help="the card's memory in GiB as sold (24, 48, 80)")
    parser.add_argument("--lora-rank", type=int, default=0, help="actor_rollout_ref.model.lora_rank (LORA_RANK)")
    parser.add_argument("--offload", action="store_true",
                        help="actor param_offload and optimizer_offload (ACTOR_OFFLOAD=1)")
    parser.add_argument("--actor-dtype", choices=["fp32", "bf16"], default="fp32",
                        help="actor_rollout_ref.actor.fsdp_config.model_dtype (verl's default fp32)")
    parser.add_argument("--rollout-util", type=float, default=None,
                        help="actor_rollout_ref.rollout.gpu_memory_utilization (GPU_MEMORY_UTILIZATION); "
                             "default: the smallest share that holds a GRPO group of full-length rollouts")
    parser.add_argument("--proxy-util", type=float, default=None,
                        help="the proxy's --gpu-memory-utilization; default: the smallest share that holds "
                             f"{PROXY_KV_SEQUENCES} full-length critiques")
    parser.add_argument("--train-tokens", type=int, default=Layout.train_tokens,
                        help="tokens per training micro-batch (MICRO_BATCH_SIZE_PER_GPU x (prompt + response))")
    parser.add_argument("--rollout-max-model-len", type=int, default=Layout.rollout_max_model_len)
    parser.add_argument("--proxy-max-model-len", type=int, default=Layout.proxy_max_model_len)
    parser.add_argument("--no-kl", action="store_true", help="actor_rollout_ref.actor.use_kl_loss=False")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        shapes = {spec: load_shape(spec) for spec in [*args.policy, *args.proxy]}
    except ValueError as error:
        print(f"memory_plan: {error}", file=sys.stderr)
        return 2
    combinations = list(itertools.product(args.policy, args.proxy, args.gpu_gb))
    if len(combinations) > 1:
        print("| policy | proxy | GPU GiB | rollout util | proxy util | rollout peak | update peak | plan |")
        print("|---|---|---|---|---|---|---|---|")
    all_fit = True
    for policy_spec, proxy_spec, gpu_gib in combinations:
        layout = Layout(gpu_gib=gpu_gib, rollout_utilization=args.rollout_util, proxy_utilization=args.proxy_util,
                        lora_rank=args.lora_rank, param_offload=args.offload, optimizer_offload=args.offload,
                        actor_dtype=args.actor_dtype, use_kl_loss=not args.no_kl, train_tokens=args.train_tokens,
                        rollout_max_model_len=args.rollout_max_model_len,
                        proxy_max_model_len=args.proxy_max_model_len)
        policy, proxy = shapes[policy_spec], shapes[proxy_spec]
        result = plan(policy, proxy, layout)
        all_fit &= result.fits
        if len(combinations) > 1:
            print(summary(policy_spec, proxy_spec, result))
            continue
        print(f"policy {policy.name}: {policy.params / 1e9:.2f}B parameters; proxy {proxy.name}: "
              f"{proxy.params / 1e9:.2f}B")
        print(result.table())
    return 0 if all_fit else 1


if __name__ == "__main__":
    sys.exit(main())
