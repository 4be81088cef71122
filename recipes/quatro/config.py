# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Start-up validation of the QUATRO keys of a composed trainer config (before Ray or any GPU work).

Called by the QUATRO entry point (:mod:`trustrl.recipes.quatro.main`), by the TRAPO config check when TRAPO's
RL term is ``quatro``, and by ``python -m trustrl.recipes.dry_run``.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig
from trustrl.advantage.quatro import QuatroConfig, quatro_config_from
from trustrl.policy_loss.quatro import quatro_loss_options

__all__ = ["SEQUENCE_MEAN_MODE", "check_quatro_config"]

logger = logging.getLogger(__name__)

# the aggregation that counts every sequence's term once (the recipe's); the others weight it by its length
SEQUENCE_MEAN_MODE = "seq-mean-token-mean"
_ACTOR = "actor_rollout_ref.actor"


def check_quatro_config(config: DictConfig) -> QuatroConfig:
    """Validate the QUATRO parts of a composed trainer config; return the estimator options.

    Raises ValueError naming the offending key: invalid ``algorithm.quatro.*`` values or unknown keys,
    invalid ``actor_rollout_ref.actor.policy_loss.*`` QUATRO knobs, and the ``quatro`` loss without the
    ``quatro`` estimator (the loss reads the targets T_i from the advantages; other advantages are not log-ratio
    targets). The estimator with another loss is allowed (an ablation: a policy gradient with advantages T_i).

    Every (``ratio_level``, ``loss_agg_mode``) pair is exact (the loss's gradient is autograd's through the value
    it reports), so none is refused; a mode other than ``seq-mean-token-mean`` weights each sequence's term by
    its length (as ``token-mean`` does for GRPO) and is logged as a warning.
    """
    estimator = str(config.algorithm.adv_estimator)
    actor = config.actor_rollout_ref.actor
    loss_mode = actor.policy_loss.get("loss_mode", "vanilla")
    if loss_mode == "quatro":
        ratio_level, _, _ = quatro_loss_options(actor)
        if estimator != "quatro":
            raise ValueError(
                f"{_ACTOR}.policy_loss.loss_mode=quatro needs algorithm.adv_estimator=quatro "
                f"(got {estimator!r}): the loss reads the trust-region targets T_i from the advantages."
            )
        mode = actor.get("loss_agg_mode", None)
        if mode != SEQUENCE_MEAN_MODE:
            logger.warning(
                "%s.loss_agg_mode=%s with %s.policy_loss.ratio_level=%s weights each sequence's QUATRO term by "
                "its length (long responses pushed harder); %s.loss_agg_mode=%s counts every sequence once "
                "(recipes/quatro/README.md, 'Loss').",
                _ACTOR,
                mode,
                _ACTOR,
                ratio_level,
                _ACTOR,
                SEQUENCE_MEAN_MODE,
            )
    return quatro_config_from(config.algorithm)
