"""verl 0.9.1 on CPU: the few calls a GRPO step makes that have no CPU path, shimmed (docs/grpo.md, "On CPU").

verl imports this module in every process of a run (the driver, the TaskRunner, the FSDP workers, the
agent loop, the vLLM servers and their engine processes) when it is named in ``VERL_USE_EXTERNAL_MODULES``
(read at the end of ``verl/__init__.py``), and ``VERL_PLATFORM=cpu`` selects the platform registered here.
``scripts/rl/common.sh`` sets both with ``TRAINER_DEVICE=cpu``, with ``VERL_ENGINE_DEVICE=cuda`` (verl's own
switch for which training engine a device gets: the FSDP engine, registered for cuda and npu only,
``verl/workers/engine/fsdp/transformer_impl.py``). Each shim is a place where the CPU run differs from a GPU
run; nothing else is changed:

1. ``PlatformCPU``: the device is ``cpu``, the collective backend ``gloo``, no IPC; the device id is
   ``"cpu"`` (``DEVICE_ID``: an integer id means CUDA to torch); Ray's resource stays ``GPU`` (the launcher
   gives Ray logical GPUs), so verl's placement code runs unchanged.
2. ``torch.distributed.init_process_group``: verl asks for ``cpu:gloo,<device>:<backend>``
   (``verl/utils/distributed.py``), ``cpu:gloo,cpu:gloo`` here, which torch refuses as a duplicate; the
   duplicate is dropped.
3. vLLM's oneDNN linear layers: vLLM's CPU build packs each linear weight into a oneDNN handle once loaded
   and empties ``layer.weight`` (``vllm/model_executor/layers/utils.py``, ``dispatch_cpu_unquantized_gemm``);
   verl starts the rollout on dummy weights and then loads the actor's into ``layer.weight`` in place, which
   the handle would never see. With oneDNN off, vLLM takes its own fallback, ``F.linear`` on the live weight.
4. ``Tensor.pin_memory``: verl's FSDP2 reference model always gets ``CPUOffloadPolicy(pin_memory=True)``
   (``verl/workers/engine/fsdp/transformer_impl.py``), and pinning needs a CUDA driver. Page-locked memory
   only speeds copies to a GPU; without one the tensor is returned as it is.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import psutil
import torch
import torch.distributed
from verl.plugin.platform import PlatformBase, PlatformRegistry

PLATFORM = "cpu"


class _CPUDevice(ModuleType):
    """``torch.cpu`` plus the ``torch.cuda`` calls verl makes on its device module, as no-ops or host figures."""

    def __init__(self) -> None:
        super().__init__("proxy_grm_cpu_device")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cpu, name)

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def current_device() -> str:
        return DEVICE_ID

    @staticmethod
    def device_count() -> int:
        return 1

    @staticmethod
    def set_device(_device: Any) -> None:
        return None

    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def ipc_collect() -> None:
        return None

    @staticmethod
    def set_per_process_memory_fraction(*_args: Any, **_kwargs: Any) -> None:
        return None

    @staticmethod
    def mem_get_info(*_args: Any) -> tuple[int, int]:
        memory = psutil.virtual_memory()
        return memory.available, memory.total

    @staticmethod
    def memory_allocated(*_args: Any) -> int:
        return 0

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated

    @staticmethod
    def get_rng_state(*_args: Any) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, *_args: Any) -> None:
        torch.set_rng_state(state)

    @staticmethod
    def get_device_name(*_args: Any) -> str:
        return "cpu"


class _DeviceId(str):
    """verl's device id: ``"cpu"`` where torch takes a device (``model.to(device=get_device_id())``; an int
    would mean CUDA), ``0`` where verl writes ``f"{device_name}:{device_id}"``."""

    def __format__(self, spec: str) -> str:
        return format(0, spec)


DEVICE_ID = _DeviceId("cpu")


@PlatformRegistry.register(platform=PLATFORM)
class PlatformCPU(PlatformBase):
    """The host CPU as verl's accelerator: gloo collectives, Ray's ``GPU`` resource as the unit of placement."""

    _device = _CPUDevice()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return self._device

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        return os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM

    def current_device(self) -> str:  # type: ignore[override]
        return DEVICE_ID

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return ["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]

    def is_ipc_supported(self) -> bool:
        return False

    @contextlib.contextmanager
    def nvtx_range(self, msg: str) -> Iterator[None]:
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def cudart(self) -> Any:
        return None


def single_cpu_backend(backend: Any) -> Any:
    """``cpu:gloo,cpu:gloo`` -> ``cpu:gloo``: each device named once, as torch requires.

    >>> single_cpu_backend("cpu:gloo,cpu:gloo"), single_cpu_backend("gloo"), single_cpu_backend(None)
    ('cpu:gloo', 'gloo', None)
    """
    if not isinstance(backend, str) or "," not in backend:
        return backend
    return ",".join(dict.fromkeys(backend.split(",")))


def _patch_init_process_group() -> None:
    original = torch.distributed.init_process_group
    if getattr(original, "_proxy_grm_cpu", False):
        return

    def init_process_group(*args: Any, **kwargs: Any) -> Any:
        if "backend" in kwargs:
            kwargs["backend"] = single_cpu_backend(kwargs["backend"])
        elif args:
            args = (single_cpu_backend(args[0]), *args[1:])
        return original(*args, **kwargs)

    init_process_group._proxy_grm_cpu = True  # type: ignore[attr-defined]
    torch.distributed.init_process_group = init_process_group


def _patch_pin_memory() -> None:
    if torch.cuda.is_available() or getattr(torch.Tensor.pin_memory, "_proxy_grm_cpu", False):
        return

    def pin_memory(self: torch.Tensor, *_args: Any, **_kwargs: Any) -> torch.Tensor:
        return self

    pin_memory._proxy_grm_cpu = True  # type: ignore[attr-defined]
    torch.Tensor.pin_memory = pin_memory  # type: ignore[method-assign]


def _vllm_linear_on_live_weights() -> None:
    """vLLM's CPU linear layers use ``F.linear`` on ``layer.weight`` (no oneDNN handle packed at load)."""
    try:
        from vllm import _custom_ops
    except ImportError:  # a process without vLLM (the FSDP workers need none of this)
        return
    _custom_ops._supports_onednn = False


def activate() -> None:
    """The shims of this module's docstring, once per process; only under ``VERL_PLATFORM=cpu``."""
    if os.environ.get("VERL_PLATFORM", "").strip().lower() != PLATFORM:
        return
    _patch_init_process_group()
    _patch_pin_memory()
    if "vllm" in sys.modules:  # a vLLM server or engine process (they import verl's worker extension)
        _vllm_linear_on_live_weights()


activate()
