# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Registers the CPU platform and verl's vLLM rollout on vLLM's CPU build in the current process.

Called by :mod:`trustrl.recipes.plugin` when ``VERL_PLATFORM=cpu``, i.e. in every Ray process of a CPU run.
Each workaround of a verl 0.9.1 internal is one statement, with the line it answers.
"""

from __future__ import annotations

import functools
import importlib
import os

_done = False


def register() -> None:
    global _done
    if _done:
        return
    import trustrl.recipes.cpu.platform  # noqa: F401  (PlatformRegistry "cpu")
    import verl.utils.distributed as verl_distributed
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    # engine/base.py:405 picks the engine by device name; the FSDP engine is registered for cuda/npu only.
    os.environ.setdefault("VERL_ENGINE_DEVICE", "cuda")

    # distributed.py:89 builds backend "cpu:gloo,{device}:{backend}" = "cpu:gloo,cpu:gloo", which torch rejects.
    original = verl_distributed.initialize_global_process_group_ray

    @functools.wraps(original)
    def _init_gloo(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or "gloo")

    verl_distributed.initialize_global_process_group_ray = _init_gloo

    # replica.py:318, under verl's own name: `rollout.name=vllm` builds verl's vLLMReplica subclass whose server
    # loads vLLM's CPU build with weights that can be synced in place (see trustrl.recipes.cpu.vllm_cpu). The
    # in-worker adapter stays verl's ServerAdapter. Lazy: the module imports vLLM.
    RolloutReplicaRegistry.register(
        "vllm", lambda: importlib.import_module("trustrl.recipes.cpu.vllm_cpu").CPUvLLMReplica
    )
    # vLLM's CPU build reads its platform from this variable (and from the `+cpu` version of the metadata shim).
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    _done = True
