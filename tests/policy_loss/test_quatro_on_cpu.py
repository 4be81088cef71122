# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The ``quatro`` policy loss against a slow reference written from the equations.

Reference (recipes/quatro/README.md, "Loss"): ℓ(x; τ) = e^x (x − τ) − e^x + 1 and one term per sequence,
L_i = |o_i|·ℓ(u_i/|o_i|; T_i/|o_i|) for ``seq_len_norm``, ℓ(u_i; T_i)/|o_i| for ``seq`` (u_i = Σ_t log r_{i,t}
with its full gradient), carried on every token; ``token``: |o_i|·ℓ(log r_{i,t}; T_i/|o_i|) on token t (token
mean L_i = Σ_t ℓ); aggregated by verl's loss_agg_mode definitions, written out as loops.
"""

import inspect
import json
import math
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from trustrl.advantage.quatro import QuatroConfig, solve_quatro_targets
from trustrl.policy_loss.quatro import QuatroPolicyLossConfig, compute_policy_loss_quatro
from verl.trainer.ppo.core_algos import PolicyLossFn, get_policy_loss_fn
from verl.workers.config import ActorConfig, PolicyLossConfig

LEVELS = ["seq", "seq_len_norm", "token"]
MODES = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm", "token-sum"]


def _actor(ratio_level=None, mode="seq-mean-token-mean", **extra):
    policy_loss = (
        PolicyLossConfig(loss_mode="quatro")
        if ratio_level is None
        else QuatroPolicyLossConfig(ratio_level=ratio_level, **extra)
    )
    return ActorConfig(
        strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, loss_agg_mode=mode, policy_loss=policy_loss
    )


def _inputs(seed, bs=6, length=9, dtype=torch.float64, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (bs,), generator=g)
    lengths[-1] = 0  # one fully masked row
    mask = torch.arange(length)[None] < lengths[:, None]
    old = -torch.rand(bs, length, generator=g, dtype=dtype) * 2
    new = old + scale * torch.randn(bs, length, generator=g, dtype=dtype)
    target = torch.randn(bs, generator=g, dtype=dtype)
    target[1] = 0.0  # an anchor row (all-equal group)
    adv = target[:, None] * mask
    isw = 0.5 + torch.rand(bs, length, generator=g, dtype=dtype)
    return old, new, adv, mask, isw


def _ell(x, tau):
    return torch.exp(x) * (x - tau) - torch.exp(x) + 1


def _reference(old, new, adv, mask, mode, level, isw=None, zero_target="anchor", info=None):
    """Loops over sequences and tokens; returns the scalar loss (autograd through ``new``)."""
    info = info or {}
    bs, length = new.shape
    rows = []
    for i in range(bs):
        toks = [t for t in range(length) if mask[i, t]]
        n = len(toks)
        row = []
        if n:
            target = adv[i, toks[0]].item()
            u = sum(new[i, t] - old[i, t] for t in toks)
            for t in toks:
                if level == "seq":
                    loss = _ell(u, target) / n
                elif level == "seq_len_norm":
                    loss = n * _ell(u / n, target / n)
                else:
                    loss = n * _ell(new[i, t] - old[i, t], target / n)
                if zero_target == "mask" and target == 0:
                    loss = loss * 0
                row.append(loss * (isw[i, t] if isw is not None else 1.0))
        rows.append(row)
    dp = info.get("dp_size", 1)
    n_tokens = info.get("batch_num_tokens") or sum(len(r) for r in rows)
    n_seqs = info.get("global_batch_size") or sum(1 for r in rows if r)
    total = sum(sum(r) for r in rows if r)
    if mode == "token-mean":
        return total / n_tokens * dp
    if mode == "token-sum":
        return total * dp
    if mode == "seq-mean-token-mean":
        return sum(sum(r) / len(r) for r in rows if r) / n_seqs * dp
    scale = 1.0 if mode == "seq-mean-token-sum" else (info.get("loss_scale_factor") or length)
    return total / n_seqs * dp / scale


def _ours(old, new, adv, mask, mode, level, isw=None, **extra):
    new = new.detach().clone().requires_grad_(True)
    loss, metrics = compute_policy_loss_quatro(old, new, adv, mask, mode, _actor(level, mode, **extra), isw)
    loss.backward()
    return loss, new.grad, metrics


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("with_isw", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_value_and_analytic_backward_match_reference(level, mode, with_isw, seed):
    old, new, adv, mask, isw = _inputs(seed)
    isw = isw if with_isw else None
    loss, grad, _ = _ours(old, new, adv, mask, mode, level, isw)
    ref_new = new.detach().clone().requires_grad_(True)
    ref = _reference(old, ref_new, adv, mask, mode, level, isw)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(grad, ref_new.grad, rtol=1e-6, atol=1e-12)
    assert bool((grad[~mask] == 0).all())


@pytest.mark.parametrize("level", LEVELS)
def test_float32_matches_float64_reference(level):
    old, new, adv, mask, isw = _inputs(3)
    loss, grad, _ = _ours(old.float(), new.float(), adv.float(), mask, "seq-mean-token-mean", level, isw.float())
    ref_new = new.detach().clone().requires_grad_(True)
    ref = _reference(old, ref_new, adv, mask, "seq-mean-token-mean", level, isw)
    ref.backward()
    assert loss.dtype == torch.float32 and grad.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad.double(), ref_new.grad, rtol=1e-4, atol=1e-6)


def test_zero_target_mask_option():
    old, new, adv, mask, _ = _inputs(4)
    loss, grad, _ = _ours(old, new, adv, mask, "seq-mean-token-mean", "seq_len_norm", zero_target="mask")
    ref_new = new.detach().clone().requires_grad_(True)
    ref = _reference(old, ref_new, adv, mask, "seq-mean-token-mean", "seq_len_norm", zero_target="mask")
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(grad, ref_new.grad, rtol=1e-6, atol=1e-12)
    assert bool((grad[1] == 0).all())  # row 1 has T = 0
    anchored = _ours(old, new, adv, mask, "seq-mean-token-mean", "seq_len_norm")[1]
    assert bool((anchored[1][mask[1]] != 0).all())  # as an anchor it pulls back to π_old


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("with_isw", [False, True])
def test_backward_is_the_gradient_of_the_reported_value(level, mode, with_isw):
    # central finite differences of the returned loss (float64) against the backward, every accepted pair;
    # lengths 1-9 with an anchor row (T = 0) and an empty row
    old, new, adv, mask, isw = _inputs(5, bs=5, length=9)
    cfg = _actor(level, mode)

    def fn(lp):
        return compute_policy_loss_quatro(old, lp, adv, mask, mode, cfg, isw if with_isw else None)[0]

    assert torch.autograd.gradcheck(fn, (new.detach().clone().requires_grad_(True),), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("level", LEVELS)
def test_backward_is_the_value_gradient_past_the_clamp(level):
    # a clamp of 0.05 puts most ratio-level log-ratios past it: ℓ continues linearly and stays differentiable
    old, new, adv, mask, _ = _inputs(15, bs=5, length=9, scale=0.5)
    cfg = _actor(level, "seq-mean-token-mean", log_ratio_clamp=0.05)

    def fn(lp):
        return compute_policy_loss_quatro(old, lp, adv, mask, "seq-mean-token-mean", cfg)[0]

    lp = new.detach().clone().requires_grad_(True)
    metrics = compute_policy_loss_quatro(old, lp, adv, mask, "seq-mean-token-mean", cfg)[1]
    assert metrics["actor/quatro/share_clamped"] > 0.3
    assert torch.autograd.gradcheck(fn, (lp,), eps=1e-6, atol=1e-8)


def test_ratio_one_gives_reinforce_gradient_and_zero_target_zero_loss():
    old, _, adv, mask, _ = _inputs(7)
    n = mask.sum(-1, keepdim=True).clamp(min=1)
    for level in LEVELS:
        loss, grad, _ = _ours(old, old.clone(), adv, mask, "token-mean", level)
        # ρ = 1: ∂L_i/∂log π(o_{i,t}) = −T_i/|o_i| at every level; token-mean weights sequence i by |o_i|/N, so
        # each token gets −T_i/N: REINFORCE with advantage T_i, aggregated by token-mean
        torch.testing.assert_close(grad, -adv * mask / mask.sum(), rtol=1e-12, atol=1e-15)
        # ℓ(0; τ) = −τ: L_i = −T_i (seq_len_norm, token) or −T_i/|o_i| (seq), each on |o_i| tokens
        seq_term = -adv / n if level == "seq" else -adv
        torch.testing.assert_close(loss, (seq_term * mask).sum() / mask.sum(), rtol=1e-12, atol=1e-15)
    zero, grad0, _ = _ours(old, old.clone(), torch.zeros_like(adv), mask, "token-mean", "seq")
    assert zero.item() == 0.0 and bool((grad0 == 0).all())


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("offset", [1e-3, 0.5, 5.0])
def test_fixed_point_and_restoring_force(level, offset):
    old, _, adv, mask, _ = _inputs(8)
    n = mask.sum(-1, keepdim=True).clamp(min=1)
    # log r_t = T/|o| on every token: u = T, u/|o| = T/|o| and log r_t = T/|o|, the target of all three levels
    at_target = old + adv / n * mask
    _, grad, _ = _ours(old, at_target, adv, mask, "seq-mean-token-mean", level)
    torch.testing.assert_close(grad, torch.zeros_like(grad), rtol=0, atol=1e-15)
    valid = mask & mask.any(-1, keepdim=True)
    for sign in (+1.0, -1.0):
        _, grad, _ = _ours(old, at_target + sign * offset * mask, adv, mask, "seq-mean-token-mean", level)
        # above the target the loss rises with log π (descent pushes it down), below it falls: restoring both ways
        assert bool((torch.sign(grad[valid]) == sign).all()), (level, sign, grad)


def test_restoring_force_survives_the_clamp():
    old, _, adv, mask, _ = _inputs(9, scale=0.0)
    for level in ("seq", "seq_len_norm"):
        for sign in (+1.0, -1.0):
            far = old + sign * 200.0 * mask  # |x| ≫ clamp for both sequence levels
            loss, grad, metrics = _ours(old.float(), far.float(), adv.float(), mask, "seq-mean-token-mean", level)
            assert torch.isfinite(loss) and bool(torch.isfinite(grad).all())
            assert bool((torch.sign(grad[mask]) == sign).all())  # not zeroed past the clamp
            assert metrics["actor/quatro/share_clamped"] == 1.0  # every non-empty row is past the clamp


@pytest.mark.parametrize("level", LEVELS)
def test_masked_junk_changes_nothing(level):
    old, new, adv, mask, isw = _inputs(10)
    old, new, adv, isw = old.float(), new.float(), adv.float(), isw.float()
    clean = _ours(old, new, adv, mask, "token-mean", level, isw)
    junk_old, junk_new, junk_adv, junk_isw = old.clone(), new.clone(), adv.clone(), isw.clone()
    pad = ~mask
    junk_old[pad] = torch.tensor([1e4, -1e4, float("inf"), float("nan")]).repeat(100)[: int(pad.sum())]
    junk_new[pad] = torch.tensor([-1e4, float("-inf"), 1e4, float("nan")]).repeat(100)[: int(pad.sum())]
    junk_adv[pad] = 1e4  # advantages and IS weights: any finite value (verl writes zeros there)
    junk_isw[pad] = -1e4
    dirty = _ours(junk_old, junk_new, junk_adv, mask, "token-mean", level, junk_isw)
    assert torch.equal(clean[0], dirty[0])
    assert torch.equal(clean[1], dirty[1])
    assert clean[2] == dirty[2]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
def test_micro_batch_and_dp_invariance(level, mode):
    # the engine fills global_batch_info with global counts: dp_size, tokens and sequences of the mini-batch
    old, new, adv, mask, isw = _inputs(11, bs=8, length=7)
    mask[-1, 0] = True  # no empty row here: sequence counts then agree with verl's
    adv = (adv.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1)) * mask
    info = {"dp_size": 1, "batch_num_tokens": int(mask.sum()), "global_batch_size": 8, "loss_scale_factor": None}
    cfg = _actor(level, mode)
    cfg.global_batch_info.update(info)
    full_lp = new.detach().clone().requires_grad_(True)
    full, _ = compute_policy_loss_quatro(old, full_lp, adv, mask, mode, cfg, isw)
    full.backward()

    dp, micro = 2, 2
    split_lp = new.detach().clone().requires_grad_(True)
    total = 0.0
    for rank in range(dp):
        rows = torch.arange(rank * 4, rank * 4 + 4)
        for chunk in rows.split(micro):
            cfg.global_batch_info.update(dict(info, dp_size=dp))
            part, _ = compute_policy_loss_quatro(
                old[chunk], split_lp[chunk], adv[chunk], mask[chunk], mode, cfg, isw[chunk]
            )
            part.backward()
            total = total + part.detach()
    # DP averages the ranks' accumulated gradients; the reported loss is the mean over ranks of the sums
    torch.testing.assert_close(total / dp, full.detach(), rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(split_lp.grad / dp, full_lp.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("level", LEVELS)
def test_finite_at_extreme_log_ratios_and_targets(level):
    old, new, adv, mask, _ = _inputs(12, dtype=torch.float32)
    for shift in (-1e3, -50.0, 50.0, 1e3):
        for target_scale in (1.0, 1e3):
            loss, grad, metrics = _ours(old, old + shift * mask, adv * target_scale, mask, "token-mean", level)
            assert torch.isfinite(loss), (shift, target_scale)
            assert bool(torch.isfinite(grad).all()), (shift, target_scale)
            assert all(math.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("level", LEVELS)
def test_bfloat16_inputs(level):
    old, new, adv, mask, isw = _inputs(13, dtype=torch.float32)
    lp = new.to(torch.bfloat16).requires_grad_(True)
    loss, metrics = compute_policy_loss_quatro(
        old.to(torch.bfloat16), lp, adv.to(torch.bfloat16), mask, "seq-mean-token-mean", _actor(level), isw
    )
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert lp.grad.dtype == torch.bfloat16 and bool(torch.isfinite(lp.grad.float()).all())
    # the math runs in float32 on the bf16 values: same result as float32 inputs holding those values
    ref = _ours(
        old.to(torch.bfloat16).float(),
        new.to(torch.bfloat16).float(),
        adv.to(torch.bfloat16).float(),
        mask,
        "seq-mean-token-mean",
        level,
        isw,
    )
    torch.testing.assert_close(loss, ref[0], rtol=0, atol=0)


def test_metrics_hand_computed():
    # two sequences, seq level. Row 0: 2 tokens, log r = (0.1, 0.2) → u = 0.3, T = 0.5 (below target).
    # Row 1: 1 token, log r = −0.4 → u = −0.4, T = −0.2 (past its negative target).
    old = torch.zeros(2, 2, dtype=torch.float64)
    new = torch.tensor([[0.1, 0.2], [-0.4, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True], [True, False]])
    adv = torch.tensor([[0.5, 0.5], [-0.2, 0.0]], dtype=torch.float64)
    _, _, m = _ours(old, new, adv, mask, "seq-mean-token-mean", "seq")
    assert m["actor/quatro/target_gap"] == pytest.approx((0.2 + 0.2) / 2)
    kl = lambda u: math.exp(u) * u - math.exp(u) + 1  # noqa: E731
    assert m["actor/quatro/seq_kl"] == pytest.approx((kl(0.3) + kl(-0.4)) / 2)
    assert m["actor/quatro/share_past_target"] == pytest.approx(0.5)
    assert m["actor/quatro/share_informative"] == 1.0
    assert m["actor/quatro/log_ratio_mean"] == pytest.approx(-0.05)
    assert m["actor/quatro/share_clamped"] == 0.0
    assert m["actor/ppo_kl"] == pytest.approx(-(0.3 - 0.4) / 3)  # token mean of log π_old − log π_θ


def test_population_convergence_to_exponential_tilt():
    """Gradient descent on the loss, as an exact expectation over a uniform π_old, reaches π* = π_old e^T.

    Policy: two tokens from V = 3 symbols, a free softmax at the root and at each of the 3 second-token
    nodes (any distribution over the 9 responses). π_old is uniform, so the 9 responses, each with weight
    1/9, are both the population and an empirical group for the estimator. ``token`` is left out: its fixed
    point is not the trust-region solution (documented).
    """
    v, delta = 3, 0.05
    responses = [(a, b) for a in range(v) for b in range(v)]
    rewards = torch.tensor([1.0, 0.0, 0.3, 0.0, 1.0, 0.0, 0.7, 0.0, 0.0], dtype=torch.float64)
    sol = solve_quatro_targets(rewards, ["q"] * 9, QuatroConfig(delta=delta))
    target = sol.targets
    pi_old = torch.full((9,), 1 / 9, dtype=torch.float64)
    pi_star = pi_old * torch.exp(target)
    adv = target[:, None].expand(9, 2).contiguous()
    mask = torch.ones(9, 2, dtype=torch.bool)
    first = torch.tensor([a for a, _ in responses])
    second = torch.tensor([b for _, b in responses])
    old = torch.full((9, 2), -math.log(v), dtype=torch.float64)

    for level in ("seq", "seq_len_norm"):
        root = torch.zeros(v, dtype=torch.float64, requires_grad=True)
        child = torch.zeros(v, v, dtype=torch.float64, requires_grad=True)
        # plain gradient descent on the loss (= ascent on the objective)
        opt = torch.optim.SGD([root, child], lr=10.0)
        cfg = _actor(level, "token-mean")
        for _ in range(120):
            opt.zero_grad()
            lp1 = torch.log_softmax(root, 0)[first]
            lp2 = torch.log_softmax(child, 1)[first, second]
            loss, _ = compute_policy_loss_quatro(old, torch.stack([lp1, lp2], 1), adv, mask, "token-mean", cfg)
            loss.backward()
            opt.step()
        with torch.no_grad():
            pi = torch.exp(torch.log_softmax(root, 0)[first] + torch.log_softmax(child, 1)[first, second])
        torch.testing.assert_close(pi, pi_star, rtol=0, atol=1e-6)
        assert float((pi * torch.log(pi / pi_old)).sum()) == pytest.approx(delta, abs=1e-6)


def test_config_dataclass_and_defaults():
    cfg = QuatroPolicyLossConfig()
    assert (cfg.loss_mode, cfg.ratio_level, cfg.log_ratio_clamp, cfg.zero_target) == (
        "quatro",
        "seq_len_norm",
        20.0,
        "anchor",
    )
    for kwargs, pattern in [
        ({"ratio_level": "sequence"}, r"policy_loss\.ratio_level='sequence' is invalid.*seq_len_norm"),
        ({"log_ratio_clamp": 0.0}, r"policy_loss\.log_ratio_clamp=0\.0 is invalid"),
        ({"log_ratio_clamp": 100.0}, r"policy_loss\.log_ratio_clamp=100\.0 is invalid"),
        ({"zero_target": "drop"}, r"policy_loss\.zero_target='drop' is invalid.*anchor.*mask"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            QuatroPolicyLossConfig(**kwargs)
    # plain PolicyLossConfig (loss_mode=quatro, no other key) equals the dataclass defaults
    old, new, adv, mask, _ = _inputs(14)
    plain = compute_policy_loss_quatro(old, new, adv, mask, "seq-mean-token-mean", _actor(None))[0]
    explicit = compute_policy_loss_quatro(old, new, adv, mask, "seq-mean-token-mean", _actor("seq_len_norm"))[0]
    assert torch.equal(plain, explicit)
    # a DictConfig actor section (as hydra composes it) works too, and None means defaults
    dict_cfg = OmegaConf.create({"policy_loss": {"loss_mode": "quatro", "ratio_level": "seq"}})
    by_dict = compute_policy_loss_quatro(old, new, adv, mask, "seq-mean-token-mean", dict_cfg)[0]
    assert torch.equal(
        by_dict, compute_policy_loss_quatro(old, new, adv, mask, "seq-mean-token-mean", _actor("seq"))[0]
    )
    assert torch.equal(plain, compute_policy_loss_quatro(old, new, adv, mask, "seq-mean-token-mean", None)[0])


def test_registered_with_verl_signature():
    assert get_policy_loss_fn("quatro") is compute_policy_loss_quatro
    params = list(inspect.signature(compute_policy_loss_quatro).parameters)
    assert params == [
        "old_log_prob",
        "log_prob",
        "advantages",
        "response_mask",
        "loss_agg_mode",
        "config",
        "rollout_is_weights",
    ]
    assert len(PolicyLossFn.__args__) - 1 == len(params)  # Callable[[7 args], ret]


# ------------------------------------------------------------------------------ through verl's own ppo_loss

VERL_PPO_LOSS = r"""
import json, sys
import torch
import verl  # the trustrl plugin registers "quatro" here, and nothing else imports trustrl
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.workers.config import ActorConfig, PolicyLossConfig
from verl.workers.utils.losses import ppo_loss

assert "trustrl.policy_loss.quatro" in sys.modules, "the plugin did not import trustrl"
a = json.loads(sys.argv[1])
nest = lambda rows, dtype=torch.float32: torch.nested.nested_tensor(
    [torch.tensor(r, dtype=dtype) for r in rows], layout=torch.jagged)
flat = torch.tensor(a["flat"], requires_grad=True)
offsets = torch.tensor(a["offsets"])
data = TensorDict({
    "prompts": nest(a["prompts"], torch.long), "responses": nest(a["responses"], torch.long),
    "response_mask": nest(a["response_mask"], torch.bool), "old_log_probs": nest(a["old"]),
    "advantages": nest(a["adv"])}, batch_size=[len(a["adv"])])
tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=a["num_tokens"], global_batch_size=len(a["adv"]))
cfg = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1,
                  loss_agg_mode="seq-mean-token-mean", policy_loss=PolicyLossConfig(loss_mode="quatro"))
loss, metrics = ppo_loss(cfg, {"log_probs": torch.nested.nested_tensor_from_jagged(flat, offsets)}, data)
loss.backward()
print(json.dumps({"loss": loss.item(), "grad": flat.grad.tolist(),
                  "metrics": {k: float(v.aggregate()) for k, v in metrics.items()}}))
"""


@pytest.mark.slow  # a fresh interpreter importing verl takes ~8 s
def test_verl_ppo_loss_on_nested_tensordict_in_fresh_process():
    g = torch.Generator().manual_seed(0)
    prompt_lens, resp_lens = [3, 2, 4, 1], [5, 2, 6, 3]
    targets = [0.3, -0.2, 0.0, 0.7]
    old = [(-torch.rand(r, generator=g)).tolist() for r in resp_lens]
    seq_lens = [p + r for p, r in zip(prompt_lens, resp_lens, strict=True)]
    flat = (-1 + 0.1 * torch.randn(sum(seq_lens), generator=g)).tolist()
    offsets = [0]
    for n in seq_lens:
        offsets.append(offsets[-1] + n)
    payload = {
        "prompts": [[1] * p for p in prompt_lens],
        "responses": [[2] * r for r in resp_lens],
        "response_mask": [[True] * r for r in resp_lens],
        "old": old,
        "adv": [[t] * r for t, r in zip(targets, resp_lens, strict=True)],
        "flat": flat,
        "offsets": offsets,
        "num_tokens": sum(resp_lens),
    }
    proc = subprocess.run(
        [sys.executable, "-c", VERL_PPO_LOSS, json.dumps(payload)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    # the same batch, padded by hand; response token t of row i sits at flat[offset_i + p_i − 1 + t]
    bs, length = len(resp_lens), max(resp_lens)
    flat_t = torch.tensor(flat, requires_grad=True)
    idx = torch.zeros(bs, length, dtype=torch.long)
    mask = torch.zeros(bs, length, dtype=torch.bool)
    old_pad, adv_pad = torch.zeros(bs, length), torch.zeros(bs, length)
    for i, (p, r) in enumerate(zip(prompt_lens, resp_lens, strict=True)):
        idx[i, :r] = torch.arange(offsets[i] + p - 1, offsets[i] + p - 1 + r)
        mask[i, :r] = True
        old_pad[i, :r] = torch.tensor(old[i])
        adv_pad[i, :r] = targets[i]
    log_prob = torch.where(mask, flat_t[idx], 0.0)
    cfg = _actor(None)
    cfg.global_batch_info.update(dp_size=1, batch_num_tokens=sum(resp_lens), global_batch_size=bs)
    loss, metrics = compute_policy_loss_quatro(old_pad, log_prob, adv_pad, mask, "seq-mean-token-mean", cfg)
    loss.backward()
    assert out["loss"] == pytest.approx(loss.item(), rel=1e-6)
    torch.testing.assert_close(torch.tensor(out["grad"]), flat_t.grad, rtol=1e-6, atol=1e-8)
    assert float(flat_t.grad.abs().sum()) > 0
    for key, value in metrics.items():
        assert out["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-9)
    assert out["metrics"]["actor/pg_loss"] == pytest.approx(loss.item(), rel=1e-6)


# ------------------------------------------------------------------- scale against verl's losses, real lengths


def _length_slope(grad, adv, mask):
    """Least-squares slope of log(push_i / |A_i|) on log |o_i|, push_i = Σ_t ∂loss/∂log π(o_{i,t})."""
    n = mask.sum(-1).double()
    a = (adv * mask).sum(-1) / n
    rows = a.abs() > 0
    y = torch.log((grad * mask).sum(-1)[rows].abs() / a[rows].abs())
    x = torch.log(n[rows])
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x * x).sum())


@pytest.mark.parametrize("perturbed", [False, True])
def test_recipe_default_scale_and_length_bias_against_gspo_and_vanilla(perturbed):
    """At 1,024-3,072-token mixed lengths: L2(∂loss/∂log π) within 0.25-4x of verl's gspo and vanilla (grpo
    advantages, same batch), and the push per unit target independent of |o_i|, as GSPO's (slope 0), at ρ = 1
    (the first mini-batch) and near it (per unit of the remaining gap T_i − u_i there)."""
    import numpy as np
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, get_adv_estimator_fn

    recipe = OmegaConf.load("recipes/quatro/config/quatro_trainer.yaml").actor_rollout_ref.actor
    level, mode = recipe.policy_loss.ratio_level, recipe.loss_agg_mode
    g = torch.Generator().manual_seed(21)
    prompts, group, width = 12, 8, 3072
    n = prompts * group
    lengths = torch.randint(1024, width + 1, (n,), generator=g)
    mask = torch.arange(width)[None] < lengths[:, None]
    p = torch.rand(prompts, generator=g).repeat_interleave(group)
    scores = (torch.rand(n, generator=g) < p).double()
    uid = np.array([i // group for i in range(n)])
    target = solve_quatro_targets(scores, uid, QuatroConfig()).targets
    rewards = torch.zeros(n, width, dtype=torch.float64)
    rewards[torch.arange(n), lengths - 1] = scores
    grpo, _ = get_adv_estimator_fn("grpo")(token_level_rewards=rewards, response_mask=mask, index=uid)
    old = -2.0 * torch.rand(n, width, generator=g, dtype=torch.float64)
    new = old + (1e-3 * torch.randn(n, width, generator=g, dtype=torch.float64) if perturbed else 0.0)
    quatro_adv = target[:, None] * mask

    def grad_of(fn, adv, agg, cfg):
        lp = new.detach().clone().requires_grad_(True)
        fn(old, lp, adv, mask, agg, cfg, None)[0].backward()
        return lp.grad

    gspo_cfg = ActorConfig(
        strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, loss_agg_mode="seq-mean-token-mean",
        clip_ratio_low=3e-4, clip_ratio_high=4e-4, policy_loss=PolicyLossConfig(loss_mode="gspo"),
    )  # fmt: skip
    vanilla_cfg = _actor(None, "token-mean")
    ours = grad_of(compute_policy_loss_quatro, quatro_adv, mode, _actor(level, mode))
    gspo = grad_of(POLICY_LOSS_REGISTRY["gspo"], grpo, "seq-mean-token-mean", gspo_cfg)
    vanilla = grad_of(POLICY_LOSS_REGISTRY["vanilla"], grpo, "token-mean", vanilla_cfg)
    for name, ref in (("gspo", gspo), ("vanilla", vanilla)):
        ratio = float(ours.norm() / ref.norm())
        assert 0.25 <= ratio <= 4.0, (name, ratio)
    # per unit of the remaining gap T_i − u_i (= T_i at ρ = 1), as GSPO's per unit of its advantage
    gap = (target - ((new - old) * mask).sum(-1))[:, None] * mask
    slope = _length_slope(ours, gap, mask)
    assert abs(slope - _length_slope(gspo, grpo, mask)) < 0.02, slope
    assert abs(_length_slope(vanilla, grpo, mask) - 1.0) < 0.02  # the check can see a length bias


def test_module_doctests():
    import doctest

    import trustrl.policy_loss.quatro as module

    failures, tried = doctest.testmod(module, verbose=False)
    assert failures == 0 and tried >= 6
