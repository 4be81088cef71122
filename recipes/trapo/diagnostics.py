# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""verl's per-step diagnostics of a TRAPO batch, computed over the model's own tokens.

A guided TRAPO row starts its response with expert tokens the policy did not sample. verl 0.9.1 computes three
diagnostics over every response token (``verl/trainer/ppo/v1/trainer_base.py``):

* ``actor/entropy`` (``_compute_old_log_prob``): ``agg_loss`` of the entropy with the actor's ``loss_agg_mode`` and
  ``loss_scale_factor``. Under TRAPO's ``seq-mean-token-sum-norm`` that is Σ H / (rows · L_max), a scaled sum and
  not an entropy per token, and it includes the expert prefix.
* ``training/rollout_probs_diff_{valid,max,mean,std}`` and ``training/rollout_actor_probs_pearson_corr``
  (``verl.utils.debug.metrics.calculate_debug_metrics``): rollout vs actor probabilities. The rollout has no
  log-prob for an expert token (it was never sampled) and writes a 0.0 placeholder there, so these would compare
  the actor with probability 1 on every expert token.
* ``rollout_corr/*`` (``compute_rollout_correction_and_add_to_batch`` in ``_compute_advantage``): kl, k3_kl,
  perplexities, χ²; the same placeholders enter them.

:func:`model_token_diagnostics` recomputes each with verl's own functions (``calculate_debug_metrics``,
``compute_offpolicy_metrics``) restricted to the model's tokens, ``response ∧ ¬prefix``, and rows that have at least
one such token; the entropy is the plain mean over those tokens (the quantity the paper's entropy curves show).
:func:`trapo_token_diagnostics` reads a trainer batch from TransferQueue and overwrites verl's values under the same
keys, so every dashboard key means what verl documents. Settings that would make verl *act* on the placeholders
(rollout importance weights or rejection sampling) are refused at start-up by
:func:`trustrl.recipes.trapo.config.validate_trapo_run_config`.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict
from verl.protocol import DataProto
from verl.trainer.ppo.rollout_corr_helper import compute_offpolicy_metrics
from verl.utils.debug.metrics import calculate_debug_metrics

__all__ = ["PROBS_DIFF_KEYS", "model_token_diagnostics", "model_token_mask", "trapo_token_diagnostics"]

# the keys of verl's calculate_debug_metrics
PROBS_DIFF_KEYS = (
    "training/rollout_probs_diff_valid",
    "training/rollout_probs_diff_max",
    "training/rollout_probs_diff_mean",
    "training/rollout_probs_diff_std",
    "training/rollout_actor_probs_pearson_corr",
)
ROLLOUT_CORR = "rollout_corr/"


def model_token_mask(response_mask: torch.Tensor, prefix_mask: torch.Tensor | None) -> torch.Tensor:
    """``response ∧ ¬prefix``: the tokens the policy sampled (bool, same shape).

    >>> model_token_mask(torch.tensor([[1, 1, 1, 0]]), torch.tensor([[1, 0, 0, 0]])).tolist()
    [[False, True, True, False]]
    """
    response = response_mask.bool()
    return response if prefix_mask is None else response & ~prefix_mask.bool()


def _token_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    count = mask.sum()
    return float((values * mask).sum() / count) if count > 0 else float("nan")


def model_token_diagnostics(
    old_log_probs: torch.Tensor,
    entropy: torch.Tensor | None,
    response_mask: torch.Tensor,
    prefix_mask: torch.Tensor | None = None,
    rollout_log_probs: torch.Tensor | None = None,
) -> dict[str, float]:
    """verl's diagnostics over the model's own tokens of a padded batch.

    Args:
        old_log_probs: ``(bs, L)`` actor log-probs of the response tokens.
        entropy: ``(bs, L)`` actor entropies (``None``: no entropy keys).
        response_mask: ``(bs, L)`` 0/1 or bool.
        prefix_mask: ``(bs, L)`` 1 = expert token (``None``: an unguided batch).
        rollout_log_probs: ``(bs, L)`` the rollout's log-probs (``None``: no mismatch keys).

    Returns:
        ``actor/entropy`` (mean entropy per model token) and ``actor/trapo/expert_entropy`` (per expert token, when
        there are any); with ``rollout_log_probs``, the keys of verl's ``calculate_debug_metrics`` and
        ``rollout_corr/`` + the keys of ``compute_offpolicy_metrics``. Empty mismatch keys when no model token.
    """
    model = model_token_mask(response_mask, prefix_mask)
    out: dict[str, float] = {}
    if entropy is not None:
        out["actor/entropy"] = _token_mean(entropy, model)
        expert = response_mask.bool() & ~model
        if expert.any():
            out["actor/trapo/expert_entropy"] = _token_mean(entropy, expert)
    if rollout_log_probs is None:
        return out
    rows = model.any(dim=-1)  # rows with no model token (full expert traces) have no mismatch to measure
    if not rows.any():
        return out
    old, rollout, mask = old_log_probs[rows], rollout_log_probs[rows], model[rows]
    batch = TensorDict(
        {"old_log_probs": old, "rollout_log_probs": rollout, "response_mask": mask, "responses": torch.zeros_like(old)},
        batch_size=[int(rows.sum())],
    )
    out.update(calculate_debug_metrics(DataProto(batch=batch)))
    offpolicy = compute_offpolicy_metrics(old_log_prob=old, rollout_log_prob=rollout, response_mask=mask)
    out.update({ROLLOUT_CORR + k: float(v) for k, v in offpolicy.items()})
    return out


def trapo_token_diagnostics(batch: Any, metrics: dict[str, Any], calculate_log_probs: bool) -> dict[str, Any]:
    """Overwrites verl's diagnostics in ``metrics`` with :func:`model_token_diagnostics` of a trainer batch.

    Call it once the batch holds ``old_log_probs`` and ``entropy`` (after verl's ``_compute_advantage``, which
    also wrote the ``rollout_corr/*`` keys). Padding rows are skipped. A batch without ``prefix_mask`` rows is
    unguided: only ``actor/entropy`` is replaced (verl's mismatch keys are already over model tokens then).
    The mismatch keys are replaced only where verl wrote them. Returns ``metrics``.

    Args:
        batch: verl's ``KVBatchMeta`` (``keys``, ``tags``, ``partition_id``, optional ``fields``).
        metrics: the step's metrics dict, modified in place.
        calculate_log_probs: ``actor_rollout_ref.rollout.calculate_log_probs`` (rows carry ``rollout_log_probs``).
    """
    import transfer_queue as tq

    real = [i for i, tag in enumerate(batch.tags) if not tag.get("is_padding", False)]
    if not real:
        return metrics
    available = getattr(batch, "fields", None)
    wanted = ["old_log_probs", "entropy", "response_mask", "prefix_mask"]
    if calculate_log_probs:
        wanted.append("rollout_log_probs")
    fields = [f for f in wanted if available is None or f in available]
    if not {"old_log_probs", "entropy", "response_mask"} <= set(fields):
        return metrics  # bypass mode: verl computed neither entropy nor mismatch metrics
    data = tq.kv_batch_get(keys=[batch.keys[i] for i in real], partition_id=batch.partition_id, select_fields=fields)
    padded = {k: data.get(k).to_padded_tensor(0) if data.get(k).is_nested else data.get(k) for k in data.keys()}
    prefix = padded.get("prefix_mask")
    guided = prefix is not None and bool(prefix.bool().any())
    diag = model_token_diagnostics(
        padded["old_log_probs"],
        padded["entropy"],
        padded["response_mask"],
        prefix if guided else None,
        padded.get("rollout_log_probs") if guided else None,
    )
    if guided:
        if "training/rollout_probs_diff_valid" in metrics:
            for key in PROBS_DIFF_KEYS:
                metrics.pop(key, None)
        else:
            diag = {k: v for k, v in diag.items() if k not in PROBS_DIFF_KEYS}
        if any(k.startswith(ROLLOUT_CORR) for k in metrics):
            for key in [k for k in metrics if k.startswith(ROLLOUT_CORR)]:
                metrics.pop(key)
        else:
            diag = {k: v for k, v in diag.items() if not k.startswith(ROLLOUT_CORR)}
    metrics.update(diag)
    return metrics
