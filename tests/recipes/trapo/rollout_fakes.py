# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Fakes that drive :class:`TrapoAgentLoopWorker` without Ray, a rollout server or TransferQueue.

The pattern of verl's ``tests/experimental/agent_loop/test_agent_loop_extra_fields_schema_on_cpu.py``: a token-in
token-out fake server, the worker built with ``object.__new__`` and the attributes ``AgentLoopWorker.__init__``
would set, and (here) the ``transfer_queue`` calls of verl's TQ worker recorded in memory.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from tensordict import NonTensorStack
from transformers import AutoTokenizer
from trustrl.recipes.trapo import rollout as trapo_rollout
from trustrl.recipes.trapo.rollout import TrapoAgentLoopWorker
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.workers.rollout.replica import TokenOutput

from tests.recipes.data.tiny_tokenizer import build_tiny_tokenizer

CONFIG_DIR = str(Path(trapo_rollout.__file__).parent / "config")
RESPONSE_LENGTH = 40
LAUNCH = [
    "data.train_batch_size=4",
    "data.max_prompt_length=64",
    f"data.max_response_length={RESPONSE_LENGTH}",
    "actor_rollout_ref.rollout.n=8",
    "actor_rollout_ref.rollout.val_kwargs.n=2",
    "actor_rollout_ref.actor.ppo_mini_batch_size=4",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
    "trainer.n_gpus_per_node=1",
    "trainer.nnodes=1",
    "trapo.micro_group.enable=True",
]


def compose_trapo_config():
    """The recipe's full hydra config (verl's ppo_trainer + trapo_trainer.yaml) with a guided rollout, resolved as
    verl's TaskRunner resolves it before the agent-loop manager starts."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(config_name="trapo_trainer", overrides=LAUNCH)
    OmegaConf.resolve(cfg)
    return cfg


def with_overrides(base, *overrides: str):
    """``key=value`` overrides on a copy of a composed config, as hydra's command line would set them."""
    cfg = copy.deepcopy(base)
    with open_dict(cfg):
        for item in overrides:
            key, value = item.lstrip("+").split("=", 1)
            OmegaConf.update(cfg, key, yaml.safe_load(value), force_add=True)
    return cfg


def tiny_tokenizer(tmp_dir):
    """One token per printable character (so ``"\\n\\n"`` is two tokens), ChatML template, EOS ``<|im_end|>``."""
    return AutoTokenizer.from_pretrained(str(build_tiny_tokenizer(Path(tmp_dir) / "tok")))


class FakeServer:
    """Token-in token-out server: ``answer(prompt_text, sampling_params) -> text`` (EOS appended, cut at max_tokens)."""

    def __init__(self, tokenizer, answer):
        self.tokenizer, self.answer = tokenizer, answer
        self.calls: list[tuple[list[int], dict]] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs) -> TokenOutput:
        self.calls.append((list(prompt_ids), dict(sampling_params)))
        text = self.answer(self.tokenizer.decode(prompt_ids), sampling_params)
        ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
        ids = ids[: sampling_params.get("max_tokens", len(ids))]
        log_probs = [-0.5] * len(ids) if sampling_params.get("logprobs") else None
        steps = {"global_steps": 3, "min_global_steps": 3, "max_global_steps": 3}
        return TokenOutput(token_ids=ids, log_probs=log_probs, extra_fields=steps)


class FakeRewardHandle:
    """A reward-loop worker handle: ``table[(uid, session_id)]`` when given, else 1.0 iff the decoded response
    contains ``marker``."""

    def __init__(self, tokenizer, marker: str = "Y", table: dict[tuple[str, int], float] | None = None):
        self.tokenizer, self.marker, self.table = tokenizer, marker, table or {}
        self.requests = []
        self.compute_score = SimpleNamespace(remote=self._score)

    async def _score(self, data):
        self.requests.append(data)
        key = (str(data.non_tensor_batch["uid"][0]), int(data.non_tensor_batch["session_id"][0]))
        if key in self.table:
            reward = self.table[key]
        else:
            text = self.tokenizer.decode(data.batch["responses"][0].tolist(), skip_special_tokens=True)
            reward = 1.0 if self.marker in text else 0.0
        return {"reward_score": reward, "reward_extra_info": {"acc": reward}}


def _row_values(value) -> list:
    if isinstance(value, NonTensorStack):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return list(value.unbind(0))
    raise TypeError(f"unexpected TransferQueue field type {type(value)}")


class FakeTQ:
    """Records ``transfer_queue.async_kv_put`` tags and ``async_kv_batch_put`` rows (install with monkeypatch)."""

    def __init__(self):
        self.rows: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # partition -> key -> field -> value
        self.row_tags: dict[str, dict] = {}
        self.status: dict[str, list[str]] = defaultdict(list)  # uid -> statuses in order
        self.events: list[tuple[str, str]] = []

    def install(self, monkeypatch):
        import transfer_queue

        monkeypatch.setattr(transfer_queue, "async_kv_put", self.async_kv_put)
        monkeypatch.setattr(transfer_queue, "async_kv_batch_put", self.async_kv_batch_put)
        return self

    async def async_kv_put(self, key, partition_id, tag=None, **kwargs):
        self.status[key].append(tag["status"])
        self.events.append(("tag", key))

    async def async_kv_batch_put(self, keys, fields, tags, partition_id):
        columns = {name: _row_values(fields.get(name)) for name in fields.keys()}
        for i, key in enumerate(keys):
            self.rows[partition_id][key] = {name: values[i] for name, values in columns.items()}
            self.row_tags[key] = tags[i]
            self.events.append(("row", key))

    def group(self, uid: str, partition_id: str = "train") -> list[dict[str, Any]]:
        """The rows of one prompt, by session id."""
        rows = {k: v for k, v in self.rows[partition_id].items() if k.split("_")[0] == uid}
        return [rows[k] for k in sorted(rows, key=lambda k: int(k.split("_")[1]))]


def bare_worker(config, tokenizer, server, reward_handles=None) -> TrapoAgentLoopWorker:
    """The worker with the attributes ``AgentLoopWorker.__init__`` sets (no Ray actor, no TransferQueue client)."""
    worker = object.__new__(TrapoAgentLoopWorker)
    worker.config = config
    worker.llm_client = server
    worker.teacher_client = None
    worker.reward_loop_worker_handles = reward_handles
    worker.rollout_config = config.actor_rollout_ref.rollout
    worker.dataset_cls = RLHFDataset
    worker.tokenizer = tokenizer
    worker.processor = None
    worker.hf_model_type = None
    worker.mm_processor_kwargs = {}
    worker.distillation_enabled = False
    worker.tools = []
    worker.background_tasks = set()
    worker._setup_trapo()
    return worker


def prompt_row(uid: str, content: str, traces=None, index: int = 0, **columns) -> dict[str, Any]:
    """One prompt as ``AgentLoopWorkerTQ.generate_sequences`` hands it to ``_run_prompt``."""
    extra_info = {"index": index, "split": "train"}
    if traces is not None:
        extra_info["expert_solutions"] = traces
    return {
        "uid": uid,
        "raw_prompt": [{"role": "user", "content": content}],
        "data_source": "fake",
        "reward_model": {"style": "rule", "ground_truth": "Y"},
        "extra_info": extra_info,
        "index": index,
        "global_steps": 3,
        "agent_name": "single_turn_agent",
        **columns,
    }


def sampling_params(worker) -> dict:
    rollout = worker.config.actor_rollout_ref.rollout
    return dict(temperature=1.0, top_p=1.0, top_k=-1, repetition_penalty=1.0, logprobs=rollout.calculate_log_probs)


def trajectory(validate: bool = False) -> dict:
    return {"step": 3, "sample_index": 0, "rollout_n": 0, "validate": validate}
