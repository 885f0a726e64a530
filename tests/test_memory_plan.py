"""The one-GPU memory plan: its arithmetic against hand-computed numbers, the config.json reader, the CLI, and
the preflight check that runs it (on CPU, with a given GPU size)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import REPO_ROOT
from test_verl_launch_config import verl_lora_rank_check  # noqa: F401  (a fixture)
from proxy_grm.launch import checks
from proxy_grm.launch.memory_plan import GIB, KNOWN_SHAPES, Layout, load_shape, main, plan

GRM_SCRIPT = REPO_ROOT / "scripts" / "rl" / "train_proxy_grm.sh"
LOCAL_PROXY = "http://127.0.0.1:8000"
# verl's validation of a LoRA rank, runnable without vLLM (tests/test_verl_launch_config.py)
pytestmark = pytest.mark.usefixtures("verl_lora_rank_check")

# Qwen2.5-VL-7B-Instruct's config.json, the keys the plan reads (as published).
QWEN25_VL_7B_CONFIG = {
    "hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
    "intermediate_size": 18944, "vocab_size": 152064, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "out_hidden_size": 3584,
                      "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_chans": 3},
}


def rows(result) -> dict[str, float]:
    return {name.split(" (")[0]: gib for name, gib, _ in result.rows}


@pytest.mark.parametrize("name, published", [("7b", 8.29e9), ("3b", 3.75e9)])
def test_parameter_counts_match_the_published_sizes(name: str, published: float) -> None:
    assert KNOWN_SHAPES[name].params == pytest.approx(published, rel=0.03)
    assert KNOWN_SHAPES[name].vision.params == pytest.approx(0.67e9, rel=0.03)


def test_kv_cache_per_token_by_hand() -> None:
    # K and V, 28 layers, 4 KV heads of 128, bf16
    assert KNOWN_SHAPES["7b"].kv_bytes_per_token == 2 * 28 * 4 * 128 * 2 == 56 * 1024
    assert KNOWN_SHAPES["3b"].kv_bytes_per_token == 2 * 36 * 2 * 128 * 2


def test_full_fine_tuning_keeps_16_bytes_per_parameter() -> None:
    result = plan(KNOWN_SHAPES["7b"], KNOWN_SHAPES["3b"], Layout(gpu_gib=80))
    n = KNOWN_SHAPES["7b"].params
    got = rows(result)
    assert (got["policy weights"], got["gradients"], got["AdamW moments"]) == pytest.approx(
        (4 * n / GIB, 4 * n / GIB, 8 * n / GIB))


def test_7b_policy_and_7b_proxy_do_not_fit_on_24_gb() -> None:
    result = plan(KNOWN_SHAPES["7b"], KNOWN_SHAPES["7b"], Layout(gpu_gib=24, lora_rank=64, actor_dtype="bf16",
                                                                  param_offload=True, optimizer_offload=True))
    assert not result.fits and "DOES NOT FIT (24 GiB)" in result.verdict()


def test_lora_trains_the_adapter_only() -> None:
    full = rows(plan(KNOWN_SHAPES["7b"], KNOWN_SHAPES["3b"], Layout(gpu_gib=80)))
    lora = rows(plan(KNOWN_SHAPES["7b"], KNOWN_SHAPES["3b"], Layout(gpu_gib=80, lora_rank=64)))
    adapter = KNOWN_SHAPES["7b"].lora_params(64)
    assert 0.15e9 < adapter < 0.25e9  # r x (in + out) over every linear layer, decoder and vision tower
    assert lora["AdamW moments"] == pytest.approx(8 * adapter / GIB)
    assert lora["AdamW moments"] < full["AdamW moments"] / 30
    assert lora["gradients"] == pytest.approx(4 * adapter / GIB)
    # the base stays (frozen, in model_dtype); the reference is the actor without its adapter
    assert lora["policy weights"] > full["policy weights"]
    assert lora["reference model"] == 0.0


def test_offload_frees_the_rollout_not_the_update() -> None:
    layout = Layout(gpu_gib=80, rollout_utilization=0.3, proxy_utilization=0.2)
    kept = plan(KNOWN_SHAPES["3b"], KNOWN_SHAPES["3b"], layout)
    offloaded = plan(KNOWN_SHAPES["3b"], KNOWN_SHAPES["3b"], Layout(**{**layout.__dict__, "param_offload": True,
                                                                      "optimizer_offload": True}))
    assert offloaded.update_peak_gib == kept.update_peak_gib
    assert kept.rollout_peak_gib - offloaded.rollout_peak_gib == pytest.approx(12 * KNOWN_SHAPES["3b"].params / GIB)


def test_an_engine_share_too_small_for_one_sequence_is_named() -> None:
    result = plan(KNOWN_SHAPES["3b"], KNOWN_SHAPES["3b"], Layout(gpu_gib=80, rollout_utilization=0.1,
                                                                  lora_rank=8))
    [problem] = result.problems
    assert problem.startswith("the rollout engine's KV cache") and "12288-token sequence" in problem


def test_config_json_and_safetensors_index_are_read(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(QWEN25_VL_7B_CONFIG))
    assert load_shape(str(tmp_path)).params == KNOWN_SHAPES["7b"].params
    nested = {"text_config": {k: v for k, v in QWEN25_VL_7B_CONFIG.items() if k != "vision_config"},
              "vision_config": QWEN25_VL_7B_CONFIG["vision_config"]}  # the transformers 5 layout
    (tmp_path / "config.json").write_text(json.dumps(nested))
    assert load_shape(str(tmp_path)).params == KNOWN_SHAPES["7b"].params
    index = {"metadata": {"total_size": 16_583_340_032}, "weight_map": {}}  # the 7B's bf16 bytes
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert load_shape(str(tmp_path)).params == 16_583_340_032 // 2
    with pytest.raises(ValueError, match="config.json"):
        load_shape(str(tmp_path / "missing"))


def test_cli_prints_the_table_and_exits_by_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--policy", "3b", "--proxy", "3b", "--gpu-gb", "80"]) == 0
    out = capsys.readouterr().out
    assert "AdamW moments" in out and "FITS: peak" in out
    assert main(["--policy", "7b", "--proxy", "7b", "--gpu-gb", "24"]) == 1
    assert "DOES NOT FIT" in capsys.readouterr().out
    assert main(["--policy", "3b", "7b", "--proxy", "3b", "--gpu-gb", "48", "80", "--lora-rank", "64"]) == 1
    assert len([line for line in capsys.readouterr().out.splitlines() if line.startswith("| 3b") or
                line.startswith("| 7b")]) == 4


def one_gpu_config(tmp_path: Path, **env: str):
    from test_verl_launch_config import REQUIRED, dry_run_overrides

    (tmp_path / "config.json").write_text(json.dumps(QWEN25_VL_7B_CONFIG))
    overrides = dry_run_overrides(GRM_SCRIPT, {**REQUIRED, "MODEL_PATH": str(tmp_path), "PROXY_URLS": LOCAL_PROXY,
                                               "N_GPUS_PER_NODE": "1", "ROLLOUT_TP": "1", **env})
    config, problems = checks.verl_problems(overrides)
    assert problems == []
    return config


def test_memory_check_fails_in_one_line_when_the_plan_does_not_fit(tmp_path: Path) -> None:
    config = one_gpu_config(tmp_path, GPU_MEMORY_UTILIZATION="0.3", MICRO_BATCH_SIZE_PER_GPU="1")
    [problem] = checks.check_memory_plan(config, "3b", gpu_gib=80)
    assert str(problem).startswith("memory: DOES NOT FIT (80 GiB): the rollout needs") and "\n" not in str(problem)
    assert "rollout gpu_memory_utilization 0.3" in problem.message
    lora = one_gpu_config(tmp_path, GPU_MEMORY_UTILIZATION="0.3", MICRO_BATCH_SIZE_PER_GPU="1", LORA_RANK="64")
    assert checks.check_memory_plan(lora, "3b", gpu_gib=80, proxy_utilization=0.15) == []
    assert "its checkpoint is unknown" in checks.check_memory_plan(lora, None, gpu_gib=80)[0].message


def test_memory_check_runs_only_for_one_gpu_with_a_local_proxy(tmp_path: Path, monkeypatch) -> None:
    from test_verl_launch_config import REQUIRED, dry_run_overrides

    from proxy_grm.launch.preflight import rl_checks

    monkeypatch.setattr(checks, "gpu_memory_gib", lambda: 80.0)
    monkeypatch.setenv("PROXY_MODEL_PATH", "3b")
    monkeypatch.setenv("PROXY_GPU_MEMORY_UTILIZATION", "0.15")
    (tmp_path / "config.json").write_text(json.dumps(QWEN25_VL_7B_CONFIG))
    base = {**REQUIRED, "MODEL_PATH": str(tmp_path), "N_GPUS_PER_NODE": "1", "ROLLOUT_TP": "1",
            "GPU_MEMORY_UTILIZATION": "0.3", "MICRO_BATCH_SIZE_PER_GPU": "1"}

    def selected(**env: str) -> dict:
        return dict(rl_checks(REPO_ROOT, dry_run_overrides(GRM_SCRIPT, {**base, **env}), 0, None))

    local = selected(PROXY_URLS=LOCAL_PROXY, LORA_RANK="64")
    assert local["memory"]() == []
    assert "memory" in selected(PROXY_URLS=LOCAL_PROXY) and selected(PROXY_URLS=LOCAL_PROXY)["memory"]()
    assert "memory" not in selected(PROXY_URLS="http://10.0.0.7:8000")
    assert "memory" not in selected(PROXY_URLS=LOCAL_PROXY, N_GPUS_PER_NODE="2")
    monkeypatch.setattr(checks, "gpu_memory_gib", lambda: None)
    assert "memory" not in selected(PROXY_URLS=LOCAL_PROXY)


@pytest.mark.parametrize("flags", [[], ["--lora-rank", "64", "--offload"],
                                   ["--lora-rank", "64", "--offload", "--actor-dtype", "bf16"]])
def test_the_docs_tables_are_the_clis_output(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """docs/gpu-memory.md's grids are what the plan prints today: a change to a formula fails here until the
    page is regenerated with the command it names."""
    main(["--policy", "3b", "7b", "--proxy", "3b", "7b", "--gpu-gb", "24", "48", "80", *flags])
    table = capsys.readouterr().out.strip()
    assert table.startswith("| policy | proxy |") and table in (REPO_ROOT / "docs" / "gpu-memory.md").read_text()
