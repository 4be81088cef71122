# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""``trapo_loss`` against a slow reference written from the equations, on nested batches shaped as verl's engines.

Reference (policy_loss/trapo.py): per response token, 1[sft]·c_sft·(−sg(min(1, p/α))·log p) on expert tokens with the
SFT flag, the PPO clipped (dual-clip) loss on tokens outside the prefix, nothing elsewhere; one global normaliser
(token-mean: N response tokens, token-sum: 1, seq-mean-token-sum: G rows, -norm: G·L_max) times dp_size.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from trustrl.policy_loss.trapo import (
    TRAPO_LOSS_AGG_MODES,
    TrapoLossConfig,
    finalize_trapo_metrics,
    trapo_loss,
    trapo_token_masks,
    trsft_token_loss,
)
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.utils import tensordict_utils as tu
from verl.utils.metric import AggregationType, Metric
from verl.workers.config import ActorConfig, PolicyLossConfig
from verl.workers.utils.losses import ppo_loss

L_MAX = 12  # loss_scale_factor: a constant max response length
MODES = list(TRAPO_LOSS_AGG_MODES)


# ------------------------------------------------------------------------------------------------ batches


def make_rows(seed: int, bs: int = 7, dtype=torch.float64) -> list[dict]:
    """Random trajectories: prompt/response lengths, guided rows (prefix with/without SFT), a full-expert row, an
    unguided row, a row whose response_mask ends in zeros, and leaf log-probs over prompt+response positions."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for j in range(bs):
        plen = int(torch.randint(1, 5, (1,), generator=g))
        rlen = int(torch.randint(2, 10, (1,), generator=g))
        kind = j % 4  # 0 unguided, 1 guided with SFT, 2 guided without SFT (second copy), 3 full expert
        plen_prefix = {0: 0, 1: rlen // 2, 2: rlen // 2, 3: rlen}[kind]
        prefix = torch.zeros(rlen, dtype=torch.int64)
        prefix[:plen_prefix] = 1
        sft = prefix.clone() if kind in (1, 3) else torch.zeros_like(prefix)
        resp = torch.ones(rlen, dtype=torch.int64)
        if j == 4:
            resp[-2:] = 0  # e.g. tokens the rollout excludes from the loss
        # log p in (−4, −0.05): some tokens inside the trust region (p ≥ α = 0.1), some outside
        lp = (-0.05 - 3.95 * torch.rand(plen + rlen, generator=g, dtype=dtype)).requires_grad_()
        old = lp.detach()[plen - 1 : plen - 1 + rlen] + 0.3 * torch.randn(rlen, generator=g, dtype=dtype)
        adv = torch.full((rlen,), float(torch.randn(1, generator=g)), dtype=dtype)
        rows.append(dict(plen=plen, rlen=rlen, lp=lp, old=old, adv=adv, resp=resp, prefix=prefix, sft=sft))
    return rows


def _nested(xs):
    return torch.nested.as_nested_tensor(list(xs), layout=torch.jagged)


def to_td(rows, dp_size=1, batch_num_tokens=None, global_batch_size=None, masks=True, extra=None):
    """The micro-batch TensorDict as verl's engines pass it: jagged nested fields + scalar non-tensor data."""
    fields = {
        "prompts": _nested(torch.zeros(r["plen"], dtype=torch.int64) for r in rows),
        "responses": _nested(torch.zeros(r["rlen"], dtype=torch.int64) for r in rows),
        "response_mask": _nested(r["resp"] for r in rows),
        "old_log_probs": _nested(r["old"] for r in rows),
        "advantages": _nested(r["adv"] for r in rows),
    }
    if masks:
        fields["prefix_mask"] = _nested(r["prefix"] for r in rows)
        fields["sft_mask"] = _nested(r["sft"] for r in rows)
    fields.update(extra or {})
    non_tensor = {"dp_size": dp_size, "batch_num_tokens": batch_num_tokens, "global_batch_size": global_batch_size}
    return tu.get_tensordict(fields, non_tensor)


def model_output(rows, entropy=False):
    out = {"log_probs": _nested(r["lp"] for r in rows)}
    if entropy:
        out["entropy"] = _nested(r["ent"] for r in rows)
    return out


def global_info(rows):
    """What the engine puts in every micro-batch: Σ loss_mask (= response_mask) and the mini-batch row count."""
    return {"batch_num_tokens": int(sum(int(r["resp"].sum()) for r in rows)), "global_batch_size": len(rows)}


def actor_config(mode="seq-mean-token-sum-norm", loss_scale_factor=L_MAX, **kwargs):
    return ActorConfig(
        strategy="fsdp",
        rollout_n=1,
        ppo_micro_batch_size_per_gpu=1,
        loss_agg_mode=mode,
        loss_scale_factor=loss_scale_factor,
        **kwargs,
    )


def grads(rows):
    return [None if r["lp"].grad is None else r["lp"].grad.clone() for r in rows]


def zero_grads(rows):
    for r in rows:
        r["lp"].grad = None


def run(rows, cfg=None, trapo=None, **td_kwargs):
    """loss.backward() on one micro-batch; returns (loss, metrics)."""
    loss, metrics = trapo_loss(cfg or actor_config(), model_output(rows), to_td(rows, **td_kwargs), trapo_config=trapo)
    loss.backward()
    return loss.detach(), metrics


def values(metrics):
    return {k: (v.aggregate() if isinstance(v, Metric) else v) for k, v in metrics.items()}


# ------------------------------------------------------------------------------------------------ reference


def reference_loss(rows, trapo: TrapoLossConfig, cfg: ActorConfig, dp_size=1, n_tokens=None, n_rows=None):
    """Slow loops over rows and tokens, straight from the equations (vanilla PPO dual-clip RL term)."""
    eps_lo, eps_hi, clip_c = cfg.clip_ratio_low, cfg.clip_ratio_high, cfg.clip_ratio_c
    total = 0.0
    for r in rows:
        for t in range(r["rlen"]):
            if not r["resp"][t]:
                continue
            lp = r["lp"][r["plen"] - 1 + t]  # log-prob of response token t (shifted by one, as the engines)
            if not r["prefix"][t]:
                a = float(r["adv"][t])
                ratio = torch.exp(torch.clamp(lp - r["old"][t], -20.0, 20.0))
                # PPO: max(−A·ρ, −A·clip(ρ, 1−ε_l, 1+ε_h)); dual clip for A < 0: min(·, −A·c)
                loss_t = torch.maximum(-a * ratio, -a * torch.clamp(ratio, 1 - eps_lo, 1 + eps_hi))
                if a < 0:
                    loss_t = torch.minimum(loss_t, torch.tensor(-a * clip_c, dtype=lp.dtype))
                total = total + loss_t
            elif r["sft"][t]:
                weight = min(1.0, math.exp(float(lp.detach())) / trapo.alpha)  # stop-gradient: a Python float
                total = total + trapo.sft_coef * (-weight * lp)
    n_tokens = sum(int(r["resp"].sum()) for r in rows) if n_tokens is None else n_tokens
    n_rows = len(rows) if n_rows is None else n_rows
    norm = {
        "token-mean": n_tokens,
        "token-sum": 1.0,
        "seq-mean-token-sum": n_rows,
        "seq-mean-token-sum-norm": n_rows * cfg.loss_scale_factor,
    }[trapo.loss_agg_mode]
    return total / norm * dp_size


# ------------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_loss_and_gradient(mode, seed):
    rows = make_rows(seed)
    trapo = TrapoLossConfig(alpha=0.1, sft_coef=0.7, loss_agg_mode=mode)
    cfg = actor_config(mode)
    loss, _ = run(rows, cfg, trapo, **global_info(rows))
    got = grads(rows)
    zero_grads(rows)
    ref = reference_loss(rows, trapo, cfg)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-6)
    for g, r in zip(got, rows):
        torch.testing.assert_close(g, r["lp"].grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_outside_an_engine_uses_the_micro_batch_counts(mode):
    """No engine scalars: the normalisers are the micro-batch's response tokens and rows (the engine's semantics);
    no loss_scale_factor: L_max is the padded width, verl's fallback."""
    rows = make_rows(15)
    trapo = TrapoLossConfig(loss_agg_mode=mode)
    cfg = actor_config(mode, loss_scale_factor=None)
    loss, _ = run(rows, cfg, trapo)  # dp_size 1, batch_num_tokens and global_batch_size None
    cfg_ref = actor_config(mode, loss_scale_factor=max(r["rlen"] for r in rows))
    torch.testing.assert_close(loss, reference_loss(rows, trapo, cfg_ref).detach(), rtol=1e-10, atol=1e-12)


def test_hand_computed_gradients():
    # one row, prompt length 1, response of 4 tokens: [prefix+sft, prefix (no sft), model, model]
    lp = torch.log(torch.tensor([0.5, 0.5, 0.02, 0.5, 0.3], dtype=torch.float64)).requires_grad_()
    row = dict(
        plen=1,
        rlen=4,
        lp=lp,
        old=lp.detach()[:4].clone(),  # ρ ≡ 1: no clipping, REINFORCE gradient
        adv=torch.full((4,), 2.0, dtype=torch.float64),
        resp=torch.ones(4, dtype=torch.int64),
        prefix=torch.tensor([1, 1, 0, 0]),
        sft=torch.tensor([1, 0, 0, 0]),
    )
    cfg = actor_config("token-sum")
    run([row], cfg, TrapoLossConfig(alpha=0.1, loss_agg_mode="token-sum"), batch_num_tokens=4, global_batch_size=1)
    # response token t uses lp[t] (log-prob of token t sits one position earlier); the last lp is unused
    # t=0 SFT, p = 0.5 ≥ α: weight 1 → −1;  t=1 prefix without SFT → 0
    # t=2, t=3 RL with A = 2, ρ = 1: −A·∂ρ/∂log p = −2
    torch.testing.assert_close(lp.grad, torch.tensor([-1.0, 0.0, -2.0, -2.0, 0.0], dtype=torch.float64))
    # the same SFT token outside the trust region: p = 0.02 < α → weight p/α = 0.2
    row["lp"] = lp2 = torch.log(torch.tensor([0.02, 0.5, 0.02, 0.5, 0.3], dtype=torch.float64)).requires_grad_()
    run([row], cfg, TrapoLossConfig(alpha=0.1, loss_agg_mode="token-sum"), batch_num_tokens=4, global_batch_size=1)
    torch.testing.assert_close(lp2.grad[0], torch.tensor(-0.2, dtype=torch.float64))


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.5, 1.0])
def test_sft_gradient_is_trust_region_weight(alpha):
    rows = make_rows(3)
    trapo = TrapoLossConfig(alpha=alpha, sft_coef=1.5, loss_agg_mode="seq-mean-token-sum-norm")
    run(rows, actor_config(), trapo, **global_info(rows))
    norm = len(rows) * L_MAX
    for r in rows:
        resp_lp = r["lp"].detach()[r["plen"] - 1 : r["plen"] - 1 + r["rlen"]]
        resp_grad = r["lp"].grad[r["plen"] - 1 : r["plen"] - 1 + r["rlen"]]
        sft = (r["sft"] * r["resp"]).bool()
        # ∂L/∂log p = −c_sft · min(1, p/α) / (G · L_max)
        expected = -1.5 * torch.clamp(resp_lp.exp() / alpha, max=1.0) / norm
        torch.testing.assert_close(resp_grad[sft], expected[sft], rtol=1e-10, atol=1e-12)
        # zero on expert tokens without SFT, on tokens outside response_mask and on prompt positions
        expert_only = (r["prefix"].bool() & ~sft) | ~r["resp"].bool()
        assert torch.count_nonzero(resp_grad[expert_only]) == 0
        assert torch.count_nonzero(r["lp"].grad[: r["plen"] - 1]) == 0


def test_parameter_gradient_is_trust_region_weighted_log_prob_gradient():
    """∇_θ of the loss = −c_sft/norm · Σ_{sft} min(1, p_t/α) ∇_θ log p_t + ∇_θ(RL term), for θ of a small softmax
    policy; the SFT part is summed token by token from each ∇_θ log p_t (autograd.grad), not through the loss."""
    g = torch.Generator().manual_seed(16)
    vocab, hidden, alpha, coef = 11, 6, 0.1, 0.8
    weight = (2.0 * torch.randn(hidden, vocab, generator=g, dtype=torch.float64)).requires_grad_()
    rows = make_rows(16)
    feats, tokens = [], []
    for r in rows:
        n = r["plen"] + r["rlen"]
        feats.append(torch.randn(n, hidden, generator=g, dtype=torch.float64))
        tokens.append(torch.randint(0, vocab, (n,), generator=g))

    def log_probs():
        return [torch.log_softmax(x @ weight, -1).gather(-1, y[:, None])[:, 0] for x, y in zip(feats, tokens)]

    def loss_of(trapo):
        local = [dict(r, lp=lp) for r, lp in zip(rows, log_probs())]
        return trapo_loss(actor_config(), model_output(local), to_td(local, **global_info(rows)), trapo_config=trapo)

    trapo = TrapoLossConfig(alpha=alpha, sft_coef=coef)
    (got,) = torch.autograd.grad(loss_of(trapo)[0], weight)
    (rl_grad,) = torch.autograd.grad(loss_of(TrapoLossConfig(alpha=alpha, sft_coef=0.0))[0], weight)
    expected, weights, lps = rl_grad.clone(), [], log_probs()
    for r, lp in zip(rows, lps):
        for t in range(r["rlen"]):
            if r["resp"][t] and r["prefix"][t] and r["sft"][t]:
                log_p = lp[r["plen"] - 1 + t]
                (grad_log_p,) = torch.autograd.grad(log_p, weight, retain_graph=True)
                weights.append(min(1.0, math.exp(float(log_p)) / alpha))
                expected -= coef * weights[-1] * grad_log_p / (len(rows) * L_MAX)
    assert min(weights) < 1.0 == max(weights)  # SFT tokens inside and outside the trust region
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rl_loss_mode", ["vanilla", "gspo", "quatro"])
def test_rl_gradient_on_model_tokens_is_the_registered_loss(rl_loss_mode):
    """On tokens outside the prefix the gradient is the registered loss's, called on response ∧ ¬prefix alone."""
    rows = make_rows(4)
    cfg = actor_config(clip_ratio_low=0.2, clip_ratio_high=0.28)
    info = global_info(rows)
    run(rows, cfg, TrapoLossConfig(rl_loss_mode=rl_loss_mode, sft_coef=0.0), **info)
    got = grads(rows)
    zero_grads(rows)
    # direct call on padded tensors
    width = max(r["rlen"] for r in rows)

    def pad(x):
        return torch.nn.functional.pad(x, (0, width - x.shape[-1]))

    log_prob = torch.stack([pad(r["lp"][r["plen"] - 1 : r["plen"] - 1 + r["rlen"]]) for r in rows])
    rl = torch.stack([pad(r["resp"] * (1 - r["prefix"])) for r in rows]).bool()
    cfg.global_batch_info.update(dp_size=1, loss_scale_factor=L_MAX, **info)
    loss, _ = get_policy_loss_fn(rl_loss_mode)(
        old_log_prob=torch.stack([pad(r["old"]) for r in rows]) * rl,
        log_prob=log_prob * rl,
        advantages=torch.stack([pad(r["adv"]) for r in rows]) * rl,
        response_mask=rl,
        loss_agg_mode="seq-mean-token-sum-norm",
        config=cfg,
        rollout_is_weights=None,
    )
    loss.backward()
    for g, r in zip(got, rows):
        torch.testing.assert_close(g, r["lp"].grad, rtol=1e-6, atol=1e-9)
    # and with the SFT term on, the RL tokens' gradient does not change
    zero_grads(rows)
    run(rows, cfg, TrapoLossConfig(rl_loss_mode=rl_loss_mode, sft_coef=1.0), **info)
    for g, r in zip(got, rows):
        rl_positions = torch.zeros_like(g, dtype=torch.bool)
        rl_positions[r["plen"] - 1 : r["plen"] - 1 + r["rlen"]] = (r["resp"] * (1 - r["prefix"])).bool()
        torch.testing.assert_close(r["lp"].grad[rl_positions], g[rl_positions], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("rl_loss_mode", ["vanilla", "gspo"])
@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum-norm"])
def test_unguided_batch_equals_verl_ppo_loss(rl_loss_mode, mode):
    """All-zero masks: trapo_loss is verl's ppo_loss (value, gradient, entropy term)."""
    rows = make_rows(5)
    for r in rows:
        r["prefix"].zero_()
        r["sft"].zero_()
        r["ent"] = torch.rand(r["plen"] + r["rlen"], dtype=torch.float64)
    info = global_info(rows)
    cfg = actor_config(mode, entropy_coeff=0.01, policy_loss=PolicyLossConfig(loss_mode=rl_loss_mode))
    loss, metrics = trapo_loss(
        cfg,
        model_output(rows, entropy=True),
        to_td(rows, **info),
        # verl's ppo_loss aggregates the entropy like the loss
        trapo_config=TrapoLossConfig(rl_loss_mode=rl_loss_mode, loss_agg_mode=mode, entropy_agg="loss_agg_mode"),
    )
    loss.backward()
    got = grads(rows)
    zero_grads(rows)
    ref, ref_metrics = ppo_loss(cfg, model_output(rows, entropy=True), to_td(rows, masks=False, **info))
    ref.backward()
    assert torch.equal(loss, ref)  # bit for bit: the same ops on the same tensors, plus an exact 0 SFT term
    for g, r in zip(got, rows):
        assert torch.equal(g, r["lp"].grad)
    assert values(metrics)["actor/pg_loss"] == pytest.approx(values(ref_metrics)["actor/pg_loss"])
    assert values(metrics)["actor/entropy_loss"] == pytest.approx(values(ref_metrics)["actor/entropy_loss"])


def _entropy_rows(seed: int, n_rows: int = 8) -> list[dict]:
    """Unguided rows with zero advantage and no SFT token: the loss is the entropy bonus alone."""
    rows = make_rows(seed, bs=n_rows)
    g = torch.Generator().manual_seed(seed)
    for r in rows:
        r["prefix"][: r["rlen"] // 3] = 1  # expert tokens: the bonus covers them too (official)
        r["sft"].zero_()
        r["adv"].zero_()
        r["ent"] = (2 * torch.rand(r["plen"] + r["rlen"], generator=g, dtype=torch.float64)).requires_grad_()
    return rows


def _bonus_value(rows, trapo: TrapoLossConfig, shards: list[list[int]], dp_size: int) -> float:
    """Σ over micro-batches of one mini-batch, FSDP-averaged over ``dp_size`` ranks (shards: micro-batch row ids)."""
    info = global_info(rows)
    cfg = actor_config(entropy_coeff=0.001)
    total = 0.0
    for shard in shards:
        part = [rows[i] for i in shard]
        loss, _ = trapo_loss(
            cfg, model_output(part, entropy=True), to_td(part, dp_size=dp_size, **info), trapo_config=trapo
        )
        total += float(loss)
    return total / dp_size


def test_official_entropy_bonus_is_the_per_micro_batch_token_mean_on_verls_scale():
    """The official actor (mix_actor.py) adds −c·masked_mean(H, response_mask) per micro-batch, sums micro-batches
    (one accumulation step) and FSDP averages the dp ranks, next to Σ ℓ / L_max per micro-batch. verl's
    seq-mean-token-sum-norm loss is Σ ℓ / (G · L_max): the official objective times dp / G. The bonus must be
    −(dp / G) · (1/dp) · c · Σ_micro-batches mean(H) so that its weight against the loss terms is the official one."""
    rows = _entropy_rows(0)
    c, dp, n = 0.001, 2, len(rows)
    shards = [[0, 1, 2], [3], [4, 5], [6, 7]]  # two ranks, two micro-batches each
    got = _bonus_value(rows, TrapoLossConfig(), shards, dp_size=dp)

    def mean_entropy(part):  # masked_mean over the micro-batch's response tokens, prefix included
        values = [float(r["ent"][r["plen"] - 1 + t]) for r in part for t in range(r["rlen"]) if r["resp"][t]]
        return sum(values) / len(values)

    official = (1 / dp) * sum(-c * mean_entropy([rows[i] for i in shard]) for shard in shards)
    assert got == pytest.approx(official * dp / n, rel=1e-12)


def test_loss_agg_mode_entropy_bonus_is_micro_batch_invariant_the_official_one_is_not():
    rows = _entropy_rows(1)
    one, split = [list(range(8))], [[0, 1, 2], [3, 4, 5, 6, 7]]
    invariant = TrapoLossConfig(entropy_agg="loss_agg_mode")
    assert _bonus_value(rows, invariant, one, 1) == pytest.approx(_bonus_value(rows, invariant, split, 1), rel=1e-12)
    # the official weighting depends on the micro-batching, as in the official code
    official = TrapoLossConfig()
    assert _bonus_value(rows, official, one, 1) != pytest.approx(_bonus_value(rows, official, split, 1), rel=1e-3)
    # a token's weight: c / (T · G) officially (T tokens in its micro-batch), c / (G · L_max) aggregated as the loss
    loss, _ = trapo_loss(
        actor_config(entropy_coeff=0.001), model_output(rows, entropy=True), to_td(rows, **global_info(rows))
    )
    loss.backward()
    r = rows[0]
    t = int(torch.nonzero(r["resp"])[0]) + r["plen"] - 1
    n_tokens = sum(int(x["resp"].sum()) for x in rows)
    assert float(r["ent"].grad[t]) == pytest.approx(-0.001 / (n_tokens * len(rows)), rel=1e-12)


@pytest.mark.parametrize("value", ["token-mean", "mean", None])
def test_entropy_agg_errors_name_the_key(value):
    with pytest.raises(ValueError, match=r"trapo\.entropy_agg=.* use micro_batch_token_mean"):
        TrapoLossConfig(entropy_agg=value)


def test_missing_masks_train_unguided_and_are_counted():
    rows = make_rows(6)
    info = global_info(rows)
    loss_missing, m_missing = run(rows, masks=False, **info)
    g_missing = grads(rows)
    zero_grads(rows)
    for r in rows:
        r["prefix"].zero_()
        r["sft"].zero_()
    loss_zero, m_zero = run(rows, **info)
    assert torch.equal(loss_missing, loss_zero)
    for a, r in zip(g_missing, rows):
        assert torch.equal(a, r["lp"].grad)
    assert values(m_missing)["actor/trapo/masks_missing"] == 1.0
    assert values(m_zero)["actor/trapo/masks_missing"] == 0.0


@pytest.mark.parametrize("present", ["prefix_mask", "sft_mask"])
def test_one_mask_without_the_other_raises(present):
    rows = make_rows(0)
    extra = {present: _nested(r["prefix"] for r in rows)}
    with pytest.raises(ValueError, match="must emit both masks"):
        trapo_loss(actor_config(), model_output(rows), to_td(rows, masks=False, extra=extra))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rl_loss_mode", ["vanilla", "gspo", "quatro"])
def test_micro_batch_invariance(mode, rl_loss_mode):
    rows = make_rows(7, bs=8)
    trapo = TrapoLossConfig(rl_loss_mode=rl_loss_mode, loss_agg_mode=mode, sft_coef=0.5)
    info = global_info(rows)
    full_loss, full_metrics = run(rows, actor_config(mode), trapo, **info)
    full_grads = grads(rows)
    zero_grads(rows)
    total, per_key = 0.0, {}
    for lo, hi in [(0, 3), (3, 4), (4, 8)]:
        loss, metrics = run(rows[lo:hi], actor_config(mode), trapo, **info)  # gradients accumulate
        total = total + loss
        for key, value in values(metrics).items():
            per_key.setdefault(key, []).append(value)
    torch.testing.assert_close(total, full_loss, rtol=1e-10, atol=1e-12)
    for g, r in zip(full_grads, rows):
        torch.testing.assert_close(r["lp"].grad, g, rtol=1e-10, atol=1e-12)
    # SUM-aggregated metrics add up over micro-batches to the mini-batch value
    full = values(full_metrics)
    for key in (
        "actor/trapo/rl_loss",
        "actor/trapo/sft_loss",
        "actor/trapo/sft_token_share",
        "actor/trapo/per_resp_token/sft_nll",
    ):
        assert sum(per_key[key]) == pytest.approx(full[key], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_data_parallel_invariance(mode):
    """Two dp ranks, two micro-batches each; FSDP averages gradients over ranks and verl's Metric.aggregate_dp
    averages metrics over ranks: both must equal the single-rank result."""
    rows = make_rows(8, bs=8)
    trapo = TrapoLossConfig(loss_agg_mode=mode)
    info = global_info(rows)
    full_loss, full_metrics = run(rows, actor_config(mode), trapo, **info)
    full_grads = grads(rows)
    zero_grads(rows)
    ranks = [[rows[0:2], rows[2:4]], [rows[4:5], rows[5:8]]]
    rank_losses, rank_metrics = [], []
    for micro_batches in ranks:
        losses, metrics = [], {}
        for mb in micro_batches:
            loss, m = run(mb, actor_config(mode), trapo, dp_size=2, **info)
            losses.append(loss)
            for key, value in m.items():
                metrics.setdefault(key, Metric(aggregation=value.aggregation)).append(value)
        rank_losses.append(sum(losses))
        rank_metrics.append(metrics)
    torch.testing.assert_close(sum(rank_losses) / 2, full_loss, rtol=1e-10, atol=1e-12)
    for g, r in zip(full_grads, rows):
        torch.testing.assert_close(r["lp"].grad / 2, g, rtol=1e-10, atol=1e-12)  # the all-reduce mean
    full = values(full_metrics)
    for key in (
        "actor/trapo/rl_loss",
        "actor/trapo/sft_loss",
        "actor/trapo/rl_token_share",
        "actor/trapo/per_resp_token/sft_p_mean",
    ):
        got = Metric.aggregate_dp([m[key] for m in rank_metrics])
        assert got == pytest.approx(full[key], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("rl_loss_mode", ["vanilla", "gspo", "quatro"])
def test_junk_in_masked_positions_changes_nothing(rl_loss_mode):
    rows = make_rows(9)
    trapo = TrapoLossConfig(rl_loss_mode=rl_loss_mode)
    info = global_info(rows)
    loss, _ = run(rows, trapo=trapo, **info)
    clean = grads(rows)
    zero_grads(rows)
    for j, r in enumerate(rows):
        junk = 1e4 if j % 2 else -1e4
        outside_rl = r["prefix"].bool() | ~r["resp"].bool()
        # RL inputs at expert and masked slots, log-probs at prompt positions
        r["old"] = torch.where(outside_rl, torch.full_like(r["old"], junk), r["old"])
        r["adv"] = torch.where(outside_rl, torch.full_like(r["adv"], -junk), r["adv"])
        with torch.no_grad():
            r["lp"][: r["plen"] - 1] = junk
            # log-probs at tokens outside response_mask (they get no term at all)
            positions = torch.nonzero(~r["resp"].bool()).flatten() + r["plen"] - 1
            r["lp"][positions] = junk
        # stale, longer masks (verl's balance-padding rows cloned from a guided row)
        r["prefix"] = torch.cat([r["prefix"], torch.ones(5, dtype=torch.int64)])
        r["sft"] = torch.cat([r["sft"], torch.ones(5, dtype=torch.int64)])
    loss_junk, _ = run(rows, trapo=trapo, **info)
    assert torch.equal(loss_junk, loss)
    for g, r in zip(clean, rows):
        keep = torch.ones_like(g, dtype=torch.bool)
        keep[: r["plen"] - 1] = False
        assert torch.equal(r["lp"].grad[keep], g[keep])
        assert torch.count_nonzero(r["lp"].grad[~keep]) == 0


@pytest.mark.parametrize("rl_loss_mode", ["vanilla", "gspo", "quatro"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_gradients_at_extreme_log_probs(rl_loss_mode, dtype):
    rows = make_rows(10, dtype=dtype)
    extremes = torch.tensor([-1e4, -100.0, -30.0, 0.0, -1e-9], dtype=dtype)
    for r in rows:
        with torch.no_grad():
            n = r["lp"].numel()
            r["lp"].copy_(extremes.repeat(n // 5 + 1)[:n])
        r["old"] = extremes.flip(0).repeat(r["rlen"] // 5 + 1)[: r["rlen"]].to(dtype)
        r["adv"] = r["adv"].to(dtype) * 1e3
    loss, metrics = run(rows, trapo=TrapoLossConfig(rl_loss_mode=rl_loss_mode), **global_info(rows))
    assert torch.isfinite(loss)
    assert all(torch.isfinite(r["lp"].grad).all() for r in rows)
    assert all(math.isfinite(v) for v in values(metrics).values())


def test_metrics_match_token_counts():
    rows = make_rows(11)
    alpha = 0.2
    _, metrics = run(rows, trapo=TrapoLossConfig(alpha=alpha), **global_info(rows))
    m = values(metrics)
    n_resp = n_rl = n_sft = nll = p_sum = low = 0.0
    for r in rows:
        for t in range(r["rlen"]):
            if not r["resp"][t]:
                continue
            n_resp += 1
            lp = float(r["lp"].detach()[r["plen"] - 1 + t])
            if not r["prefix"][t]:
                n_rl += 1
            elif r["sft"][t]:
                n_sft, nll, p_sum, low = n_sft + 1, nll - lp, p_sum + math.exp(lp), low + (math.exp(lp) < alpha)
    assert m["actor/trapo/rl_token_share"] == pytest.approx(n_rl / n_resp)
    assert m["actor/trapo/sft_token_share"] == pytest.approx(n_sft / n_resp)
    assert m["actor/trapo/masks_missing"] == 0.0
    final = finalize_trapo_metrics(dict(m))
    assert final["actor/trapo/sft_nll"] == pytest.approx(nll / n_sft)
    assert final["actor/trapo/sft_p_mean"] == pytest.approx(p_sum / n_sft)
    assert final["actor/trapo/sft_p_lt_alpha_share"] == pytest.approx(low / n_sft)
    assert 0 < low < n_sft  # the batch has tokens on both sides of α
    assert not any(k.startswith("actor/trapo/per_resp_token/") for k in final)
    # SUM for normalised values (verl adds micro-batches), MEAN for the registered loss's own statistics
    assert metrics["actor/trapo/sft_loss"].aggregation == AggregationType.SUM
    assert metrics["actor/pg_clipfrac"].aggregation == AggregationType.MEAN


def test_finalize_without_sft_tokens_reports_zero():
    metrics = {
        "actor/trapo/sft_token_share": 0.0,
        "actor/trapo/per_resp_token/sft_nll": 0.0,
        "actor/trapo/per_resp_token/sft_p_mean": 0.0,
        "actor/trapo/per_resp_token/sft_p_lt_alpha_share": 0.0,
        "actor/pg_loss": 0.3,
    }
    out = finalize_trapo_metrics(metrics)
    assert out["actor/trapo/sft_nll"] == 0.0 and out["actor/pg_loss"] == 0.3


def test_kl_loss_only_on_model_tokens():
    rows = make_rows(12)
    info = global_info(rows)
    for r in rows:
        r["ref"] = r["old"] - 0.2
    extra = {"ref_log_prob": _nested(r["ref"] for r in rows)}
    cfg = actor_config(use_kl_loss=True, kl_loss_coef=0.5, kl_loss_type="low_var_kl")
    td = to_td(rows, extra=extra, **info)
    loss_kl, metrics = trapo_loss(cfg, model_output(rows), td)
    loss_kl.backward()
    g_kl = grads(rows)
    zero_grads(rows)
    loss, _ = trapo_loss(actor_config(), model_output(rows), to_td(rows, extra=extra, **info))
    loss.backward()
    kl = values(metrics)["kl_loss"]
    assert kl > 0
    torch.testing.assert_close(loss_kl - loss, torch.tensor(0.5 * kl, dtype=loss.dtype), rtol=1e-6, atol=1e-9)
    for g, r in zip(g_kl, rows):
        sl = slice(r["plen"] - 1, r["plen"] - 1 + r["rlen"])
        expert = r["prefix"].bool()
        torch.testing.assert_close(g[sl][expert], r["lp"].grad[sl][expert])


def test_gradcheck_float64():
    rows = make_rows(13, bs=3)
    info = global_info(rows)
    cfg = actor_config()
    # finite differences would see the stop-gradient weight move: with α = 0.01 every p (≥ e^-4) is inside the
    # trust region, the weight is constant 1 and the analytic gradient must match the numerical one
    trapo = TrapoLossConfig(rl_loss_mode="gspo", alpha=0.01)

    def f(*leaves):
        local = [dict(r, lp=leaf) for r, leaf in zip(rows, leaves)]
        return trapo_loss(cfg, model_output(local), to_td(local, **info), trapo_config=trapo)[0]

    leaves = [r["lp"].detach().clone().requires_grad_() for r in rows]
    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-7)


def test_zero_advantage_and_no_sft_give_zero_loss_and_gradient():
    rows = make_rows(14)
    for r in rows:
        r["adv"] = torch.zeros_like(r["adv"])
        r["sft"].zero_()
    loss, _ = run(rows, **global_info(rows))
    assert float(loss) == 0.0
    assert all(torch.count_nonzero(r["lp"].grad) == 0 for r in rows)


def test_token_masks_follow_the_official_rule():
    response = torch.tensor([[1, 1, 1, 1, 0]])
    prefix = torch.tensor([[1, 1, 0, 0, 1]])
    sft = torch.tensor([[1, 0, 1, 0, 1]])  # sft outside the prefix or the response is ignored
    rl, s = trapo_token_masks(response, prefix, sft)
    assert rl.tolist() == [[False, False, True, True, False]]
    assert s.tolist() == [[True, False, False, False, False]]
    rl, s = trapo_token_masks(response, None, None)
    assert rl.tolist() == response.bool().tolist() and not s.any()


def test_trsft_token_loss_weight_and_value():
    lp = torch.log(torch.tensor([1.0, 0.5, 0.1, 0.05, 1e-30], dtype=torch.float64)).requires_grad_()
    loss, p = trsft_token_loss(lp, alpha=0.1)
    loss.sum().backward()
    torch.testing.assert_close(lp.grad, -torch.tensor([1.0, 1.0, 1.0, 0.5, 1e-29], dtype=torch.float64))
    torch.testing.assert_close(p, lp.detach().exp())
    assert not p.requires_grad


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alpha": 0.0}, r"trapo\.alpha must be in \(0, 1\]"),
        ({"alpha": 1.5}, r"trapo\.alpha"),
        ({"alpha": True}, r"trapo\.alpha"),
        ({"sft_coef": -1.0}, r"trapo\.sft_coef must be finite and >= 0"),
        ({"sft_coef": float("nan")}, r"trapo\.sft_coef"),
        # the two knobs verl's actor config owns are named by their actor keys
        ({"rl_loss_mode": "nope"}, r"actor_rollout_ref\.actor\.policy_loss\.loss_mode='nope' is not a registered"),
        (
            {"loss_agg_mode": "seq-mean-token-mean"},
            r"actor_rollout_ref\.actor\.loss_agg_mode='seq-mean-token-mean' is not supported",
        ),
    ],
)
def test_loss_config_errors_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrapoLossConfig(**kwargs)


def test_signature_matches_the_engine_contract_and_docstring():
    params = list(inspect.signature(trapo_loss).parameters)
    assert params[:4] == ["config", "model_output", "data", "dp_group"]
    assert params[4] == "trapo_config"
    assert inspect.signature(trapo_loss).parameters["dp_group"].default is None
    doc = trapo_loss.__doc__
    assert all(f"{name}:" in doc for name in params)


# ------------------------------------------------------------------------------------------------ Proposition 1


def trsft_optimum(p_expert: list[float], alpha: float) -> list[float]:
    """argmax_{p ∈ simplex} Σ_c p_E(c) f_α(p(c)), f_α' = 1/max(p, α), from the KKT conditions (no optimisation).

    λ solves m(λ) = Σ_{p_E(c) > αλ} p_E(c)/λ = 1 (bisection; m decreases and drops by α where an outcome leaves
    S(λ) = {c : p_E(c) > αλ}). If m(λ) = 1 is hit, Proposition 1 of arXiv:2512.17636: p* = p_E/λ on S(λ), 0 elsewhere.
    Otherwise m jumps over 1 at λ = p_E(c_b)/α and the outcome c_b sits on the boundary with p* = 1 − Σ_S p_E/λ < α
    (KKT: p_E(c_b)/α = λ); Prop. 1 as quoted covers only the first case.
    """

    def mass(lam):
        return sum(v for v in p_expert if v > alpha * lam) / lam

    lo, hi = 1e-12, max(p_expert) / alpha * (1 + 1e-9)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mass(mid) >= 1 else (lo, mid)
    lam = hi
    p_star = [v / lam if v > alpha * lam else 0.0 for v in p_expert]
    if abs(mass(lam) - 1) > 1e-9:  # boundary outcome: the one with p_E = αλ
        boundary = min(range(len(p_expert)), key=lambda c: abs(p_expert[c] - alpha * lam))
        p_star[boundary] = 1.0 - sum(p_star)
    return p_star


def test_proposition_1_trsft_optimum_of_a_categorical():
    """Adam on softmax logits with the expected TrSFT loss −Σ_c p_E(c)·sg(min(1, p_c/α))·log p_c converges to the
    closed form; α → 0 recovers p_E (SFT). All cases run as one batch (Adam is elementwise)."""
    dirichlet = torch.distributions.Dirichlet(torch.ones(12, dtype=torch.float64))
    p_e = []
    for seed in range(3):
        torch.manual_seed(seed)
        p_e.append(dirichlet.sample())
    # cases (p_E seed, α), chosen to cover both KKT cases: (0, 0.1), (1, 0.3) generic, (0, 0.3), (2, 0.1) boundary
    cases = [(0, 0.1), (1, 0.3), (0, 0.3), (2, 0.1), (0, 1e-6)]
    expert = torch.stack([p_e[i] for i, _ in cases])
    alpha = torch.tensor([a for _, a in cases], dtype=torch.float64)[:, None]
    logits = torch.zeros_like(expert, requires_grad=True)
    # a short second-moment memory keeps Adam's steps ~lr while the pruned outcomes' gradients vanish (p → 0)
    opt = torch.optim.Adam([logits], lr=0.3, betas=(0.9, 0.95))
    steps = 800
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=1e-3 ** (1 / steps))
    for _ in range(steps):
        opt.zero_grad()
        log_p = torch.log_softmax(logits, dim=-1)
        loss, _ = trsft_token_loss(log_p, alpha)  # α broadcast per case: −sg(min(1, p/α))·log p
        (expert * loss).sum().backward()
        opt.step()
        sched.step()
    p = torch.softmax(logits.detach(), dim=-1)
    kinds = []
    for k, (_, a) in enumerate(cases):
        p_star = torch.tensor(trsft_optimum(expert[k].tolist(), a), dtype=torch.float64)
        torch.testing.assert_close(p[k], p_star, rtol=0, atol=1e-4)
        kinds.append(bool(((p_star > 0) & (p_star < a)).any()))
        assert (p_star == 0).sum() > 0 or a < 1e-3  # the tail is pruned (mode seeking) for α > 0
    assert any(kinds) and not all(kinds)  # both the generic and the boundary case were exercised
    torch.testing.assert_close(p[-1], expert[-1], rtol=0, atol=1e-5)  # α → 0: SFT, p* = p_E
