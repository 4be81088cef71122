# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""TRAPO actor loss: Trust-Region SFT on expert-prefix tokens plus any registered RL loss on the model's tokens.

TRAPO (Su et al., arXiv:2512.17636) trains every trajectory of a prompt group with one loss. Per response token t
of trajectory j, with p_t = π_θ(y_t | x, y_<t), ``prefix`` the expert tokens placed in the response and ``sft``
the expert tokens that get the SFT term (``sft ⊆ prefix``):

    ℓ_{j,t} = 1[sft_t] · c_sft · ( −sg(min(1, p_t/α)) · log p_t )        TrSFT, gradient of Eq. (3)
            + 1[¬prefix_t] · ℓ^RL_{j,t}                                   the registered RL loss (vanilla, gspo, ...)

    ∇_θ L^α_TrSFT = −Σ_t 1/max(p_t, α) ∇_θ p_t = −Σ_t min(1, p_t/α) ∇_θ log p_t        Eq. (3) of arXiv:2512.17636

Inside the trust region (p ≥ α) the TrSFT gradient is plain SFT; outside it is damped to (p/α)∇ log p, which
keeps SFT from pushing mass toward expert tokens far from the policy's mode. Expert tokens never enter the RL
term; expert tokens without ``sft`` (a second copy of the same prefix) enter neither term. Both terms are
aggregated by verl's ``agg_loss`` with the same global normaliser (``actor_rollout_ref.actor.loss_agg_mode``; default
``seq-mean-token-sum-norm`` = Σ_j Σ_t ℓ_{j,t} / (G · L_max), Dr.GRPO style as the official code, which divides
by the constant 8192), so splitting a mini-batch into micro-batches or data-parallel ranks changes nothing:

    L = [ Σ_{j,t} ( 1[¬prefix]·ℓ^RL + c_sft·1[sft]·ℓ^TrSFT ) ] / normaliser  −  c_ent · B_H  [+ KL]

The entropy bonus B_H covers every response token, the expert prefix included, as in the official code. Its weight
is chosen by ``trapo.entropy_agg``:

* ``micro_batch_token_mean`` (default, the official code): each micro-batch adds the mean entropy of its own response
  tokens, ``mean_mb(H) · dp / G`` (G = rows of the global mini-batch, dp = data-parallel ranks), which is the
  official ``pg_loss − entropy_coeff · masked_mean(entropy, response_mask)`` per micro-batch (``mix_actor.py``,
  one gradient-accumulation step) rescaled by the same factor dp / G that separates verl's
  ``seq-mean-token-sum-norm`` (Σ ℓ / (G · L_max)) from the official Σ ℓ / (dp · L_max). The bonus then has the
  official weight relative to the RL and SFT terms, and like the official one it depends on the micro-batching:
  with micro-batches of T response tokens a token's bonus weight is c_ent / T against 1 / L_max for a loss token.
* ``loss_agg_mode``: the bonus aggregated like the loss, Σ H / (G · L_max) under ``seq-mean-token-sum-norm`` (what
  verl's own ``ppo_loss`` does): invariant to micro-batching and data parallelism, but a token's bonus weight is then
  c_ent / L_max, about L_max / T times the official one (T ≈ 18k tokens per micro-batch gives 0.45×).

The official code computes the same gradient as ``−p_t / clamp(sg(p_t), min=α)`` (``off_policy_reshape=clip_low``,
``mix_core_alg.py``); ``−sg(min(1, p/α))·log p`` has the same gradient and a readable value. The RL term is the
function registered under ``actor_rollout_ref.actor.policy_loss.loss_mode`` in verl's ``POLICY_LOSS_REGISTRY``,
called with the actor config (clip ratios, ``policy_loss.*`` options, ``global_batch_info``) and
``response_mask = response ∧ ¬prefix``.

Batch fields read from the micro-batch (jagged nested tensors ``(bs, j)`` as the engines pass them):
``prompts``, ``responses`` (to slice the response log-probs), ``response_mask``, ``old_log_probs``, ``advantages``,
``prefix_mask`` and ``sft_mask`` (int64 or bool 0/1, one entry per response token, as long as ``responses``;
longer masks are cut, shorter ones zero-filled), optional ``rollout_is_weights`` and ``ref_log_prob``; the scalars
``dp_size``, ``batch_num_tokens`` (Σ response_mask over the global mini-batch) and ``global_batch_size``.
A batch without both masks is trained as unguided (all zeros, pure RL) and counted in ``actor/trapo/masks_missing``;
a batch with only one of them raises.

Metrics (``actor/trapo/*``): ``rl_loss`` and ``sft_loss`` (the two aggregated terms; ``actor/pg_loss`` repeats the
RL term as verl logs it), ``sft_token_share`` and ``rl_token_share`` (share of response tokens), and three means
over SFT tokens: ``sft_nll`` (plain −log p), ``sft_p_mean`` (p) and ``sft_p_lt_alpha_share`` (share with p < α).
The loss emits the SFT-token means as sums over response tokens (``actor/trapo/per_resp_token/*``), which are exact
under verl's per-micro-batch SUM aggregation; :func:`finalize_trapo_metrics` (called by the TRAPO trainer) divides
them by ``sft_token_share``. Means are 0 when a step has no SFT token.

References:
    M. Su, J. Guan, Y. Gu, M. Huang, H. Wang, "Trust-Region Adaptive Policy Optimization", arXiv:2512.17636
    (ICLR 2026); official code https://github.com/Su-my/TRAPO (``luffy/verl/verl/trapo_src/mix_core_alg.py``).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDict
from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, agg_loss, get_policy_loss_fn, kl_penalty
from verl.utils import tensordict_utils as tu
from verl.utils.metric import AggregationType, Metric
from verl.workers.utils.padding import no_padding_2_padding

__all__ = [
    "ENTROPY_AGG_MODES",
    "DEFAULT_ALPHA",
    "TRAPO_LOSS_AGG_MODES",
    "VERL_KEYS",
    "TrapoLossConfig",
    "entropy_bonus",
    "finalize_trapo_metrics",
    "trapo_loss",
    "trapo_token_masks",
    "trsft_token_loss",
]

logger = logging.getLogger(__name__)

# Modes linear in the per-token loss with a normaliser that does not depend on the mask: the RL and SFT terms,
# aggregated separately, then add up to one aggregation of their sum. seq-mean-token-mean is excluded: its
# per-sequence token count would differ between the two terms.
TRAPO_LOSS_AGG_MODES = ("seq-mean-token-sum-norm", "seq-mean-token-sum", "token-mean", "token-sum")
_SECTION = "trapo"
_PREFIX = "actor/trapo/"
_PER_RESP = _PREFIX + "per_resp_token/"
_SFT_MEANS = ("sft_nll", "sft_p_mean", "sft_p_lt_alpha_share")
# trapo.entropy_agg: the official code's per-micro-batch token mean, or verl's aggregation of the loss
ENTROPY_AGG_MODES = ("micro_batch_token_mean", "loss_agg_mode")


# α's default, the paper's and the official code's value (the recipe yaml states it for the command line)
DEFAULT_ALPHA = 0.1
# the two loss knobs verl's actor config owns; TRAPO reads them there (they configure verl's actor too)
VERL_KEYS = {
    "rl_loss_mode": "actor_rollout_ref.actor.policy_loss.loss_mode",
    "loss_agg_mode": "actor_rollout_ref.actor.loss_agg_mode",
}


@dataclass
class TrapoLossConfig:
    """TRAPO loss knobs: the ``trapo.{alpha, sft_coef, entropy_agg}`` keys of the recipe config, and the RL loss and
    normaliser read from verl's own actor keys (:data:`VERL_KEYS`).

    Bound into the engine loss as ``partial(trapo_loss, config=actor_config, trapo_config=TrapoLossConfig(...))``;
    the actor's own config (clip ratios, ``policy_loss.*``) is left to the RL loss it configures.
    """

    alpha: float = field(
        default=DEFAULT_ALPHA,
        metadata={"help": "trust-region boundary α of TrSFT, in (0, 1]; gradient weight min(1, p/α)"},
    )
    sft_coef: float = field(default=1.0, metadata={"help": "c_sft ≥ 0, weight of the TrSFT term (official: 1)"})
    entropy_agg: str = field(
        default="micro_batch_token_mean",
        metadata={"help": f"weighting of the entropy bonus, one of {ENTROPY_AGG_MODES} (official: the first)"},
    )
    rl_loss_mode: str = field(
        default="vanilla",
        metadata={"help": f"registered verl policy loss for the model's own tokens ({VERL_KEYS['rl_loss_mode']})"},
    )
    loss_agg_mode: str = field(
        default="seq-mean-token-sum-norm",
        metadata={
            "help": f"one normaliser for both terms, one of {TRAPO_LOSS_AGG_MODES} ({VERL_KEYS['loss_agg_mode']})"
        },
    )

    def __post_init__(self):
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float) or not 0.0 < self.alpha <= 1.0:
            raise ValueError(
                f"{_SECTION}.alpha must be in (0, 1], got {self.alpha!r}; the paper uses alpha={DEFAULT_ALPHA}"
            )
        if isinstance(self.sft_coef, bool) or not isinstance(self.sft_coef, int | float):
            raise ValueError(f"{_SECTION}.sft_coef must be a number >= 0, got {self.sft_coef!r}; default 1.0")
        if not (math.isfinite(self.sft_coef) and self.sft_coef >= 0.0):
            raise ValueError(f"{_SECTION}.sft_coef must be finite and >= 0, got {self.sft_coef!r}; default 1.0")
        if self.entropy_agg not in ENTROPY_AGG_MODES:
            raise ValueError(
                f"{_SECTION}.entropy_agg={self.entropy_agg!r} is not supported; use micro_batch_token_mean (the "
                "official code's per-micro-batch token mean) or loss_agg_mode (aggregated like the loss)"
            )
        if self.rl_loss_mode not in POLICY_LOSS_REGISTRY:
            known = ", ".join(sorted(POLICY_LOSS_REGISTRY))
            raise ValueError(
                f"{VERL_KEYS['rl_loss_mode']}={self.rl_loss_mode!r} is not a registered verl policy loss; "
                f"use one of: {known} (custom losses register with verl's @register_policy_loss)"
            )
        if self.loss_agg_mode not in TRAPO_LOSS_AGG_MODES:
            raise ValueError(
                f"{VERL_KEYS['loss_agg_mode']}={self.loss_agg_mode!r} is not supported by TRAPO; use one of "
                f"{TRAPO_LOSS_AGG_MODES} (seq-mean-token-mean would normalise the RL and SFT terms differently)"
            )


def trsft_token_loss(log_prob: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token TrSFT loss ℓ_t = −sg(w_t)·log p_t with w_t = min(1, p_t/α), and p_t (detached).

    ∂ℓ_t/∂log p_t = −min(1, p_t/α), i.e. ∇ℓ_t = −∇p_t / max(p_t, α) (Eq. (3) of arXiv:2512.17636).

    Args:
        log_prob: ``(bs, response_length)`` log p_t; must be finite (zero it at masked slots first).
        alpha: trust-region boundary α ∈ (0, 1].

    Returns:
        ``(loss_mat, p)``, both ``(bs, response_length)``; ``p`` is detached (for metrics).

    >>> import torch
    >>> lp = torch.log(torch.tensor([[0.5, 0.01]])).requires_grad_()
    >>> loss, p = trsft_token_loss(lp, alpha=0.1)
    >>> loss.sum().backward(); lp.grad      # −min(1, p/α): −1 inside the region, −0.1 outside
    tensor([[-1.0000, -0.1000]])
    """
    p = torch.exp(log_prob.detach())
    # w = min(1, p/α); p ≤ 1 for real log-probs, the clamp also caps junk positive log-probs at weight 1
    weight = torch.clamp(p / alpha, max=1.0)
    return -weight * log_prob, p


def trapo_token_masks(
    response_mask: torch.Tensor, prefix_mask: torch.Tensor | None, sft_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sets of the two terms (official ``mix_core_alg.py``: SFT on prefix ∧ off_loss ∧ response).

    rl = response ∧ ¬prefix;  sft = response ∧ prefix ∧ sft_mask. Missing masks count as all zeros.

    Args:
        response_mask, prefix_mask, sft_mask: ``(bs, response_length)`` 0/1 int or bool (masks may be ``None``).

    Returns:
        ``(rl_mask, sft_mask)``, bool ``(bs, response_length)``, disjoint.
    """
    response = response_mask.bool()
    if prefix_mask is None:
        return response, torch.zeros_like(response)
    prefix = prefix_mask.bool()
    sft = response & prefix & sft_mask.bool() if sft_mask is not None else torch.zeros_like(response)
    return response & ~prefix, sft


@functools.lru_cache(maxsize=1)
def _warn_masks_missing() -> None:
    """Once per process: the share of such micro-batches is the metric ``actor/trapo/masks_missing``."""
    logger.warning("TRAPO batch without prefix_mask/sft_mask: trained as unguided (RL term only, no TrSFT)")


def _fit_width(x: torch.Tensor, width: int) -> torch.Tensor:
    """Cuts or zero-pads the last dim to ``width`` (verl's balance-padding rows may keep a cloned row's masks)."""
    if x.shape[-1] >= width:
        return x[..., :width]
    return torch.nn.functional.pad(x, (0, width - x.shape[-1]))


def _read_batch(data: TensorDict, width: int) -> tuple[dict[str, torch.Tensor], bool]:
    """Pads the fields the loss needs to ``(bs, width)``; returns them and whether the masks were missing."""
    has_prefix, has_sft = "prefix_mask" in data, "sft_mask" in data
    if has_prefix != has_sft:
        present, absent = ("prefix_mask", "sft_mask") if has_prefix else ("sft_mask", "prefix_mask")
        raise ValueError(
            f"TRAPO batch has {present} but no {absent}: the rollout must emit both masks on every row "
            "(zeros when unguided), or neither for a purely unguided run"
        )
    fields = ["response_mask", "old_log_probs", "advantages"]
    fields += [key for key in ("prefix_mask", "sft_mask", "rollout_is_weights", "ref_log_prob") if key in data]
    padded = data.select(*fields).to_padded_tensor()
    return {key: _fit_width(padded[key], width) for key in fields}, not has_prefix


def _global_batch_info(config: Any, data: TensorDict, response_mask: torch.Tensor) -> tuple[dict[str, Any], bool]:
    """verl's global normalisers (engine-filled); outside an engine, the micro-batch's own (rows, response tokens).

    Returns the ``agg_loss`` keyword arguments and whether the engine supplied global values (SUM metrics).
    """
    dp_size = tu.get_non_tensor_data(data, "dp_size", 1)
    batch_num_tokens = tu.get_non_tensor_data(data, "batch_num_tokens", None)
    global_batch_size = tu.get_non_tensor_data(data, "global_batch_size", None)
    is_global = dp_size > 1 or batch_num_tokens is not None or global_batch_size is not None
    is_global = is_global or config.loss_scale_factor is not None
    if dp_size > 1 and (batch_num_tokens is None or global_batch_size is None):
        raise ValueError("batch_num_tokens and global_batch_size are required when dp_size > 1 (set by verl engines)")
    info = {
        "dp_size": dp_size,
        # the engine's semantics: every response token and every row of the mini-batch, whatever the masks
        "batch_num_tokens": response_mask.sum() if batch_num_tokens is None else batch_num_tokens,
        "global_batch_size": response_mask.shape[0] if global_batch_size is None else global_batch_size,
        "loss_scale_factor": config.loss_scale_factor,
    }
    return info, is_global


def _rl_term(config, trapo_config: TrapoLossConfig, batch: dict, log_prob: torch.Tensor, rl_mask: torch.Tensor):
    """The registered RL loss on the model's own tokens (``response_mask = response ∧ ¬prefix``).

    Like verl's ``ppo_loss`` this trusts the registered loss to ignore masked slots (vanilla clamps the log-ratio,
    gspo and quatro multiply by the mask); the tests check it with ±1e4 junk for vanilla, gspo and quatro.
    """
    return get_policy_loss_fn(trapo_config.rl_loss_mode)(
        old_log_prob=batch["old_log_probs"],
        log_prob=log_prob,
        advantages=batch["advantages"],
        response_mask=rl_mask,
        loss_agg_mode=trapo_config.loss_agg_mode,
        config=config,
        rollout_is_weights=batch.get("rollout_is_weights"),
    )


def _sft_term(log_prob: torch.Tensor, sft_mask: torch.Tensor, alpha: float, agg: dict):
    """TrSFT aggregated by ``agg_loss``; the per-token math runs on the gathered SFT tokens only (a few % of the
    batch) and never sees the values at other slots. Returns (loss, gathered log p, p).

    The SFT tokens go to ``agg_loss`` as one flat row. For the supported modes this equals aggregating the
    (bs, L) matrix: each is a token sum times a constant, and that constant comes from ``agg`` (global token and
    row counts, always set by :func:`_global_batch_info`; L_max = ``loss_scale_factor``, or the padded width L as
    verl's fallback), never from the mask's shape.
    """
    sft_log_prob = log_prob[sft_mask]  # (n_sft,)
    token_loss, p = trsft_token_loss(sft_log_prob, alpha)
    flat = dict(agg, loss_scale_factor=agg["loss_scale_factor"] or log_prob.shape[-1])
    row = token_loss.unsqueeze(0)  # (1, n_sft)
    return agg_loss(loss_mat=row, loss_mask=torch.ones_like(row), **flat), sft_log_prob, p


def entropy_bonus(entropy: torch.Tensor, response_mask: torch.Tensor, mode: str, agg: dict) -> torch.Tensor:
    """The entropy bonus B_H of one micro-batch (the loss subtracts ``entropy_coeff · B_H``); see the module doc.

    Args:
        entropy: ``(bs, response_length)`` per-token entropy (finite at masked slots).
        response_mask: ``(bs, response_length)`` bool, every response token (expert prefix included).
        mode: ``micro_batch_token_mean`` (official) or ``loss_agg_mode``.
        agg: the ``agg_loss`` keyword arguments of the loss (mode, dp_size, global_batch_size, ...).

    >>> import torch
    >>> h, m = torch.tensor([[1.0, 3.0], [2.0, 0.0]]), torch.tensor([[True, True], [True, False]])
    >>> info = dict(loss_agg_mode="seq-mean-token-sum-norm", dp_size=1, global_batch_size=4, loss_scale_factor=2)
    >>> entropy_bonus(h, m, "micro_batch_token_mean", info)  # mean 2 over 3 tokens, x dp / G = 1/4
    tensor(0.5000)
    >>> entropy_bonus(h, m, "loss_agg_mode", info)  # (4 + 2) / (G · L_max) = 6 / 8
    tensor(0.7500)
    """
    if mode == "loss_agg_mode":
        return agg_loss(loss_mat=entropy, loss_mask=response_mask, **agg)
    # official: masked_mean(entropy, response_mask) of the micro-batch; dp / G puts it on verl's loss scale
    mean = (entropy * response_mask).sum() / response_mask.sum().clamp(min=1)
    return mean * agg["dp_size"] / agg["global_batch_size"]


def _token_stats(info: dict, rl_mask, sft_log_prob, p, alpha: float) -> list[float]:
    """[rl share, sft share, Σ_sft −log p, Σ_sft p, #{sft: p < α}], each / batch_num_tokens · dp_size (one sync).

    Divided by the global response-token count and multiplied by dp_size, a micro-batch's value sums over
    micro-batches and averages over dp ranks (verl's SUM aggregation) to the exact mini-batch value.
    """
    n_sft = torch.tensor(float(p.numel()), device=p.device)
    # float64: shares of ~1e5-1e6 tokens and sums over them stay exact enough to add up over micro-batches
    parts = [rl_mask.sum(), n_sft, -sft_log_prob.detach().sum(), p.sum(), (p < alpha).sum()]
    stats = torch.stack([x.to(torch.float64) for x in parts])
    scale = info["dp_size"] / max(float(info["batch_num_tokens"]), 1.0)
    return (stats * scale).tolist()


def trapo_loss(
    config: Any,
    model_output: dict[str, torch.Tensor],
    data: TensorDict,
    dp_group=None,
    trapo_config: TrapoLossConfig | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """TRAPO loss for verl's engines (FSDP and Megatron share this contract); see the module docstring.

    Install with ``actor_rollout_wg.set_loss_fn(partial(trapo_loss, config=actor_config, trapo_config=...))``.

    Args:
        config: the actor's ``ActorConfig`` (read: ``loss_scale_factor``, ``entropy_coeff``, ``use_kl_loss``,
            ``kl_loss_coef``, ``kl_loss_type`` and whatever the RL loss reads; ``global_batch_info`` is written).
        model_output: ``{"log_probs": (bs, j) nested, "entropy": (bs, j) nested, optional}`` from the engine.
        data: the micro-batch TensorDict (fields in the module docstring).
        dp_group: unused (the engine all-reduces ``batch_num_tokens`` before the split); kept for the contract.
        trapo_config: :class:`TrapoLossConfig`; ``None`` → its defaults (α = ``DEFAULT_ALPHA``, c_sft = 1, vanilla RL).

    Returns:
        ``(loss, metrics)``: the scalar loss to back-propagate (before Megatron's ``num_micro_batch`` rescaling,
        which the engine applies) and ``{name: Metric | float}``.
    """
    trapo_config = trapo_config or TrapoLossConfig()
    log_prob = no_padding_2_padding(model_output["log_probs"], data)  # (bs, L) response slice
    entropy = model_output.get("entropy", None)
    batch, masks_missing = _read_batch(data, log_prob.shape[-1])
    if masks_missing:
        _warn_masks_missing()
    response_mask = batch["response_mask"].bool()
    rl_mask, sft_mask = trapo_token_masks(response_mask, batch.get("prefix_mask"), batch.get("sft_mask"))
    info, is_global = _global_batch_info(config, data, response_mask)
    config.global_batch_info.update(info)  # the registered RL losses aggregate with config.global_batch_info
    agg = {"loss_agg_mode": trapo_config.loss_agg_mode, **info}
    aggregation = AggregationType.SUM if is_global else AggregationType.MEAN

    pg_loss, pg_metrics = _rl_term(config, trapo_config, batch, log_prob, rl_mask)
    sft_loss, sft_log_prob, p = _sft_term(log_prob, sft_mask, trapo_config.alpha, agg)
    policy_loss = pg_loss + trapo_config.sft_coef * sft_loss

    metrics: dict[str, Any] = Metric.from_dict(pg_metrics, aggregation=AggregationType.MEAN)
    for key, value in (("actor/pg_loss", pg_loss), (_PREFIX + "rl_loss", pg_loss), (_PREFIX + "sft_loss", sft_loss)):
        metrics[key] = Metric(value=value, aggregation=aggregation)
    if entropy is not None:
        # entropy bonus on every response token, expert prefix included, as the official code
        entropy_mat = no_padding_2_padding(entropy, data)
        entropy_loss = entropy_bonus(entropy_mat, response_mask, trapo_config.entropy_agg, agg)
        policy_loss = policy_loss - config.entropy_coeff * entropy_loss
        metrics["actor/entropy_loss"] = Metric(value=entropy_loss, aggregation=aggregation)
    if config.use_kl_loss:
        # KL to the reference on the model's own tokens only: on expert tokens it would pull against the SFT
        kld = kl_penalty(logprob=log_prob, ref_logprob=batch["ref_log_prob"], kl_penalty=config.kl_loss_type)
        kl_loss = agg_loss(loss_mat=kld, loss_mask=rl_mask, **agg)
        policy_loss = policy_loss + config.kl_loss_coef * kl_loss
        metrics["kl_loss"] = Metric(value=kl_loss, aggregation=aggregation)
        metrics["kl_coef"] = config.kl_loss_coef

    stats = _token_stats(info, rl_mask, sft_log_prob, p, trapo_config.alpha)
    metrics.update(_token_metrics(stats, masks_missing, aggregation))
    return policy_loss, metrics


def _token_metrics(stats: list[float], masks_missing: bool, aggregation: AggregationType) -> dict[str, Metric]:
    """The token shares and SFT-token sums of :func:`_token_stats` as ``actor/trapo/*`` metrics."""
    rl_share, sft_share, nll, p_sum, low_p = stats
    metrics = {_PREFIX + "rl_token_share": Metric(value=rl_share, aggregation=aggregation)}
    metrics[_PREFIX + "sft_token_share"] = Metric(value=sft_share, aggregation=aggregation)
    for key, value in zip(_SFT_MEANS, (nll, p_sum, low_p)):
        metrics[_PER_RESP + key] = Metric(value=value, aggregation=aggregation)
    metrics[_PREFIX + "masks_missing"] = Metric(value=float(masks_missing), aggregation=AggregationType.MEAN)
    return metrics


def finalize_trapo_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Turns the loss's per-response-token sums into means over SFT tokens, in place; returns ``metrics``.

    ``actor/trapo/{q} = actor/trapo/per_resp_token/{q} / actor/trapo/sft_token_share`` for q in
    (sft_nll, sft_p_mean, sft_p_lt_alpha_share); 0 when there is no SFT token. Exact for one mini-batch per step
    (the official setting); with several, verl averages each key over mini-batches first, so the ratio weights
    mini-batches by their response-token count. Keys absent from ``metrics`` are left alone.
    """
    share = metrics.get(_PREFIX + "sft_token_share")
    for key in _SFT_MEANS:
        raw = metrics.pop(_PER_RESP + key, None)
        if raw is None or share is None:
            continue
        metrics[_PREFIX + key] = float(raw) / float(share) if float(share) > 0 else 0.0
    return metrics
