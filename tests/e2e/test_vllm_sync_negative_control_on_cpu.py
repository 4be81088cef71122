# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Negative control of the sync checks the vLLM end-to-end tests rely on: the same GRPO run with every weight sync
after the first dropped inside the vLLM worker (TRUSTRL_CPU_DROP_WEIGHT_SYNCS=1: the weight stream is received, not
loaded). The trainer still exits 0, and both checks must fail: the served model's checksum freezes at the initial
weights, and vLLM's log-probs drift away from the actor's (verl's training/rollout_probs_diff_max)."""

import pytest
from trustrl.recipes.cpu.launch import DROP_SYNCS_ENV, RunSpec, run

from tests.e2e.conftest import (
    TRAINER_RUN,
    assert_no_leaked_shm,
    assert_no_leftover,
    assert_rollout_matches_actor,
    assert_weights_reach_generator,
)

pytestmark = TRAINER_RUN

STEPS = 3


@pytest.fixture(scope="module")
def dropped_sync_run(tmp_path_factory):
    spec = RunSpec(algo="grpo", steps=STEPS, prompts_per_step=4, n=4, env={DROP_SYNCS_ENV: "1"})
    return run(spec, tmp_path_factory.mktemp("vllm_dropped_syncs"), timeout_s=600)


def test_vllm_run_with_dropped_syncs_still_exits_cleanly(dropped_sync_run):
    # a dropped sync is silent: nothing but the checks below notices it
    assert_no_leftover(dropped_sync_run)
    assert dropped_sync_run.returncode == 0, dropped_sync_run.log[-4000:]
    assert [m["step"] for m in dropped_sync_run.metrics] == list(range(1, STEPS + 1))
    assert all(g > 0 for g in dropped_sync_run.series("actor/grad_norm"))  # the actor did move
    assert_no_leaked_shm(dropped_sync_run)


def test_vllm_checksum_check_fails_when_syncs_are_dropped(dropped_sync_run):
    syncs = dropped_sync_run.weight_syncs
    assert [v for v, _ in syncs] == list(range(STEPS + 1)), syncs  # every sync still arrived
    assert len({c for _, c in syncs}) == 1, syncs  # ... and left the initial weights in place
    with pytest.raises(AssertionError, match="did not change the served model"):
        assert_weights_reach_generator(dropped_sync_run, STEPS)


def test_vllm_rollout_mismatch_check_fails_when_syncs_are_dropped(dropped_sync_run):
    diffs = dropped_sync_run.series("training/rollout_probs_diff_max")
    # step 1 samples with the synced initial weights; later steps with weights one, two updates stale
    assert diffs[0] < 5e-3 and diffs[-1] > diffs[0], diffs
    with pytest.raises(AssertionError):
        assert_rollout_matches_actor(dropped_sync_run, STEPS)
