# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""GRPO through stock `python -m verl.trainer.main_ppo` with `rollout.name=vllm` (vLLM's CPU build), long responses:
every response is sampled to 256 tokens (`ignore_eos`), so vLLM's `max_model_len` / `max_tokens` handling, the
actor's 272-token sequences and the weight sync all run at a length a real run has.

The same run is the negative control of the sync checks the vLLM end-to-end tests rely on: the weight syncs from
version 3 on (after step 3) are dropped inside the vLLM worker (TRUSTRL_CPU_DROP_WEIGHT_SYNCS=3: the weight stream is
received, not loaded). The trainer still exits 0; on steps 1-3 both checks pass (every sync changed the served model,
vLLM's log-probs match the actor's), and on step 4, sampled by a generator one update stale, both must fail: the
served model's checksum repeats and verl's training/rollout_probs_diff_max leaves the bound."""

from pathlib import Path

import pytest
from trustrl.recipes.cpu.launch import DROP_SYNCS_ENV, PROMPT_LENGTH, RunSpec, run

from tests.e2e.conftest import (
    TRAINER_RUN,
    assert_finite,
    assert_no_leaked_shm,
    assert_no_leftover,
    assert_rollout_matches_actor,
    assert_weights_reach_generator,
)

pytestmark = TRAINER_RUN

STEPS = 4
# syncs v0 (before step 1) .. v2 (after step 2) load; v3 and v4 are dropped, so step 4 samples with v2
FIRST_DROPPED = 3
RESPONSE_LENGTH = 256
REWARD = Path(__file__).with_name("digit_share_reward.py")


@pytest.fixture(scope="module")
def grpo_vllm_run(tmp_path_factory):
    spec = RunSpec(
        algo="grpo",
        steps=STEPS,
        prompts_per_step=4,
        n=4,
        response_length=RESPONSE_LENGTH,
        ignore_eos=True,
        extra=[f"reward.custom_reward_function.path={REWARD}"],
        env={DROP_SYNCS_ENV: str(FIRST_DROPPED)},
    )
    return run(spec, tmp_path_factory.mktemp("grpo_vllm"), timeout_s=900)


def test_grpo_vllm_trainer_exits_cleanly(grpo_vllm_run):
    # a dropped sync is silent: nothing but the checks below notices it
    assert_no_leftover(grpo_vllm_run)
    assert grpo_vllm_run.command[1:3] == ["-m", "verl.trainer.main_ppo"]
    assert "actor_rollout_ref.rollout.name=vllm" in grpo_vllm_run.command
    assert grpo_vllm_run.returncode == 0, grpo_vllm_run.log[-4000:]
    assert [m["step"] for m in grpo_vllm_run.metrics] == list(range(1, STEPS + 1))
    # verl's own vLLM server class was replaced by the CPU subclass (registered under the name "vllm")
    assert "CPUvLLMHttpServer" in grpo_vllm_run.log
    assert f"actor_rollout_ref.rollout.max_model_len={PROMPT_LENGTH + RESPONSE_LENGTH}" in grpo_vllm_run.command


def test_grpo_vllm_responses_are_256_tokens(grpo_vllm_run):
    for key in ("response_length/mean", "response_length/min", "response_length/max"):
        assert grpo_vllm_run.series(key) == [RESPONSE_LENGTH] * STEPS, (key, grpo_vllm_run.series(key))
    # every response filled the budget (verl counts a response of max_response_length tokens as clipped)
    assert grpo_vllm_run.series("response_length/clip_ratio") == [1.0] * STEPS


def test_grpo_vllm_losses_finite_and_gradients_nonzero(grpo_vllm_run):
    for key in ("actor/pg_loss", "actor/entropy", "critic/score/mean", "critic/advantages/max"):
        assert_finite(grpo_vllm_run.series(key), key)
    grad_norms = grpo_vllm_run.series("actor/grad_norm")
    assert_finite(grad_norms, "actor/grad_norm")
    assert all(g > 0 for g in grad_norms), grad_norms  # the actor moved on every step, also after the dropped syncs


def test_grpo_vllm_synced_weights_reach_the_generator(grpo_vllm_run):
    # while the syncs load: the served model's checksum changed at every sync, and vLLM's log-probs match the
    # actor's on 256-token responses
    assert_weights_reach_generator(grpo_vllm_run, STEPS, loaded=FIRST_DROPPED)
    assert_rollout_matches_actor(grpo_vllm_run, STEPS, first=FIRST_DROPPED)


def test_vllm_checksum_check_fails_when_syncs_are_dropped(grpo_vllm_run):
    syncs = grpo_vllm_run.weight_syncs
    assert [v for v, _ in syncs] == list(range(STEPS + 1)), syncs  # every sync still arrived
    checksums = [c for _, c in syncs]
    # ... and the dropped ones left version 2 in place
    assert checksums[FIRST_DROPPED:] == [checksums[FIRST_DROPPED - 1]] * (STEPS + 1 - FIRST_DROPPED), syncs
    with pytest.raises(AssertionError, match="did not change the served model"):
        assert_weights_reach_generator(grpo_vllm_run, STEPS)


def test_vllm_rollout_mismatch_check_fails_when_syncs_are_dropped(grpo_vllm_run):
    diffs = grpo_vllm_run.series("training/rollout_probs_diff_max")
    # steps 1-3 sample with the weights the actor has; step 4 with weights one update stale
    assert max(diffs[:FIRST_DROPPED]) < 5e-3 < diffs[FIRST_DROPPED], diffs
    with pytest.raises(AssertionError):
        assert_rollout_matches_actor(grpo_vllm_run, STEPS)


def test_grpo_vllm_shared_memory_cleaned_up(grpo_vllm_run):
    # verl's shared-memory weight sync and vLLM leave psm_* / vllm_dist_* entries; run() removed them
    assert_no_leaked_shm(grpo_vllm_run)
