# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""``hf_cpu``: a Hugging Face ``generate`` rollout backend for verl 0.9.1's V1 trainer, for tests and the CPU demo.

verl's V1 trainer talks to an LLM server through three pieces; this module provides each for a CPU process:

* :class:`HFCPUServer`, the server actor (``replica.py:39`` token-in/token-out contract: ``generate`` returns a
  ``TokenOutput``). Concurrent requests are gathered into one left-padded ``generate`` call, so the n samples of
  a batch cost one forward pass per token instead of n.
* :class:`HFCPUReplica`, the ``RolloutReplica`` that launches one named server actor per replica
  (``llm_server.py:424-486`` reads ``_server_handle`` and ``_server_address``).
* :class:`HFCPUServerAdapter`, the in-worker ``BaseRollout`` built by ``engine_workers.py:667``; it receives the
  actor's weights at every sync (``engine_workers.py:804``) and forwards them to the server.

Only the single-turn agent loop and the sync trainer are supported; LoRA adapter sync and the ``delta_flush``
wire format raise a clear error.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

logger = logging.getLogger(__name__)


def server_name(replica_rank: int) -> str:
    """Ray actor name of a replica's server; the adapter finds the server by it."""
    return f"hf_cpu_server_{replica_rank}_0"


@dataclass
class _Request:
    prompt_ids: list[int]
    max_tokens: int
    sampling_key: tuple
    want_logprobs: bool
    future: asyncio.Future = field(repr=False)


class HFCPUServer:
    """Token-in/token-out generation server backed by ``transformers`` ``generate`` on the CPU.

    Args:
        model_path: a local HF model directory (the actor's ``model.path``).
        prompt_length, response_length, max_model_len: verl's rollout limits; ``max_tokens`` defaults to
            ``min(response_length, prompt_length + response_length - len(prompt))`` as verl's vLLM server does.
        seed: seeds this process's sampler.
        max_batch: most requests merged into one ``generate`` call.
        num_threads: torch threads of this process.
    """

    def __init__(
        self,
        model_path: str,
        prompt_length: int,
        response_length: int,
        max_model_len: int | None = None,
        seed: int = 0,
        max_batch: int = 256,
        num_threads: int = 1,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(num_threads)
        torch.manual_seed(seed)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, attn_implementation="sdpa", dtype=torch.float32)
        self.model.eval()
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.prompt_length = prompt_length
        self.response_length = response_length
        self.max_model_len = max_model_len or prompt_length + response_length
        self.max_batch = max_batch
        self.global_steps: int | None = None
        self.weight_version = 0
        # Guards the model between a generate batch (worker thread) and a weight update.
        self._model_lock = threading.Lock()
        self._pending: list[_Request] = []
        self._batcher: asyncio.Task | None = None
        self._aborted = False

    # --- generation -------------------------------------------------------------------------------------------
    def _max_tokens(self, prompt_len: int, sampling_params: dict[str, Any]) -> int:
        room = self.max_model_len - prompt_len
        if room < 1:
            raise ValueError(
                f"prompt of {prompt_len} tokens leaves no room to generate within max_model_len={self.max_model_len}"
            )
        default = min(self.response_length, self.prompt_length + self.response_length - prompt_len)
        return max(1, min(int(sampling_params.get("max_tokens", sampling_params.get("max_new_tokens", default))), room))

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str | None = None,
        image_data: Any = None,
        video_data: Any = None,
        **kwargs: Any,
    ) -> TokenOutput:
        if image_data is not None or video_data is not None:
            raise ValueError("hf_cpu serves text-only models; got image_data/video_data")
        prompt_ids = [int(t) for t in prompt_ids]
        if self._aborted:
            return TokenOutput(token_ids=[], log_probs=[], stop_reason="aborted", extra_fields=self._extra())
        temperature = float(sampling_params.get("temperature", 1.0))
        top_k = int(sampling_params.get("top_k", -1))
        key = (
            temperature,
            float(sampling_params.get("top_p", 1.0)),
            0 if top_k < 0 else top_k,  # verl's -1 (off) is HF's 0
            float(sampling_params.get("repetition_penalty", 1.0)),
        )
        request = _Request(
            prompt_ids=prompt_ids,
            max_tokens=self._max_tokens(len(prompt_ids), sampling_params),
            sampling_key=key,
            want_logprobs=bool(sampling_params.get("logprobs", False)),
            future=asyncio.get_running_loop().create_future(),
        )
        self._pending.append(request)
        if self._batcher is None or self._batcher.done():
            self._batcher = asyncio.create_task(self._drain())
        return await request.future

    async def _drain(self) -> None:
        while self._pending:
            # One event-loop turn lets the other requests of the same agent-loop burst arrive.
            await asyncio.sleep(0.002)
            key = self._pending[0].sampling_key
            batch = [r for r in self._pending if r.sampling_key == key][: self.max_batch]
            self._pending = [r for r in self._pending if r not in batch]
            try:
                outputs = await asyncio.to_thread(self._generate_batch, batch)
            except Exception as exc:  # surface the error on every waiting request, never hang them
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(exc)
                continue
            for r, out in zip(batch, outputs):
                if not r.future.done():
                    r.future.set_result(out)

    @torch.no_grad()
    def _generate_batch(self, batch: list[_Request]) -> list[TokenOutput]:
        temperature, top_p, top_k, repetition_penalty = batch[0].sampling_key
        width = max(len(r.prompt_ids) for r in batch)
        # Left padding: every prompt ends at the same column, so new tokens start at `width` for all rows.
        input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):
            input_ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            attention_mask[i, width - len(r.prompt_ids) :] = 1
        sampling = (
            {"do_sample": False}
            if temperature <= 0
            else {
                "do_sample": True,
                "temperature": temperature,
                "top_p": top_p,
                "top_k": top_k,
            }
        )
        with self._model_lock:
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max(r.max_tokens for r in batch),
                repetition_penalty=repetition_penalty,
                pad_token_id=self.pad_token_id,
                eos_token_id=self.eos_token_id,
                return_dict_in_generate=True,
                output_scores=True,
                **sampling,
            )
        new_tokens = out.sequences[:, width:]
        # scores are the processed logits (temperature, top-k/p applied), like vLLM's processed log-probs.
        logprobs = torch.stack([torch.log_softmax(s.float(), dim=-1) for s in out.scores], dim=1)
        token_logprobs = logprobs.gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
        results = []
        for i, r in enumerate(batch):
            ids = new_tokens[i, : r.max_tokens].tolist()
            if self.eos_token_id in ids:  # keep the EOS token, as vLLM does
                ids = ids[: ids.index(self.eos_token_id) + 1]
            lps = token_logprobs[i, : len(ids)].tolist() if r.want_logprobs else None
            results.append(
                TokenOutput(token_ids=ids, log_probs=lps, stop_reason="completed", extra_fields=self._extra())
            )
        return results

    def _extra(self) -> dict[str, Any]:
        return {"global_steps": self.global_steps}

    # --- weights --------------------------------------------------------------------------------------------
    async def update_weights(self, state: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Load the actor's full (HF-named) tensors; every model parameter must be covered exactly once."""
        with self._model_lock:
            own = self.model.state_dict()
            unknown = sorted(set(state) - set(own))
            if unknown:
                raise KeyError(f"hf_cpu: weights not in the rollout model: {unknown[:5]} (of {len(unknown)})")
            for name, tensor in state.items():
                own[name].copy_(tensor.to(own[name].dtype))
            # Tied embeddings: `lm_head.weight` shares storage with the input embedding, so it need not be sent.
            self.weight_version += 1
        return {"loaded": len(state), "version": self.weight_version}

    async def set_global_steps(self, global_steps: int | None) -> None:
        self.global_steps = global_steps
        # One line per sync in the driver's log: tests read it to see that new weights reached the server.
        print(
            f"[hf_cpu] weights v{self.weight_version} global_steps={global_steps} "
            f"checksum={await self.param_checksum():.10e}",
            flush=True,
        )

    async def param_checksum(self) -> float:
        """Sum of all parameters: lets tests see that a weight sync changed the served model."""
        with self._model_lock:
            return float(sum(p.detach().double().sum() for p in self.model.parameters()))

    async def ready(self) -> bool:
        return True

    # --- lifecycle (RolloutReplica forwards these to every server, replica.py:265-309) ------------------------
    async def abort_all_requests(self, reject_request: bool = False) -> None:
        """Answer queued requests as aborted; with ``reject_request`` also new ones until resume."""
        self._aborted = reject_request
        pending, self._pending = self._pending, []
        for r in pending:
            if not r.future.done():
                r.future.set_result(TokenOutput(token_ids=[], log_probs=[], stop_reason="aborted"))

    async def resume_generation(self) -> None:
        self._aborted = False

    # Host memory is not released between phases on CPU: there is no KV cache or device memory to hand back.
    async def wake_up(self) -> None:
        return None

    sleep = clear_kv_cache = release_kv_cache = resume_kv_cache = stop_profile = wake_up

    async def start_profile(self, **kwargs: Any) -> None:
        return None


class HFCPUReplica(RolloutReplica):
    """One ``HFCPUServer`` actor per replica, next to the hybrid trainer workers."""

    def rollout_worker_use_gpu(self) -> bool:
        return False

    async def launch_servers(self):
        cfg = self.config
        model_path = self.model_config.get("local_path") or self.model_config["path"]
        actor = ray.remote(HFCPUServer).options(
            name=server_name(self.replica_rank),
            max_concurrency=self.max_concurrency,
            num_cpus=0,  # the trainer owns the cores; generation and training alternate in the sync trainer
        )
        server = actor.remote(
            model_path=model_path,
            prompt_length=cfg.prompt_length,
            response_length=cfg.response_length,
            max_model_len=cfg.max_model_len,
            seed=getattr(cfg, "seed", 0) or 0,
            max_batch=max(1, int(cfg.max_num_seqs)),
        )
        await server.ready.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = server_name(self.replica_rank)  # only a load-balancer key (llm_server.py:506)


class HFCPUServerAdapter(BaseRollout):
    """In-worker side of ``hf_cpu``: drains the weight generator on every rank, rank 0 of a replica sends it."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1, **kwargs):
        super().__init__(config, model_config, device_mesh)
        replica_world = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        rank = int(os.environ.get("RANK", "0"))
        self.rollout_rank = rank % replica_world
        self.replica_rank = replica_rank if replica_rank >= 0 else rank // replica_world

    async def resume(self, tags: list[str]):
        return None  # weights and cache stay resident on CPU

    async def release(self):
        return None

    async def update_weights(self, weights, wire_format: str = "named_tensors", **kwargs):
        if wire_format != "named_tensors":
            raise NotImplementedError(f"hf_cpu supports wire_format='named_tensors' only, got {wire_format!r}")
        if kwargs.get("peft_config") is not None:
            raise NotImplementedError("hf_cpu does not sync LoRA adapters; set actor_rollout_ref.model.lora.merge=True")
        # Every rank must consume the generator: each item may be a collective (DTensor.full_tensor()).
        state: dict[str, torch.Tensor] = {}
        if inspect.isasyncgen(weights):
            async for name, tensor in weights:
                state[name] = tensor.detach().to("cpu", copy=True)
        else:
            for name, tensor in weights:
                state[name] = tensor.detach().to("cpu", copy=True)
        if self.rollout_rank != 0:
            return
        server = ray.get_actor(server_name(self.replica_rank))
        await server.update_weights.remote(state)
        await server.set_global_steps.remote(kwargs.get("global_steps"))
