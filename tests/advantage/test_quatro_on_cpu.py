# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The ``quatro`` advantage estimator against slow references written from the equations.

References (recipes/quatro/README.md): per group, w = softmax(A/λ), KL(λ) = Σ_i w_i log(G w_i) = δ_q with
δ_q = min(δ, (1−κ) log(G/m)), T_i = log(G w_i); for two-valued groups kl(p'‖p) = δ_q, T+ = log(p'/p),
T- = log((1−p')/(1−p)).
"""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from trustrl.advantage import quatro as Q
from trustrl.advantage.quatro import QuatroConfig, compute_quatro_outcome_advantage, solve_quatro_targets

# ------------------------------------------------------------------------------------------ slow references


def _bisect(f, lo, hi, iters=300):
    """Root of an increasing f on [lo, hi] by plain bisection (Python floats)."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _ref_group_softmax(rewards, delta, kappa, lambda_min=0.0):
    """One group, general equation, loops only. Returns (T list, λ, δ_q)."""
    g = len(rewards)
    top, bot = max(rewards), min(rewards)
    if g == 1 or top == bot:
        return [0.0] * g, 0.0, 0.0
    m = sum(1 for r in rewards if r == top)
    delta_q = min(delta, (1 - kappa) * math.log(g / m))

    def log_w(inv_lam):
        z = [inv_lam * (r - top) for r in rewards]
        lse = math.log(sum(math.exp(v) for v in z))
        return [v - lse for v in z]

    def kl(inv_lam):
        return sum(math.exp(lw) * (lw + math.log(g)) for lw in log_w(inv_lam))

    # bisection on log(1/λ): KL increases with 1/λ
    hi_log = 0.0
    while kl(math.exp(hi_log)) < delta_q and hi_log < 700:
        hi_log += 1.0
    inv_lam = math.exp(_bisect(lambda s: kl(math.exp(s)) - delta_q, -60.0, hi_log))
    if lambda_min > 0 and 1.0 / inv_lam < lambda_min:
        inv_lam = 1.0 / lambda_min
    return [lw + math.log(g) for lw in log_w(inv_lam)], 1.0 / inv_lam, delta_q


def _ref_group_bernoulli(rewards, delta, kappa):
    """One two-valued group through the Bernoulli KL: solve kl(p'‖p) = δ_q for p' ∈ (p, 1)."""
    g, top, bot = len(rewards), max(rewards), min(rewards)
    c = sum(1 for r in rewards if r == top)
    p = c / g
    delta_q = min(delta, (1 - kappa) * (-math.log(p)))

    def kl_bern(q):
        return q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p))

    p_new = _bisect(lambda q: kl_bern(q) - delta_q, p, 1.0 - 1e-15)
    t_pos, t_neg = math.log(p_new / p), math.log((1 - p_new) / (1 - p))
    lam = (top - bot) / (math.log(p_new / (1 - p_new)) - math.log(p / (1 - p)))
    return [t_pos if r == top else t_neg for r in rewards], lam, delta_q


def _ref_all(scores, index, delta, kappa, lambda_min=0.0):
    """Loop over groups in order of first appearance; returns T per row and λ per label."""
    groups: dict = {}
    for i, label in enumerate(index):
        groups.setdefault(label, []).append(i)
    targets, lams = [0.0] * len(scores), {}
    for label, rows in groups.items():
        t, lam, _ = _ref_group_softmax([scores[i] for i in rows], delta, kappa, lambda_min)
        for i, v in zip(rows, t, strict=True):
            targets[i] = v
        lams[label] = lam
    return targets, lams


def _batch(seed, n_groups, size, kind):
    rng = np.random.default_rng(seed)
    if kind == "binary":
        scores = (rng.random(n_groups * size) < rng.uniform(0.05, 0.95)).astype(float)
    elif kind == "general":
        scores = rng.integers(0, 4, n_groups * size) / 3.0
    else:  # mixed: continuous rewards in some groups, ties and constants in others
        scores = rng.normal(size=n_groups * size)
        scores[: size * (n_groups // 3)] = np.round(scores[: size * (n_groups // 3)])
        scores[-size:] = 0.5
    index = np.array([f"uid-{i // size}" for i in range(n_groups * size)], dtype=object)
    perm = rng.permutation(len(index))  # groups interleaved, as after verl's batch balancing
    return scores[perm], index[perm]


# ------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("kind", ["binary", "general", "mixed"])
@pytest.mark.parametrize("size", [2, 5, 16])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_loop_reference(kind, size, seed):
    scores, index = _batch(seed, n_groups=9, size=size, kind=kind)
    cfg = QuatroConfig(delta=0.05, kappa=0.1)
    sol = solve_quatro_targets(torch.tensor(scores), index, cfg)
    ref_t, ref_lam = _ref_all(scores.tolist(), index.tolist(), cfg.delta, cfg.kappa)
    torch.testing.assert_close(sol.targets, torch.tensor(ref_t, dtype=torch.float64), rtol=0, atol=1e-9)
    for row, label in enumerate(index):
        lam = float(sol.lam[sol.group[row]])
        assert lam == pytest.approx(ref_lam[label], rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_closed_form_matches_bernoulli_reference_and_general_path(seed):
    scores, index = _batch(seed, n_groups=12, size=8, kind="binary")
    scores = scores * 3.0 - 1.0  # reward gap 3: T is unchanged, λ scales with the gap
    cfg = QuatroConfig(delta=0.1, kappa=0.1)
    fast = solve_quatro_targets(torch.tensor(scores), index, cfg)
    slow = solve_quatro_targets(torch.tensor(scores), index, cfg, binary_fast_path=False)
    torch.testing.assert_close(fast.targets, slow.targets, rtol=0, atol=1e-12)
    torch.testing.assert_close(fast.lam, slow.lam, rtol=1e-10, atol=0)
    for label in set(index.tolist()):
        rows = [i for i, lab in enumerate(index) if lab == label]
        rewards = [scores[i] for i in rows]
        if len(set(rewards)) < 2:
            continue
        ref_t, ref_lam, _ = _ref_group_bernoulli(rewards, cfg.delta, cfg.kappa)
        torch.testing.assert_close(fast.targets[rows], torch.tensor(ref_t, dtype=torch.float64), rtol=0, atol=1e-9)
        assert float(fast.lam[fast.group[rows[0]]]) == pytest.approx(ref_lam, rel=1e-8)


@pytest.mark.parametrize("delta", [1e-6, 0.01, 0.05, 0.2, 1.0])
@pytest.mark.parametrize("kind", ["binary", "general", "mixed"])
def test_exactness_identities(delta, kind):
    scores, index = _batch(3, n_groups=20, size=16, kind=kind)
    sol = solve_quatro_targets(torch.tensor(scores), index, QuatroConfig(delta=delta, kappa=0.1))
    n = sol.group.max().item() + 1
    size = torch.bincount(sol.group, minlength=n).double()
    e = torch.exp(sol.targets)
    # Σ_i (1/G) e^{T_i} = 1 and Σ_i (1/G) e^{T_i} T_i = δ_q, per group
    mass = torch.zeros(n, dtype=torch.float64).index_add_(0, sol.group, e) / size
    kl = torch.zeros(n, dtype=torch.float64).index_add_(0, sol.group, e * sol.targets) / size
    torch.testing.assert_close(mass, torch.ones_like(mass), rtol=0, atol=1e-8)
    torch.testing.assert_close(kl, sol.delta_q, rtol=0, atol=1e-8)
    informative = sol.kind >= Q.BINARY
    assert bool((sol.delta_q[informative] <= delta + 1e-15).all())


# G = 8 table of recipes/quatro/README.md (computed from the Bernoulli equations of its section 4)
TABLE = [
    # (delta, c, λ*, ρ+, ρ-)
    (0.01, 1, 2.569, 1.393, 0.944),
    (0.01, 4, 3.518, 1.141, 0.859),
    (0.01, 7, 2.064, 1.050, 0.647),
    (0.05, 2, 1.497, 1.576, 0.808),
    (0.05, 6, 1.154, 1.169, 0.492),
    (0.1, 1, 0.934, 2.353, 0.807),
    (0.1, 7, 0.361, 1.133, 0.071),
]


@pytest.mark.parametrize("delta,c,lam,rho_pos,rho_neg", TABLE)
def test_reproduces_spec_table(delta, c, lam, rho_pos, rho_neg):
    # κ = 0 with a tiny λ floor: the guard must not change these entries (none is slack at G = 8)
    sol = solve_quatro_targets(
        torch.tensor([1.0] * c + [0.0] * (8 - c)), ["q"] * 8, QuatroConfig(delta, 0.0, "exact", 1e-6)
    )
    assert float(sol.lam[0]) == pytest.approx(lam, abs=1.5e-3)
    assert math.exp(sol.targets[0]) == pytest.approx(rho_pos, abs=1.5e-3)
    assert math.exp(sol.targets[-1]) == pytest.approx(rho_neg, abs=1.5e-3)


def test_edge_cases_are_counted():
    # groups: singleton | all equal | slack at G=16, δ=0.1, c=15 (−log(15/16) = 0.065 < δ) | active
    scores = [1.0] + [0.0] * 4 + [1.0] * 15 + [0.0] + [1.0] * 4 + [0.0] * 12
    index = ["a"] + ["b"] * 4 + ["c"] * 16 + ["d"] * 16
    sol = solve_quatro_targets(torch.tensor(scores), index, QuatroConfig(delta=0.1, kappa=0.1))
    t = sol.targets
    assert t[0] == 0 and bool((t[1:5] == 0).all())
    by_label = {label: int(sol.group[index.index(label)]) for label in "abcd"}
    assert sol.kind[by_label["a"]] == Q.SINGLETON and sol.kind[by_label["b"]] == Q.ALL_EQUAL
    assert bool(sol.slack[by_label["c"]]) and not bool(sol.slack[by_label["d"]])
    assert float(sol.delta_q[by_label["c"]]) == pytest.approx(0.9 * -math.log(15 / 16), rel=1e-12)
    assert float(sol.delta_q[by_label["d"]]) == pytest.approx(0.1, rel=1e-12)
    s = sol.stats
    assert s["num_groups"] == 4 and s["num_informative"] == 2
    assert (s["share_singleton"], s["share_all_equal"], s["share_slack"], s["share_active"]) == (0.25, 0.25, 0.25, 0.25)
    assert s["solver_max_residual"] < 1e-12


def test_lambda_floor_binds_and_counts_as_slack():
    # κ = 0: group c=15 of 16 at δ=0.1 would need λ = 0; the floor keeps λ = λ_min with KL < δ_q
    scores = torch.tensor([1.0] * 15 + [0.0] + [1.0] * 8 + [0.0] * 8)
    index = ["c"] * 16 + ["d"] * 16
    sol = solve_quatro_targets(scores, index, QuatroConfig(delta=0.1, kappa=0.0, lambda_min=0.05))
    gc, gd = int(sol.group[0]), int(sol.group[16])
    assert float(sol.lam[gc]) == pytest.approx(0.05, rel=1e-12)
    assert float(sol.kl[gc]) < float(sol.delta_q[gc]) and bool(sol.slack[gc])
    assert float(sol.kl[gd]) == pytest.approx(0.1, abs=1e-12) and not bool(sol.slack[gd])
    assert bool(torch.isfinite(sol.targets).all())


def test_quadratic_solver_is_sigma_over_sqrt_two_delta():
    scores, index = _batch(4, n_groups=10, size=8, kind="mixed")
    delta = 0.02
    sol = solve_quatro_targets(torch.tensor(scores), index, QuatroConfig(delta=delta, solver="quadratic"))
    for label in set(index.tolist()):
        rows = [i for i, lab in enumerate(index) if lab == label]
        a = torch.tensor(scores[rows])
        if a.max() == a.min():
            continue
        lam = a.std(unbiased=False) / math.sqrt(2 * delta)
        expected = a / lam - torch.logsumexp(a / lam, 0) + math.log(len(rows))
        torch.testing.assert_close(sol.targets[rows], expected, rtol=0, atol=1e-10)


def test_quadratic_approaches_exact_as_delta_shrinks():
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    ratios = []
    for delta in (1e-2, 1e-4, 1e-6):
        exact = solve_quatro_targets(scores, ["q"] * 8, QuatroConfig(delta=delta)).lam[0]
        quad = solve_quatro_targets(scores, ["q"] * 8, QuatroConfig(delta=delta, solver="quadratic")).lam[0]
        ratios.append(abs(float(exact / quad) - 1.0))
    assert ratios[0] > ratios[1] > ratios[2] and ratios[2] < 1e-3


def test_affine_and_permutation_invariance():
    scores, index = _batch(5, n_groups=6, size=8, kind="mixed")
    cfg = QuatroConfig(delta=0.05)
    base = solve_quatro_targets(torch.tensor(scores), index, cfg)
    scaled = solve_quatro_targets(torch.tensor(3.0 * scores - 7.0), index, cfg)
    torch.testing.assert_close(scaled.targets, base.targets, rtol=0, atol=1e-10)
    perm = np.random.default_rng(0).permutation(len(scores))
    shuffled = solve_quatro_targets(torch.tensor(scores[perm]), index[perm], cfg)
    torch.testing.assert_close(shuffled.targets, base.targets[perm], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "scores,delta,kappa",
    [
        ([1e6, 0.0, 0.0, -1e6] * 4, 0.05, 0.1),  # huge rewards
        ([1.0, 1.0 - 1e-9, 0.0, 0.5] * 4, 0.05, 1e-9),  # near-tie at the top, guard almost off
        ([1.0] + [0.0] * 511, 0.5, 0.1),  # G = 512, one success, large δ
        ([1.0] * 511 + [0.0], 1e-8, 0.1),  # G = 512, tiny δ
        ([float(i) for i in range(64)], 3.0, 0.1),  # all distinct, δ near log G
    ],
)
def test_finite_and_exact_at_extremes(scores, delta, kappa):
    sol = solve_quatro_targets(torch.tensor(scores), ["q"] * len(scores), QuatroConfig(delta=delta, kappa=kappa))
    assert bool(torch.isfinite(sol.targets).all()) and bool(torch.isfinite(sol.lam).all())
    e = torch.exp(sol.targets)
    assert float(e.mean()) == pytest.approx(1.0, abs=1e-8)
    assert float((e * sol.targets).mean()) == pytest.approx(float(sol.delta_q[0]), abs=1e-8)


@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.int64, torch.float32])
def test_registered_estimator_broadcasts_targets(mask_dtype):
    torch.manual_seed(0)
    bs, length = 12, 7
    lengths = torch.randint(1, length + 1, (bs,))
    mask = (torch.arange(length)[None] < lengths[:, None]).to(mask_dtype)
    rewards = torch.zeros(bs, length)
    rewards[torch.arange(bs), lengths - 1] = torch.tensor([1.0, 0, 0, 1] * 3)
    index = np.array(["x"] * 4 + ["y"] * 4 + ["z"] * 4, dtype=object)
    config = OmegaConf.create({"adv_estimator": "quatro", "quatro": {"delta": 0.07, "kappa": 0.2}})
    adv, ret = compute_quatro_outcome_advantage(
        token_level_rewards=rewards, response_mask=mask, index=index, config=config, epsilon=1e-6
    )
    sol = solve_quatro_targets(rewards.sum(-1), index, QuatroConfig(delta=0.07, kappa=0.2))
    expected = sol.targets.float()[:, None] * mask.float()
    assert adv.dtype == torch.float32 and adv.shape == (bs, length)
    torch.testing.assert_close(adv, expected, rtol=0, atol=0)
    assert ret is adv or torch.equal(ret, adv)


def test_registered_estimator_input_errors():
    rewards, mask = torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="index"):
        compute_quatro_outcome_advantage(token_level_rewards=rewards, response_mask=mask, config=None)
    rewards[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        compute_quatro_outcome_advantage(token_level_rewards=rewards, response_mask=mask, index=["a", "a"])


@pytest.mark.parametrize(
    "section,pattern",
    [
        ({"delta": 0.0}, r"algorithm\.quatro\.delta=0\.0 is invalid.*> 0"),
        ({"delta": -1}, r"algorithm\.quatro\.delta"),
        ({"delta": float("nan")}, r"algorithm\.quatro\.delta=nan is invalid"),
        ({"delta": "0.1"}, r"algorithm\.quatro\.delta='0\.1' is invalid"),
        ({"kappa": 1.0}, r"algorithm\.quatro\.kappa=1\.0 is invalid.*\[0, 1\)"),
        ({"kappa": -0.1}, r"algorithm\.quatro\.kappa"),
        ({"solver": "newton"}, r"algorithm\.quatro\.solver='newton' is invalid.*exact.*quadratic"),
        ({"lambda_min": -1.0}, r"algorithm\.quatro\.lambda_min"),
        ({"kappa": 0.0}, r"algorithm\.quatro\.kappa=0 .*lambda_min > 0"),
        ({"detla": 0.1}, r"unknown key.*algorithm\.quatro\.detla"),
    ],
)
def test_config_errors_name_the_key(section, pattern):
    with pytest.raises(ValueError, match=pattern):
        Q.quatro_config_from(OmegaConf.create({"adv_estimator": "quatro", "quatro": section}))


def test_config_sources():
    from verl.trainer.config import AlgoConfig

    assert Q.quatro_config_from(None) == QuatroConfig()
    assert Q.quatro_config_from(AlgoConfig()) == QuatroConfig()
    assert Q.quatro_config_from({"quatro": {"delta": 0.02, "solver": "quadratic"}}) == QuatroConfig(
        delta=0.02, solver="quadratic"
    )
    assert Q.quatro_config_from(OmegaConf.create({"quatro": {"kappa": 0.0, "lambda_min": 0.1}})).lambda_min == 0.1


def test_stats_route_last_pop_and_trainer_mixin():
    rewards = torch.zeros(8, 3)
    rewards[:3, -1] = 1.0
    compute_quatro_outcome_advantage(
        token_level_rewards=rewards, response_mask=torch.ones(8, 3), index=["a"] * 8, config=None
    )
    stats = Q.last_stats()
    assert stats["quatro/num_groups"] == 1 and stats["quatro/share_active"] == 1.0
    assert stats["quatro/lambda_mean"] > 0 and all(math.isfinite(v) for v in stats.values())

    class Base:
        def _compute_advantage(self, batch, metrics):
            return batch + 1

    class Trainer(Q.QuatroAdvantageMetricsMixin, Base):
        pass

    metrics: dict = {}
    assert Trainer()._compute_advantage(1, metrics=metrics) == 2
    assert metrics == stats
    assert Q.last_stats() == {}  # popped: a later step without an estimator call logs nothing stale


def test_statistics_leave_out_verls_synthetic_padding_group():
    """verl's V1 trainer pads the batch to a multiple of the data-parallel size with copies of its padding
    template (response mask 0, reward 0) under one fresh uid; that is not a prompt and must not count as an
    all-equal group."""
    from verl.trainer.ppo.padding_utils import construct_minimal_padding_template

    width = 4
    source = {"responses": torch.tensor([5, 6, 7]), "response_mask": torch.ones(3, dtype=torch.int64)}
    template, tag = construct_minimal_padding_template(source, {"prompt_len": 2, "response_len": 3}, 0)
    assert tag["is_padding"] and int(template["response_mask"].sum()) == 0
    # two informative groups and one all-correct group of 4, then 3 padding rows (one uid, as verl writes it)
    scores = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    uid = ["a"] * 4 + ["b"] * 4 + ["c"] * 4 + ["pad0123abcd"] * 3
    rewards = torch.zeros(len(uid), width)
    rewards[: len(scores), -1] = torch.tensor(scores)
    mask = torch.ones(len(uid), width, dtype=torch.int64)
    for row in range(len(scores), len(uid)):
        rewards[row] = 0.0
        mask[row] = torch.nn.functional.pad(template["response_mask"], (0, width - 1))
    adv, _ = compute_quatro_outcome_advantage(
        token_level_rewards=rewards, response_mask=mask, index=np.array(uid, dtype=object), config=None
    )
    stats = Q.pop_last_stats()
    assert stats["quatro/num_groups"] == 3 and stats["quatro/num_padding_rows"] == 3
    assert stats["quatro/share_all_equal"] == pytest.approx(1 / 3)  # "c" only (2/4 with the padding group)
    assert stats["quatro/share_active"] + stats["quatro/share_slack"] == pytest.approx(2 / 3)
    assert bool((adv[len(scores) :] == 0).all())
    # the targets of the real rows do not depend on the padding
    alone, _ = compute_quatro_outcome_advantage(
        token_level_rewards=rewards[: len(scores)], response_mask=mask[: len(scores)],
        index=np.array(uid[: len(scores)], dtype=object), config=None,
    )  # fmt: skip
    assert torch.equal(adv[: len(scores)], alone)
    assert stats["quatro/target_abs_mean"] == pytest.approx(Q.pop_last_stats()["quatro/target_abs_mean"])


def test_spec_doctest_example():
    import doctest

    failures, _ = doctest.testmod(Q, verbose=False)
    assert failures == 0


# --------------------------------------------------------------------------- through verl's own dispatch

VERL_DISPATCH = r"""
import json, sys
import numpy as np, torch
from omegaconf import OmegaConf
import verl  # the trustrl plugin registers "quatro" here, and nothing else imports trustrl
from verl.protocol import DataProto
from verl.trainer.ppo.ray_trainer import compute_advantage
from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

assert "trustrl.advantage.quatro" in sys.modules, "the plugin did not import trustrl"
args = json.loads(sys.argv[1])
rewards = torch.tensor(args["rewards"])
mask = torch.tensor(args["mask"], dtype=torch.bool)
data = DataProto.from_dict(
    tensors={"token_level_rewards": rewards, "response_mask": mask},
    non_tensors={"uid": np.array(args["uid"], dtype=object)},
)
algo = OmegaConf.create({"adv_estimator": "quatro", "quatro": {"delta": 0.08, "kappa": 0.1}})
out = compute_advantage(data, adv_estimator="quatro", config=algo)
v1 = compute_advantage_for_multi_trajectories(
    data, batch_keys=[f"{u}_0_{i}" for i, u in enumerate(args["uid"])], adv_estimator="quatro", config=algo
)
print(json.dumps({"adv": out.batch["advantages"].tolist(), "ret": out.batch["returns"].tolist(),
                  "v1": v1.batch["advantages"].tolist()}))
"""


@pytest.mark.slow  # a fresh interpreter importing verl's trainer takes ~10 s
def test_verl_compute_advantage_dispatch_in_fresh_process():
    torch.manual_seed(1)
    bs, length = 16, 5
    lengths = torch.randint(1, length + 1, (bs,))
    mask = torch.arange(length)[None] < lengths[:, None]
    rewards = torch.zeros(bs, length)
    rewards[torch.arange(bs), lengths - 1] = (torch.rand(bs) < 0.5).float()
    uid = [f"p{i % 4}" for i in range(bs)]
    payload = json.dumps({"rewards": rewards.tolist(), "mask": mask.tolist(), "uid": uid})
    proc = subprocess.run([sys.executable, "-c", VERL_DISPATCH, payload], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    sol = solve_quatro_targets(rewards.sum(-1), np.array(uid, dtype=object), QuatroConfig(delta=0.08, kappa=0.1))
    expected = sol.targets.float()[:, None] * mask
    for key in ("adv", "ret", "v1"):
        torch.testing.assert_close(torch.tensor(out[key]), expected, rtol=0, atol=1e-7)
    assert float(expected.abs().sum()) > 0
