# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""TRAPO adaptive prefix selection as a verl 0.9.1 V1 (TransferQueue) agent-loop worker.

The recipe config (``config/trapo_trainer.yaml``) selects it as
``actor_rollout_ref.rollout.agent.agent_loop_manager_class=trustrl.recipes.trapo.rollout.TrapoAgentLoopManager``;
a run turns the guidance on with ``trapo.micro_group.enable=True`` (default ``False``: verl's defaults, e.g.
``rollout.n=1``, do not meet its requirements, so the switch is explicit; the CPU demo sets it). Other configs that
compose verl's ``ppo_trainer`` add the key with ``+actor_rollout_ref.rollout.agent.agent_loop_manager_class=...``.

Data: the expert traces of a prompt are ``extra_info.expert_solutions: list[str]`` (``trapo.micro_group.
expert_field``), the think content of each expert solution; a prompt without one runs unguided and is counted in
``rollout/trapo/no_trace_share``. The reward must be computed during rollout (a rule-based reward, or a reward model
on its own resource pool) and lie in ``trapo.micro_group.reward_bounds``.

Per training prompt the ``rollout.n`` trajectories are sampled as micro-groups g_1..g_N (``trapo.micro_group``;
arXiv:2512.17636 Sec. 3.2; the rule and its scheduler: :mod:`trustrl.recipes.trapo.micro_groups`). g_i (i > 1) is
guided by an expert prefix of ratio L_i iff the mean reward of all earlier trajectories of the prompt is below t_i.
The prefix is placed at the start of the response; the policy continues it with ``max_tokens = response_length -
len(prefix)``; L_i = 1 is the full trace and nothing is generated. Every row carries ``prefix_mask`` and ``sft_mask``
(int64, as long as ``responses``; zeros when unguided), the fields read by :func:`trustrl.policy_loss.trapo.trapo_loss`.

Pieces (the verl hook points they use are in recipes/trapo/README.md, "Rollout worker"):

* :class:`TrapoRolloutSettings` / :func:`check_trapo_rollout_config`: what the worker reads, checked at start-up.
* :class:`TrapoAgentLoop` (registered ``trapo_agent``): one trajectory, guided or not, per
  :class:`~trustrl.recipes.trapo.micro_groups.TrajectoryPlan`.
* :class:`~trustrl.recipes.trapo.micro_groups.MicroGroupScheduler` (its own module, free of verl): the decisions of
  one prompt, in order, from the rewards of its earlier trajectories.
* :class:`TrapoAgentLoopWorker`: ``_run_prompt`` runs the scheduler per prompt (prompts progress concurrently on the
  worker's event loop); all n rows are written to TransferQueue when the group is complete, with one uid and
  sessions ``0..n-1``; validation and ``enable=False`` run verl's plain n-sample path through ``trapo_agent``
  (rows with all-zero masks; prompts of another agent loop keep theirs and carry no masks).
* :class:`TrapoAgentLoopManager`: verl's TQ manager with this worker, validating the settings at start-up.
* :mod:`trustrl.recipes.trapo.rollout_metrics`: the ``rollout/trapo/*`` metrics for the trainer.

Latency. A strictly sequential prompt waits for N generation rounds. Two exact shortcuts bring it to one round for
prompts that are never guided and two for the presets' guided prompts (``scripts/bench/bench_trapo_rollout.py``):

* ``prefetch_unguided``: the unguided samples of g_2..g_N are drawn together with g_1 and kept iff the rule says
  "unguided" (discarded otherwise). An unguided g_i is a fresh draw from π(·|x) independent of the earlier rewards,
  so the kept samples have the sequential algorithm's distribution; the price is the discarded samples' tokens.
* ``reward_bounds``: a decision is taken as soon as it is the same for every value the pending rewards can take
  (with 0/1 rewards, a guided g_2 implies a guided g_3 and g_4 under both presets), so g_3's guided samples start
  together with g_2's. Rewards outside the bounds fail the prompt with an error naming the key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from uuid import uuid4

import ray
import torch
import transfer_queue as tq
from omegaconf import DictConfig
from trustrl.recipes.trapo.config import MicroGroupConfig, check_sizes_sum, trapo_config_from
from trustrl.recipes.trapo.micro_groups import UNGUIDED, MicroGroupResult, MicroGroupScheduler, TrajectoryPlan
from trustrl.recipes.trapo.prefix import (
    expert_trace_tokens,
    expert_traces_of,
    paragraph_breaks,
    prefix_cut,
    trace_index,
)
from trustrl.recipes.trapo.rollout_metrics import METRIC_PREFIX
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register
from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopManagerTQ, AgentLoopWorkerTQ, apply_greedy_sampling_params
from verl.utils.profiler import simple_timer

__all__ = [
    "TRAPO_AGENT",
    # the scheduler's types, re-exported for the callers of this module (defined in micro_groups)
    "MicroGroupScheduler",
    "TrajectoryPlan",
    "TrapoAgentLoop",
    "TrapoAgentLoopManager",
    "TrapoAgentLoopOutput",
    "TrapoAgentLoopWorker",
    "TrapoRolloutSettings",
    "check_trapo_rollout_config",
]

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))

TRAPO_AGENT = "trapo_agent"
# agent names a TRAPO prompt may carry: verl's default, which the worker replaces, and ours
_REPLACEABLE_AGENTS = (None, "single_turn_agent", TRAPO_AGENT)


# ------------------------------------------------------------------ settings


@dataclass
class TrapoRolloutSettings(MicroGroupConfig):
    """Everything the worker reads from the run config: ``trapo.micro_group`` (the fields of
    :class:`~trustrl.recipes.trapo.config.MicroGroupConfig`, validated there) plus the rollout's n and length."""

    # actor_rollout_ref.rollout.n
    n: int = 1
    # actor_rollout_ref.rollout.response_length
    response_length: int = 512

    def __post_init__(self):
        super().__post_init__()
        # the worker's working types (the yaml gives lists and ints)
        if self.reward_bounds is not None:
            self.reward_bounds = (float(self.reward_bounds[0]), float(self.reward_bounds[1]))
        self.paragraph_window = float(self.paragraph_window)

    @classmethod
    def from_config(cls, config: DictConfig | Mapping) -> TrapoRolloutSettings:
        """Reads ``trapo.micro_group``, validated by ``trapo_config_from`` (``ValueError`` naming the key)."""
        mg = trapo_config_from(config).micro_group
        rollout = config["actor_rollout_ref"]["rollout"]
        by_name = {f.name: getattr(mg, f.name) for f in fields(MicroGroupConfig)}
        return cls(**by_name, n=int(rollout["n"]), response_length=int(rollout["response_length"]))


def check_trapo_rollout_config(config: DictConfig, reward_loop_worker_handles=None) -> TrapoRolloutSettings:
    """Start-up validation of a run that uses :class:`TrapoAgentLoopManager`; ``ValueError`` names key and fix."""
    settings = TrapoRolloutSettings.from_config(config)
    if not settings.enable:
        logger.info("TrapoAgentLoopManager with trapo.micro_group.enable=False: every trajectory runs unguided")
        return settings
    check_sizes_sum(settings.schedule.sizes, settings.n)
    if reward_loop_worker_handles is None:
        raise ValueError(
            "TRAPO's micro-group rule needs every trajectory's reward during rollout, but verl scores after rollout "
            "here (a colocated reward model); use a rule-based reward, or set "
            "reward.reward_model.enable_resource_pool=True, or trapo.micro_group.enable=False"
        )
    rollout = config.actor_rollout_ref.rollout
    agent = rollout.agent.default_agent_loop
    if agent not in _REPLACEABLE_AGENTS:
        raise ValueError(
            f"actor_rollout_ref.rollout.agent.default_agent_loop={agent!r}: TRAPO's rollout runs its own single-turn "
            f"loop '{TRAPO_AGENT}'; leave it at single_turn_agent or set it to {TRAPO_AGENT}"
        )
    if rollout.get("enable_rollout_routing_replay", False):
        raise ValueError(
            "actor_rollout_ref.rollout.enable_rollout_routing_replay=True: full-trace rows are not generated and "
            "have no routed experts; set it to False for guided TRAPO runs"
        )
    if settings.response_length < 2:
        raise ValueError(
            f"actor_rollout_ref.rollout.response_length={settings.response_length}: an expert trace needs at least "
            "one token plus EOS; raise it (official: 8192)"
        )
    return settings


# ------------------------------------------------------------------ one trajectory


class TrapoAgentLoopOutput(AgentLoopOutput):
    """``AgentLoopOutput`` with the two per-token masks of the TRAPO loss (same length as ``response_ids``)."""

    prefix_mask: list[int]
    """1 = expert token placed in the response."""
    sft_mask: list[int]
    """1 = expert token that gets the TrSFT term."""

    def as_dict(self) -> dict[str, Any]:
        out = super().as_dict()
        # int64 like response_mask: TransferQueue stores them as jagged nested tensors of the responses' lengths
        out["prefix_mask"] = torch.tensor(self.prefix_mask, dtype=torch.int64)
        out["sft_mask"] = torch.tensor(self.sft_mask, dtype=torch.int64)
        return out


@register(TRAPO_AGENT)
class TrapoAgentLoop(AgentLoopBase):
    """Single-turn agent loop that can start the response with an expert prefix (``kwargs["trapo"]``).

    Unguided (no plan, or an empty prefix) it samples like verl's ``single_turn_agent``; guided it generates from
    ``prompt + prefix`` with ``max_tokens = response_length - len(prefix)`` and returns ``prefix + continuation``,
    with 0.0 log-prob placeholders on the prefix; a plan with ``generate=False`` returns the prefix alone.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.response_length = self.rollout_config.response_length

    async def run(self, sampling_params: dict[str, Any], **kwargs) -> TrapoAgentLoopOutput:
        plan: TrajectoryPlan = kwargs.get("trapo") or UNGUIDED
        messages = list(kwargs["raw_prompt"])
        if await self.process_multi_modal_info(messages):
            raise ValueError("TRAPO's guided rollout supports text prompts only; this prompt has multi-modal inputs")
        prompt_ids = await self.ct_build_initial_tokens(messages)
        prefix = list(plan.prefix_ids)
        want_logprobs = bool(sampling_params.get("logprobs"))
        continuation, cont_logprobs, extra_fields, metrics = await self._continue(
            prompt_ids, prefix, plan, sampling_params, int(kwargs.get("priority", 0))
        )
        if want_logprobs and cont_logprobs is None:
            raise RuntimeError("the rollout server returned no log-probs although sampling_params asked for them")
        merged, response_mask, response_logprobs = await self.ct_merge_assistant_token(
            prompt_ids,
            prefix + continuation,
            [],
            [] if want_logprobs else None,
            # placeholders: the actor recomputes old log-probs on every token (keep rollout-correction bypass off)
            assistant_logprobs=[0.0] * len(prefix) + list(cont_logprobs) if want_logprobs else None,
        )
        response_ids = merged.token_ids[len(merged.token_ids) - len(response_mask) :]
        prompt_ids = merged.token_ids[: len(merged.token_ids) - len(response_mask)]
        # the builder may insert boundary tokens before the assistant tokens: locate the prefix from the end
        offset = len(response_mask) - len(prefix) - len(continuation)
        if offset < 0:
            raise RuntimeError(
                f"merged response of {len(response_mask)} tokens lost part of {len(prefix)} + "
                f"{len(continuation)} assistant tokens"
            )
        prefix_mask = [0] * offset + [1] * len(prefix) + [0] * len(continuation)
        sft_mask = prefix_mask if plan.sft else [0] * len(prefix_mask)
        extra_fields.update({"turn_scores": [], "tool_rewards": []})  # the schema of verl's single-turn loop
        cap = self.response_length
        # every field passed explicitly: as_dict() drops unset ones and TransferQueue needs one key set
        return TrapoAgentLoopOutput(
            prompt_ids=prompt_ids,
            response_ids=response_ids[:cap],
            response_mask=response_mask[:cap],
            response_logprobs=response_logprobs[:cap] if want_logprobs else None,
            prefix_mask=prefix_mask[:cap],
            sft_mask=sft_mask[:cap],
            num_turns=2,
            metrics=metrics,
            extra_fields=extra_fields,
        )

    async def _continue(self, prompt_ids, prefix, plan, sampling_params, priority):
        """(continuation ids, their log-probs, extra_fields, metrics) of one server call, or none for a full trace."""
        metrics: dict[str, Any] = {}
        if not plan.generate:
            return [], [], {}, metrics
        # a copy per call: verl passes one sampling_params dict to every session of a prompt (agent_loop_tq.py)
        params = dict(sampling_params)
        if prefix:
            budget = self.response_length - len(prefix)
            if budget <= 0:
                # the prefix fills the response: the server would still sample one token (max_tokens >= 1)
                return [], [], {}, metrics
            # without it the server allows ~response_length new tokens: prefix + continuation would overflow
            params["max_tokens"] = budget
        with simple_timer("generate_sequences", metrics):
            out = await self.server_manager.generate(
                request_id=uuid4().hex, prompt_ids=prompt_ids + prefix, sampling_params=params, priority=priority
            )
        metrics["num_preempted"] = out.num_preempted if out.num_preempted is not None else -1
        return list(out.token_ids), out.log_probs, dict(out.extra_fields), metrics


# ------------------------------------------------------------------ the worker


@dataclass
class _Scored:
    """A scored trajectory held back from TransferQueue until its group is complete."""

    output: TrapoAgentLoopOutput
    kwargs: dict[str, Any]


@dataclass
class _PromptState:
    traces: list[str]
    seed: str
    uid: str = ""
    # per trace index: (ids, paragraph breaks, tokens cut off)
    tokens: dict[int, tuple[list[int], list[bool], int]] = field(default_factory=dict)
    supervised: set[tuple[int, int]] = field(default_factory=set)


class TrapoAgentLoopWorker(AgentLoopWorkerTQ.__ray_metadata__.modified_class):
    """verl's TransferQueue agent-loop worker with TRAPO's micro-group sampling for training prompts.

    Subclasses the undecorated ``AgentLoopWorkerTQ``; the manager spawns it as ``ray.remote(TrapoAgentLoopWorker)``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._setup_trapo()

    def _setup_trapo(self) -> None:
        self.trapo = TrapoRolloutSettings.from_config(self.config)
        # decoded text of single tokens, for the paragraph-break search (filled lazily, bounded by the vocabulary)
        self._piece_text: dict[int, str] = {}
        self._warned_no_trace = False
        self._warned_trace_cut = False

    # ---- prompt routing

    def _route(self, prompt: dict) -> tuple[dict, list[str]]:
        """The prompt for ``trapo_agent`` without its expert traces (not copied into n rows and reward requests)."""
        prompt = dict(prompt)
        agent = prompt.get("agent_name")
        if agent not in _REPLACEABLE_AGENTS:
            raise ValueError(f"prompt {prompt.get('uid')} has agent_name={agent!r}; TRAPO runs '{TRAPO_AGENT}' only")
        prompt["agent_name"] = TRAPO_AGENT
        extra_info = prompt.get("extra_info")
        traces = expert_traces_of(extra_info, self.trapo.expert_field)
        if isinstance(extra_info, dict) and self.trapo.expert_field in extra_info:
            prompt["extra_info"] = {k: v for k, v in extra_info.items() if k != self.trapo.expert_field}
        return prompt, traces

    async def _run_prompt(self, prompt: dict, sampling_params: dict, trajectory: dict, trace: bool = False) -> None:
        validate = trajectory["validate"]
        partition_id = "val" if validate else "train"
        plain = validate or not self.trapo.enable
        if plain and prompt.get("agent_name") not in _REPLACEABLE_AGENTS:
            # another agent loop (e.g. tool_agent) without guidance: verl's path untouched, rows without masks
            # (the TRAPO loss trains such a batch as unguided)
            return await super()._run_prompt(prompt, sampling_params, trajectory, trace)
        try:
            prompt, traces = self._route(prompt)
        except Exception:
            logger.exception("TRAPO prompt rejected")
            await tq.async_kv_put(key=prompt["uid"], partition_id=partition_id, tag={"status": "failure"})
            return
        if plain:
            # verl's n-sample path through trapo_agent: plain sampling, masks all zeros
            return await super()._run_prompt(prompt, sampling_params, trajectory, trace)
        uid = prompt["uid"]
        await tq.async_kv_put(key=uid, partition_id="train", tag={"status": "running"})
        try:
            result = await self._run_micro_groups(prompt, traces, sampling_params, trajectory, trace)
            await self._write_group(result)
            status = "finished"
        except Exception:
            logger.exception(f"TRAPO micro-groups failed for uid={uid}")
            status = "failure"
        await tq.async_kv_put(key=uid, partition_id="train", tag={"status": status})

    async def _run_micro_groups(self, prompt, traces, sampling_params, trajectory, trace) -> MicroGroupResult:
        n = prompt.pop("__rollout_n__", self.trapo.n)
        if n != sum(self.trapo.schedule.sizes):
            raise ValueError(
                f"__rollout_n__={n} differs from sum(trapo.micro_group.sizes)={sum(self.trapo.schedule.sizes)}; "
                "drop the column or make them agree"
            )
        params = dict(sampling_params)
        if not prompt.pop("__do_sample__", True):
            apply_greedy_sampling_params(params)
        state = _PromptState(
            traces,
            f"{self.trapo.trace_seed}:{prompt.get('index', prompt['uid'])}:{prompt.get('global_steps')}",
            uid=str(prompt["uid"]),
        )

        async def plan_group(group: int, guided: bool) -> list[TrajectoryPlan]:
            return await self._plan_group(state, group, guided)

        async def run_sample(plan: TrajectoryPlan, session_id: int):
            scored: _Scored = await self._run_agent_loop(
                params, trajectory=trajectory, trace=trace, session_id=session_id, **prompt, trapo=plan
            )
            return scored.output.reward_score, scored

        scheduler = MicroGroupScheduler(
            self.trapo.schedule,
            plan_group=plan_group,
            run_sample=run_sample,
            prefetch=self.trapo.prefetch_unguided,
            reward_bounds=self.trapo.reward_bounds,
        )
        return await scheduler.run()

    # ---- plans

    async def _plan_group(self, state: _PromptState, group: int, guided: bool) -> list[TrajectoryPlan]:
        size, ratio = self.trapo.schedule.sizes[group], self.trapo.schedule.prefix_ratios[group]
        if not guided:
            return [TrajectoryPlan(group=group)] * size
        rng = random.Random(f"{state.seed}:{group}") if self.trapo.trace_choice == "random" else None
        index = trace_index(len(state.traces), ratio, self.trapo.trace_choice, rng)
        if index is None:
            if not self._warned_no_trace:
                logger.warning(
                    f"prompts without extra_info.{self.trapo.expert_field} run unguided (counted in "
                    f"{METRIC_PREFIX}no_trace_share)"
                )
                self._warned_no_trace = True
            return [TrajectoryPlan(group=group, no_trace=True)] * size
        ids, breaks, dropped = await self._trace_tokens(state, index)
        if dropped:
            self._warn_trace_cut(state, index, dropped)
        prefix = tuple(ids[: prefix_cut(breaks, ratio, self.trapo.paragraph_window)])
        return [
            TrajectoryPlan(
                group=group,
                guided=True,
                prefix_ids=prefix,
                sft=sft,
                generate=ratio < 1.0,
                trace_index=index,
                trace_cut=dropped,
            )
            for sft in self._sft_flags(state, index, len(prefix), size)
        ]

    def _warn_trace_cut(self, state: _PromptState, index: int, dropped: int) -> None:
        """Once per worker; every cut trace is counted in the ``rollout/trapo/trace_cut*`` metrics."""
        if self._warned_trace_cut:
            return
        self._warned_trace_cut = True
        budget = self.trapo.response_length - 1
        logger.warning(
            f"expert trace {index} of prompt uid={state.uid} is {dropped} tokens longer than the response budget "
            f"({budget} tokens + EOS) and was cut: its full-trace row would end mid-reasoning under TrSFT. Filter "
            f"the data (scripts/data/prepare.py --max-trace-tokens {budget}) or raise "
            f"actor_rollout_ref.rollout.response_length; cut traces are counted in {METRIC_PREFIX}trace_cut_share "
            "(this warning is shown once)"
        )

    def _sft_flags(self, state: _PromptState, index: int, cut: int, size: int) -> list[bool]:
        """Which of a guided group's rows get TrSFT (official: one copy per distinct prefix, the group's last row)."""
        if cut == 0 or self.trapo.sft_copies == "none":
            return [False] * size
        if self.trapo.sft_copies == "all":
            return [True] * size
        if (index, cut) in state.supervised:
            return [False] * size
        state.supervised.add((index, cut))
        return [False] * (size - 1) + [True]

    async def _trace_tokens(self, state: _PromptState, index: int) -> tuple[list[int], list[bool], int]:
        if index not in state.tokens:
            loop = asyncio.get_running_loop()
            # tokenizing an 8k-token trace takes milliseconds: keep the event loop free for other prompts
            state.tokens[index] = await loop.run_in_executor(None, self._tokenize_trace, state.traces[index])
        return state.tokens[index]

    def _tokenize_trace(self, text: str) -> tuple[list[int], list[bool], int]:
        ids, dropped = expert_trace_tokens(self.tokenizer, text, self.trapo.response_length)
        missing = [t for t in set(ids) if t not in self._piece_text]
        if missing:
            for token_id, piece in zip(missing, self.tokenizer.batch_decode([[t] for t in missing]), strict=True):
                self._piece_text[token_id] = piece
        return ids, paragraph_breaks([self._piece_text[t] for t in ids]), dropped

    # ---- scoring and writing

    async def _agent_loop_postprocess(self, output, validate, **kwargs):
        plan = kwargs.pop("trapo", None)
        if plan is None:
            return await super()._agent_loop_postprocess(output, validate, **kwargs)
        # score now (the rule needs it), write when the whole group is in (_write_group)
        await self._compute_score([output], kwargs=kwargs)
        return _Scored(output, kwargs)

    async def _write_group(self, result: MicroGroupResult) -> None:
        """All n rows of the prompt, keys ``{uid}_{session}_0``, through verl's TQ row builder."""
        scored: list[_Scored] = [result.payload(s.session_id) for s in result.samples]
        generated = [x.output.extra_fields for x, s in zip(scored, result.samples, strict=True) if s.plan.generate]
        for x, sample in zip(scored, result.samples, strict=True):
            extra = x.output.extra_fields
            if not sample.plan.generate:
                # a full trace calls no server, so it has no weight version: take those of the prompt's
                # generated rows (the replay buffer reads min/max_global_steps from every row)
                for key, pick in (("min_global_steps", min), ("max_global_steps", max)):
                    values = [e.get(key) for e in generated if e.get(key) is not None]
                    extra[key] = pick(values) if values else x.kwargs.get("global_steps")
            extra["trapo"] = {
                "micro_group": sample.group + 1,
                "guided": int(sample.plan.guided),
                "no_trace": int(sample.plan.no_trace),
                "prefix_len": int(sum(x.output.prefix_mask)),
                "sft_len": int(sum(x.output.sft_mask)),
                "trace_index": sample.plan.trace_index,
                "trace_cut": sample.plan.trace_cut,
                "generated": int(sample.plan.generate),
                "round": sample.round,
                "prompt_rounds": result.rounds,
                "prompt_discarded": result.discarded,
            }
        write = super()._agent_loop_postprocess
        await asyncio.gather(*(write(x.output, False, **x.kwargs) for x in scored))


TrapoAgentLoopWorkerActor = ray.remote(TrapoAgentLoopWorker)


class TrapoAgentLoopManager(AgentLoopManagerTQ):
    """verl's TransferQueue agent-loop manager whose workers run TRAPO's micro-groups.

    ``+actor_rollout_ref.rollout.agent.agent_loop_manager_class=trustrl.recipes.trapo.rollout.TrapoAgentLoopManager``
    """

    def __init__(self, config: DictConfig, llm_client, teacher_client=None, reward_loop_worker_handles=None):
        # before any worker exists: bad settings fail the launch, not every prompt
        self.trapo = check_trapo_rollout_config(config, reward_loop_worker_handles)
        super().__init__(config, llm_client, teacher_client, reward_loop_worker_handles)
        # AgentLoopManagerTQ.__init__ installs its own worker class: replace it afterwards (workers spawn in create())
        self.agent_loop_workers_class = TrapoAgentLoopWorkerActor
