# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""QUATRO as a drop-in: stock `python -m verl.trainer.main_ppo` with `algorithm.adv_estimator=quatro` and
`policy_loss.loss_mode=quatro`, names registered only by our plugin, two steps on the CPU tier."""

import pytest
from trustrl.recipes.cpu.launch import RunSpec, run

from tests.e2e.conftest import TRAINER_RUN, assert_finite, assert_no_leftover

pytestmark = TRAINER_RUN


@pytest.fixture(scope="module")
def quatro_run(tmp_path_factory):
    # Two mini-batches per step: the second update is off-policy, so the log-ratio terms are exercised.
    spec = RunSpec(algo="quatro", steps=2, prompts_per_step=4, n=4, updates_per_step=2)
    return run(spec, tmp_path_factory.mktemp("quatro"), timeout_s=420)


def test_stock_entry_point_runs_quatro(quatro_run):
    assert_no_leftover(quatro_run)
    assert quatro_run.command[1:3] == ["-m", "verl.trainer.main_ppo"]
    assert "algorithm.adv_estimator=quatro" in quatro_run.command
    assert "actor_rollout_ref.actor.policy_loss.loss_mode=quatro" in quatro_run.command
    assert quatro_run.returncode == 0, quatro_run.log[-4000:]
    assert [m["step"] for m in quatro_run.metrics] == [1, 2]


def test_quatro_metrics_logged_and_finite(quatro_run):
    keys = sorted({k for m in quatro_run.metrics for k in m if k.startswith("actor/quatro/")})
    assert keys, "no actor/quatro/* metric in the trainer's log"
    for key in keys:
        assert_finite(quatro_run.series(key), key)
    assert_finite(quatro_run.series("actor/pg_loss"), "actor/pg_loss")
    assert all(g > 0 for g in quatro_run.series("actor/grad_norm"))


def test_advantages_are_target_log_ratios(quatro_run):
    # T+ > 0 > T- within each mixed group; the estimator wrote targets, not zeros.
    assert max(quatro_run.series("critic/advantages/max")) > 0
    assert min(quatro_run.series("critic/advantages/min")) < 0
    assert len({s[2] for s in quatro_run.weight_syncs}) == 3
