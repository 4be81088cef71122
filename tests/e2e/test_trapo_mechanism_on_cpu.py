# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""TRAPO's mechanism in verl's trainer on the CPU task: the demo's own TRAPO run (``python -m trustrl.recipes.cpu
--algo trapo``: 30 steps, seed 0, 16-token responses, 8 prompts x 8 rollouts in micro-groups 4, 2, 1, 1).

What must be visible in the run's own metrics, as the method claims (arXiv:2512.17636, Sec. 3.2):

* guidance fades as the model's own samples improve: the share of prompts whose second micro-group is guided
  (``rollout/trapo/guided_share/g2``; guided iff the mean reward of the 4 unguided g_1 samples is below 1/2) starts
  at 1 and falls once the unguided rollouts reach the answer format;
* the model's own (unguided) reward rises and does not end at 0;
* TrSFT learns the expert tokens (their NLL falls) and the unguided responses stay inside the length budget.

The bounds sit well inside what the demo's measured run reaches (README.md, results table: g2 share 1.00 -> 0.35,
unguided reward 0.065 -> 0.485), so a run that shows the mechanism passes; a run in which guidance never fades, or
the unguided reward collapses (as on the task's earlier reward, where g2 stayed at 1.00 and the reward fell to 0.10),
fails.
"""

from __future__ import annotations

import pytest
from trustrl.recipes.cpu.__main__ import demo_spec
from trustrl.recipes.cpu.launch import run
from trustrl.recipes.cpu.report import window

from tests.e2e.conftest import TRAINER_RUN, assert_finite, assert_no_leftover

pytestmark = TRAINER_RUN

T = "rollout/trapo/"


def mechanism_failures(metrics: list[dict], response_length: int = 16) -> list[str]:
    """What the run's metrics contradict of the mechanism (empty: all of it is visible)."""

    def series(key):
        return [m[key] for m in metrics if key in m]

    def ends(key):
        values = series(key)
        k = window(len(values))
        return sum(values[:k]) / k, sum(values[-k:]) / k

    failures = []
    g2 = series(T + "guided_share/g2")
    reward = series(T + "unguided/reward_mean")
    if len(g2) != len(metrics) or len(reward) != len(metrics):
        return [f"guided-rollout metrics missing: {len(g2)} g2 shares, {len(reward)} rewards, {len(metrics)} steps"]
    g2_first, g2_last = ends(T + "guided_share/g2")
    if not g2_first >= 0.9:
        failures.append(f"g2 not guided at the start (the random model should need guidance): {g2_first:.3f}")
    if not g2_last <= g2_first - 0.25:
        failures.append(f"guidance did not fade: g2 guided share {g2_first:.3f} -> {g2_last:.3f} (first/last means)")
    if not min(g2[len(g2) // 2 :]) <= 0.75:
        failures.append(f"no late step with g2 guided for at most 3/4 of the prompts: {g2[len(g2) // 2 :]}")
    r_first, r_last = ends(T + "unguided/reward_mean")
    if not r_last >= 0.2:
        failures.append(f"unguided reward ends low: {r_first:.3f} -> {r_last:.3f} (first/last means)")
    if not r_last >= r_first + 0.1:
        failures.append(f"unguided reward did not rise: {r_first:.3f} -> {r_last:.3f}")
    nll_first, nll_last = ends("actor/trapo/sft_nll")
    if not nll_last < nll_first:
        failures.append(f"TrSFT did not lower the expert tokens' NLL: {nll_first:.3f} -> {nll_last:.3f}")
    _, length_last = ends(T + "unguided/response_length_mean")
    if not length_last < response_length - 2:
        failures.append(f"unguided responses run into the {response_length}-token cap: {length_last:.2f} tokens")
    return failures


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    spec = demo_spec("trapo")  # exactly the demo's run: steps, seed, response length, batch, updates, rollout
    return spec, run(spec, tmp_path_factory.mktemp("trapo_mechanism"), timeout_s=1200)


def test_demo_run_completes(demo_run):
    spec, result = demo_run
    assert_no_leftover(result)
    assert result.returncode == 0, result.log[-4000:]
    assert [m["step"] for m in result.metrics] == list(range(1, spec.steps + 1))
    for key in ("actor/pg_loss", "actor/grad_norm", T + "unguided/reward_mean", T + "guided_share/g2"):
        assert_finite(result.series(key), key)


def test_guidance_fades_and_unguided_reward_rises(demo_run):
    spec, result = demo_run
    failures = mechanism_failures(result.metrics, spec.response_length)
    shown = {k: [round(v, 3) for v in result.series(T + k)] for k in ("guided_share/g2", "unguided/reward_mean")}
    assert not failures, (failures, shown)


def test_mechanism_check_rejects_the_failures_it_names():
    # the check itself, on synthetic runs: guidance that never fades, and an unguided reward that collapses
    def step(s, g2, reward, nll=1.0, length=8.0):
        return {
            "step": s,
            T + "guided_share/g2": g2,
            T + "unguided/reward_mean": reward,
            T + "unguided/response_length_mean": length,
            "actor/trapo/sft_nll": nll,
        }

    good = [step(s, 1.0 if s <= 15 else 0.5, 0.02 * s, 3.0 - 0.05 * s) for s in range(1, 31)]
    assert mechanism_failures(good) == []
    always_guided = [dict(m, **{T + "guided_share/g2": 1.0}) for m in good]
    assert any("did not fade" in f for f in mechanism_failures(always_guided))
    collapsed = [dict(m, **{T + "unguided/reward_mean": 0.2 if m["step"] <= 6 else 0.0}) for m in good]
    assert any("ends low" in f for f in mechanism_failures(collapsed))
    capped = [dict(m, **{T + "unguided/response_length_mean": 15.8}) for m in good]
    assert any("cap" in f for f in mechanism_failures(capped))
