# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Two GRPO steps through stock `python -m verl.trainer.main_ppo` on the CPU platform with the hf_cpu rollout."""

import pytest
from trustrl.recipes.cpu.launch import RunSpec, run

from tests.e2e.conftest import TRAINER_RUN, assert_finite, assert_no_leftover

pytestmark = TRAINER_RUN


@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory):
    return run(RunSpec(algo="grpo", steps=2, prompts_per_step=4, n=4), tmp_path_factory.mktemp("grpo"), timeout_s=420)


def test_trainer_exits_cleanly(grpo_run):
    assert_no_leftover(grpo_run)
    assert grpo_run.command[1:3] == ["-m", "verl.trainer.main_ppo"]
    assert grpo_run.returncode == 0, grpo_run.log[-4000:]
    assert [m["step"] for m in grpo_run.metrics] == [1, 2]


def test_losses_finite_and_gradients_nonzero(grpo_run):
    assert_finite(grpo_run.series("actor/pg_loss"), "actor/pg_loss")
    grad_norms = grpo_run.series("actor/grad_norm")
    assert_finite(grad_norms, "actor/grad_norm")
    assert all(g > 0 for g in grad_norms), grad_norms


def test_weights_change_and_reach_the_rollout(grpo_run):
    # One sync before step 1 (global_steps=0) and one after each step; every sync loads different weights.
    syncs = grpo_run.weight_syncs
    assert [s[1] for s in syncs] == ["0", "1", "2"], syncs
    checksums = [s[2] for s in syncs]
    assert len(set(checksums)) == 3, checksums
    # The rollout's log-probs match the actor's recomputation on the same tokens: the server generated with
    # the weights the actor had at that step (a stale model would differ by the whole update).
    diffs = grpo_run.series("training/rollout_probs_diff_max")
    assert len(diffs) == 2 and max(diffs) < 5e-3, diffs
