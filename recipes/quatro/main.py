# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""``python -m trustrl.recipes.quatro.main [hydra overrides]``: verl's PPO trainer with the QUATRO config.

The config is ``config/quatro_trainer.yaml`` (verl's ``ppo_trainer`` plus the QUATRO deltas). The QUATRO
options are checked here, before Ray starts, so a bad value fails in seconds with the key's name; then verl's
``main_ppo`` sequence runs (device detection, ``validate_config``, ``run_ppo``) with
:class:`~trustrl.recipes.quatro.trainer.QuatroTrainer`, which adds the estimator's ``quatro/*`` statistics
(lambda_q, active/slack shares) to the logged metrics.
The estimator and the loss reach the Ray workers through the ``verl.plugins`` entry point
(``trustrl.recipes.plugin``), not through this module.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from trustrl.advantage.quatro import QuatroConfig, quatro_config_from
from trustrl.policy_loss.quatro import quatro_loss_options

__all__ = ["check_quatro_config", "main"]


def check_quatro_config(config: DictConfig) -> QuatroConfig:
    """Validate the QUATRO parts of a composed trainer config; return the estimator options.

    Raises ValueError naming the offending key: invalid ``algorithm.quatro.*`` values or unknown keys,
    invalid ``actor_rollout_ref.actor.policy_loss.*`` QUATRO knobs, and the ``quatro`` loss without the
    ``quatro`` estimator (the loss reads the targets T_i from the advantages; other advantages are not log-ratio
    targets). The estimator with another loss is allowed (an ablation: a policy gradient with advantages T_i).
    """
    estimator = str(config.algorithm.adv_estimator)
    actor = config.actor_rollout_ref.actor
    loss_mode = actor.policy_loss.get("loss_mode", "vanilla")
    if loss_mode == "quatro":
        quatro_loss_options(actor)
        if estimator != "quatro":
            raise ValueError(
                f"actor_rollout_ref.actor.policy_loss.loss_mode=quatro needs algorithm.adv_estimator=quatro "
                f"(got {estimator!r}): the loss reads the trust-region targets T_i from the advantages."
            )
    return quatro_config_from(config.algorithm)


@hydra.main(config_path="config", config_name="quatro_trainer", version_base=None)
def main(config: DictConfig) -> None:
    """Check the QUATRO options, then run verl's V1 trainer with :class:`QuatroTrainer` (estimator metrics)."""
    check_quatro_config(config)
    # the model's context window against prompt + response length (reads config.json; refuses before Ray)
    from trustrl.recipes.preflight import preflight

    preflight(config)
    from trustrl.recipes.quatro.trainer import QuatroTaskRunner
    from trustrl.recipes.runner import run_recipe

    run_recipe(config, QuatroTaskRunner)


if __name__ == "__main__":
    main()
