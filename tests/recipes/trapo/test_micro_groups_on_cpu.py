# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The micro-group decisions of one prompt (``MicroGroupScheduler``) for every reward pattern, in every mode.

The expected decisions are a table written from the rule in integer sums (recipes/trapo/README.md, "Micro-group
sampling"), not from the code's mean comparison: with 0/1 rewards and S(m) the number of correct trajectories among
the first m,

    official_code   g2: S(4) < 2    g3: S(6) < 4     g4: S(7) < 7
    paper           g2: S(4) < 2    g3: S(6) <= 4    g4: S(7) <= 6     (mean < 0.5, 0.7, 0.9)
"""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
from trustrl.recipes.trapo.config import MICRO_GROUP_PRESETS
from trustrl.recipes.trapo.micro_groups import MicroGroupScheduler, TrajectoryPlan

PATTERNS = list(itertools.product((0.0, 1.0), repeat=7))
MODES = {
    # (prefetch_unguided, reward_bounds)
    "default": (True, (0.0, 1.0)),
    "prefetch_only": (True, None),
    "strict_sequential": (False, None),
    "early_decisions_only": (False, (0.0, 1.0)),
}


def expected_decisions(preset: str, s: tuple[float, ...]) -> list[bool]:
    s4, s6, s7 = sum(s[:4]), sum(s[:6]), sum(s[:7])
    if preset == "official_code":
        return [False, s4 < 2, s6 < 4, s7 < 7]
    return [False, s4 < 2, s6 <= 4, s7 <= 6]


def expected_rounds(mode: str, d: list[bool]) -> int:
    """Generation rounds on the prompt's critical path (g4 guided is the full trace: no generation)."""
    if mode == "strict_sequential":
        return 3 + (not d[3])  # g1, g2, g3 one after another, g4 too when it samples
    if mode == "prefetch_only":
        return 1 + d[1] + d[2]  # each guided partial-prefix group waits for the rewards before it
    # default: the unguided samples come with g1, and a guided g2 fixes g3 (and g4), so g2 and g3 start together
    return 1 + (d[1] or d[2])


async def run_pattern(preset: str, mode: str, pattern, seed: int):
    schedule = MICRO_GROUP_PRESETS[preset]
    prefetch, bounds = MODES[mode]
    rng = random.Random(seed)
    calls = []

    async def plan_group(group: int, guided: bool):
        full = guided and schedule.prefix_ratios[group] >= 1.0
        return [TrajectoryPlan(group=group, guided=guided, generate=not full)] * schedule.sizes[group]

    async def run_sample(plan: TrajectoryPlan, session_id: int):
        calls.append((session_id, plan.guided))
        for _ in range(rng.randrange(4)):  # shuffle the completion order
            await asyncio.sleep(0)
        reward = pattern[session_id] if session_id < 7 else 1.0
        return reward, (session_id, plan)

    scheduler = MicroGroupScheduler(
        schedule, plan_group=plan_group, run_sample=run_sample, prefetch=prefetch, reward_bounds=bounds
    )
    return await scheduler.run(), calls


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("preset", ["official_code", "paper"])
def test_decisions_for_all_128_reward_patterns(preset, mode):
    async def main():
        return await asyncio.gather(*(run_pattern(preset, mode, p, seed=i) for i, p in enumerate(PATTERNS)))

    for pattern, (result, calls) in zip(PATTERNS, asyncio.run(main()), strict=True):
        decisions = expected_decisions(preset, pattern)
        assert result.decisions == decisions, pattern
        # exactly n = 8 committed samples, sessions 0..7, each carrying its group's decision
        assert [s.session_id for s in result.samples] == list(range(8))
        groups = [0] * 4 + [1] * 2 + [2, 3]
        assert [s.group for s in result.samples] == groups
        assert [s.plan.guided for s in result.samples] == [decisions[g] for g in groups], pattern
        assert all(s.task.done() for s in result.samples)
        if mode == "early_decisions_only":
            # between the two: decisions taken early start later groups sooner, unguided ones still wait
            fastest, slowest = expected_rounds("default", decisions), expected_rounds("strict_sequential", decisions)
            assert fastest <= result.rounds <= slowest, (pattern, result.rounds)
        else:
            assert result.rounds == expected_rounds(mode, decisions), (pattern, result.rounds)
        # prefetched samples are dropped only for guided groups; strict sampling draws nothing extra
        sizes = MICRO_GROUP_PRESETS[preset].sizes
        dropped = sum(sizes[g] for g in (1, 2, 3) if decisions[g]) if MODES[mode][0] else 0
        assert result.discarded == dropped
        assert len(calls) == 8 + dropped  # a full-trace row is a trajectory too (without a server call)


def test_custom_schedule_five_groups():
    """Custom lists: sizes (2, 2, 2, 1, 1), thresholds (-1, 0.5, 0.6, 0.8, 0.95), ratios (0, 0.1, 0.3, 0.6, 1)."""
    from trustrl.recipes.trapo.micro_groups import MicroGroupSchedule

    schedule = MicroGroupSchedule((2, 2, 2, 1, 1), (-1.0, 0.5, 0.6, 0.8, 0.95), (0.0, 0.1, 0.3, 0.6, 1.0))
    pattern = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]  # means: 1/2, 3/4, 3/6, 4/7

    async def plan_group(group, guided):
        return [TrajectoryPlan(group=group, guided=guided)] * schedule.sizes[group]

    async def run_sample(plan, session_id):
        return pattern[session_id], None

    result = asyncio.run(MicroGroupScheduler(schedule, plan_group=plan_group, run_sample=run_sample).run())
    # g2: 1/2 = 0.5 < 0.5 no; g3: 3/4 < 0.6 no; g4: 3/6 < 0.8 yes; g5: 4/7 < 0.95 yes
    assert result.decisions == [False, False, False, True, True]
    assert [s.session_id for s in result.samples] == list(range(8))


def test_failed_trajectory_fails_the_prompt_and_settles_every_task():
    schedule = MICRO_GROUP_PRESETS["official_code"]
    tasks = []

    async def plan_group(group, guided):
        return [TrajectoryPlan(group=group, guided=guided)] * schedule.sizes[group]

    async def run_sample(plan, session_id):
        tasks.append(asyncio.current_task())
        await asyncio.sleep(0)
        if session_id == 2:
            raise RuntimeError("server went away")
        await asyncio.sleep(0.05)
        return 0.0, None

    async def main():
        with pytest.raises(RuntimeError, match="server went away"):
            await MicroGroupScheduler(schedule, plan_group=plan_group, run_sample=run_sample).run()
        return [t.done() for t in tasks]

    assert all(asyncio.run(main()))


def test_failed_prefetched_sample_of_a_guided_group_is_dropped():
    schedule = MICRO_GROUP_PRESETS["official_code"]

    async def plan_group(group, guided):
        return [TrajectoryPlan(group=group, guided=guided)] * schedule.sizes[group]

    async def run_sample(plan, session_id):
        if session_id == 4 and not plan.guided:  # the prefetched unguided sample of g2
            raise RuntimeError("lost")
        return 0.0, plan

    result = asyncio.run(MicroGroupScheduler(schedule, plan_group=plan_group, run_sample=run_sample).run())
    assert result.decisions == [False, True, True, True]
    assert result.samples[4].plan.guided


def test_missing_or_out_of_bounds_reward_is_an_error():
    schedule = MICRO_GROUP_PRESETS["official_code"]

    async def plan_group(group, guided):
        return [TrajectoryPlan(group=group, guided=guided)] * schedule.sizes[group]

    def runner(reward):
        async def run_sample(plan, session_id):
            return reward, None

        return run_sample

    with pytest.raises(ValueError, match=r"trapo\.micro_group\.reward_bounds"):
        asyncio.run(MicroGroupScheduler(schedule, plan_group=plan_group, run_sample=runner(2.0)).run())
    with pytest.raises(RuntimeError, match="no reward at rollout time"):
        asyncio.run(MicroGroupScheduler(schedule, plan_group=plan_group, run_sample=runner(None)).run())
    # without bounds any finite reward is accepted (decided on complete rewards)
    ok = MicroGroupScheduler(schedule, plan_group=plan_group, run_sample=runner(2.0), reward_bounds=None)
    assert asyncio.run(ok.run()).decisions == [False, False, False, False]
