# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""TRAPO guided: `python -m trustrl.recipes.trapo.main` with the micro-group rollout worker runs two steps on the CPU
tier; the task rows carry two tiny expert traces (`extra_info.expert_solutions`, 10 and 15 tokens with paragraph
breaks) and the random model's 0 / 0.5 / 1 rewards trigger guidance under the official_code thresholds.

The recipe yaml selects `TrapoAgentLoopManager`; the CPU tier's trapo overrides turn on `trapo.micro_group.enable`.
Each prompt's 8 rows are micro-groups 4, 2, 1, 1; guided rows carry `prefix_mask`/`sft_mask` into TransferQueue, the
actor's `trapo_loss` trains their SFT tokens with TrSFT, and the trainer logs the rollout's `rollout/trapo/*` metrics.
"""

import math

import pytest
from trustrl.recipes.cpu import task
from trustrl.recipes.cpu.launch import ALGO_OVERRIDES, RunSpec, run

from tests.e2e.conftest import TRAINER_RUN, assert_finite, assert_no_leftover

pytestmark = TRAINER_RUN

N = 8
PROMPTS = 4
STEPS = 2


@pytest.fixture(scope="module")
def guided_run(tmp_path_factory):
    spec = RunSpec(algo="trapo", steps=STEPS, prompts_per_step=PROMPTS, n=N)
    return run(spec, tmp_path_factory.mktemp("trapo_guided"), timeout_s=540)


def test_entry_point_runs_guided(guided_run):
    assert_no_leftover(guided_run)
    assert guided_run.command[1:3] == ["-m", "trustrl.recipes.trapo.main"]
    assert "trapo.micro_group.enable=True" in ALGO_OVERRIDES["trapo"]
    assert "trapo.micro_group.enable=True" in guided_run.command
    # the manager comes from the recipe yaml, not from the command line
    assert not any("agent_loop_manager_class" in arg for arg in guided_run.command)
    assert guided_run.returncode == 0, guided_run.log[-4000:]
    assert [m["step"] for m in guided_run.metrics] == list(range(1, STEPS + 1))


def test_every_group_kept_n_rows(guided_run):
    for step in guided_run.metrics:
        # the trainer's TrapoRolloutMetricsMixin counted the rows of each uid in the trained batch
        assert step["rollout/trapo/rows_per_prompt/min"] == step["rollout/trapo/rows_per_prompt/max"] == N, step
    # the sequences the trainer saw: prompts x n, no group lost or padded
    assert guided_run.series("rollout/trapo/rounds/max"), "no rollout/trapo/* metrics: the worker did not run"


def test_prompts_were_guided_at_every_level(guided_run):
    for step in guided_run.metrics:
        shares = {g: step.get(f"rollout/trapo/guided_share/g{g}", 0.0) for g in (2, 3, 4)}
        # every level guided some prompt at every step (random model: mean reward ~0.3 < 2/4, 4/6, 7/7)
        assert all(0 < share <= 1 for share in shares.values()), (step["step"], shares)
        assert step["rollout/trapo/no_trace_share"] == 0.0
        # expert prefixes: the 25% / 50% cuts of trace 0 (snapped to its paragraph break: 7 tokens) and the full
        # trace 1 (15 tokens + EOS = 16)
        assert step["rollout/trapo/prefix_len/g4"] == 16.0, step
        assert step["rollout/trapo/prefix_len/g2"] == 7.0 and step["rollout/trapo/prefix_len/g3"] == 7.0, step
        # rows with TrSFT tokens per prompt: one 25% copy, the full trace (the 50% cut equals the 25% one here: its
        # prefix is supervised once): at most 2 rows
        assert 0.0 < step["rollout/trapo/sft_rows/mean"] <= 2.0, step
        # the unguided rows are reported on their own (the paper's "on-policy" reward)
        assert 0.0 <= step["rollout/trapo/unguided/reward_mean"] <= 1.0
        assert step["rollout/trapo/rounds/max"] >= 2.0  # guided groups waited for the g1 rewards


def test_guided_rows_trained_with_trsft(guided_run):
    # Only trapo_loss emits these; nonzero SFT terms prove the masks travelled rollout -> TQ -> actor -> loss.
    assert guided_run.series("actor/trapo/masks_missing") == [0.0] * STEPS
    share = guided_run.series("actor/trapo/sft_token_share")
    assert len(share) == STEPS and all(0 < s < 1 for s in share), share
    nll = guided_run.series("actor/trapo/sft_nll")
    assert len(nll) == STEPS and all(math.isfinite(v) and v > 0 for v in nll), nll
    assert all(v != 0 for v in guided_run.series("actor/trapo/sft_loss"))
    # prefix tokens leave the RL term: fewer RL tokens than response tokens
    assert all(0 < s < 1 for s in guided_run.series("actor/trapo/rl_token_share"))
    for key in ("actor/pg_loss", "actor/grad_norm", "critic/score/mean"):
        assert_finite(guided_run.series(key), key)
    assert all(g > 0 for g in guided_run.series("actor/grad_norm"))


def test_task_traces_fit_the_response():
    # the fixture data this test relies on: two traces, short enough for response_length 16 with EOS
    traces = task.expert_solutions("3")
    assert len(traces) == 2 and all("\n\n" in t for t in traces)
