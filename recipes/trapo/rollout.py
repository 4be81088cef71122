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
arXiv:2512.17636 Sec. 3.2, TRAPO.md sections 4-5). g_i (i > 1) is guided by an expert prefix of ratio L_i iff the mean
reward of all earlier trajectories of the prompt is below t_i (:func:`trustrl.recipes.trapo.prefix.decide_micro_group`).
The prefix is placed at the start of the response; the policy continues it with ``max_tokens = response_length -
len(prefix)``; L_i = 1 is the full trace and nothing is generated. Every row carries ``prefix_mask`` and ``sft_mask``
(int64, as long as ``responses``; zeros when unguided), the fields read by :func:`trustrl.policy_loss.trapo.trapo_loss`.

Pieces (verl hook points: TRAPO_ROLLOUT_NOTES.md section 2):

* :class:`TrapoAgentLoop` (registered ``trapo_agent``): one trajectory, guided or not, per :class:`TrajectoryPlan`.
* :class:`MicroGroupScheduler`: the decisions of one prompt, in order, from the rewards of its earlier trajectories.
* :class:`TrapoAgentLoopWorker`: ``_run_prompt`` runs the scheduler per prompt (prompts progress concurrently on the
  worker's event loop); all n rows are written to TransferQueue when the group is complete, with one uid and
  sessions ``0..n-1``; validation and ``enable=False`` run verl's plain n-sample path through ``trapo_agent``
  (rows with all-zero masks; prompts of another agent loop keep theirs and carry no masks).
* :class:`TrapoAgentLoopManager`: verl's TQ manager with this worker, validating the settings at start-up.
* :func:`trapo_rollout_metrics` / :class:`TrapoRolloutMetricsMixin`: the ``rollout/trapo/*`` metrics for the trainer.

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
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import numpy as np
import ray
import torch
import transfer_queue as tq
from omegaconf import DictConfig
from trustrl.recipes.trapo.config import MicroGroupSchedule, trapo_config_from
from trustrl.recipes.trapo.prefix import (
    decide_micro_group,
    expert_trace_tokens,
    expert_traces_of,
    paragraph_breaks,
    prefix_cut,
    trace_index,
)
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register
from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopManagerTQ, AgentLoopWorkerTQ, apply_greedy_sampling_params
from verl.utils.profiler import simple_timer

__all__ = [
    "TRAPO_AGENT",
    "MicroGroupResult",
    "MicroGroupScheduler",
    "TrajectoryPlan",
    "TrapoAgentLoop",
    "TrapoAgentLoopManager",
    "TrapoAgentLoopOutput",
    "TrapoAgentLoopWorker",
    "TrapoRolloutMetricsMixin",
    "TrapoRolloutSettings",
    "check_trapo_rollout_config",
    "compute_trapo_rollout_metrics",
    "trapo_rollout_metrics",
]

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))

TRAPO_AGENT = "trapo_agent"
# agent names a TRAPO prompt may carry: verl's default, which the worker replaces, and ours
_REPLACEABLE_AGENTS = (None, "single_turn_agent", TRAPO_AGENT)
METRIC_PREFIX = "rollout/trapo/"


# ------------------------------------------------------------------ settings


@dataclass(frozen=True)
class TrapoRolloutSettings:
    """Everything the worker reads from the run config (``trapo.micro_group`` plus the rollout's n and length)."""

    enable: bool
    schedule: MicroGroupSchedule
    trace_choice: str
    trace_seed: int
    paragraph_window: float
    sft_copies: str
    expert_field: str
    prefetch_unguided: bool
    reward_bounds: tuple[float, float] | None
    n: int
    response_length: int

    @classmethod
    def from_config(cls, config: DictConfig | Mapping) -> TrapoRolloutSettings:
        """Reads ``trapo.micro_group``, validated by ``trapo_config_from`` (``ValueError`` naming the key)."""
        mg = trapo_config_from(config).micro_group
        bounds = mg.reward_bounds
        rollout = config["actor_rollout_ref"]["rollout"]
        return cls(
            enable=mg.enable,
            schedule=mg.schedule,
            trace_choice=mg.trace_choice,
            trace_seed=mg.trace_seed,
            paragraph_window=float(mg.paragraph_window),
            sft_copies=mg.sft_copies,
            expert_field=mg.expert_field,
            prefetch_unguided=mg.prefetch_unguided,
            reward_bounds=None if bounds is None else (float(bounds[0]), float(bounds[1])),
            n=int(rollout["n"]),
            response_length=int(rollout["response_length"]),
        )


def check_trapo_rollout_config(config: DictConfig, reward_loop_worker_handles=None) -> TrapoRolloutSettings:
    """Start-up validation of a run that uses :class:`TrapoAgentLoopManager`; ``ValueError`` names key and fix."""
    settings = TrapoRolloutSettings.from_config(config)
    if not settings.enable:
        logger.info("TrapoAgentLoopManager with trapo.micro_group.enable=False: every trajectory runs unguided")
        return settings
    sizes = settings.schedule.sizes
    if sum(sizes) != settings.n:
        raise ValueError(
            f"trapo.micro_group.sizes={list(sizes)} sum to {sum(sizes)} but actor_rollout_ref.rollout.n="
            f"{settings.n}; make them agree (every group keeps exactly rollout.n rows)"
        )
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


@dataclass(frozen=True)
class TrajectoryPlan:
    """What one trajectory does; the worker passes it to :class:`TrapoAgentLoop` as the ``trapo`` keyword."""

    # 0-based micro-group index i (g_{i+1})
    group: int = 0
    # the rule guided the group and an expert trace was available
    guided: bool = False
    # the rule asked for guidance but the prompt has no expert trace: ran unguided
    no_trace: bool = False
    # expert tokens that start the response (empty: unguided)
    prefix_ids: tuple[int, ...] = ()
    # the prefix tokens get the TrSFT term (sft_mask = prefix_mask)
    sft: bool = False
    # False: the prefix is the whole response (full trace), no server call
    generate: bool = True
    # which expert trace (-1: none)
    trace_index: int = -1
    # tokens of that trace cut off to fit the response budget (0: the whole trace fits)
    trace_cut: int = 0


UNGUIDED = TrajectoryPlan()


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
        # a copy per call: verl passes one dict to every session of a prompt (TRAPO_ROLLOUT_NOTES pitfall 1)
        params = dict(sampling_params)
        if prefix:
            budget = self.response_length - len(prefix)
            if budget <= 0:
                # the prefix fills the response: the server would still sample one token (max_tokens >= 1)
                return [], [], {}, metrics
            # the server default would be ~response_length and overflow prefix + continuation (pitfall 3)
            params["max_tokens"] = budget
        with simple_timer("generate_sequences", metrics):
            out = await self.server_manager.generate(
                request_id=uuid4().hex, prompt_ids=prompt_ids + prefix, sampling_params=params, priority=priority
            )
        metrics["num_preempted"] = out.num_preempted if out.num_preempted is not None else -1
        return list(out.token_ids), out.log_probs, dict(out.extra_fields), metrics


# ------------------------------------------------------------------ the micro-groups of one prompt


@dataclass
class _Sample:
    session_id: int
    group: int
    plan: TrajectoryPlan
    task: asyncio.Task
    # generation round: 1 + the latest round whose rewards the launch waited for
    round: int


@dataclass
class MicroGroupResult:
    """The committed samples of one prompt, by session id, and what it took to get them."""

    samples: list[_Sample]
    # decisions[i]: the rule guided g_{i+1} (decisions[0] is always False)
    decisions: list[bool]
    # generation rounds on this prompt's critical path
    rounds: int
    # prefetched unguided samples dropped because their group was guided
    discarded: int

    def payload(self, session_id: int):
        return self.samples[session_id].task.result()[1]


PlanGroup = Callable[[int, bool], Awaitable[list[TrajectoryPlan]]]
RunSample = Callable[[TrajectoryPlan, int], Awaitable[tuple[float | None, Any]]]


class MicroGroupScheduler:
    """Runs the micro-groups of one prompt: decisions in order, samples as early as the decisions allow.

    Args:
        schedule: sizes n_i, thresholds t_i, prefix ratios L_i.
        plan_group: ``await plan_group(i, guided)`` → the ``n_i`` plans of micro-group i.
        run_sample: ``await run_sample(plan, session_id)`` → ``(reward, payload)`` of one scored trajectory.
        prefetch: draw the unguided samples of every later group together with g_1 (kept iff unguided).
        reward_bounds: ``(lo, hi)`` of one reward, for decisions taken before all rewards are in; ``None``: wait.

    Sessions are numbered through the groups (g_1 = 0..n_1-1, g_2 next, ...), so each prompt keeps exactly
    ``sum(n_i)`` rows whatever the decisions.
    """

    def __init__(
        self,
        schedule: MicroGroupSchedule,
        *,
        plan_group: PlanGroup,
        run_sample: RunSample,
        prefetch: bool = True,
        reward_bounds: tuple[float, float] | None = (0.0, 1.0),
    ):
        self.schedule = schedule
        self.plan_group = plan_group
        self.run_sample = run_sample
        self.prefetch = prefetch
        self.reward_bounds = reward_bounds
        self.start = [sum(schedule.sizes[:i]) for i in range(len(schedule.sizes))]

    async def _launch(self, group: int, guided: bool, round_: int) -> list[_Sample]:
        plans = await self.plan_group(group, guided)
        if len(plans) != self.schedule.sizes[group]:
            raise RuntimeError(f"{len(plans)} plans for micro-group {group + 1} of size {self.schedule.sizes[group]}")
        samples = []
        for k, plan in enumerate(plans):
            session = self.start[group] + k
            samples.append(_Sample(session, group, plan, asyncio.create_task(self.run_sample(plan, session)), round_))
        return samples

    def _reward(self, sample: _Sample) -> float:
        reward = sample.task.result()[0]  # re-raises the trajectory's error
        if reward is None:
            raise RuntimeError(
                f"session {sample.session_id} has no reward at rollout time; TRAPO's rule needs the reward loop "
                "workers (a rule-based reward or reward.reward_model.enable_resource_pool=True)"
            )
        if self.reward_bounds is not None and not self.reward_bounds[0] <= reward <= self.reward_bounds[1]:
            raise ValueError(
                f"reward {reward} of session {sample.session_id} is outside trapo.micro_group.reward_bounds="
                f"{list(self.reward_bounds)}; set the bounds of your reward, or null to decide on complete rewards"
            )
        return float(reward)

    def _decide(self, group: int, committed: list[_Sample]) -> bool | None:
        known = [self._reward(s) for s in committed if s.task.done()]
        return decide_micro_group(known, self.start[group], self.schedule.thresholds[group], self.reward_bounds)

    async def run(self) -> MicroGroupResult:
        n_groups = len(self.schedule.sizes)
        committed: list[_Sample] = []
        speculative: dict[int, list[_Sample]] = {}
        discarded: list[_Sample] = []
        decisions = [False]
        try:
            committed += await self._launch(0, False, 1)
            if self.prefetch:
                for group in range(1, n_groups):
                    speculative[group] = await self._launch(group, False, 1)
            group = 1
            while True:
                # take every decision that the rewards in so far (and the bounds) determine, in order
                while group < n_groups and (guided := self._decide(group, committed)) is not None:
                    decisions.append(guided)
                    waited = [s.round for s in committed if s.task.done() and s.plan.generate]
                    prefetched = speculative.pop(group, None)
                    if guided or prefetched is None:
                        for sample in prefetched or []:
                            sample.task.cancel()
                        discarded += prefetched or []
                        committed += await self._launch(group, guided, 1 + max(waited, default=0))
                    else:
                        committed += prefetched
                    group += 1
                pending = [s.task for s in committed if not s.task.done()]
                if not pending:
                    break
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for sample in committed:
                self._reward(sample)  # raise the error of any failed trajectory (also of the last group)
        finally:
            others = [s.task for s in [*committed, *discarded, *sum(speculative.values(), [])] if not s.task.done()]
            for task in others:
                task.cancel()
            # settle everything (and retrieve dropped samples' errors) before the caller publishes a status
            await asyncio.gather(*(s.task for s in [*committed, *discarded]), *others, return_exceptions=True)
        committed.sort(key=lambda s: s.session_id)
        rounds = max(s.round for s in committed if s.plan.generate)
        return MicroGroupResult(committed, decisions, rounds, len(discarded))


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
                # a full trace calls no server: take the weight versions of the prompt's generated rows (pitfall 7)
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


# ------------------------------------------------------------------ metrics


def compute_trapo_rollout_metrics(
    uids: Sequence[str], infos: Sequence[dict | None], rewards: Sequence[float], lengths: Sequence[int]
) -> dict[str, float]:
    """``rollout/trapo/*`` metrics of one training batch, from the per-row ``extra_fields["trapo"]`` records.

    Args:
        uids: prompt uid of each row.
        infos: ``extra_fields["trapo"]`` of each row (``None`` for rows not produced by the micro-group path).
        rewards: sequence reward of each row (sum of ``rm_scores``).
        lengths: response length of each row (tokens, prefix included).

    Returns:
        ``{}`` without TRAPO rows, else:
        ``guided_share/g{i}`` share of prompts whose micro-group i was guided, ``guided_share/any``;
        ``no_trace_share`` share of prompts the rule wanted guided but that had no expert trace;
        ``prefix_len/mean`` (and ``/g{i}``) mean expert prefix tokens of rows with a prefix;
        ``unguided/reward_mean``, ``unguided/response_length_mean`` over rows without a prefix (the paper reports
        these separately), ``guided/reward_mean`` over rows with one; ``rounds/mean``, ``rounds/max`` generation
        rounds per prompt; ``prefetch_discarded/mean`` dropped prefetched samples per prompt;
        ``rows_per_prompt/min`` and ``/max`` rows of each prompt in the batch (both ``rollout.n`` when every group
        kept its n rows); ``sft_rows/mean`` rows per prompt that carry TrSFT tokens;
        ``trace_cut_share`` share of prompts with a guided row whose expert trace was cut to the response budget
        (0 when the data holds only traces that fit), ``trace_cut/full_rows`` full-trace rows built from a cut
        trace (they end mid-reasoning and get TrSFT), ``trace_cut/tokens_max`` the most trace tokens cut off.
    """
    rows = [(u, i, float(r), int(n)) for u, i, r, n in zip(uids, infos, rewards, lengths, strict=True) if i]
    if not rows:
        return {}
    by_prompt: dict[str, list[dict]] = defaultdict(list)
    for uid, info, _, _ in rows:
        by_prompt[uid].append(info)
    n_prompts = len(by_prompt)
    levels = sorted({info["micro_group"] for _, info, _, _ in rows if info["micro_group"] > 1})
    out: dict[str, float] = {}
    for level in levels:
        hit = sum(any(i["guided"] and i["micro_group"] == level for i in infos_) for infos_ in by_prompt.values())
        out[f"guided_share/g{level}"] = hit / n_prompts
        lens = [i["prefix_len"] for _, i, _, _ in rows if i["micro_group"] == level and i["prefix_len"] > 0]
        if lens:
            out[f"prefix_len/g{level}"] = float(np.mean(lens))
    out["guided_share/any"] = sum(any(i["guided"] for i in v) for v in by_prompt.values()) / n_prompts
    out["no_trace_share"] = sum(any(i["no_trace"] for i in v) for v in by_prompt.values()) / n_prompts
    prefixed = [(i["prefix_len"], r) for _, i, r, _ in rows if i["prefix_len"] > 0]
    unguided = [(r, n) for _, i, r, n in rows if i["prefix_len"] == 0]
    out["prefix_len/mean"] = float(np.mean([p for p, _ in prefixed])) if prefixed else 0.0
    if prefixed:
        out["guided/reward_mean"] = float(np.mean([r for _, r in prefixed]))
    if unguided:
        out["unguided/reward_mean"] = float(np.mean([r for r, _ in unguided]))
        out["unguided/response_length_mean"] = float(np.mean([n for _, n in unguided]))
    rounds = [v[0]["prompt_rounds"] for v in by_prompt.values()]
    out["rounds/mean"], out["rounds/max"] = float(np.mean(rounds)), float(max(rounds))
    out["prefetch_discarded/mean"] = float(np.mean([v[0]["prompt_discarded"] for v in by_prompt.values()]))
    counts = [len(v) for v in by_prompt.values()]
    out["rows_per_prompt/min"], out["rows_per_prompt/max"] = float(min(counts)), float(max(counts))
    out["sft_rows/mean"] = float(np.mean([sum(i["sft_len"] > 0 for i in v) for v in by_prompt.values()]))

    def was_cut(info: dict) -> bool:
        return bool(info["guided"]) and info.get("trace_cut", 0) > 0

    cut = [i for _, i, _, _ in rows if was_cut(i)]
    out["trace_cut_share"] = sum(any(was_cut(i) for i in v) for v in by_prompt.values()) / n_prompts
    out["trace_cut/full_rows"] = float(sum(not i["generated"] for i in cut))
    out["trace_cut/tokens_max"] = float(max((i["trace_cut"] for i in cut), default=0))
    return {METRIC_PREFIX + k: v for k, v in out.items()}


def trapo_rollout_metrics(batch) -> dict[str, float]:
    """:func:`compute_trapo_rollout_metrics` of a trainer batch (``KVBatchMeta``) read from TransferQueue.

    Call it in the trainer's ``_compute_metrics`` (before the step clears TransferQueue), or mix
    :class:`TrapoRolloutMetricsMixin` into the trainer. Padding rows are skipped.
    """
    real = [i for i, tag in enumerate(batch.tags) if not tag.get("is_padding", False)]
    if not real:
        return {}
    keys = [batch.keys[i] for i in real]
    fields_ = ["extra_fields", "rm_scores", "responses"]
    data = tq.kv_batch_get(keys=keys, partition_id=batch.partition_id, select_fields=fields_)
    if "extra_fields" not in data.keys():
        return {}
    # .get keeps the NonTensorStack (item access would unwrap it); as the trainer reads extra_fields
    infos = [e.get("trapo") if isinstance(e, dict) else None for e in data.get("extra_fields").tolist()]
    rm_scores, responses = data.get("rm_scores"), data.get("responses")
    rewards = (rm_scores.to_padded_tensor(0.0) if rm_scores.is_nested else rm_scores).sum(-1).tolist()
    if responses.is_nested:
        lengths = responses.offsets().diff().tolist()
    else:
        lengths = [responses.shape[-1]] * len(keys)
    return compute_trapo_rollout_metrics([k.split("_")[0] for k in keys], infos, rewards, lengths)


class TrapoRolloutMetricsMixin:
    """Trainer mixin: adds :func:`trapo_rollout_metrics` to each step's metrics (``class T(Mixin, PPOTrainerSync)``)."""

    def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        super()._compute_metrics(batch, metrics, timing_raw, global_steps, epoch)
        metrics.update(trapo_rollout_metrics(batch))
