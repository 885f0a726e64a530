"""The CPU shims of ``proxy_grm.launch.verl_cpu``, each through the framework code it exists for.

verl loads the module itself (``VERL_USE_EXTERNAL_MODULES``, read by ``import verl``), so every test starts a
fresh interpreter with the launcher's variables (``scripts/rl/common.sh``, ``cpu_overrides``): the module
patches torch on import, and only there. The GRPO step that needs them all is
``tests/test_verl_trainer_cpu.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO_ROOT

CPU_ENV = {"VERL_USE_EXTERNAL_MODULES": "proxy_grm.launch.verl_cpu", "VERL_PLATFORM": "cpu",
           "VERL_ENGINE_DEVICE": "cuda"}


def run_python(python: Path | str, code: str, env: dict[str, str]) -> str:
    """``code`` in a fresh interpreter; its last stdout line (the test's answer)."""
    result = subprocess.run([str(python), "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                            timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


VERL_ON_CPU = """
import torch
import verl
from verl.utils.device import auto_set_device, get_device_id, get_device_name, get_nccl_backend, get_torch_device
from verl.utils.distributed import initialize_global_process_group_ray
from verl.workers.engine import EngineRegistry
from omegaconf import OmegaConf

config = OmegaConf.create({"trainer": {"device": "cpu"}})
auto_set_device(config)  # without a CPU platform verl turns "cpu" back into "cuda"
initialize_global_process_group_ray()  # verl's own backend string: cpu:gloo,cpu:gloo
engine = EngineRegistry.get_engine_cls("language_model", "fsdp2")
moved = torch.zeros(2).to(device=get_device_id())
print(config.trainer.device, get_device_name(), get_nccl_backend(), torch.distributed.get_backend(),
      engine.__name__, moved.device, f"{get_device_name()}:{get_device_id()}",
      torch.ones(2).pin_memory().device, get_torch_device().mem_get_info()[1] > 0)
"""


def test_verl_runs_its_own_start_up_calls_on_the_cpu_platform() -> None:
    """verl's device helpers, process group and engine lookup as its workers call them, on the CPU platform."""
    env = {**CPU_ENV, "RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517"}
    answer = run_python(sys.executable, VERL_ON_CPU, env)
    assert answer == "cpu cpu gloo cpu:gloo FSDPEngineWithLMHead cpu cpu:0 cpu True"


def test_the_module_changes_nothing_without_the_cpu_platform() -> None:
    """Imported on a GPU node (the variable unset), it registers the platform and patches nothing."""
    code = ("import torch, torch.distributed; original = torch.distributed.init_process_group; "
            "import proxy_grm.launch.verl_cpu; "
            "print(torch.distributed.init_process_group is original, "
            "hasattr(torch.Tensor.pin_memory, '_proxy_grm_cpu'))")
    env = {name: "" for name in CPU_ENV}
    assert run_python(sys.executable, code, env) == "True False"


VLLM_LIVE_WEIGHTS = """
import torch
import vllm
import proxy_grm.launch.verl_cpu
from vllm.model_executor.layers.utils import cpu_unquantized_gemm, dispatch_cpu_unquantized_gemm

layer = torch.nn.Linear(8, 4, bias=False)
dispatch_cpu_unquantized_gemm(layer, remove_weight=True)  # as vLLM's UnquantizedLinearMethod after loading
x = torch.randn(3, 8)
kept = layer.weight.numel()
with torch.no_grad():
    layer.weight.copy_(torch.randn(4, 8))  # verl's weight sync loads the actor's weights in place
out = cpu_unquantized_gemm(layer, x, layer.weight)
print(kept, torch.allclose(out, x @ layer.weight.T))
"""


def test_vllm_linear_layers_read_weights_loaded_after_start_up(rl_python: Path) -> None:
    """vLLM 0.24's own CPU GEMM dispatch keeps ``layer.weight`` and computes with what is loaded into it later.

    Without the shim vLLM packs the start-up (dummy) weights into a oneDNN handle and empties ``layer.weight``
    (``vllm/model_executor/layers/utils.py``): verl's weight sync would find a 0-size parameter.
    """
    assert run_python(rl_python, VLLM_LIVE_WEIGHTS, {**CPU_ENV, "HF_HUB_OFFLINE": "1"}) == "32 True"
