# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The lab (``python -m trustrl.recipes.lab``): reduced configurations that check what the math guarantees.

* QUATRO's update magnitude equals an independent bisection of kl(p'‖p) = δ (experiment 1);
* at the population level (tabular policy, the whole response space as the group) QUATRO's per-prompt
  KL(π‖π_old) converges to δ and its success probability to the trust-region target p' (experiment 2);
* TrSFT converges to Proposition 1's closed form, and SFT keeps mass where TrSFT puts none (experiment 3);
* the CLI writes its report, numbers and figures for a ``--quick`` run, and a rerun reproduces every number;
* with one step per rollout batch GRPO and GSPO coincide, and the pooled grid equals the serial one.
"""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from trustrl.recipes.lab import staleness, trsft, update_magnitude
from trustrl.recipes.lab.__main__ import main
from trustrl.recipes.lab._common import set_determinism, worker_pool


@pytest.fixture(autouse=True)
def lab_torch_state():
    """Run every test as the lab runs (one thread, deterministic kernels), then restore torch for other tests.

    NOTE: one thread is also the fast choice: on busy shared cores, two OpenMP threads on these tiny tensors
    spin against each other and the tests run several times slower.
    """
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    set_determinism(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def _bernoulli_target(p: float, delta: float) -> float:
    """p' ∈ (p, 1) with kl(p'‖p) = δ, by plain bisection (reference written from the equation)."""

    def kl(q):
        return q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p))

    lo, hi = p, 1.0 - 1e-15
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if kl(mid) < delta else (lo, mid)
    return 0.5 * (lo + hi)


# ------------------------------------------------------------------------------------------ experiment 1


@pytest.mark.parametrize("group_size,delta", [(8, 0.01), (8, 0.05), (16, 0.1)])
def test_update_magnitude_matches_bernoulli_reference(group_size, delta):
    curve = update_magnitude.solve_curve(group_size, delta)
    for i, c in enumerate(curve.c):
        p = c / group_size
        # slack guard δ_q = min(δ, 0.9·(−log p)), the estimator's default κ = 0.1
        delta_q = min(delta, 0.9 * -math.log(p))
        assert curve.slack[i] == (delta_q < delta)
        p_new = _bernoulli_target(p, delta_q)
        logit = lambda q: math.log(q / (1 - q))
        assert curve.lam[i] == pytest.approx(1 / (logit(p_new) - logit(p)), rel=1e-9)
        assert curve.t_pos[i] == pytest.approx(math.log(p_new / p), rel=1e-9)
        assert curve.t_neg[i] == pytest.approx(math.log((1 - p_new) / (1 - p)), rel=1e-9)
    # the target tilt has KL = δ_q exactly
    np.testing.assert_allclose(curve.kl_of_targets, curve.delta_q, rtol=1e-10, atol=0)


def test_update_magnitude_guard_fires_only_where_delta_exceeds_kl_max():
    # G = 16, δ = 0.1: only c = 15 has 0.9·(−log 15/16) = 0.058 < δ
    curve = update_magnitude.solve_curve(16, 0.1)
    assert curve.c[curve.slack].tolist() == [15]
    # G = 8, δ = 0.1: 0.9·(−log 7/8) = 0.120 > δ, never slack
    assert not update_magnitude.solve_curve(8, 0.1).slack.any()


# ------------------------------------------------------------------------------------------ experiment 2


def test_sequence_space_is_a_distribution_and_token_paths_agree():
    space = staleness.SequenceSpace(vocab=3, length=3)
    torch.manual_seed(0)
    policy = staleness.TinyPolicy(space, num_prompts=4, hidden=8)
    with torch.no_grad():
        node_lp = policy.node_log_probs()
        seq_lp = space.sequence_log_probs(node_lp)
        responses = torch.randint(0, space.num_responses, (4, 5))
        fast = policy.token_log_probs(responses)
        table = space.token_log_probs(node_lp, responses)
    torch.testing.assert_close(seq_lp.exp().sum(-1), torch.ones(4), rtol=0, atol=1e-5)
    torch.testing.assert_close(fast, table, rtol=1e-5, atol=1e-6)
    # the tokens' log-probs add up to the sequence log-prob
    torch.testing.assert_close(fast.sum(-1).reshape(4, 5), seq_lp.gather(1, responses), rtol=1e-5, atol=1e-5)


def test_population_kl_converges_to_delta():
    cfg = replace(
        staleness.StalenessConfig(),
        population_vocab=5,
        population_length=3,
        population_deltas=(0.02, 0.08),
        population_steps=300,
    )
    pop = staleness.population_check(cfg, methods=())
    # p under the uniform start: 0.104, 0.352, 0.896 (the guard 0.9·(−log p) ≥ 0.099 stays above both radii)
    np.testing.assert_allclose(pop.success_old, [0.104, 0.352, 0.896], atol=1e-12)
    for delta in cfg.population_deltas:
        np.testing.assert_allclose(pop.quatro_kl[delta][-1], delta, rtol=1e-4)
        # the trust-region optimum is the exponential tilt: success probability p' with kl(p'‖p) = δ
        expected = [_bernoulli_target(p, delta) for p in pop.success_old]
        # T+ reaches the loss in the rewards' dtype (float32)
        np.testing.assert_allclose(pop.target_success[delta], expected, rtol=1e-6)
        np.testing.assert_allclose(pop.quatro_success[delta], expected, atol=1e-4)


def test_staleness_runs_are_reproducible_and_k1_grpo_equals_gspo():
    cfg = replace(staleness.quick_config(), num_prompts=6, iterations=3)
    first = staleness.train(cfg, "quatro", k=2, lr=0.05, seed=0)
    again = staleness.train(cfg, "quatro", k=2, lr=0.05, seed=0)
    np.testing.assert_array_equal(first.reward, again.reward)
    np.testing.assert_array_equal(first.kl, again.kl)
    assert first.kl.shape == (3, 6) and (first.kl >= 0).all()
    # one step per batch: the ratio is 1, no clip binds, and token-mean = seq-mean-token-mean at equal lengths
    grpo = staleness.train(cfg, "grpo", k=1, lr=0.05, seed=0)
    gspo = staleness.train(cfg, "gspo", k=1, lr=0.05, seed=0)
    np.testing.assert_allclose(grpo.reward, gspo.reward, rtol=1e-5)
    np.testing.assert_allclose(grpo.entropy, gspo.entropy, rtol=1e-5)


# ------------------------------------------------------------------------------------------ experiment 3


def test_proposition1_closed_form_matches_fixed_point_and_kkt():
    cfg = trsft.TrsftConfig()
    p_expert = trsft.discretised_mixture(cfg.num_categories, cfg.modes)
    p_star, lam, support = trsft.proposition1(p_expert, cfg.alpha)
    # λ ← Σ_{p_E > αλ} p_E from λ = 1 (the fixed-point iteration of Proposition 1, recipes/trapo/README.md)
    fixed = 1.0
    for _ in range(100):
        fixed = float(p_expert[p_expert > cfg.alpha * fixed].sum())
    assert lam == pytest.approx(fixed, abs=1e-15)
    assert float(p_star.sum()) == pytest.approx(1.0, abs=1e-12)
    # KKT: inside S, p* = p_E/λ ≥ α; outside, p_E/α ≤ λ
    assert bool((p_star[support] >= cfg.alpha).all())
    assert bool((p_expert[~support] / cfg.alpha <= lam).all())
    # α → 0 is plain SFT: every category kept, p* = p_E
    p_sft, lam_sft, _ = trsft.proposition1(p_expert, 1e-12)
    assert lam_sft == pytest.approx(1.0) and torch.allclose(p_sft, p_expert)


def test_trsft_gradient_is_the_shipped_weighted_nll():
    cfg = trsft.TrsftConfig()
    p_expert = trsft.discretised_mixture(cfg.num_categories, cfg.modes)
    log_probs = torch.log_softmax(torch.randn(cfg.num_categories, dtype=torch.float64), -1).requires_grad_()
    trsft.expected_loss("trsft", log_probs, p_expert, cfg.alpha).backward()
    # ∂/∂ log p_c = −p_E(c)·min(1, p_c/α)   (Eq. (3) of arXiv:2512.17636)
    expected = -p_expert * torch.clamp(log_probs.detach().exp() / cfg.alpha, max=1.0)
    torch.testing.assert_close(log_probs.grad, expected, rtol=1e-12, atol=1e-15)


def test_trsft_converges_to_proposition1_and_sft_keeps_pruned_mass():
    cfg = replace(trsft.TrsftConfig(), steps=1000, snapshots=(0,))
    p_expert = trsft.discretised_mixture(cfg.num_categories, cfg.modes)
    p_star, lam, support = trsft.proposition1(p_expert, cfg.alpha)
    void = trsft.void_region(p_expert, cfg)
    tr = trsft.train("tabular", "trsft", 0.05, cfg, p_expert, p_star, support, void)
    sft = trsft.train("tabular", "sft", 0.05, cfg, p_expert, p_star, support, void)
    np.testing.assert_allclose(tr.final, p_star.numpy(), atol=3e-4)
    assert tr.pruned_mass[-1] < 1e-3
    # SFT converges to p_E and keeps the expert's mass outside S (1 − λ = 0.17), where TrSFT keeps none
    np.testing.assert_allclose(sft.final, p_expert.numpy(), atol=1e-3)
    assert sft.pruned_mass[-1] == pytest.approx(1 - lam, abs=5e-3)
    assert sft.pruned_mass[-1] > 100 * tr.pruned_mass[-1]


# ---------------------------------------------------------------------------------------------------- CLI


def _timeless(report: str) -> list[str]:
    """The report's lines without wall times, the command line and figure links (all that may differ by run)."""
    skip = ("Command:", "Total wall time", "Wall time", "![")
    return [line for line in report.splitlines() if not line.startswith(skip)]


def test_cli_quick_writes_report_numbers_and_figures_and_reproduces(tmp_path, capsys):
    # --quick, made smaller still: the test checks the plumbing, the other tests check the math
    sizes = ["--quick", "--jobs", "1", "--prompts", "6", "--iterations", "4", "--trsft-steps", "150"]
    assert main([*sizes, "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    for title in ("1. QUATRO update magnitude", "2. Staleness and learning-rate stress", "3. TrSFT vs SFT"):
        assert title in report
    figures = sorted(p.name for p in tmp_path.glob("*.png"))
    assert figures == [
        "fig1_update_magnitude.png",
        "fig2_kl_distribution.png",
        "fig2_population_kl.png",
        "fig2_reward_entropy.png",
        "fig3_trsft_curves.png",
        "fig3_trsft_snapshots.png",
    ]
    for name in figures:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({name})" in report
    numbers = json.loads((tmp_path / "numbers.json").read_text(encoding="utf-8"))
    assert numbers["1. QUATRO update magnitude"]["kl_residual"] < 1e-12
    assert numbers["2. Staleness and learning-rate stress"]["population_max_abs_kl_minus_delta"] < 1e-4
    assert numbers["wall_s"]["total"] > 0
    assert "exp2 [" in capsys.readouterr().out  # progress lines
    # a second run (without figures, which take most of the time) reproduces every number and table
    again = tmp_path / "again"
    assert main([*sizes, "--no-figures", "--out", str(again)]) == 0
    numbers_again = json.loads((again / "numbers.json").read_text(encoding="utf-8"))
    assert not list(again.glob("*.png"))
    assert {k: v for k, v in numbers_again.items() if k != "wall_s"} == {
        k: v for k, v in numbers.items() if k != "wall_s"
    }
    assert _timeless((again / "report.md").read_text(encoding="utf-8")) == _timeless(report)


def test_cli_rejects_unknown_experiment():
    with pytest.raises(SystemExit):
        main(["--only", "exp4"])


@pytest.mark.slow  # spawns two fresh interpreters that import torch and verl (~10 s)
def test_grid_results_do_not_depend_on_worker_processes():
    cfg = replace(staleness.quick_config(), num_prompts=6, iterations=2, ks=(1, 3), methods=("gspo", "quatro"))
    serial = staleness.run_grid(cfg)
    pool = worker_pool(2)
    try:
        pooled = staleness.run_grid(cfg, pool=pool)
    finally:
        pool.shutdown()
    assert [(r.method, r.k) for r in serial] == [(r.method, r.k) for r in pooled]
    for a, b in zip(serial, pooled):
        np.testing.assert_array_equal(a.kl, b.kl)
        np.testing.assert_array_equal(a.entropy, b.entropy)
