# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""TRAPO advantage estimator: outcome reward minus the mean over every trajectory of the prompt.

TRAPO (arXiv:2512.17636) samples each prompt's group in micro-groups, some of them guided by an expert prefix,
and gives every trajectory the same group-mean baseline (guided, unguided and full-expert rows alike):

    Â_j = R_j − mean_{k ∈ group(q)} R_k                     (std normalisation off, Dr.GRPO style)
    Â_j = (R_j − mean_k R_k) / (std_k R_k + ε)              (optional, ``algorithm.trapo.norm_adv_by_std``)

broadcast to every response token. This is what the official code runs (``adv_estimator=grpo`` with
``grpo_use_std=False`` over the concatenated micro-groups; recipes/trapo/README.md). It has its own registry name
because verl's V1 trainer special-cases the name ``grpo`` (only the last output of a multi-output session is scored) and
because verl's ``algorithm.norm_adv_by_std_in_grpo`` defaults to ``True``, while TRAPO's default is off.

Differences from verl's ``grpo``: a group of one trajectory gets Â = 0 (its own mean; verl's ``grpo`` gives it
Â = R), and the std is the unbiased group std as in verl, used only when the option is on.

Configuration (the ``algorithm`` section reaches registered estimators as ``config``):

    algorithm.trapo.norm_adv_by_std   bool, default False (absent section = False)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from verl.trainer.ppo.core_algos import register_adv_est
from verl.utils import as_torch_index

__all__ = ["compute_trapo_outcome_advantage", "trapo_norm_adv_by_std"]

_SECTION = "algorithm.trapo"


def trapo_norm_adv_by_std(config: Any) -> bool:
    """Reads ``algorithm.trapo.norm_adv_by_std`` from verl's ``algorithm`` config (a DictConfig or a dict).

    Returns ``False`` when the section or the key is absent. Raises ``ValueError`` for a non-boolean value or an
    unknown key in the section (a ``+algorithm.trapo.<typo>`` override would otherwise be ignored).
    """
    section = config.get("trapo", None) if config is not None else None
    unknown = sorted(set(section or ()) - {"norm_adv_by_std"})
    if unknown:
        raise ValueError(f"unknown key(s) {[f'{_SECTION}.{k}' for k in unknown]}; known: {_SECTION}.norm_adv_by_std")
    value = section.get("norm_adv_by_std", False) if section is not None else False
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{_SECTION}.norm_adv_by_std must be true or false, got {value!r}; set it to False (default)")
    return bool(value)


@register_adv_est("trapo")
def compute_trapo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    epsilon: float = 1e-6,
    config: Any = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group-mean-baseline outcome advantage over all trajectories of a prompt (TRAPO, arXiv:2512.17636).

    Â_j = R_j − (1/|G(q)|) Σ_{k∈G(q)} R_k, optionally divided by (std_{k∈G(q)} R_k + ε), where
    R_j = Σ_t token_level_rewards[j, t] is the outcome reward of trajectory j and G(q) are the rows sharing its uid.

    Args:
        token_level_rewards: ``(bs, response_length)`` float; the outcome reward sits on the last valid token.
        response_mask: ``(bs, response_length)`` 0/1 or bool; expert-prefix tokens included (they carry Â too,
            the loss decides which tokens use it).
        index: ``(bs,)`` object array of uids; rows with the same uid form one prompt group. ``None`` = one group.
        epsilon: added to the std when ``algorithm.trapo.norm_adv_by_std`` is on.
        config: verl's ``algorithm`` config; only ``trapo.norm_adv_by_std`` is read.
        **kwargs: other arguments verl passes (``reward_baselines``, ...), ignored.

    Returns:
        ``(advantages, returns)``, both ``(bs, response_length)`` float, equal, and zero outside ``response_mask``.

    >>> import numpy as np, torch
    >>> rewards = torch.tensor([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    >>> adv, _ = compute_trapo_outcome_advantage(rewards, torch.ones(3, 2), np.array(["a", "a", "b"], dtype=object))
    >>> adv[:, 0].tolist()
    [0.5, -0.5, 0.0]
    """
    scores = token_level_rewards.sum(dim=-1)  # R_j, (bs,)
    if index is None:
        group = torch.zeros_like(scores, dtype=torch.long)
    else:
        group = as_torch_index(index, device=scores.device)
    num_groups = int(group.max().item()) + 1 if group.numel() else 0
    count = torch.bincount(group, minlength=num_groups).to(scores.dtype)
    # mean_q = Σ_{k∈q} R_k / |q|
    mean = torch.zeros(num_groups, dtype=scores.dtype, device=scores.device).index_add_(0, group, scores) / count
    adv = scores - mean[group]
    if trapo_norm_adv_by_std(config):
        # unbiased std as verl's grpo; a singleton has Â = 0 already, so its undefined std is replaced by 1
        sq = torch.zeros_like(mean).index_add_(0, group, adv.square())
        std = torch.where(count > 1, (sq / (count - 1).clamp(min=1)).sqrt(), torch.ones_like(mean))
        adv = adv / (std[group] + epsilon)
    advantages = adv.unsqueeze(-1) * response_mask
    return advantages, advantages
