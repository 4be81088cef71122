# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""QUATRO policy loss: pull every sequence's log importance ratio to its trust-region target T_i.

The advantage estimator ``quatro`` (:mod:`trustrl.advantage.quatro`) writes T_i, the exact per-prompt
trust-region target log-ratio, on every response token. With u_i = log ρ_i = Σ_t (log π_θ − log π_old)(o_{i,t})
over the |o_i| response tokens, the loss is built from one scalar function (:func:`log_ratio_loss`)

    ℓ(x; τ) = e^x (x − τ) − e^x + 1,        dℓ/dx = e^x (x − τ),

zero slope exactly at x = τ, pushing x up below the target and down above it (the "log-ratio stabilizer"; no
clipping, so no gradient masking). Each sequence gets one term L_i, chosen per ``ratio_level`` so that its
gradient with respect to every token log-prob is GSPO's with the advantage replaced by the remaining gap to the
target (derivation in recipes/quatro/README.md, "Loss"):

    ratio_level   sequence term L_i                              ∂L_i/∂log π_θ(o_{i,t})
    seq_len_norm  |o_i| · ℓ(u_i/|o_i|; T_i/|o_i|)                 s_i (u_i − T_i)/|o_i|,   s_i = e^{u_i/|o_i|}
    seq           ℓ(u_i; T_i) / |o_i|                            ρ_i (u_i − T_i)/|o_i|,   ρ_i = e^{u_i}
    token         Σ_t ℓ(log r_{i,t}; T_i/|o_i|)                   r_{i,t} (log r_{i,t} − T_i/|o_i|)

Every token of sequence i carries L_i (``token``: |o_i|·ℓ_t, whose token mean is L_i) and verl's ``agg_loss``
aggregates the matrix, so the reported value is, under ``seq-mean-token-mean`` (the recipe's mode),
(1/B) Σ_i L_i: every sequence counted once, as the (1/G) Σ_i of the per-prompt objective. The gradient is
autograd's through that value, so the backward is the gradient of the reported loss for every ratio level
and every ``loss_agg_mode`` (and with rollout-correction weights). At ρ = 1 a sequence's total push
Σ_t ∂loss/∂log π_θ(o_{i,t}) is −T_i/B, independent of |o_i|, as GSPO's is −Â_i/B. Other modes weight
sequence i by its length as they do for any verl loss (``token-mean``: by |o_i|/Σ|o|, GRPO's weighting).

Scale: the push is T_i where GSPO's is the group-normalised Â_i; to first order in δ, T_i ≈ √(2δ_q)·Â_i, so the
gradient norm is about √(2δ) of GSPO's (0.3-0.4x at δ = 0.05, ``scripts/bench/bench_quatro.py --parts grad``).
Prompts weigh equally: the Lagrangian's λ_q-weighting is not available to a verl policy loss (it receives
T_i only) and made no consistent difference in the toy study (recipes/quatro/README.md, "Open choices").

Clamp: past |x| = ``log_ratio_clamp`` (default 20, against float32 overflow only) ℓ continues linearly with
the slope it has at the clamp, so the value stays finite, the gradient is the value's own and a sequence far
past its target keeps a restoring force. All math is in float32 whatever the input dtype (float64 stays
float64).

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
    "log_ratio_loss",
    "quatro_loss_options",
    "sequence_loss_terms",
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
        ratio_level: ``seq_len_norm`` (default; GSPO's s_i = ρ_i^{1/|o_i|} as the importance weight, the only
            level stable at an aggressive learning rate in the toy study), ``seq`` (the exact theory's weight
            ρ_i), or ``token`` (per-token ratios with target T_i/|o_i|; does not reach the trust-region
            solution). The three have the same per-token gradient at ρ = 1 (module docstring).
        log_ratio_clamp: |x| past which ℓ continues linearly, against float32 overflow only (default 20).
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


def log_ratio_loss(x: torch.Tensor, tau: torch.Tensor, clamp: float = _DEFAULTS["log_ratio_clamp"]) -> torch.Tensor:
    """ℓ(x; τ) = e^x (x − τ) − e^x + 1, elementwise; past |x| = ``clamp`` continued linearly (same slope).

    dℓ/dx = e^x (x − τ): zero at x = τ (the fixed point), negative below it, positive above it. Past the clamp
    the value is ℓ(x_c) + ℓ'(x_c)(x − x_c), x_c = clamp(x), so exp never overflows and the gradient stays the
    derivative of the value (a restoring force, not the zero gradient of a hard clamp).

    >>> x = torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64, requires_grad=True)
    >>> tau = torch.tensor([0.3, 0.5, 0.0], dtype=torch.float64)
    >>> value = log_ratio_loss(x, tau)
    >>> [round(v, 4) for v in value.tolist()]  # −τ at x = 0; 1 − e^τ at the target
    [-0.3, -0.6487, 0.1756]
    >>> value.sum().backward(); [round(g, 4) for g in x.grad.tolist()]  # e^x (x − τ)
    [-0.3, 0.0, 0.8244]
    >>> c = 20.0; round(float(log_ratio_loss(torch.tensor(30.0), torch.tensor(0.0), c)) / math.exp(c), 4)
    219.0
    >>> # = ℓ(20) + ℓ'(20)·(30 − 20) = e^20 (20 − 1 + 200) + 1: linear past the clamp, same slope
    """
    x_c = x.clamp(-clamp, clamp)
    rho = torch.exp(x_c)
    slope = rho * (x_c - tau)
    return slope - rho + 1.0 + slope * (x - x_c)


def sequence_loss_terms(
    token_log_ratio: torch.Tensor,
    target: torch.Tensor,
    length: torch.Tensor,
    ratio_level: str,
    clamp: float,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token loss matrix whose token mean in each row is the sequence term L_i (module docstring's table).

    Args:
        token_log_ratio: (bs, L) log π_θ − log π_old on response tokens, 0 elsewhere (carries the gradient).
        target: (bs,) T_i.  length: (bs,) |o_i| ≥ 1.  ratio_level, clamp: see :class:`QuatroPolicyLossConfig`.
        weight: optional (bs,) factor on each sequence's term (``zero_target=mask``).

    Returns:
        ((bs, L) matrix, (bs,) u_i = Σ_t log r_{i,t} detached, (bs,) share of the row's ratio-level log-ratios
        at or past the clamp).

    >>> lr = torch.tensor([[0.1, 0.3], [0.2, 0.0]], dtype=torch.float64)
    >>> length, target = torch.tensor([2.0, 1.0], dtype=torch.float64), torch.tensor([0.4, 0.0], dtype=torch.float64)
    >>> m, u, _ = sequence_loss_terms(lr, target, length, "seq_len_norm", 20.0)
    >>> [round(v, 6) for v in m[:, 0].tolist()]  # |o|·ℓ(u/|o|; T/|o|): row 0 at its target, 2·(1 − e^0.2)
    [-0.442806, 0.022878]
    >>> bool(torch.equal(m[:, 0], m[:, 1]))  # the sequence's term on each of its tokens
    True
    """
    u = token_log_ratio.sum(dim=-1)
    scale = length if weight is None else length * weight
    if ratio_level == "token":
        tau = (target / length).unsqueeze(-1)
        clamped = (token_log_ratio.detach().abs() >= clamp).sum(dim=-1) / length
        matrix = log_ratio_loss(token_log_ratio, tau, clamp) * scale.unsqueeze(-1)
        return matrix, u.detach(), clamped
    if ratio_level == "seq":
        x = u
        seq_term = log_ratio_loss(u, target, clamp) / length
        if weight is not None:
            seq_term = seq_term * weight
    else:
        x = u / length
        seq_term = log_ratio_loss(x, target / length, clamp) * scale
    clamped = (x.detach().abs() >= clamp).to(u.dtype)
    # the sequence's term on every token (a view: no (bs, L) write)
    return seq_term.unsqueeze(-1).expand_as(token_log_ratio), u.detach(), clamped


def _masked_log_ratio(log_prob: torch.Tensor, old_log_prob: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(log_prob − old_log_prob) on response tokens, 0 elsewhere, whatever the values at masked slots.

    A product with the 0/1 mask is ~4x faster than ``torch.where`` on CPU but turns non-finite junk at masked
    slots into NaN; only then (checked on the row sums) is the slower exact form used.
    """
    token_log_ratio = (log_prob - old_log_prob) * mask
    if not bool(torch.isfinite(token_log_ratio.detach().sum(dim=-1)).all()):
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
        loss_agg_mode: verl aggregation mode; ``seq-mean-token-mean`` (the recipe's) counts every sequence's
            term once; ``token-mean`` and the token-sum modes weight it by its length, as for any verl loss.
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

    token_log_ratio = _masked_log_ratio(log_prob.to(dtype), old_log_prob.detach().to(dtype), mask)
    loss_mat, u, clamped = sequence_loss_terms(token_log_ratio, target, length_f, ratio_level, clamp, weight)
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
