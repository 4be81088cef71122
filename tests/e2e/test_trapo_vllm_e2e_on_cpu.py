# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""TRAPO's training path, unguided: `python -m trustrl.recipes.trapo.main` runs two steps on the CPU tier with
`trapo_loss` installed on the actor workers and verl's vLLM rollout (`rollout.name=vllm`, vLLM's CPU build); without
expert prefixes the RL term alone trains.

The rollout is TRAPO's agent-loop manager with `trapo.micro_group.enable=False`: plain sampling whose rows carry
all-zero `prefix_mask`/`sft_mask`, so the masks travel rollout -> TransferQueue -> actor engine -> `trapo_loss`."""

import math

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


@pytest.fixture(scope="module")
def trapo_vllm_run(tmp_path_factory):
    spec = RunSpec(
        algo="trapo",
        steps=2,
        prompts_per_step=4,
        n=4,
        entry="trustrl.recipes.trapo.main",
        # The recipe yaml selects TRAPO's agent-loop manager; unguided, it runs verl's plain n-sample path with
        # all-zero masks, so the masks do reach the loss (masks_missing == 0).
        extra=["trapo.micro_group.enable=False"],
    )
    return run(spec, tmp_path_factory.mktemp("trapo_vllm"), timeout_s=600)


def test_recipe_entry_point_runs_on_vllm(trapo_vllm_run):
    assert_no_leftover(trapo_vllm_run)
    assert trapo_vllm_run.command[1:3] == ["-m", "trustrl.recipes.trapo.main"]
    assert "trapo.micro_group.enable=False" in trapo_vllm_run.command
    assert "actor_rollout_ref.rollout.name=vllm" in trapo_vllm_run.command
    assert trapo_vllm_run.returncode == 0, trapo_vllm_run.log[-4000:]
    assert [m["step"] for m in trapo_vllm_run.metrics] == [1, 2]
    assert_no_leaked_shm(trapo_vllm_run)


def test_trapo_vllm_metrics_are_finite(trapo_vllm_run):
    for key in ("actor/pg_loss", "actor/grad_norm", "critic/score/mean", "critic/advantages/mean"):
        assert_finite(trapo_vllm_run.series(key), key)
    for step in trapo_vllm_run.metrics:
        bad = {k: v for k, v in step.items() if isinstance(v, float) and not math.isfinite(v)}
        assert not bad, (step["step"], bad)


def test_trapo_vllm_loss_was_installed_and_logged(trapo_vllm_run):
    keys = sorted({k for m in trapo_vllm_run.metrics for k in m if k.startswith("actor/trapo/")})
    # Only trapo_loss emits these keys: their presence proves the trainer swapped the workers' loss.
    expected = ("rl_loss", "sft_loss", "sft_nll", "sft_token_share", "rl_token_share", "sft_p_mean")
    for key in expected + ("sft_p_lt_alpha_share",):
        assert f"actor/trapo/{key}" in keys, (key, keys)
    # the trainer turned the loss's per-response-token sums into SFT-token means
    assert not any("per_resp_token" in k for k in keys), keys
    for key in keys:
        assert_finite(trapo_vllm_run.series(key), key)
    # Unguided: no SFT token, every response token is trained by the RL term.
    assert trapo_vllm_run.series("actor/trapo/sft_token_share") == [0.0, 0.0]
    assert trapo_vllm_run.series("actor/trapo/sft_loss") == [0.0, 0.0]
    assert trapo_vllm_run.series("actor/trapo/rl_token_share") == pytest.approx([1.0, 1.0])
    assert trapo_vllm_run.series("actor/trapo/rl_loss") == trapo_vllm_run.series("actor/pg_loss")
    # the rollout's (zero) masks reached the loss: no micro-batch fell back to "masks missing"
    assert trapo_vllm_run.series("actor/trapo/masks_missing") == [0.0, 0.0]
    assert all(g > 0 for g in trapo_vllm_run.series("actor/grad_norm"))
    # no micro-group rows: the rollout mixin adds nothing
    assert not any(k.startswith("rollout/trapo/") for m in trapo_vllm_run.metrics for k in m)


def test_trapo_vllm_synced_weights_reach_the_generator(trapo_vllm_run):
    # unguided rows carry vLLM's own log-probs on every token, so verl's mismatch metric is meaningful here too
    assert_weights_reach_generator(trapo_vllm_run, 2)
    assert_rollout_matches_actor(trapo_vllm_run, 2)
