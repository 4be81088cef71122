# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""TRAPO guided: `python -m trustrl.recipes.trapo.main` with the micro-group rollout worker runs two steps on the CPU
tier with verl's vLLM rollout (`rollout.name=vllm`, vLLM's CPU build); the task rows carry two tiny expert traces
(`extra_info.expert_solutions`, 10 and 15 tokens with paragraph breaks) and the random model's 0 / 0.5 / 1 rewards
trigger guidance under the official_code thresholds.

The recipe yaml selects `TrapoAgentLoopManager`; the CPU tier's trapo overrides turn on `trapo.micro_group.enable`.
Each prompt's 8 rows are micro-groups 4, 2, 1, 1; guided rows carry `prefix_mask`/`sft_mask` into TransferQueue, the
actor's `trapo_loss` trains their SFT tokens with TrSFT, and the trainer logs the rollout's `rollout/trapo/*` metrics.
Guided rows are continued by the vLLM server from `prompt + prefix` with `max_tokens = response_length - len(prefix)`;
full-trace rows make no server call. The server's request log (TRUSTRL_CPU_REQUEST_LOG) shows both.
"""

import json
import math
from collections import Counter

import pytest
from trustrl.recipes.cpu import task
from trustrl.recipes.cpu.launch import ALGO_OVERRIDES, REQUEST_LOG_ENV, RunSpec, run

from tests.e2e.conftest import (
    TRAINER_RUN,
    assert_finite,
    assert_no_leaked_shm,
    assert_no_leftover,
    assert_weights_reach_generator,
)

pytestmark = TRAINER_RUN

N = 8
PROMPTS = 4
STEPS = 2
RESPONSE_LENGTH = 16


def trace_lengths() -> tuple[int, int]:
    """(token length of trace 1 as a full response, with EOS; token length of trace 0) in the task's tokenizer."""
    import tempfile

    from trustrl.recipes.trapo.prefix import expert_trace_ids

    tok = task.build_tokenizer(tempfile.mkdtemp())
    traces = task.expert_solutions("3")
    return len(expert_trace_ids(tok, traces[1], RESPONSE_LENGTH)), len(tok.encode(traces[0], add_special_tokens=False))


@pytest.fixture(scope="module")
def guided_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("trapo_guided_vllm")
    requests = workdir / "requests.jsonl"
    spec = RunSpec(
        algo="trapo",
        steps=STEPS,
        prompts_per_step=PROMPTS,
        n=N,
        response_length=RESPONSE_LENGTH,
        env={REQUEST_LOG_ENV: str(requests)},
    )
    result = run(spec, workdir, timeout_s=600)
    result.requests = [json.loads(line) for line in requests.read_text().splitlines()] if requests.exists() else []
    return result


def test_entry_point_runs_guided_on_vllm(guided_run):
    assert_no_leftover(guided_run)
    assert guided_run.command[1:3] == ["-m", "trustrl.recipes.trapo.main"]
    assert "trapo.micro_group.enable=True" in ALGO_OVERRIDES["trapo"]
    assert "trapo.micro_group.enable=True" in guided_run.command
    # the manager comes from the recipe yaml, not from the command line
    assert not any("agent_loop_manager_class" in arg for arg in guided_run.command)
    assert "actor_rollout_ref.rollout.name=vllm" in guided_run.command
    assert guided_run.returncode == 0, guided_run.log[-4000:]
    assert [m["step"] for m in guided_run.metrics] == list(range(1, STEPS + 1))
    assert_no_leaked_shm(guided_run)


def test_guided_vllm_every_group_kept_n_rows(guided_run):
    for step in guided_run.metrics:
        # the trainer's TrapoRolloutMetricsMixin counted the rows of each uid in the trained batch
        assert step["rollout/trapo/rows_per_prompt/min"] == step["rollout/trapo/rows_per_prompt/max"] == N, step
    # the sequences the trainer saw: prompts x n, no group lost or padded
    assert guided_run.series("rollout/trapo/rounds/max"), "no rollout/trapo/* metrics: the worker did not run"


def test_guided_vllm_prompts_were_guided_at_every_level(guided_run):
    for step in guided_run.metrics:
        shares = {g: step.get(f"rollout/trapo/guided_share/g{g}", 0.0) for g in (2, 3, 4)}
        # every level guided some prompt at every step (random model: mean reward ~0.3 < 2/4, 4/6, 7/7)
        assert all(0 < share <= 1 for share in shares.values()), (step["step"], shares)
        assert step["rollout/trapo/no_trace_share"] == 0.0
        # expert prefixes: the 25% / 50% cuts of trace 0 snap to its one paragraph break (the same prefix), shorter
        # than the trace; g4 gets the full trace 1 with EOS
        full, trace0 = trace_lengths()
        assert step["rollout/trapo/prefix_len/g4"] == full, step
        assert 0 < step["rollout/trapo/prefix_len/g2"] == step["rollout/trapo/prefix_len/g3"] < trace0, step
        # rows with TrSFT tokens per prompt: one 25% copy, the full trace (the 50% cut equals the 25% one here: its
        # prefix is supervised once): at most 2 rows
        assert 0.0 < step["rollout/trapo/sft_rows/mean"] <= 2.0, step
        # the unguided rows are reported on their own (the paper's "on-policy" reward)
        assert 0.0 <= step["rollout/trapo/unguided/reward_mean"] <= 1.0
        assert step["rollout/trapo/rounds/max"] >= 2.0  # guided groups waited for the g1 rewards


def test_guided_vllm_rows_trained_with_trsft(guided_run):
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


def test_guided_vllm_continuations_budgeted_and_full_traces_not_sent(guided_run):
    reqs = guided_run.requests
    assert reqs, "the vLLM server logged no request"
    # unguided samples: the plain prompt, no caller budget (verl's server default, the response length)
    plain = [r for r in reqs if r["max_tokens"] is None]
    assert plain, reqs[:5]
    prompt_len = plain[0]["prompt_len"]
    assert {r["prompt_len"] for r in plain} == {prompt_len}, "unguided requests with different prompts"
    assert all(r["generated"] <= RESPONSE_LENGTH for r in plain)
    # guided continuations: prompt + prefix in, budget = response_length - len(prefix), never more generated
    guided = [r for r in reqs if r["max_tokens"] is not None]
    assert guided, "no guided continuation reached the vLLM server"
    prefixes = Counter(r["prompt_len"] - prompt_len for r in guided)
    for r in guided:
        prefix = r["prompt_len"] - prompt_len
        assert 0 < prefix < RESPONSE_LENGTH and r["max_tokens"] == RESPONSE_LENGTH - prefix, r
        assert 1 <= r["generated"] <= r["max_tokens"], r
    # only the cut prefixes of g2 / g3 were continued; the full trace of g4 is returned without a server call
    cut = {step[f"rollout/trapo/prefix_len/g{g}"] for step in guided_run.metrics for g in (2, 3)}
    full = {step["rollout/trapo/prefix_len/g4"] for step in guided_run.metrics}
    assert not cut & full, (cut, full)
    assert set(prefixes) == cut, (prefixes, cut)
    # versions: every request was served by weights of the step it belongs to (0 before step 1's sync ... )
    assert {r["global_steps"] for r in reqs} == set(range(STEPS)), Counter(r["global_steps"] for r in reqs)


def test_guided_vllm_synced_weights_reach_the_generator(guided_run):
    # checksum of the served model: the guided rows' prefix tokens carry placeholder rollout log-probs, so verl's
    # training/rollout_probs_diff_* is not a clean sync signal on this run
    assert_weights_reach_generator(guided_run, STEPS)


def test_task_traces_fit_the_response():
    # the fixture data this test relies on: two traces, trace 0 with a paragraph break for the prefix cut to snap
    # to, both fitting response_length 16 with EOS (nothing cut off)
    traces = task.expert_solutions("3")
    assert len(traces) == 2 and "\n\n" in traces[0]
    full, trace0 = trace_lengths()
    assert full <= RESPONSE_LENGTH and trace0 < RESPONSE_LENGTH
