# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""QUATRO advantage estimator: the exact per-prompt KL trust region, solved in closed form up to one root.

For every prompt group q (rows with the same ``uid``) with rewards A_1..A_G from π_old, QUATRO solves

    max_π  E_π[A]   s.t.   KL(π(·|q) ‖ π_old(·|q)) ≤ δ_q,

whose solution is the exponential tilt π*_q ∝ π_old · exp(A/λ_q). On the empirical group (each response has
π_old-mass 1/G) this is

    w_i(λ) = softmax_i(A_i/λ),   KL(λ) = Σ_i w_i log(G w_i),   λ_q: KL(λ_q) = δ_q,

and the estimator writes the **target log-ratio** of every response,

    T_i = log(G w_i(λ_q)) = A_i/λ_q − log( (1/G) Σ_j exp(A_j/λ_q) ),

so that (1/G) Σ_i e^{T_i} = 1 and (1/G) Σ_i e^{T_i} T_i = δ_q. The policy loss ``quatro``
(:mod:`trustrl.policy_loss.quatro`) pulls each sequence's log-ratio log ρ_i toward T_i.

Binary (two-valued) groups reduce exactly to a Bernoulli KL: with c of G responses at the higher reward,
p = c/G, solve kl(p'‖p) = δ_q for p' ∈ (p, 1); then T+ = log(p'/p), T- = log((1−p')/(1−p)) and
λ_q = Δr / (logit p' − logit p), Δr the reward gap. Groups with three or more reward values use the softmax
equation above. Both are solved for all groups at once in float64 with a safeguarded Newton iteration on
log η, η = Δr/λ (no Python loop over groups).

Edge cases (each counted in :func:`last_stats`):

* a group of size 1 ("singleton") and a group whose rewards are all equal ("all-equal") get T = 0:
  π* = π_old, λ undetermined. In the loss they act as anchors that pull π_θ back to π_old
  (``policy_loss.zero_target=anchor``, the default) or are dropped (``zero_target=mask``);
* slack constraint: KL(λ) < log(G/m) for every λ > 0 (m = number of responses at the top reward; for binary
  rewards log(G/m) = −log p). If δ ≥ log(G/m) the constraint is inactive and λ = 0 (all mass on the top
  responses, T = −∞ for the rest). The guard δ_q = min(δ, (1−κ)·log(G/m)) keeps it active; the group counts
  as "slack" when the guard fires (δ_q < δ);
* ``lambda_min`` > 0 floors λ_q (equivalently caps η); a group where the floor binds has KL < δ_q and also
  counts as "slack";
* a group none of whose rows has a response token (verl's synthetic padding rows, response mask all zero) gets
  T = 0 and is left out of the group statistics (``num_padding_rows``).

Configuration: ``algorithm.quatro.{delta, kappa, solver, lambda_min}`` (see :class:`QuatroConfig`); the
``algorithm`` section reaches the estimator as verl's ``config`` argument.

Metrics: a registered estimator can only return tensors, so the statistics of the last call are kept in this
module (one process: verl runs estimators in the trainer process, the V1 ``TaskRunner``). Fetch them with
:func:`last_stats` / :func:`pop_last_stats`, or mix :class:`QuatroAdvantageMetricsMixin` into the trainer,
whose ``_compute_advantage`` then adds them to the step's metrics.

References:
    D. Lee et al., "QUATRO: Query-Adaptive Trust Region Policy Optimization for LLM Fine-tuning",
    arXiv:2602.04620 (2026). The full text is not public; the equations above are a reconstruction
    (recipes/quatro/README.md), not the paper's own statement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from verl.trainer.ppo.core_algos import register_adv_est
from verl.utils import as_torch_index

__all__ = [
    "QUATRO_SOLVERS",
    "QuatroAdvantageMetricsMixin",
    "QuatroConfig",
    "QuatroSolution",
    "compute_quatro_outcome_advantage",
    "last_stats",
    "pop_last_stats",
    "quatro_config_from",
    "solve_quatro_targets",
]

QUATRO_SOLVERS = ("exact", "quadratic")
_SECTION = "algorithm.quatro"
# group kinds, as stored in QuatroSolution.kind (PADDING: no row has a response token, verl's synthetic rows)
SINGLETON, ALL_EQUAL, BINARY, GENERAL, PADDING = 0, 1, 2, 3, 4
# Newton on log η: stop when |KL − δ_q| ≤ _RTOL·δ_q or the relative step in η is below _STEP_TOL
_RTOL, _STEP_TOL, _MAX_ITER = 1e-13, 1e-14, 200
# below this η the tilt is evaluated centred at the group mean (no cancellation), above it at the group max
_MEAN_SHIFT_MAX_Z = 30.0


@dataclass(frozen=True)
class QuatroConfig:
    """Options of the ``quatro`` estimator, read from ``algorithm.quatro``.

    Args:
        delta: per-prompt KL radius δ (> 0, finite). 0.02–0.1 is reasonable; 0.05 is the default from the
            multi-token toy study. With G = 16 the slack guard starts at −log(15/16) = 0.065.
        kappa: slack guard κ ∈ [0, 1): δ_q = min(δ, (1−κ)·log(G/m)). κ = 0 turns the guard off and then
            needs ``lambda_min`` > 0.
        solver: ``exact`` (root of KL(λ) = δ_q) or ``quadratic`` (small-δ approximation λ = σ/√(2δ), σ the
            group's population reward std; an ablation, δ is used unguarded).
        lambda_min: floor on λ_q in reward units (≥ 0; 0 = no floor).
    """

    delta: float = 0.05
    kappa: float = 0.1
    solver: str = "exact"
    lambda_min: float = 0.0

    def __post_init__(self):
        _check_number("delta", self.delta)
        _check_number("kappa", self.kappa)
        _check_number("lambda_min", self.lambda_min)
        if not self.delta > 0:
            raise ValueError(
                f"{_SECTION}.delta={self.delta!r} is invalid: the KL radius must be a finite number > 0 "
                "(0.02-0.1 is reasonable; default 0.05)."
            )
        if not 0.0 <= self.kappa < 1.0:
            raise ValueError(
                f"{_SECTION}.kappa={self.kappa!r} is invalid: the slack guard must lie in [0, 1) (default 0.1)."
            )
        if self.solver not in QUATRO_SOLVERS:
            raise ValueError(
                f"{_SECTION}.solver={self.solver!r} is invalid: choose one of {list(QUATRO_SOLVERS)} (default 'exact')."
            )
        if not self.lambda_min >= 0:
            raise ValueError(f"{_SECTION}.lambda_min={self.lambda_min!r} is invalid: it must be a finite number >= 0.")
        if self.kappa == 0 and self.lambda_min == 0 and self.solver == "exact":
            raise ValueError(
                f"{_SECTION}.kappa=0 turns the slack guard off, so a group with delta >= log(G/m) would need "
                f"lambda = 0 and infinite targets: set {_SECTION}.lambda_min > 0 (e.g. 0.05) or kappa in (0, 1)."
            )


def _check_number(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{_SECTION}.{key}={value!r} is invalid: it must be a finite number.")


def quatro_config_from(config: Any) -> QuatroConfig:
    """Build a :class:`QuatroConfig` from verl's ``algorithm`` config (DictConfig, dataclass, dict or None).

    Missing section → defaults. Unknown keys under ``algorithm.quatro`` raise (a typo must not silently fall
    back to a default).
    """
    if isinstance(config, QuatroConfig):
        return config
    section = None
    if config is not None:
        section = config.get("quatro", None) if hasattr(config, "get") else getattr(config, "quatro", None)
    if section is None:
        return QuatroConfig()
    if isinstance(section, QuatroConfig):
        return section
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(section, DictConfig):
            section = OmegaConf.to_container(section, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with verl
        pass
    if not isinstance(section, dict):
        raise ValueError(f"{_SECTION} must be a mapping with keys {sorted(QuatroConfig.__dataclass_fields__)}.")
    unknown = sorted(set(section) - set(QuatroConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(
            f"unknown key(s) {[f'{_SECTION}.{k}' for k in unknown]}; "
            f"valid keys are {[f'{_SECTION}.{k}' for k in QuatroConfig.__dataclass_fields__]}."
        )
    return QuatroConfig(**section)


@dataclass
class QuatroSolution:
    """Per-group solution of the QUATRO trust region.

    Attributes:
        targets: (N,) float64, T_i per response.
        group: (N,) int64, contiguous group id of each response (0..n_groups-1).
        lam: (n_groups,) float64, λ_q in reward units (0 for singleton and all-equal groups).
        delta_q: (n_groups,) float64, the radius actually used (0 for singleton and all-equal groups).
        kind: (n_groups,) int64, SINGLETON / ALL_EQUAL / BINARY / GENERAL.
        slack: (n_groups,) bool, the slack guard fired or the λ floor bound.
        kl: (n_groups,) float64, KL(π*_q ‖ π_old) on the group, = δ_q unless the λ floor binds.
        stats: summary floats (see :func:`last_stats`).
    """

    targets: torch.Tensor
    group: torch.Tensor
    lam: torch.Tensor
    delta_q: torch.Tensor
    kind: torch.Tensor
    slack: torch.Tensor
    kl: torch.Tensor
    stats: dict[str, float]


# ------------------------------------------------------------------------------------------- tilt evaluation


def _scatter_sum(values: torch.Tensor, gid: torch.Tensor, n_groups: int) -> torch.Tensor:
    return torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add_(0, gid, values)


class _Tilt:
    """Exponential tilt of each group's uniform distribution over its rows, at inverse temperature η.

    ``a`` (N,) are rewards shifted and scaled so that each group's max is 0 and its min is −1; ``eta`` is then
    Δr/λ. Evaluated as log-mean-exp with ``expm1``/``log1p`` around a shift (the group mean for small η, the
    group max beyond), so KL ≈ η²σ²/2 keeps full relative precision at small δ.
    """

    def __init__(self, a: torch.Tensor, gid: torch.Tensor, n_groups: int, size: torch.Tensor):
        self.a, self.gid, self.n_groups, self.size = a, gid, n_groups, size
        self.mean_a = _scatter_sum(a, gid, n_groups) / size

    def log_weights(self, eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (z, log-mean-exp L, e = expm1(z)); T_i = z_i − L_g."""
        shift = torch.where(eta * (-self.mean_a) <= _MEAN_SHIFT_MAX_Z, self.mean_a, torch.zeros_like(eta))
        z = eta[self.gid] * (self.a - shift[self.gid])
        e = torch.expm1(z)
        # L = log((1/G) Σ e^z) = log1p((1/G) Σ (e^z − 1))
        lme = torch.log1p(_scatter_sum(e, self.gid, self.n_groups) / self.size)
        return z, lme, e

    def kl_and_slope(self, eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """KL(η) = E_w[z] − L and dKL/dη = η·Var_w(a), per group."""
        z, lme, e = self.log_weights(eta)
        w = e + 1.0
        mass = self.size * (1.0 + torch.expm1(lme))  # Σ e^z
        kl = _scatter_sum(w * z, self.gid, self.n_groups) / mass - lme
        mu = _scatter_sum(w * self.a, self.gid, self.n_groups) / mass
        var = _scatter_sum(w * (self.a - mu[self.gid]) ** 2, self.gid, self.n_groups) / mass
        return kl.clamp(min=0.0), eta * var


def _log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    # log σ(x) = −softplus(−x); F.logsigmoid is ~100x slower on small float64 CPU tensors
    return -F.softplus(-x)


class _Bernoulli:
    """Two-valued groups: p = c/G at the top reward; p' = sigmoid(logit p + η), kl(p'‖p) and its slope."""

    def __init__(self, count_top: torch.Tensor, size: torch.Tensor):
        # logit p computed from counts, not from a rounded p
        self.logit_p = torch.log(count_top) - torch.log(size - count_top)

    def targets(self, eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (T+, T-, p'): T+ = log(p'/p), T- = log((1−p')/(1−p))."""
        lp_new = self.logit_p + eta
        t_pos = _log_sigmoid(lp_new) - _log_sigmoid(self.logit_p)
        t_neg = _log_sigmoid(-lp_new) - _log_sigmoid(-self.logit_p)
        return t_pos, t_neg, torch.sigmoid(lp_new)

    def kl_and_slope(self, eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t_pos, t_neg, p_new = self.targets(eta)
        # kl(p'‖p) = p' T+ + (1−p') T-;  d kl / dη = η p'(1−p')
        kl = p_new * t_pos + (1.0 - p_new) * t_neg
        return kl.clamp(min=0.0), eta * p_new * (1.0 - p_new)


def _solve_eta(model, delta_q: torch.Tensor, eta_guess: torch.Tensor, eta_cap: torch.Tensor) -> tuple:
    """Root of KL(η) = δ_q per group: safeguarded Newton on s = log η, all groups at once.

    KL increases strictly in η with KL(η) ≤ η²/8 (reward range 1, Hoeffding), so η_lo = √(8δ_q) brackets
    from below; the upper end is found by doubling (or is η_cap). A Newton step leaving the bracket is replaced
    by bisection in log space. Returns (η, KL(η), capped, iterations, max residual of the solved groups).
    """
    lo = torch.sqrt(8.0 * delta_q)
    hi = eta_cap.clone()
    capped = torch.zeros_like(delta_q, dtype=torch.bool)
    if torch.isfinite(eta_cap).any():
        kl_cap, _ = model.kl_and_slope(torch.where(torch.isfinite(eta_cap), eta_cap, lo))
        # λ floor binds: even η_cap does not reach δ_q
        capped = torch.isfinite(eta_cap) & (kl_cap <= delta_q)
    eta = torch.where(capped, eta_cap, torch.minimum(torch.maximum(eta_guess, lo), hi))
    done = capped.clone()
    kl = torch.zeros_like(delta_q)
    iterations = 0
    for iterations in range(1, _MAX_ITER + 1):  # noqa: B007 - the count is reported
        kl, slope = model.kl_and_slope(eta)
        residual = kl - delta_q
        lo = torch.where(residual < 0, torch.maximum(lo, eta), lo)
        hi = torch.where(residual > 0, torch.minimum(hi, eta), hi)
        # Newton on g(s) = log KL(e^s) − log δ_q:  g'(s) = η·slope/KL
        step = torch.log(kl / delta_q) * kl / (eta * slope)
        proposal = eta * torch.exp(-step)
        inside = torch.isfinite(proposal) & (proposal > lo) & (proposal < hi)
        bisect = torch.where(torch.isfinite(hi), torch.sqrt(lo * hi), 4.0 * torch.maximum(eta, lo))
        new_eta = torch.where(inside, proposal, bisect)
        converged = (residual.abs() <= _RTOL * delta_q) | ((new_eta - eta).abs() <= _STEP_TOL * eta)
        done = done | converged
        eta = torch.where(done, eta, new_eta)
        if bool(done.all()):
            break
    kl, _ = model.kl_and_slope(eta)
    solved = ~capped
    max_res = float((kl - delta_q).abs()[solved].max()) if bool(solved.any()) else 0.0
    return eta, kl, capped, iterations, max_res


# ----------------------------------------------------------------------------------------------- the solver


@dataclass
class _Groups:
    """Per-group shape of the rewards (float64, group-indexed unless noted)."""

    gid: torch.Tensor  # (N,) contiguous group id of each row
    size: torch.Tensor  # G, responses in the group
    top: torch.Tensor  # the group's top reward
    count_top: torch.Tensor  # m, responses at the top reward
    at_top: torch.Tensor  # (N,) bool, the row has its group's top reward
    gap: torch.Tensor  # Δr = top − bottom reward (1 where all rewards are equal)
    informative: torch.Tensor  # bool, two or more distinct rewards
    two_valued: torch.Tensor  # bool, exactly two distinct rewards
    kind: torch.Tensor  # int64, SINGLETON / ALL_EQUAL / BINARY / GENERAL / PADDING

    @property
    def n_groups(self) -> int:
        return int(self.size.numel())


def _classify_groups(scores: torch.Tensor, index: Any, valid: torch.Tensor | None) -> _Groups:
    """Group the rows by label and classify each group by its rewards.

    Kinds: G = 1 → SINGLETON; max A = min A → ALL_EQUAL; two reward values → BINARY; more → GENERAL; no row with
    a response token (``valid`` all False: verl's synthetic padding rows) → PADDING, left out of the statistics.
    """
    device = scores.device
    _, gid = torch.unique(as_torch_index(index, device=device), return_inverse=True)
    n_groups = int(gid.max()) + 1 if scores.numel() else 0
    size = torch.bincount(gid, minlength=n_groups).to(torch.float64)
    top = torch.full((n_groups,), -math.inf, dtype=torch.float64, device=device)
    top = top.scatter_reduce(0, gid, scores, reduce="amax")
    bot = torch.full((n_groups,), math.inf, dtype=torch.float64, device=device)
    bot = bot.scatter_reduce(0, gid, scores, reduce="amin")
    at_top = scores == top[gid]
    count_top = _scatter_sum(at_top.double(), gid, n_groups)
    count_bot = _scatter_sum((scores == bot[gid]).double(), gid, n_groups)
    padding = torch.zeros(n_groups, dtype=torch.bool, device=device)
    if valid is not None:
        padding = _scatter_sum(valid.to(device=device, dtype=torch.float64), gid, n_groups) == 0
    informative = (top > bot) & ~padding
    two_valued = informative & (count_top + count_bot == size)
    kind = torch.full((n_groups,), ALL_EQUAL, dtype=torch.int64, device=device)
    kind[size == 1] = SINGLETON
    kind[informative] = GENERAL
    kind[two_valued] = BINARY
    kind[padding] = PADDING
    gap = torch.where(informative, top - bot, torch.ones_like(top))
    return _Groups(gid, size, top, count_top, at_top, gap, informative, two_valued, kind)


def _guarded_radius(groups: _Groups, cfg: QuatroConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Slack guard: δ_q = min(δ, (1−κ)·log(G/m)) on informative groups (0 elsewhere); slack where it binds.

    KL(λ) → log(G/m) as λ → 0 (all mass on the m top responses), so δ ≥ log(G/m) would leave the constraint
    inactive (λ = 0, T = −∞ for the rest); the guard keeps δ_q strictly below that limit.
    """
    guard = (1.0 - cfg.kappa) * torch.log(groups.size / groups.count_top)
    delta_q = torch.where(groups.informative, torch.clamp(guard, max=cfg.delta), torch.zeros_like(guard))
    return delta_q, groups.informative & (guard < cfg.delta)


def _solve_exact(groups: _Groups, tilt: _Tilt, delta_q: torch.Tensor, cfg: QuatroConfig, binary_fast_path: bool):
    """η_q = Δr/λ_q with KL(π_λ‖π_old) = δ_q, by :func:`_solve_eta` on each kind's model.

    Binary groups (``binary_fast_path``): kl(p'‖p) = δ_q, p' = sigmoid(logit p + η); the rest: the tilt
    Σ_i w_i log(G w_i) = δ_q, w = softmax(η a). Started from the quadratic guess η0 = √(2δ_q)/σ (σ of the
    normalised rewards). Returns (η, KL, capped by the λ floor, iterations, max residual).
    """
    eta = torch.zeros_like(delta_q)
    kl = torch.zeros_like(delta_q)
    capped_all = torch.zeros_like(groups.informative)
    eta_cap = groups.gap / cfg.lambda_min if cfg.lambda_min > 0 else torch.full_like(groups.gap, math.inf)
    sigma = torch.sqrt(_scatter_sum((tilt.a - tilt.mean_a[groups.gid]) ** 2, groups.gid, groups.n_groups) / groups.size)
    guess = torch.sqrt(2.0 * delta_q) / sigma.clamp(min=1e-300)
    fast = groups.two_valued if binary_fast_path else torch.zeros_like(groups.two_valued)
    iterations, max_res = 0, 0.0
    for subset, model in (
        (fast, _Bernoulli(groups.count_top[fast], groups.size[fast])),
        (groups.informative & ~fast, _SubsetTilt(tilt, groups.informative & ~fast)),
    ):
        if bool(subset.any()):
            e, k, capped, it, res = _solve_eta(model, delta_q[subset], guess[subset], eta_cap[subset])
            eta[subset], kl[subset], capped_all[subset] = e, k, capped
            iterations, max_res = max(iterations, it), max(max_res, res)
    return eta, kl, capped_all, iterations, max_res


def _solve_quadratic(groups: _Groups, tilt: _Tilt, cfg: QuatroConfig):
    """Small-δ approximation KL ≈ Var(A)/(2λ²): λ_q = max(σ_q/√(2δ), λ_min), σ_q the group's reward std.

    δ is used unguarded; slack where the floor binds. Returns (η = Δr/λ_q, KL(η), slack, δ_q = δ).
    """
    informative = groups.informative
    std = torch.sqrt(_scatter_sum((tilt.a - tilt.mean_a[groups.gid]) ** 2, groups.gid, groups.n_groups) / groups.size)
    sigma_raw = groups.gap * std
    lam = torch.clamp(sigma_raw / math.sqrt(2.0 * cfg.delta), min=cfg.lambda_min)
    eta = torch.where(informative, groups.gap / lam.clamp(min=1e-300), torch.zeros_like(lam))
    slack = informative & (sigma_raw / math.sqrt(2.0 * cfg.delta) < cfg.lambda_min)
    delta_q = torch.where(informative, torch.full_like(lam, cfg.delta), torch.zeros_like(lam))
    kl = torch.where(informative, tilt.kl_and_slope(eta)[0], torch.zeros_like(lam))
    return eta, kl, slack, delta_q


def _checked_scores(scores: torch.Tensor, index: Any) -> torch.Tensor:
    scores = torch.as_tensor(scores).reshape(-1).to(torch.float64)
    if not bool(torch.isfinite(scores).all()):
        bad = torch.nonzero(~torch.isfinite(scores)).flatten()[:8].tolist()
        raise ValueError(f"quatro: non-finite sequence rewards at rows {bad}; check the reward function.")
    if len(index) != scores.numel():
        raise ValueError(f"quatro: index has {len(index)} labels but there are {scores.numel()} responses.")
    return scores


def solve_quatro_targets(
    scores: torch.Tensor,
    index: Any,
    config: QuatroConfig | None = None,
    binary_fast_path: bool = True,
    valid: torch.Tensor | None = None,
) -> QuatroSolution:
    """Solve every group's trust region and return the target log-ratios T_i with per-group details.

    Steps: classify the groups (:func:`_classify_groups`), guard the radius (:func:`_guarded_radius`), solve
    KL(λ_q) = δ_q (:func:`_solve_exact`) or take λ_q = σ_q/√(2δ) (:func:`_solve_quadratic`), then write
    T_i = log(G w_i(λ_q)) (:func:`_targets`).

    Args:
        scores: (N,) sequence rewards (any float dtype; computed in float64).
        index: (N,) group labels (verl's ``uid`` object array, ints, or a tensor).
        config: :class:`QuatroConfig` (defaults if None).
        binary_fast_path: solve two-valued groups with the Bernoulli closed form (True) or with the general
            softmax equation (False; same result, used by tests as a cross-check).
        valid: optional (N,) bool, rows with at least one response token; a group without any (verl's
            synthetic padding group) gets T = 0 and is left out of the statistics (counted in
            ``num_padding_rows``).

    Returns:
        :class:`QuatroSolution`.

    >>> sol = solve_quatro_targets(torch.tensor([1.0, 0.0, 0.0, 0.0]), ["q"] * 4, QuatroConfig(delta=0.05))
    >>> [round(t, 4) for t in sol.targets.tolist()], round(float(sol.lam[0]), 4)
    ([0.4548, -0.2131, -0.2131, -0.2131], 1.4973)
    """
    cfg = config or QuatroConfig()
    scores = _checked_scores(scores, index)
    groups = _classify_groups(scores, index, valid)
    a = (scores - groups.top[groups.gid]) / groups.gap[groups.gid]  # in [−1, 0], 0 at the top
    tilt = _Tilt(a, groups.gid, groups.n_groups, groups.size)
    iterations, max_res = 0, 0.0
    if cfg.solver == "exact":
        delta_q, slack = _guarded_radius(groups, cfg)
        eta, kl, capped, iterations, max_res = _solve_exact(groups, tilt, delta_q, cfg, binary_fast_path)
        slack = slack | capped
    else:
        eta, kl, slack, delta_q = _solve_quadratic(groups, tilt, cfg)
    fast = groups.two_valued if binary_fast_path else torch.zeros_like(groups.two_valued)
    targets = _targets(tilt, eta, groups.informative & ~fast, fast, groups.count_top, groups.size, groups.at_top)
    lam = torch.where(groups.informative, groups.gap / eta.clamp(min=1e-300), torch.zeros_like(eta))
    n_padding = int((groups.kind == PADDING)[groups.gid].sum())
    stats = _stats(groups.kind, slack, lam, delta_q, targets, iterations, max_res, n_padding)
    return QuatroSolution(targets, groups.gid, lam, delta_q, groups.kind, slack, kl, stats)


class _SubsetTilt:
    """:class:`_Tilt` restricted to a subset of groups (η given for the subset only)."""

    def __init__(self, tilt: _Tilt, subset: torch.Tensor):
        self.tilt, self.subset = tilt, subset

    def kl_and_slope(self, eta_subset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eta = torch.zeros_like(self.tilt.mean_a)
        eta[self.subset] = eta_subset
        kl, slope = self.tilt.kl_and_slope(eta)
        return kl[self.subset], slope[self.subset]


def _targets(tilt, eta, general, two_valued, count_top, size, at_top) -> torch.Tensor:
    """T_i = log(G w_i) per row; 0 in singleton and all-equal groups."""
    targets = torch.zeros_like(tilt.a)
    if bool(general.any()):
        z, lme, _ = tilt.log_weights(torch.where(general, eta, torch.zeros_like(eta)))
        targets = torch.where(general[tilt.gid], z - lme[tilt.gid], targets)
    if bool(two_valued.any()):
        # Bernoulli closed form for two-valued groups: T+ = log(p'/p), T- = log((1−p')/(1−p))
        t_pos, t_neg, _ = _Bernoulli(count_top[two_valued], size[two_valued]).targets(eta[two_valued])
        full_pos = torch.zeros_like(eta)
        full_neg = torch.zeros_like(eta)
        full_pos[two_valued], full_neg[two_valued] = t_pos, t_neg
        rows = two_valued[tilt.gid]
        targets = torch.where(rows, torch.where(at_top, full_pos[tilt.gid], full_neg[tilt.gid]), targets)
    return targets


def _stats(kind, slack, lam, delta_q, targets, iterations, max_res, n_padding=0) -> dict[str, float]:
    real = kind != PADDING
    n_groups = max(int(real.sum()), 1)
    informative = (kind == BINARY) | (kind == GENERAL)
    n_inf = int(informative.sum())
    lam_inf = lam[informative]
    values = {
        "num_groups": float(real.sum()),
        "num_padding_rows": float(n_padding),
        "num_informative": float(n_inf),
        "share_active": float((informative & ~slack).sum()) / n_groups,
        "share_slack": float((informative & slack).sum()) / n_groups,
        "share_all_equal": float((kind == ALL_EQUAL).sum()) / n_groups,
        "share_singleton": float((kind == SINGLETON).sum()) / n_groups,
        "share_binary": float((kind == BINARY).sum()) / n_groups,
        # 0 when the batch has no informative group (see num_informative)
        "lambda_mean": float(lam_inf.mean()) if n_inf else 0.0,
        "lambda_min": float(lam_inf.min()) if n_inf else 0.0,
        "lambda_max": float(lam_inf.max()) if n_inf else 0.0,
        "delta_q_mean": float(delta_q[informative].mean()) if n_inf else 0.0,
        "target_abs_mean": float(targets.abs().sum()) / max(targets.numel() - n_padding, 1),
        "solver_iterations": float(iterations),
        "solver_max_residual": max_res,
    }
    return values


# ------------------------------------------------------------------------------------- verl registry + metrics

_LAST_STATS: dict[str, float] = {}


def last_stats(prefix: str = "quatro/") -> dict[str, float]:
    """Statistics of the last ``quatro`` estimator call in this process, keys prefixed (a copy).

    Keys: num_groups, num_padding_rows, num_informative, share_active, share_slack, share_all_equal,
    share_singleton, share_binary, lambda_mean/min/max (reward units, informative groups), delta_q_mean,
    target_abs_mean, solver_iterations, solver_max_residual. The four shares sum to 1 over the groups; a group
    whose rows have no response token (verl's synthetic padding, added to make the batch divisible by the
    data-parallel size) is not a group of the trust region and is only counted in num_padding_rows.
    """
    return {f"{prefix}{k}": v for k, v in _LAST_STATS.items()}


def pop_last_stats(prefix: str = "quatro/") -> dict[str, float]:
    """Like :func:`last_stats`, then forget them, so a step without a new call logs nothing stale."""
    out = last_stats(prefix)
    _LAST_STATS.clear()
    return out


class QuatroAdvantageMetricsMixin:
    """Mix into a verl V1 trainer (``class T(QuatroAdvantageMetricsMixin, PPOTrainerSync)``) to log the
    estimator's statistics under ``quatro/*``: the estimator runs inside ``_compute_advantage`` in the trainer's
    own process, so the module-level statistics of that call are the step's."""

    def _compute_advantage(self, batch, metrics: dict):
        batch = super()._compute_advantage(batch, metrics=metrics)
        metrics.update(pop_last_stats())
        return batch


@register_adv_est("quatro")
def compute_quatro_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    config: Any = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """QUATRO targets as verl advantages: ``advantages[i, t] = T_i · response_mask[i, t]``.

    Args:
        token_level_rewards: (bs, response_length) outcome reward (summed over tokens per row).
        response_mask: (bs, response_length) bool/float mask of response tokens.
        index: (bs,) prompt-group labels (verl passes ``uid``); required.
        config: verl's ``algorithm`` config; options under ``algorithm.quatro`` (:class:`QuatroConfig`).
        **kwargs: other arguments verl passes (``epsilon``, ``reward_baselines``, ...); unused.

    Returns:
        (advantages, returns), both (bs, response_length) in the rewards' dtype, identical (no critic).
    """
    cfg = quatro_config_from(config)
    if index is None:
        raise ValueError("quatro needs the prompt-group labels: verl passes them as `index` from the batch's 'uid'.")
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        # rows without a response token (verl's synthetic padding group) stay out of the statistics
        solution = solve_quatro_targets(scores, index, cfg, valid=(response_mask != 0).any(dim=-1))
        _LAST_STATS.clear()
        _LAST_STATS.update(solution.stats)
        advantages = _broadcast_over_mask(solution.targets.to(token_level_rewards.dtype), response_mask)
    return advantages, advantages


def _broadcast_over_mask(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``values[:, None] * mask`` for a (bs,) vector and a (bs, L) mask, choosing the fastest exact kernel.

    On CPU a float×bool product is ~1.6x slower than ``torch.where``; for integer masks a copy into the
    output dtype followed by an in-place product avoids the int64 promotion.
    """
    column = values.unsqueeze(-1)
    if mask.dtype == torch.bool:
        return torch.where(mask, column, torch.zeros((), dtype=values.dtype, device=values.device))
    if mask.is_floating_point():
        return column * mask
    return torch.empty(mask.shape, dtype=values.dtype, device=mask.device).copy_(mask).mul_(column)
