# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""QUATRO policy loss: pull every sequence's log importance ratio to its trust-region target T_i.

The advantage estimator ``quatro`` (:mod:`trustrl.advantage.quatro`) writes T_i, the exact per-prompt
trust-region target log-ratio, on every response token. With u_i = Σ_t (log π_θ − log π_old)(o_{i,t}) over the
response tokens and x_i the log-ratio at the chosen ``ratio_level``, the per-token loss of sequence i is

    ℓ_i = −[ ρ_i τ_i − (ρ_i x_i − ρ_i + 1) ],     ρ_i = exp(x_i),

    ratio_level   x_i                          τ_i (target)
    seq           u_i                          T_i
    seq_len_norm  u_i / |o_i|   (GSPO's s_i)   T_i / |o_i|
    token         log r_{i,t} (per token)      T_i / |o_i|

Its derivative is dℓ/dx = −ρ (τ − x): zero exactly at x = τ, pushing x up below the target and down above it
(the "log-ratio stabilizer"; no clipping, so no gradient masking). For ``seq`` and ``seq_len_norm`` the
sequence ratio is carried on each token as verl's GSPO does, value ρ_i on every token and gradient through
each token's own log-prob, so ∂ℓ_{i,t}/∂ log π_θ(o_{i,t}) = −ρ_i(τ_i − x_i): one scalar per sequence. A
custom autograd function returns exactly that (analytic backward: one masked row sum forward, one broadcast
backward). All math is in float32 whatever the input dtype (float64 inputs stay float64).

Clamp: x is clamped to ±``log_ratio_clamp`` (default 20) before exp, against overflow only. Past the clamp
the value and the weight are those at the clamp, but the gradient is still passed (not zeroed as
``torch.clamp`` would), so a sequence far past its target keeps a restoring force.

Aggregation: the per-token loss matrix goes through verl's ``agg_loss(..., **config.global_batch_info)``, so
micro-batch and data-parallel splits do not change the result. The recipe uses ``seq-mean-token-mean``: each
sequence weighs the same, as the (1/G) Σ_i of the per-prompt objective.

Prompt weighting: equal weight per sequence, hence per prompt for equal G. The Lagrangian weights prompt q by
λ_q; dividing by λ_q gives the same fixed points with equal prompt weights. The loss only receives T_i (λ_q is
not in verl's 7 arguments), the multi-token toy study found λ-weighting made no consistent difference (Adam
normalises the overall scale), and equal weights keep easy and hard prompts on one footing, so we use them.

Degenerate groups (all-equal or singleton, T = 0): ``zero_target=anchor`` (default) keeps them, and their
stabilizer pulls π_θ back to π_old on those prompts; ``zero_target=mask`` gives them zero loss. A row is
treated as degenerate when its target is exactly 0.

Metrics (``actor/quatro/...``, sequence level whatever the ratio level, log ρ_i = u_i):
``target_gap`` mean |T_i − log ρ_i|; ``seq_kl`` mean of ρ_i log ρ_i − ρ_i + 1 (ρ_i = e^{clamped u_i}), an
estimate of KL(π_θ‖π_old) per prompt; ``share_past_target`` share of sequences with T_i ≠ 0 that moved beyond
their target (u > T > 0 or u < T < 0); ``share_informative`` share of sequences with T_i ≠ 0;
``log_ratio_mean``; ``share_clamped`` share of sequences whose ratio-level log-ratio hit the clamp (``token``:
share of tokens, averaged per sequence). ``actor/ppo_kl`` is verl's token mean of log π_old − log π_θ. λ_q and the
share of active constraints need the group and are logged by the estimator (``quatro/*``, see
:func:`trustrl.advantage.quatro.last_stats`), not here.

References:
    D. Lee et al., "QUATRO: Query-Adaptive Trust Region Policy Optimization for LLM Fine-tuning",
    arXiv:2602.04620 (2026); the objective is the reconstruction in recipes/quatro/README.md.
    GSPO sequence ratio: C. Zheng et al., arXiv:2507.18071 (2025).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from verl.trainer.ppo.core_algos import agg_loss, register_policy_loss
from verl.workers.config import ActorConfig, PolicyLossConfig

__all__ = [
    "RATIO_LEVELS",
    "ZERO_TARGET_MODES",
    "QuatroPolicyLossConfig",
    "compute_policy_loss_quatro",
    "quatro_loss_options",
]

RATIO_LEVELS = ("seq", "seq_len_norm", "token")
ZERO_TARGET_MODES = ("anchor", "mask")
_SECTION = "actor_rollout_ref.actor.policy_loss"
_DEFAULTS = {"ratio_level": "seq_len_norm", "log_ratio_clamp": 20.0, "zero_target": "anchor"}


def _validate(ratio_level: Any, log_ratio_clamp: Any, zero_target: Any) -> None:
    if ratio_level not in RATIO_LEVELS:
        raise ValueError(
            f"{_SECTION}.ratio_level={ratio_level!r} is invalid: choose one of {list(RATIO_LEVELS)} "
            "(default 'seq_len_norm')."
        )
    if (
        isinstance(log_ratio_clamp, bool)
        or not isinstance(log_ratio_clamp, int | float)
        or not (math.isfinite(log_ratio_clamp) and 0 < log_ratio_clamp <= 80)
    ):
        raise ValueError(
            f"{_SECTION}.log_ratio_clamp={log_ratio_clamp!r} is invalid: it must be a number in (0, 80] "
            "(exp(80) is near the float32 limit; default 20)."
        )
    if zero_target not in ZERO_TARGET_MODES:
        raise ValueError(
            f"{_SECTION}.zero_target={zero_target!r} is invalid: choose one of {list(ZERO_TARGET_MODES)} "
            "(default 'anchor')."
        )


@dataclass
class QuatroPolicyLossConfig(PolicyLossConfig):
    """``policy_loss`` config with the QUATRO knobs.

    Select with ``actor_rollout_ref.actor.policy_loss._target_=trustrl.policy_loss.quatro.QuatroPolicyLossConfig``;
    without it (plain ``PolicyLossConfig``, ``loss_mode=quatro``) the defaults below apply.

    Args:
        loss_mode: ``quatro``.
        ratio_level: ``seq_len_norm`` (default; GSPO-like s_i = ρ_i^{1/|o_i|} with target T_i/|o_i|, the only
            level stable at an aggressive learning rate in the toy study), ``seq`` (the exact theory, ρ_i), or
            ``token`` (per-token ratios with target T_i/|o_i|; does not reach the trust-region solution).
        log_ratio_clamp: bound on |x| before exp, against float32 overflow only (default 20).
        zero_target: ``anchor`` (keep T = 0 rows as anchors to π_old, default) or ``mask`` (zero loss).
    """

    loss_mode: str = "quatro"
    ratio_level: str = _DEFAULTS["ratio_level"]
    log_ratio_clamp: float = _DEFAULTS["log_ratio_clamp"]
    zero_target: str = _DEFAULTS["zero_target"]

    def __post_init__(self):
        _validate(self.ratio_level, self.log_ratio_clamp, self.zero_target)


def quatro_loss_options(config: Any) -> tuple[str, float, str]:
    """(ratio_level, log_ratio_clamp, zero_target) from an actor config (dataclass or DictConfig), validated.

    Keys missing from ``config.policy_loss`` (a plain ``PolicyLossConfig``) take the defaults.
    """
    policy_loss = getattr(config, "policy_loss", None) if config is not None else None
    values = [
        policy_loss.get(key, default) if policy_loss is not None else default for key, default in _DEFAULTS.items()
    ]
    _validate(*values)
    return values[0], float(values[1]), values[2]


class _QuatroLoss(torch.autograd.Function):
    """Per-token QUATRO loss with its analytic gradient w.r.t. ``log_prob``.

    forward(log_prob, old_log_prob, target, mask, length, weight, ratio_level, clamp) → (loss, u, clamped):
    float32 (bs, L) log-probs, (bs,) T_i, float32 0/1 (bs, L) mask, (bs,) |o_i| ≥ 1, optional (bs,) sequence
    weight. Returns the (bs, L) loss, the unclamped sequence log-ratio u = Σ_t mask·(log_prob − old_log_prob)
    and the (bs,) clamped share (0/1 per sequence; per-token fraction for ``token``), the last two for metrics.
    """

    @staticmethod
    def forward(ctx, log_prob, old_log_prob, target, mask, length, weight, ratio_level, clamp):
        token_log_ratio = _masked_log_ratio(log_prob, old_log_prob, mask)
        u = token_log_ratio.sum(dim=-1)
        if ratio_level == "token":
            clamped = (token_log_ratio.abs() >= clamp).sum(dim=-1) / length
            x = token_log_ratio.clamp(-clamp, clamp)
            tau = (target / length).unsqueeze(-1)
        else:
            x = u if ratio_level == "seq" else u / length
            clamped = (x.abs() >= clamp).float()
            x = x.clamp(-clamp, clamp)
            tau = target if ratio_level == "seq" else target / length
        rho = torch.exp(x)
        # ℓ = −[ρ τ − (ρ x − ρ + 1)];  dℓ/dx = −ρ (τ − x)
        loss = rho * (x - tau) - rho + 1.0
        coef = rho * (x - tau)
        if weight is not None:
            w = weight if ratio_level != "token" else weight.unsqueeze(-1)
            loss, coef = loss * w, coef * w
        ctx.save_for_backward(coef)
        ctx.mark_non_differentiable(u, clamped)
        if ratio_level != "token":
            # the sequence value on every token (a view: no (bs, L) write)
            loss = loss.unsqueeze(-1).expand_as(log_prob)
        return loss, u, clamped

    @staticmethod
    def backward(ctx, grad_loss, grad_u, grad_clamped):
        (coef,) = ctx.saved_tensors
        if coef.dim() == 1:
            coef = coef.unsqueeze(-1)
        # carried ratio: ∂ℓ_{i,t}/∂log π_θ(o_{i,t}) = dℓ_i/dx_i (GSPO-style), one scalar per sequence
        return grad_loss * coef, None, None, None, None, None, None, None


def _masked_log_ratio(log_prob: torch.Tensor, old_log_prob: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(log_prob − old_log_prob) on response tokens, 0 elsewhere, whatever the values at masked slots.

    A product with the 0/1 mask is ~4x faster than ``torch.where`` on CPU but turns non-finite junk at masked
    slots into NaN; only then (checked on the row sums) is the slower exact form used.
    """
    token_log_ratio = (log_prob - old_log_prob).mul_(mask)
    if not bool(torch.isfinite(token_log_ratio.sum(dim=-1)).all()):
        token_log_ratio = torch.where(mask.bool(), log_prob - old_log_prob, 0.0)
    return token_log_ratio


def _masked_row_mean(values: torch.Tensor, mask: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Σ_t mask·values / |o_i| per row, ignoring whatever sits at masked slots (see :func:`_masked_log_ratio`)."""
    total = (values * mask).sum(dim=-1)
    if not bool(torch.isfinite(total).all()):
        total = torch.where(mask.bool(), values, 0.0).sum(dim=-1)
    return total / length


@register_policy_loss("quatro")
def compute_policy_loss_quatro(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "seq-mean-token-mean",
    config: ActorConfig | None = None,
    rollout_is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """QUATRO policy loss (verl ``PolicyLossFn``); see the module docstring for the equations.

    Args:
        old_log_prob: (bs, response_length) log π_old per token.
        log_prob: (bs, response_length) log π_θ per token (carries the gradient; any float dtype).
        advantages: (bs, response_length) T_i on every response token (the ``quatro`` estimator's output).
        response_mask: (bs, response_length) response tokens (bool or 0/1).
        loss_agg_mode: verl aggregation mode; ``seq-mean-token-mean`` weighs every sequence equally.
        config: verl ``ActorConfig``: ``policy_loss`` options (:class:`QuatroPolicyLossConfig` or defaults)
            and ``global_batch_info`` for ``agg_loss``. ``None`` → defaults, local aggregation.
        rollout_is_weights: optional (bs, response_length) rollout-correction IS weights, multiplied per token.

    Returns:
        (pg_loss, metrics): a scalar float32 loss and ``{"actor/quatro/...": float, "actor/ppo_kl": float}``.
    """
    ratio_level, clamp, zero_target = quatro_loss_options(config)
    # float32 math (float64 when the log-probs are float64, e.g. in gradient checks); never bf16
    dtype = torch.float64 if log_prob.dtype == torch.float64 else torch.float32
    # a float 0/1 mask: bool masks cost a dtype conversion in every product and sum (here and in agg_loss)
    mask = response_mask.to(dtype) if response_mask.dtype == torch.bool else (response_mask != 0).to(dtype)
    length = mask.sum(dim=-1)
    length_f = length.clamp(min=1)
    # T_i: masked mean of the advantages over the response (they are constant per row by contract)
    target = _masked_row_mean(advantages.to(dtype), mask, length_f)
    weight = (target != 0).to(dtype) if zero_target == "mask" else None

    loss_mat, u, clamped = _QuatroLoss.apply(
        log_prob.to(dtype), old_log_prob.detach().to(dtype), target, mask, length_f, weight, ratio_level, clamp
    )
    if rollout_is_weights is not None:
        loss_mat = loss_mat * rollout_is_weights
    global_batch_info = getattr(config, "global_batch_info", None) or {}
    pg_loss = agg_loss(loss_mat=loss_mat, loss_mask=mask, loss_agg_mode=loss_agg_mode, **global_batch_info)
    return pg_loss, _metrics(u, target, length, clamped, clamp)


def _metrics(u: torch.Tensor, target: torch.Tensor, length: torch.Tensor, clamped: torch.Tensor, clamp: float):
    """Sequence-level diagnostics (all from (bs,) vectors; one host sync)."""
    valid = (length > 0).float()
    n_seq = valid.sum().clamp(min=1)
    informative = valid * (target != 0).float()
    u_c = u.clamp(-clamp, clamp)
    rho = torch.exp(u_c)
    past = ((target > 0) & (u > target)) | ((target < 0) & (u < target))
    values = torch.stack(
        [
            ((target - u).abs() * valid).sum() / n_seq,
            ((rho * u_c - rho + 1.0) * valid).sum() / n_seq,
            (past.float() * informative).sum() / informative.sum().clamp(min=1),
            informative.sum() / n_seq,
            (u * valid).sum() / n_seq,
            (clamped * valid).sum() / n_seq,
            -u.sum() / length.sum().clamp(min=1),
        ]
    ).tolist()
    keys = ("target_gap", "seq_kl", "share_past_target", "share_informative", "log_ratio_mean", "share_clamped")
    metrics = {f"actor/quatro/{k}": v for k, v in zip(keys, values[:-1], strict=True)}
    metrics["actor/ppo_kl"] = values[-1]
    return metrics
