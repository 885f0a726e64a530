"""The GPU preflight on a CPU machine: every check that needs no GPU passes or fails as it should,
and the checks that need one fail with one line each, never a traceback."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from helpers import REPO_ROOT
from proxy_grm.launch import checks
from proxy_grm.launch.preflight import CHECK_ORDER, in_order, sft_checks
from proxy_grm.launch.preflight import main as preflight_main
from proxy_grm.proxy_contract import route_url
from proxy_grm.toy.servers import ServerProcess, free_port

GRM_SCRIPT = REPO_ROOT / "scripts" / "rl" / "train_proxy_grm.sh"


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_flash_attn_direct_url_counts_as_its_version(tmp_path: Path) -> None:
    node = {"python_version": "3.12", "platform_machine": "x86_64"}
    pins = {r.name: str(r.specifier) for r in checks.pinned_requirements(REPO_ROOT / "requirements_rl.txt", node)}
    assert pins["flash-attn"] == "==2.8.3" and pins["vllm"] == "==0.24.0" and pins["torch"] == "==2.11.0"


def test_versions_pass_on_the_installed_pin_and_name_each_mismatch(tmp_path: Path) -> None:
    from importlib.metadata import version

    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"pytest=={version('pytest')}\nhttpx>=0.1\n-e .\n")
    assert checks.check_versions(requirements) == []
    requirements.write_text("pytest==0.0.1\nno-such-package-here==1.0\n")
    problems = [str(p) for p in checks.check_versions(requirements)]
    assert problems[0].startswith(f"versions: pytest {version('pytest')} is installed, requirements.txt pins 0.0.1")
    assert "no-such-package-here is not installed" in problems[1]


def test_a_cpu_node_fails_the_cuda_check_in_one_line() -> None:
    assert [p.check for p in checks.check_cuda(1)] == ["cuda"]


def test_trainer_imports_name_a_verl_without_transfer_queue(monkeypatch) -> None:
    assert checks.check_trainer_imports() == []
    monkeypatch.delitem(sys.modules, "proxy_grm.launch.verl_trainer", raising=False)
    monkeypatch.setitem(sys.modules, "transfer_queue", None)  # as after `pip install verl` without its extras
    [problem] = checks.check_trainer_imports()
    assert problem.check == "trainer" and "transfer_queue" in problem.message
    assert "pip install -r requirements_rl.txt" in problem.message


def test_driver_table() -> None:
    from packaging.version import Version

    assert checks.driver_problem("13.0", Version("580.82.07")) is None
    assert "older than 580" in checks.driver_problem("13.0", Version("575.57.08"))
    assert checks.driver_problem("12.4", Version("535.104.05")) is None


@pytest.mark.parametrize("gpus, ok", [(8, True), (4, True), (3, False), (6, False)])
def test_batch_sizes_are_checked_by_verl_for_the_gpu_count(gpus: int, ok: bool) -> None:
    from test_verl_launch_config import PROXIES, REQUIRED, dry_run_overrides

    overrides = dry_run_overrides(GRM_SCRIPT, {**REQUIRED, "PROXY_URLS": PROXIES, "N_GPUS_PER_NODE": str(gpus)})
    _, problems = checks.verl_problems(overrides)
    assert (problems == []) is ok, problems
    if not ok:
        assert problems[0].message.startswith(f"verl rejects the sizes for {gpus} GPU(s)")


@pytest.mark.parametrize("extra, problem", [
    ([], None),
    (["reward.reward_model.enable_resource_pool=False"], "(colocated): verl 0.9.1 then scores with prompts"),
    (["reward.reward_model.rollout.free_cache_engine=True"], "would sleep at start-up and never wake"),
    (["~reward.reward_model.rollout.engine_kwargs.vllm.override_generation_config"], "decode with verl's overrides"),
])
def test_proxy_pool_settings_are_checked(tmp_path: Path, extra: list[str], problem: str | None) -> None:
    from test_verl_launch_config import POOL, dry_run_overrides

    (tmp_path / "config.json").write_text("{}")
    config, _ = checks.verl_problems(dry_run_overrides(GRM_SCRIPT, {**POOL, "PROXY_MODEL_PATH": str(tmp_path)},
                                                       *extra))
    found = [p.message for p in checks.check_proxy_pool(config.reward.reward_model)]
    assert found == [] if problem is None else len(found) == 1 and problem in found[0], found
    config.reward.reward_model.model_path = str(tmp_path / "missing")
    assert "reward.reward_model.model_path" in checks.check_proxy_pool(config.reward.reward_model)[0].message


@pytest.mark.parametrize("env, ok", [
    ({}, False), ({"SWANLAB_API_KEY": "k"}, True), ({"SWANLAB_MODE": "local"}, True),
])
def test_swanlab_needs_credentials_in_cloud_mode(env: dict[str, str], ok: bool, monkeypatch, tmp_path: Path) -> None:
    for name in ("SWANLAB_API_KEY", "SWANLAB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SWANLAB_SAVE_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert (checks.check_logger(["console", "swanlab"]) == []) is ok


def test_wandb_needs_credentials_unless_offline(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_MODE", "online")
    assert [p.check for p in checks.check_logger(["wandb"])] == ["logger"]
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert checks.check_logger(["wandb"]) == []


def test_disk_wants_one_checkpoint_with_optimizer_state(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"0" * 1024)
    assert checks.check_disk(tmp_path / "new" / "checkpoints", str(model)) == []
    problems = checks.check_disk(tmp_path, "org/hub-model", min_free_gb=10**9)
    assert problems and problems[0].check == "disk" and "want at least" in problems[0].message


@pytest.fixture(scope="module")
def rl_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """An RL parquet whose first row's image is inside the proxy's image root and second row's is not."""
    base = tmp_path_factory.mktemp("preflight")
    inside, outside = base / "root" / "a.png", base / "b.png"
    inside.parent.mkdir()
    for path in (inside, outside):
        Image.new("RGB", (32, 32), (9, 9, 9)).save(path)
    rows = [{"images": [{"image": str(path)}], "extra_info": {"image": str(path)}} for path in (inside, outside)]
    parquet = base / "rl.parquet"
    pd.DataFrame(rows).to_parquet(parquet)
    return parquet, inside.parent, outside


@pytest.fixture(scope="module")
def proxy_with_root(rl_rows, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    _, root, _ = rl_rows
    port = free_port()
    argv = [sys.executable, str(REPO_ROOT / "proxy" / "proxy.py"), "--model-path", str(tiny_model_dir),
            "--backend", "transformers", "--port", str(port), "--image-root", str(root), "--dtype", "float32",
            "--api-key", "secret"]
    server = ServerProcess(argv, f"http://127.0.0.1:{port}/health", tmp_path_factory.mktemp("log") / "proxy.log")
    with server:
        yield route_url(server.wait_healthy(timeout_s=180).health_url, "")


def test_images_open_here_and_on_the_proxy(rl_rows, proxy_with_root: str) -> None:
    parquet, _, outside = rl_rows
    problems = checks.check_images([parquet], [proxy_with_root], api_key="secret")
    assert len(problems) == 1, problems
    assert problems[0].message.startswith(f"the proxy at {proxy_with_root} cannot read 1 of 2 sampled image paths")
    assert "outside the image root" in problems[0].message

    outside.unlink()  # now it does not open on this node either
    try:
        messages = [p.message for p in checks.check_images([parquet], [], api_key=None)]
    finally:
        Image.new("RGB", (32, 32)).save(outside)
    assert messages == [f"1 of the sampled rows' images do not open on this node, e.g. image: no such file: "
                        f"{str(outside)!r}"]


def test_proxy_health_with_the_api_key(proxy_with_root: str) -> None:
    assert checks.check_proxies([proxy_with_root], wait_s=0, api_key="secret") == []
    dead = f"http://127.0.0.1:{free_port()}"
    assert [p.check for p in checks.check_proxies([dead], wait_s=0, api_key="secret")] == ["proxy"]


def test_the_memory_check_reads_the_proxys_checkpoint_from_its_health(proxy_with_root: str,
                                                                     tiny_model_dir: Path) -> None:
    assert checks.proxy_model_from_health(proxy_with_root, api_key="secret") == str(tiny_model_dir)
    assert checks.proxy_model_from_health(f"http://127.0.0.1:{free_port()}", api_key="secret") is None


def test_proxy_health_answer_that_waiting_cannot_fix_is_final_at_once(proxy_with_root: str) -> None:
    started = time.monotonic()
    [problem] = checks.check_proxies([f"{proxy_with_root}/no-such-prefix"], wait_s=120, api_key="secret")
    assert "HTTP 404" in problem.message and time.monotonic() - started < 30, problem


def test_sft_preflight_on_a_cpu_node_names_each_gpu_piece_without_a_traceback(tmp_path: Path, capsys) -> None:
    data = tmp_path / "sft.jsonl"
    data.write_text('{"messages": [], "images": []}\n')
    code = preflight_main(["--repo", str(REPO_ROOT), "sft", "--gpus", "8", "--data", str(data),
                           "--model-path", "Qwen/Qwen2.5-VL-7B-Instruct", "--save-dir", str(tmp_path)])
    out = lines(capsys)
    assert code == 1
    failed = {line.split()[2].rstrip(":") for line in out if line.startswith("preflight: FAIL")}
    assert {"cuda", "versions", "flash-attn"} <= failed, out
    assert "preflight: ok logger" in out and "preflight: ok images" in out
    assert not any("Traceback" in line for line in out)


def test_rl_launcher_runs_the_preflight_and_stops_before_verl(tmp_path: Path) -> None:
    from test_verl_launch_config import REQUIRED, run_script

    dead = f"http://127.0.0.1:{free_port()}"
    result = run_script(GRM_SCRIPT, {**REQUIRED, "PROXY_URLS": dead, "PROXY_WAIT_S": "0"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for line in ("preflight: FAIL cuda:", "preflight: FAIL flash-attn:", f"{dead}/health is not healthy",
                 f"training file not found: {REQUIRED['TRAIN_FILES']}", "preflight: ok batch"):
        assert line in result.stderr, result.stderr
    assert "proxy_grm.launch.verl_main" not in result.stderr + result.stdout


def test_preflight_sh_and_skip(tmp_path: Path) -> None:
    result = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "preflight.sh"), "proxy"], capture_output=True,
                            text=True, timeout=120, env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                                                         "PREFLIGHT_SKIP": "versions", "HOME": str(tmp_path)})
    assert result.returncode == 1 and "preflight: skip versions" in result.stderr
    assert "preflight: FAIL cuda" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("attn_impl", ["flash_attn", "sdpa"])
def test_checks_run_in_the_named_order_whatever_a_stage_adds(attn_impl: str, tmp_path: Path) -> None:
    args = argparse.Namespace(gpus=1, repo=REPO_ROOT, report_to="none", data=tmp_path / "d.jsonl",
                              model_path="m", save_dir=tmp_path, attn_impl=attn_impl)
    names = [name for name, _ in sft_checks(args)]
    expected = ["cuda", "versions", "flash-attn", "logger", "images", "disk", "engines"]
    assert names == [name for name in expected if attn_impl == "flash_attn" or name != "flash-attn"]
    assert names == sorted(names, key=CHECK_ORDER.index)
    with pytest.raises(ValueError, match="no place in CHECK_ORDER"):
        in_order({"gpu": list})


SERVER_WITH_ENGINE = """
import ctypes, http.server, subprocess, sys, threading
engine = subprocess.Popen([sys.executable, "-c", "import ctypes, time; "
                           "ctypes.CDLL(None).prctl(15, b'VLLM::EngineCore', 0, 0, 0); time.sleep(120)"])
print(engine.pid, flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.BaseHTTPRequestHandler).serve_forever()
"""


def test_the_engines_of_the_launchs_local_proxy_are_not_strays() -> None:
    """The one-GPU recipe and grpo_smoke.sh run the proxy service on the trainer's node: its vLLM engine (a child
    of the process listening on the proxy's port) is the proxy, not a leftover; any other engine still fails."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER_WITH_ENGINE, str(port)], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        engine_pid = int(server.stdout.readline())
        deadline = time.monotonic() + 20
        while not checks.serving_processes([f"http://127.0.0.1:{port}"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        flagged = [problem.message for problem in checks.check_stray_engines()]
        assert any(f"stray vLLM process {engine_pid} VLLM::" in line for line in flagged), flagged
        served = [problem.message for problem in checks.check_stray_engines([f"http://127.0.0.1:{port}"])]
        assert not any(str(engine_pid) in line for line in served), served
        other = [problem.message for problem in checks.check_stray_engines([f"http://127.0.0.1:{free_port()}"])]
        assert any(str(engine_pid) in line for line in other), other
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
