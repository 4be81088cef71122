# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""A CPU platform for verl 0.9.1, for tests and the CPU demo only (never a real run).

verl has no CPU platform: ``verl.utils.device`` asks ``get_platform()`` for the device name, the torch device module,
the collective backend and the Ray resource. ``PlatformCPU`` answers those for a CPU-only machine:

* device ``cpu``, backend ``gloo``;
* Ray resource ``GPU``: verl's resource pool hard-codes ``use_gpu=True``
  (``single_controller/ray/base.py::_check_resource_available``), so the run gives Ray fake GPUs
  (``+ray_kwargs.ray_init.num_gpus=N``) and every "GPU" bundle lands on the CPU;
* ``current_device()`` returns ``"cpu"``: ``fsdp_utils.fsdp2_load_full_state_dict`` calls
  ``model.to(device=get_device_id())``, and an int would mean an accelerator index.

Selected with ``VERL_PLATFORM=cpu``; registered by :mod:`trustrl.recipes.cpu.registration`.
"""

from __future__ import annotations

import contextlib
import os
import types
from typing import Any

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry


class _CPUDeviceModule(types.ModuleType):
    """``torch.cpu`` plus the memory and cache calls verl makes on its device module.

    ``torch.cpu`` lacks ``empty_cache`` (called around every weight sync, ``engine_workers.py:769,814``) and the
    memory statistics verl logs. Anything not defined here falls through to ``torch.cpu``.
    ``get_device_name`` is needed because ``utils/flops_counter.py:76-80`` skips it only when the module *is*
    ``torch.cpu``.
    """

    def __init__(self):
        super().__init__("trustrl_cpu_device")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cpu, name)

    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def get_device_name(device: Any = None) -> str:
        return "CPU"

    @staticmethod
    def memory_allocated(device: Any = None) -> int:
        return 0

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated

    @staticmethod
    def reset_peak_memory_stats(device: Any = None) -> None:
        return None

    @staticmethod
    def mem_get_info(device: Any = None) -> tuple[int, int]:
        # (free, total) host memory: the numbers verl logs as "device memory" on this platform.
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page

    @staticmethod
    def get_rng_state(device: Any = None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device: Any = None) -> None:
        torch.set_rng_state(state)

    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed


CPU_DEVICE_MODULE = _CPUDeviceModule()


@PlatformRegistry.register(platform="cpu")
class PlatformCPU(PlatformBase):
    """verl platform whose "accelerator" is the host CPU (gloo collectives, fake Ray GPUs)."""

    device_name = property(lambda self: "cpu")
    vendor_name = property(lambda self: "cpu")
    device_module = property(lambda self: CPU_DEVICE_MODULE)

    def is_available(self) -> bool:
        return True

    def current_device(self) -> str:  # verl passes it to `.to(device=...)`; see the module docstring
        return "cpu"

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

    @contextlib.contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        # verl's ServerAdapter then syncs weights through POSIX shared memory (vllm_rollout.py:143, `use_shm`).
        return False

    def rollout_env_vars(self) -> dict[str, str]:
        """Environment of verl's vLLM server actor (``vllm_async_server.py:1372-1374``) for vLLM's CPU build.

        A 1 GiB KV cache (vLLM's CPU default is sized for real models), no OpenMP thread pinning (pinning to cores
        other processes share slows everyone down), and the CPU platform. A value already in the environment wins.
        """
        defaults = {"VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
        return {key: os.environ.get(key, value) for key, value in defaults.items()}

    def cudart(self) -> Any:
        return None
