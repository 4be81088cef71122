# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""QUATRO as a drop-in: stock `python -m verl.trainer.main_ppo` with `algorithm.adv_estimator=quatro` and
`policy_loss.loss_mode=quatro`, names registered only by our plugin, two steps on the CPU tier with verl's vLLM
rollout (`rollout.name=vllm`, vLLM's CPU build)."""

import pytest
from trustrl.recipes.cpu.launch import RunSpec, run

from tests.e2e.conftest import (
    TRAINER_RUN,
    assert_finite,
    assert_no_leaked_shm,
    assert_no_leftover,
    assert_rollout_matches_actor,
    assert_weights_reach_generator,
)

pytestmark = TRAINER_RUN

STEPS = 2


@pytest.fixture(scope="module")
def quatro_vllm_run(tmp_path_factory):
    # Two mini-batches per step: the second update is off-policy, so the log-ratio terms are exercised.
    spec = RunSpec(algo="quatro", steps=STEPS, prompts_per_step=4, n=4, updates_per_step=2)
    return run(spec, tmp_path_factory.mktemp("quatro_vllm"), timeout_s=600)


def test_stock_entry_point_runs_quatro_on_vllm(quatro_vllm_run):
    assert_no_leftover(quatro_vllm_run)
    assert quatro_vllm_run.command[1:3] == ["-m", "verl.trainer.main_ppo"]
    assert "algorithm.adv_estimator=quatro" in quatro_vllm_run.command
    assert "actor_rollout_ref.actor.policy_loss.loss_mode=quatro" in quatro_vllm_run.command
    assert "actor_rollout_ref.rollout.name=vllm" in quatro_vllm_run.command
    assert quatro_vllm_run.returncode == 0, quatro_vllm_run.log[-4000:]
    assert [m["step"] for m in quatro_vllm_run.metrics] == list(range(1, STEPS + 1))
    assert_no_leaked_shm(quatro_vllm_run)


def test_quatro_vllm_metrics_logged_and_finite(quatro_vllm_run):
    keys = sorted({k for m in quatro_vllm_run.metrics for k in m if k.startswith("actor/quatro/")})
    assert keys, "no actor/quatro/* metric in the trainer's log"
    for key in keys:
        assert_finite(quatro_vllm_run.series(key), key)
    assert_finite(quatro_vllm_run.series("actor/pg_loss"), "actor/pg_loss")
    assert all(g > 0 for g in quatro_vllm_run.series("actor/grad_norm"))


def test_quatro_vllm_advantages_are_target_log_ratios(quatro_vllm_run):
    # T+ > 0 > T- within each mixed group; the estimator wrote targets, not zeros.
    assert max(quatro_vllm_run.series("critic/advantages/max")) > 0
    assert min(quatro_vllm_run.series("critic/advantages/min")) < 0


def test_quatro_vllm_synced_weights_reach_the_generator(quatro_vllm_run):
    assert_weights_reach_generator(quatro_vllm_run, STEPS)
    assert_rollout_matches_actor(quatro_vllm_run, STEPS)
