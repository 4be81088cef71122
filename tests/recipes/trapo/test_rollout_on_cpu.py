# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""TRAPO's rollout worker end to end on CPU: verl's agent loop and TransferQueue row builder, a fake server.

Each test drives ``TrapoAgentLoopWorker._run_prompt`` (as ``AgentLoopWorkerTQ.generate_sequences`` spawns it) with
the registered ``trapo_agent`` loop, a token-in token-out fake server, a fake reward-loop handle and an in-memory
TransferQueue, then checks the rows the trainer would read.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from types import SimpleNamespace

import pytest
import torch
from trustrl.recipes.trapo import rollout as trapo_rollout
from trustrl.recipes.trapo.config import TRAPO_MANAGER, validate_trapo_run_config
from trustrl.recipes.trapo.prefix import expert_trace_ids, expert_trace_tokens, paragraph_breaks, prefix_cut
from trustrl.recipes.trapo.rollout import (
    TRAPO_AGENT,
    TrajectoryPlan,
    TrapoAgentLoop,
    TrapoAgentLoopManager,
    TrapoAgentLoopWorker,
    check_trapo_rollout_config,
)
from trustrl.recipes.trapo.rollout_metrics import (
    TrapoRolloutMetricsMixin,
    compute_trapo_rollout_metrics,
    trapo_rollout_metrics,
)
from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopWorkerTQ
from verl.utils.import_utils import load_class_from_fqn
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

from tests.recipes.trapo.rollout_fakes import (
    RESPONSE_LENGTH,
    FakeRewardHandle,
    FakeServer,
    FakeTQ,
    bare_worker,
    compose_trapo_config,
    prompt_row,
    sampling_params,
    tiny_tokenizer,
    trajectory,
    with_overrides,
)

# trace 0 guides the partial prefixes, trace 1 is the full-trace row (official "fixed" choice)
TRACES = ["ab\n\ncd\n\nef ghij\n\nY", "one two\n\nY"]
MASKS = ("prefix_mask", "sft_mask")


@pytest.fixture(scope="module")
def base_config():
    return compose_trapo_config()


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture
def fake_tq(monkeypatch):
    return FakeTQ().install(monkeypatch)


def answer_by_prompt(prompt_text: str, sampling_params: dict) -> str:
    """The policy solves prompts containing "easy" ("Y"), fails the others, and solves after any expert prefix."""
    guided = "ab\n\n" in prompt_text
    return "Y" if "easy" in prompt_text or guided else "no"


def cut_of(tok, text: str, ratio: float) -> int:
    ids = expert_trace_ids(tok, text, RESPONSE_LENGTH)
    return prefix_cut(paragraph_breaks([tok.decode([t]) for t in ids]), ratio, 0.3)


def run_prompts(worker, prompts, validate=False):
    async def main():
        params = sampling_params(worker)
        await asyncio.gather(*(worker._run_prompt(p, params, trajectory(validate)) for p in prompts))

    asyncio.run(main())


def summary(rows):
    """(prefix_len, sft_len) per session."""
    return [(int(r["prefix_mask"].sum()), int(r["sft_mask"].sum())) for r in rows]


def test_hard_prompt_is_guided_at_every_level(base_config, tok, fake_tq):
    server = FakeServer(tok, answer_by_prompt)
    reward = FakeRewardHandle(tok)
    worker = bare_worker(base_config, tok, server, [reward])
    run_prompts(worker, [prompt_row("hard", "solve this", TRACES)])

    rows = fake_tq.group("hard")
    assert fake_tq.status["hard"] == ["running", "finished"]
    assert sorted(fake_tq.rows["train"]) == [f"hard_{s}_0" for s in range(8)]  # n rows, one uid, sessions 0..7
    c25, c50 = cut_of(tok, TRACES[0], 0.25), cut_of(tok, TRACES[0], 0.5)
    full = len(expert_trace_ids(tok, TRACES[1], RESPONSE_LENGTH))
    assert (c25, c50, full) == (8, 9, 11)
    # g1 0/4 -> g2 25% (one SFT copy: the second row), g3 50%, g4 the full trace 1; sft_mask = prefix_mask there
    assert summary(rows) == [(0, 0)] * 4 + [(c25, 0), (c25, c25), (c50, c50), (full, full)]
    for row in rows:
        n = row["responses"].numel()
        for name in MASKS:
            assert row[name].dtype == torch.int64 and row[name].numel() == n
        assert row["rollout_log_probs"].numel() == n and row["response_mask"].sum() == n
        # the prefix is the first tokens of the response
        k = int(row["prefix_mask"].sum())
        assert row["prefix_mask"][:k].all() and not row["prefix_mask"][k:].any()
        assert (row["rollout_log_probs"][:k] == 0).all() and (row["rollout_log_probs"][k:] == -0.5).all()
    trace0 = expert_trace_ids(tok, TRACES[0], RESPONSE_LENGTH)
    assert rows[4]["responses"][:c25].tolist() == trace0[:c25] and rows[6]["responses"][:c50].tolist() == trace0[:c50]
    # the full-trace row is the trace and its EOS, nothing generated, with the siblings' weight versions
    assert rows[7]["responses"].tolist() == expert_trace_ids(tok, TRACES[1], RESPONSE_LENGTH)
    assert rows[7]["extra_fields"]["min_global_steps"] == rows[7]["extra_fields"]["max_global_steps"] == 3
    assert [float(r["rm_scores"].sum()) for r in rows] == [0.0] * 4 + [1.0] * 4
    # the server: unguided calls without max_tokens; guided ones with the budget response_length - len(prefix)
    base = len(server.calls[0][0])
    guided = sorted((len(p) - base, sp["max_tokens"]) for p, sp in server.calls if len(p) > base)
    assert guided == [(c25, RESPONSE_LENGTH - c25)] * 2 + [(c50, RESPONSE_LENGTH - c50)]
    assert all("max_tokens" not in sp for p, sp in server.calls if len(p) == base)
    assert not any(len(p) - base == full for p, _ in server.calls)
    # expert traces stay out of the rows and the reward requests
    assert all("expert_solutions" not in r["extra_info"] for r in rows)
    assert all("expert_solutions" not in d.non_tensor_batch["extra_info"][0] for d in reward.requests)
    info = [r["extra_fields"]["trapo"] for r in rows]
    assert [i["micro_group"] for i in info] == [1, 1, 1, 1, 2, 2, 3, 4]
    assert [i["trace_index"] for i in info] == [-1] * 4 + [0, 0, 0, 1]
    assert info[0]["prompt_rounds"] == 2 and info[0]["prompt_discarded"] == 4


def test_easy_prompt_is_one_round_of_plain_samples(base_config, tok, fake_tq):
    server = FakeServer(tok, answer_by_prompt)
    worker = bare_worker(base_config, tok, server, [FakeRewardHandle(tok)])
    run_prompts(worker, [prompt_row("easy", "easy one", TRACES)])
    rows = fake_tq.group("easy")
    assert len(rows) == 8 and summary(rows) == [(0, 0)] * 8
    assert len(server.calls) == 8 and all("max_tokens" not in sp for _, sp in server.calls)
    assert rows[0]["extra_fields"]["trapo"]["prompt_rounds"] == 1
    assert rows[0]["extra_fields"]["trapo"]["prompt_discarded"] == 0


def test_schedule_of_mixed_reward_patterns(base_config, tok, fake_tq):
    """Four reward patterns that exercise level skipping, all four prompts on one worker concurrently."""
    patterns = {
        "p0": [0, 0, 0, 0, 1, 1, 1],  # 0/4 -> 25%, 50%, full
        "p1": [1, 1, 0, 0, 0, 0, 1],  # 2/4 unguided g2 0/2 -> 2/6 < 4/6: 50%; full
        "p2": [1, 1, 1, 0, 1, 1, 1],  # 3/4, 2/2 -> 5/6 unguided g3; 6/7 < 1: full
        "p3": [1, 1, 1, 1, 1, 1, 1],  # never guided
    }
    table = {(uid, s): float(r) for uid, pattern in patterns.items() for s, r in enumerate(pattern)}
    table.update({(uid, 7): 1.0 for uid in patterns})
    worker = bare_worker(base_config, tok, FakeServer(tok, answer_by_prompt), [FakeRewardHandle(tok, table=table)])
    run_prompts(worker, [prompt_row(uid, f"question {uid}", TRACES, index=i) for i, uid in enumerate(patterns)])
    c25, c50, full = 8, 9, 11
    assert summary(fake_tq.group("p0")) == [(0, 0)] * 4 + [(c25, 0), (c25, c25), (c50, c50), (full, full)]
    assert summary(fake_tq.group("p1")) == [(0, 0)] * 6 + [(c50, c50), (full, full)]
    assert summary(fake_tq.group("p2")) == [(0, 0)] * 7 + [(full, full)]
    assert summary(fake_tq.group("p3")) == [(0, 0)] * 8
    assert all(fake_tq.status[uid] == ["running", "finished"] for uid in patterns)
    # every row has one field set, and the whole batch stacks as the trainer's TransferQueue read does
    rows = [r for uid in patterns for r in fake_tq.group(uid)]
    assert len({frozenset(r) for r in rows}) == 1 and {*MASKS, "rollout_log_probs", "rm_scores"} <= set(rows[0])
    stacked = list_of_dict_to_tensordict([{k: r[k] for k in (*MASKS, "responses")} for r in rows])
    assert stacked["prefix_mask"].to_padded_tensor(0).shape == stacked["responses"].to_padded_tensor(0).shape
    # the metrics of this batch
    metrics = compute_trapo_rollout_metrics(
        [r["uid"] for r in rows],
        [r["extra_fields"]["trapo"] for r in rows],
        [float(r["rm_scores"].sum()) for r in rows],
        [r["responses"].numel() for r in rows],
    )
    m = {k.removeprefix("rollout/trapo/"): v for k, v in metrics.items()}
    assert m["guided_share/g2"] == 1 / 4 and m["guided_share/g3"] == 2 / 4 and m["guided_share/g4"] == 3 / 4
    assert m["guided_share/any"] == 3 / 4 and m["no_trace_share"] == 0.0
    assert m["prefix_len/mean"] == pytest.approx((2 * c25 + 2 * c50 + 3 * full) / 7)
    assert m["prefix_len/g2"] == c25 and m["prefix_len/g4"] == full
    # unguided rows: p0 4 (0), p1 6 (1,1,0,0,0,0), p2 7 (1,1,1,0,1,1,1), p3 8 (all 1) -> 16 / 25
    assert m["unguided/reward_mean"] == pytest.approx(16 / 25)
    assert m["rounds/max"] == 2.0 and m["rounds/mean"] == pytest.approx((2 + 2 + 1 + 1) / 4)
    # every group kept its 8 rows; rows with TrSFT tokens: p0 3 (one 25% copy, 50%, full), p1 2, p2 1, p3 0
    assert m["rows_per_prompt/min"] == m["rows_per_prompt/max"] == 8.0
    assert m["sft_rows/mean"] == pytest.approx((3 + 2 + 1 + 0) / 4)


def expected_guidance(preset: str, r: tuple[float, ...]) -> tuple[bool, bool, bool]:
    """(g2, g3, g4) guided, from the rule in integer sums of 0/1 rewards (recipes/trapo/README.md, micro-groups)."""
    s4, s6, s7 = sum(r[:4]), sum(r[:6]), sum(r[:7])
    if preset == "official_code":  # S(4) < 2, S(6) < 4, S(7) < 7
        return s4 < 2, s6 < 4, s7 < 7
    return s4 < 2, s6 <= 4, s7 <= 6  # paper: mean < 0.5, 0.7, 0.9


ALL_PATTERNS = list(itertools.product((0.0, 1.0), repeat=7))
# the patterns the paper preset decides differently (S(6) = 4: g3 guided iff 4/6 < 0.7; S(7) <= 6 is S(7) < 7);
# the scheduler test (test_micro_groups_on_cpu) runs all 128 under both presets
PAPER_ONLY = [p for p in ALL_PATTERNS if expected_guidance("paper", p) != expected_guidance("official_code", p)]


@pytest.mark.parametrize("preset, patterns", [("official_code", ALL_PATTERNS), ("paper", PAPER_ONLY)])
def test_reward_patterns_through_the_worker(base_config, tok, fake_tq, preset, patterns):
    """0/1 patterns of the first seven rewards (official: all 128), prompts concurrently on one worker: the rows,
    masks and budgets of each against the table. A trajectory costs verl's agent-loop instantiation (~10 ms), so the
    paper preset runs the patterns where it differs from official_code (``test_micro_groups_on_cpu`` has all 2^7)."""
    assert len(PAPER_ONLY) == 30  # S(6) = 4: C(6, 4) patterns × the 7th reward
    uids = [f"u{i:03d}" for i in range(len(patterns))]
    table = {(uid, s): r for uid, pattern in zip(uids, patterns) for s, r in enumerate(pattern)}
    table.update({(uid, 7): 1.0 for uid in uids})
    server = FakeServer(tok, answer_by_prompt)
    config = with_overrides(base_config, f"trapo.micro_group.preset={preset}")
    worker = bare_worker(config, tok, server, [FakeRewardHandle(tok, table=table)])
    # same prompt length for every uid, so a call's prefix length is its prompt length minus the base
    run_prompts(worker, [prompt_row(uid, f"q{uid}", TRACES, index=i) for i, uid in enumerate(uids)])
    # official 25%: k = 4, break at 7 < 10.45 -> 8; paper 20%: k = 3, break at 7 < 9.5 -> 8; 50%: k = 9, no break
    # in the window -> 9; full trace 1: 10 tokens + EOS
    c2, c3, full = 8, 9, 11
    ratios = worker.trapo.schedule.prefix_ratios
    assert (cut_of(tok, TRACES[0], ratios[1]), cut_of(tok, TRACES[0], ratios[2])) == (c2, c3)
    assert len(expert_trace_ids(tok, TRACES[1], RESPONSE_LENGTH)) == full
    n_g2 = n_g3 = 0
    for uid, pattern in zip(uids, patterns):
        g2, g3, g4 = expected_guidance(preset, pattern)
        n_g2, n_g3 = n_g2 + g2, n_g3 + g3
        rows = fake_tq.group(uid)
        assert fake_tq.status[uid] == ["running", "finished"], uid
        assert sorted(k for k in fake_tq.rows["train"] if k.startswith(uid + "_")) == [f"{uid}_{s}_0" for s in range(8)]
        expected = [(0, 0)] * 4
        expected += [(c2, 0), (c2, c2)] if g2 else [(0, 0)] * 2  # one SFT copy of the shared prefix
        expected += [(c3, c3) if g3 else (0, 0), (full, full) if g4 else (0, 0)]
        assert summary(rows) == expected, (uid, pattern)
        assert [r["extra_fields"]["trapo"]["guided"] for r in rows] == [0] * 4 + [g2] * 2 + [g3, g4], pattern
        assert [float(r["rm_scores"].sum()) for r in rows] == [*pattern, 1.0]
        for row in rows:
            assert all(row[name].numel() == row["responses"].numel() <= RESPONSE_LENGTH for name in MASKS)
    base = min(len(p) for p, _ in server.calls)  # g1 always samples unguided
    prefixes = [(len(p) - base, sp.get("max_tokens")) for p, sp in server.calls]
    assert {k for k, _ in prefixes} <= {0, c2, c3}  # the full trace never reaches the server
    assert all(budget == RESPONSE_LENGTH - k for k, budget in prefixes if k)  # max_tokens = response - prefix
    assert all(budget is None for k, budget in prefixes if not k)
    assert sum(k == c2 for k, _ in prefixes) == 2 * n_g2 and sum(k == c3 for k, _ in prefixes) == n_g3
    # official: S(4) < 2 in (1 + 4) / 16 of the 128, S(6) < 4 in (1 + 6 + 15 + 20) / 64 of them;
    # paper's S(6) = 4 patterns: g3 always guided, g2 never (S(4) >= S(6) - 2 = 2)
    expected_counts = {"official_code": (40, 84), "paper": (0, 30)}[preset]
    assert (n_g2, n_g3) == expected_counts


def test_strict_sequential_mode_waits_for_each_group(base_config, tok, fake_tq):
    config = with_overrides(
        base_config, "trapo.micro_group.prefetch_unguided=false", "trapo.micro_group.reward_bounds=null"
    )
    server = FakeServer(tok, answer_by_prompt)
    worker = bare_worker(config, tok, server, [FakeRewardHandle(tok)])
    assert worker.trapo.prefetch_unguided is False and worker.trapo.reward_bounds is None
    run_prompts(worker, [prompt_row("hard", "solve this", TRACES)])
    rows = fake_tq.group("hard")
    assert summary(rows) == [(0, 0)] * 4 + [(8, 0), (8, 8), (9, 9), (11, 11)]
    assert len(server.calls) == 7  # 4 + 2 + 1: nothing drawn ahead, the full trace needs no call
    info = [r["extra_fields"]["trapo"] for r in rows]
    assert [i["round"] for i in info[:7]] == [1] * 4 + [2, 2, 3] and info[0]["prompt_rounds"] == 3
    assert info[0]["prompt_discarded"] == 0


def test_prompt_without_expert_trace_runs_unguided_and_is_counted(base_config, tok, fake_tq):
    server = FakeServer(tok, answer_by_prompt)
    worker = bare_worker(base_config, tok, server, [FakeRewardHandle(tok)])
    run_prompts(worker, [prompt_row("bare", "solve this"), prompt_row("blank", "solve that", ["  "], index=1)])
    for uid in ("bare", "blank"):
        rows = fake_tq.group(uid)
        assert fake_tq.status[uid] == ["running", "finished"] and summary(rows) == [(0, 0)] * 8
        info = [r["extra_fields"]["trapo"] for r in rows]
        assert [i["no_trace"] for i in info] == [0] * 4 + [1] * 4 and not any(i["guided"] for i in info)
    rows = fake_tq.group("bare") + fake_tq.group("blank")
    metrics = compute_trapo_rollout_metrics(
        [r["uid"] for r in rows], [r["extra_fields"]["trapo"] for r in rows], [0.0] * 16, [3] * 16
    )
    assert metrics["rollout/trapo/no_trace_share"] == 1.0 and metrics["rollout/trapo/guided_share/any"] == 0.0
    assert all("max_tokens" not in sp for _, sp in server.calls)


def test_a_trace_longer_than_the_response_budget_is_counted_and_warned_once(base_config, tok, fake_tq, caplog):
    """A full trace of 60 characters (tokens) with a 40-token response: cut to 39 + EOS, the row says how much, the
    batch metrics count it, and the worker warns once however many prompts carry such traces."""
    long = "step " * 11 + "Y"  # 56 tokens > RESPONSE_LENGTH - 1 = 39
    ids, dropped = expert_trace_tokens(tok, long, RESPONSE_LENGTH)
    assert (len(ids), dropped, ids[-1]) == (RESPONSE_LENGTH, 56 - 39, tok.eos_token_id)
    server = FakeServer(tok, answer_by_prompt)
    worker = bare_worker(base_config, tok, server, [FakeRewardHandle(tok)])
    prompts = [prompt_row(f"cut{i}", f"solve {i}", [TRACES[0], long], index=i) for i in range(2)]
    with caplog.at_level(logging.WARNING, logger="trustrl.recipes.trapo.rollout"):
        run_prompts(worker, [*prompts, prompt_row("fits", "solve this", TRACES, index=2)])
    warnings = [r.getMessage() for r in caplog.records if "longer than the response budget" in r.getMessage()]
    assert len(warnings) == 1
    assert "is 17 tokens longer than the response budget (39 tokens + EOS)" in warnings[0]
    assert "--max-trace-tokens 39" in warnings[0] and "rollout/trapo/trace_cut_share" in warnings[0]
    rows = [r for uid in ("cut0", "cut1", "fits") for r in fake_tq.group(uid)]
    info = [r["extra_fields"]["trapo"] for r in rows]
    # the g4 full-trace rows of the first two prompts use the long trace 1; trace 0 fits everywhere
    assert [i["trace_cut"] for i in info] == ([0] * 7 + [17]) * 2 + [0] * 8
    assert rows[7]["responses"].tolist() == ids
    metrics = compute_trapo_rollout_metrics(
        [r["uid"] for r in rows],
        info,
        [float(r["rm_scores"].sum()) for r in rows],
        [r["responses"].numel() for r in rows],
    )
    assert metrics["rollout/trapo/trace_cut_share"] == pytest.approx(2 / 3)
    assert metrics["rollout/trapo/trace_cut/full_rows"] == 2.0 and metrics["rollout/trapo/trace_cut/tokens_max"] == 17.0
    # a batch without cut traces reports zeros (the metric is always there)
    fits = fake_tq.group("fits")
    clean = compute_trapo_rollout_metrics(["fits"] * 8, [r["extra_fields"]["trapo"] for r in fits], [0.0] * 8, [3] * 8)
    assert clean["rollout/trapo/trace_cut_share"] == 0.0 and clean["rollout/trapo/trace_cut/full_rows"] == 0.0


def test_validation_is_unguided_with_val_n_rows(base_config, tok, fake_tq):
    server = FakeServer(tok, answer_by_prompt)
    worker = bare_worker(base_config, tok, server, [FakeRewardHandle(tok)])
    run_prompts(worker, [prompt_row("val", "solve this", TRACES)], validate=True)
    rows = fake_tq.group("val", partition_id="val")
    assert not fake_tq.rows["train"] and fake_tq.status["val"] == ["running", "finished"]
    assert len(rows) == 2 and summary(rows) == [(0, 0)] * 2  # val_kwargs.n = 2, masks present and zero
    assert all(r[name].numel() == r["responses"].numel() for r in rows for name in MASKS)
    assert len(server.calls) == 2 and all("max_tokens" not in sp for _, sp in server.calls)


def test_disabled_micro_groups_sample_n_plain_rows_with_zero_masks(base_config, tok, fake_tq):
    config = with_overrides(base_config, "trapo.micro_group.enable=false")
    server = FakeServer(tok, answer_by_prompt)
    worker = bare_worker(config, tok, server, [FakeRewardHandle(tok)])
    run_prompts(worker, [prompt_row("off", "solve this", TRACES)])
    rows = fake_tq.group("off")
    assert len(rows) == 8 and summary(rows) == [(0, 0)] * 8 and "trapo" not in rows[0]["extra_fields"]
    assert fake_tq.status["off"] == ["running", "finished"]
    # verl's one round of n plain samples: no prefix, no budget, the traces never reach the server
    assert len(server.calls) == 8 and all("max_tokens" not in sp for _, sp in server.calls)


@pytest.mark.parametrize("validate, enable", [(False, "false"), (True, "true")])
def test_other_agent_loops_keep_verls_path_when_unguided(base_config, tok, fake_tq, monkeypatch, validate, enable):
    """Without guidance (enable=False, or validation) a prompt of another agent loop runs verl's stock path
    unchanged; only guided training needs trapo_agent (and fails such a prompt, see the failures test)."""
    seen = []

    async def stock_run_prompt(self, prompt, sampling_params, trajectory, trace=False):
        seen.append((prompt["agent_name"], "expert_solutions" in prompt["extra_info"], trajectory["validate"]))

    monkeypatch.setattr(AgentLoopWorkerTQ.__ray_metadata__.modified_class, "_run_prompt", stock_run_prompt)
    config = with_overrides(base_config, f"trapo.micro_group.enable={enable}")
    worker = bare_worker(config, tok, FakeServer(tok, answer_by_prompt), [FakeRewardHandle(tok)])
    run_prompts(worker, [prompt_row("tool", "solve", TRACES, agent_name="tool_agent")], validate=validate)
    assert seen == [("tool_agent", True, validate)] and "tool" not in fake_tq.status
    seen.clear()
    # verl's default agent is replaced by trapo_agent (the masks' loop); the traces are dropped from the row
    run_prompts(worker, [prompt_row("plain", "solve", TRACES)], validate=validate)
    assert seen == [(TRAPO_AGENT, False, validate)]


def test_prefix_filling_the_response_is_not_sent_to_the_server():
    """A partial prefix as long as the response leaves no budget: vLLM would still sample one token (max_tokens is
    clamped to >= 1 by verl's server), so no request is made."""
    calls = []

    async def generate(**kwargs):
        calls.append(kwargs)
        return SimpleNamespace(token_ids=[5], log_probs=[-0.1], extra_fields={}, num_preempted=0)

    loop = SimpleNamespace(response_length=4, server_manager=SimpleNamespace(generate=generate))

    def cont(prefix):
        plan = TrajectoryPlan(group=1, guided=True, prefix_ids=tuple(prefix))
        return asyncio.run(TrapoAgentLoop._continue(loop, [1, 2], list(prefix), plan, {"logprobs": True}, 0))

    assert cont([7, 7, 7, 7])[:3] == ([], [], {}) and not calls
    assert cont([7, 7, 7])[0] == [5] and calls[-1]["sampling_params"]["max_tokens"] == 1
    assert calls[-1]["prompt_ids"] == [1, 2, 7, 7, 7]


@pytest.mark.parametrize(
    "policy, expected", [("all", [(8, 8), (8, 8), (9, 9), (11, 11)]), ("none", [(8, 0), (8, 0), (9, 0), (11, 0)])]
)
def test_sft_copy_policies(base_config, tok, fake_tq, policy, expected):
    config = with_overrides(base_config, f"trapo.micro_group.sft_copies={policy}")
    worker = bare_worker(config, tok, FakeServer(tok, answer_by_prompt), [FakeRewardHandle(tok)])
    run_prompts(worker, [prompt_row("hard", "solve this", TRACES)])
    assert summary(fake_tq.group("hard"))[4:] == expected


def test_random_trace_choice_is_seeded(base_config, tok, fake_tq):
    config = with_overrides(base_config, "trapo.micro_group.trace_choice=random", "trapo.micro_group.trace_seed=5")
    traces = [TRACES[0], "xy\n\nzw\n\nY", "q\n\nY"]
    picks = []
    for _ in range(2):
        fake_tq.rows.clear()
        worker = bare_worker(config, tok, FakeServer(tok, answer_by_prompt), [FakeRewardHandle(tok)])
        run_prompts(worker, [prompt_row(f"r{i}", "solve this", traces, index=i) for i in range(6)])
        picks.append([r["extra_fields"]["trapo"]["trace_index"] for i in range(6) for r in fake_tq.group(f"r{i}")[4:]])
    assert picks[0] == picks[1]  # same seed, index and step: same traces
    assert set(picks[0]) == {0, 1, 2}


def test_failures_publish_failure_and_write_no_rows(base_config, tok, fake_tq, caplog):
    def broken(prompt_text, sp):
        if "crash" in prompt_text:
            raise RuntimeError("server lost")
        return answer_by_prompt(prompt_text, sp)

    table = {("wide", s): 3.0 for s in range(8)}
    worker = bare_worker(base_config, tok, FakeServer(tok, broken), [FakeRewardHandle(tok, table=table)])
    prompts = [
        prompt_row("badn", "solve this", TRACES, __rollout_n__=4),
        prompt_row("tool", "solve this", TRACES, index=1, agent_name="tool_agent"),
        prompt_row("wide", "solve this", TRACES, index=2),
        prompt_row("crash", "crash now", TRACES, index=3),
    ]
    with caplog.at_level(logging.ERROR, logger=trapo_rollout.__name__):
        run_prompts(worker, prompts)
    for uid in ("badn", "tool", "wide", "crash"):
        assert fake_tq.status[uid][-1] == "failure" and not fake_tq.group(uid), uid
    text = caplog.text
    assert "sum(trapo.micro_group.sizes)=8" in text and "agent_name='tool_agent'" in text
    assert "trapo.micro_group.reward_bounds" in text and "server lost" in text


def _run_behind_gate(config, tok, fake_tq, first_round: int) -> None:
    """Three prompts on one worker whose server answers nothing until ``first_round`` requests are in flight."""
    gate, in_flight = asyncio.Event(), []

    class GateServer(FakeServer):
        async def generate(self, request_id, **kwargs):
            in_flight.append(request_id)
            if len(in_flight) >= first_round:
                gate.set()
            await gate.wait()
            return await super().generate(request_id, **kwargs)

    worker = bare_worker(config, tok, GateServer(tok, answer_by_prompt), [FakeRewardHandle(tok)])

    async def main():
        params = sampling_params(worker)
        runs = [
            worker._run_prompt(prompt_row(f"c{i}", "solve", TRACES, index=i), params, trajectory()) for i in range(3)
        ]
        await asyncio.wait_for(asyncio.gather(*runs), timeout=120)

    asyncio.run(main())
    assert all(len(fake_tq.group(f"c{i}")) == 8 for i in range(3))


def test_prompts_progress_concurrently(base_config, tok, fake_tq):
    """Every first-round request of three prompts is in flight before any is answered: a prompt that stalled the
    others would leave the gate closed and the run would hit the deadlock timeout."""
    _run_behind_gate(base_config, tok, fake_tq, first_round=3 * 8)  # g1 plus the prefetched samples
    fake_tq.rows.clear()
    strict = with_overrides(base_config, "trapo.micro_group.prefetch_unguided=false")
    _run_behind_gate(strict, tok, fake_tq, first_round=3 * 4)  # g1 of every prompt


# ------------------------------------------------------------------ start-up validation and the manager


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            [
                "trapo.micro_group.sizes=[4,2,1]",
                "trapo.micro_group.thresholds=[-1,0.5,0.7]",
                "trapo.micro_group.prefix_ratios=[0,0.5,1.0]",
            ],
            r"sum to 7 but actor_rollout_ref\.rollout\.n=8",
        ),
        (
            ["trapo.micro_group.thresholds=[-1,0.7,0.5,0.9]"],
            r"trapo\.micro_group\.thresholds must be strictly increasing",
        ),
        (
            ["trapo.micro_group.prefix_ratios=[0,0.25,0.5,1.5]"],
            r"trapo\.micro_group\.prefix_ratios must lie in \[0, 1\]",
        ),
        (["trapo.micro_group.preset=luffy"], r"trapo\.micro_group\.preset must be one of"),
        (["actor_rollout_ref.rollout.agent.default_agent_loop=tool_agent"], r"default_agent_loop='tool_agent'"),
        (["actor_rollout_ref.rollout.enable_rollout_routing_replay=true"], r"enable_rollout_routing_replay"),
        (["+trapo.micro_group.reward_bounds=[1,0]"], r"trapo\.micro_group\.reward_bounds must satisfy lo < hi"),
        (["+trapo.micro_group.reward_bounds=0.5"], r"trapo\.micro_group\.reward_bounds must be \[lo, hi\] or null"),
        (["+trapo.micro_group.prefetch_unguided=1"], r"trapo\.micro_group\.prefetch_unguided must be true or false"),
    ],
)
def test_start_up_errors_name_the_key(base_config, overrides, message):
    config = with_overrides(base_config, *overrides)
    with pytest.raises(ValueError, match=message):
        check_trapo_rollout_config(config, reward_loop_worker_handles=[object()])
    # the manager raises before any worker exists
    with pytest.raises(ValueError, match=message):
        TrapoAgentLoopManager(config, llm_client=None, reward_loop_worker_handles=[object()])


def test_recipe_config_selects_the_trapo_manager(base_config, monkeypatch):
    """verl's TaskRunnerV1.init_agent_loop_manager reads actor_rollout_ref.rollout.agent.agent_loop_manager_class and
    loads it with load_class_from_fqn: the recipe yaml sets it, so a run only flips trapo.micro_group.enable."""
    fqn = base_config.actor_rollout_ref.rollout.agent.agent_loop_manager_class
    assert fqn == TRAPO_MANAGER and load_class_from_fqn(fqn, "AgentLoopManager") is TrapoAgentLoopManager
    assert validate_trapo_run_config(base_config).micro_group.enable is True
    # verl's own manager (or any other class) with guidance on is caught before Ray starts
    for value, match in [
        ("null", "verl's own agent-loop manager"),
        ("verl.trainer.ppo.v1.AgentLoopManagerTQ", "not a subclass"),
    ]:
        bad = with_overrides(base_config, f"actor_rollout_ref.rollout.agent.agent_loop_manager_class={value}")
        with pytest.raises(ValueError, match=match):
            validate_trapo_run_config(bad)
    missing = with_overrides(base_config, "actor_rollout_ref.rollout.agent.agent_loop_manager_class=no.such.Manager")
    with pytest.raises(ValueError, match="cannot be loaded"):
        validate_trapo_run_config(missing)

    class Mine(TrapoAgentLoopManager):
        pass

    monkeypatch.setattr(trapo_rollout, "Mine", Mine, raising=False)  # a subclass somewhere importable passes
    sub = with_overrides(
        base_config, f"actor_rollout_ref.rollout.agent.agent_loop_manager_class={trapo_rollout.__name__}.Mine"
    )
    assert validate_trapo_run_config(sub).micro_group.enable is True
    # unguided runs may use any manager
    off = with_overrides(
        base_config, "trapo.micro_group.enable=false", "actor_rollout_ref.rollout.agent.agent_loop_manager_class=null"
    )
    assert validate_trapo_run_config(off).micro_group.enable is False


def test_reward_at_rollout_time_is_required(base_config):
    with pytest.raises(ValueError, match=r"reward\.reward_model\.enable_resource_pool=True"):
        TrapoAgentLoopManager(base_config, llm_client=None, reward_loop_worker_handles=None)
    # unguided runs need no reward during rollout
    off = with_overrides(base_config, "trapo.micro_group.enable=false")
    assert check_trapo_rollout_config(off, None).enable is False


def test_manager_spawns_the_trapo_worker(base_config):
    manager = TrapoAgentLoopManager(base_config, llm_client=None, reward_loop_worker_handles=[object()])
    assert manager.agent_loop_workers_class is trapo_rollout.TrapoAgentLoopWorkerActor
    assert issubclass(manager.agent_loop_workers_class.__ray_metadata__.modified_class, TrapoAgentLoopWorker)
    assert manager.trapo.schedule.sizes == (4, 2, 1, 1) and manager.trapo.prefetch_unguided is True
    assert manager.trapo.reward_bounds == (0.0, 1.0)
    assert _agent_loop_registry[TRAPO_AGENT]["_target_"] == "trustrl.recipes.trapo.rollout.TrapoAgentLoop"


def test_paper_preset_and_custom_lists_reach_the_worker(base_config, tok):
    paper = bare_worker(with_overrides(base_config, "trapo.micro_group.preset=paper"), tok, None)
    assert paper.trapo.schedule.thresholds == (-1.0, 0.5, 0.7, 0.9)
    assert paper.trapo.schedule.prefix_ratios == (0.0, 0.2, 0.5, 1.0)
    custom = with_overrides(
        base_config,
        "trapo.micro_group.sizes=[2,2,2,2]",
        "trapo.micro_group.thresholds=[-1,0.3,0.6,0.9]",
        "trapo.micro_group.prefix_ratios=[0,0.3,0.6,1.0]",
    )
    assert bare_worker(custom, tok, None).trapo.schedule.sizes == (2, 2, 2, 2)


# ------------------------------------------------------------------ metrics to the trainer


def test_metrics_read_from_transfer_queue_and_the_trainer_mixin(base_config, tok, fake_tq, monkeypatch):
    worker = bare_worker(base_config, tok, FakeServer(tok, answer_by_prompt), [FakeRewardHandle(tok)])
    run_prompts(worker, [prompt_row("hard", "solve this", TRACES), prompt_row("easy", "easy one", TRACES, index=1)])
    keys = sorted(fake_tq.rows["train"])
    rows = fake_tq.rows["train"]

    def kv_batch_get(keys, partition_id, select_fields):
        return list_of_dict_to_tensordict([{f: rows[k][f] for f in select_fields} for k in keys])

    import transfer_queue

    monkeypatch.setattr(transfer_queue, "kv_batch_get", kv_batch_get)

    class Batch:  # verl's KVBatchMeta: keys, tags (a padding row is skipped), partition
        def __init__(self):
            self.keys = [*keys, keys[0]]
            self.tags = [{} for _ in keys] + [{"is_padding": True}]
            self.partition_id = "train"

    class Base:
        def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
            metrics["training/global_step"] = global_steps

    class Trainer(TrapoRolloutMetricsMixin, Base):
        pass

    metrics = {}
    Trainer()._compute_metrics(Batch(), metrics, {}, 7, 0)
    assert metrics["training/global_step"] == 7
    assert metrics["rollout/trapo/guided_share/g2"] == 0.5 and metrics["rollout/trapo/rounds/max"] == 2.0
    # unguided rows: 4 failed (hard, reward 0, "no"+EOS = 3 tokens) and 8 solved (easy, "Y"+EOS = 2 tokens)
    assert metrics["rollout/trapo/unguided/reward_mean"] == pytest.approx(8 / 12)
    assert metrics["rollout/trapo/unguided/response_length_mean"] == pytest.approx((4 * 3 + 8 * 2) / 12)
    assert metrics == {**trapo_rollout_metrics(Batch()), "training/global_step": 7}
    assert compute_trapo_rollout_metrics(["u"], [None], [1.0], [3]) == {}
