# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""TRAPO's micro-group sampling of one prompt, without verl: the schedule, the per-trajectory plan, the scheduler.

TRAPO (arXiv:2512.17636, Sec. 3.2 and Algorithm 1) samples the ``rollout.n`` trajectories of a prompt as
micro-groups g_1..g_N of sizes n_i. Before g_i (i > 1) the mean reward of *all* earlier trajectories of the prompt is
compared with a threshold t_i, and g_i continues an expert prefix of ratio L_i iff it is below (the official ``<``)::

    guided(g_i)  ⇔  (1/m_i) Σ_{j < m_i} R_j  <  t_i,        m_i = n_1 + … + n_{i-1},   t_1 = −1

L_i = 1 is the whole expert trace and nothing is generated. :data:`MICRO_GROUP_PRESETS` holds the two published
schedules; :class:`MicroGroupScheduler` takes the decisions of one prompt in order and launches each group's samples
as early as the decisions allow (recipes/trapo/README.md, "Micro-group sampling"). The pure pieces it uses (the
decision with pending rewards, the prefix cut) are in :mod:`trustrl.recipes.trapo.prefix`; the verl agent loop that
runs the plans is :mod:`trustrl.recipes.trapo.rollout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from trustrl.recipes.trapo.prefix import decide_micro_group

__all__ = [
    "MICRO_GROUP_PRESETS",
    "UNGUIDED",
    "MicroGroupResult",
    "MicroGroupSchedule",
    "MicroGroupScheduler",
    "PlanGroup",
    "RunSample",
    "TrajectoryPlan",
]


@dataclass(frozen=True)
class MicroGroupSchedule:
    """A resolved schedule: sizes n_i, thresholds t_i (t_1 = −1) and prefix ratios L_i (L_1 = 0), one per group."""

    sizes: tuple[int, ...]
    thresholds: tuple[float, ...]
    prefix_ratios: tuple[float, ...]


MICRO_GROUP_PRESETS = {
    # https://github.com/Su-my/TRAPO mix_trainer.py (fit): guided iff S(4) < 2, S(6) < 4, S(7) < 7 (S: sum of 0/1
    # rewards so far), i.e. running mean < 2/4, 4/6, 7/7; ratios 25% (Figure 1's "25start"), 50%, full trace
    "official_code": MicroGroupSchedule((4, 2, 1, 1), (-1.0, 2 / 4, 4 / 6, 7 / 7), (0.0, 0.25, 0.5, 1.0)),
    # arXiv:2512.17636 Sec. 3.2: thresholds 0.5, 0.7, 0.9 and ratios 0.2, 0.5, 1.0
    "paper": MicroGroupSchedule((4, 2, 1, 1), (-1.0, 0.5, 0.7, 0.9), (0.0, 0.2, 0.5, 1.0)),
}


@dataclass(frozen=True)
class TrajectoryPlan:
    """What one trajectory does; the rollout worker passes it to its agent loop (``trapo`` keyword)."""

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
