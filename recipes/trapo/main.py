# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""``python -m trustrl.recipes.trapo.main [hydra overrides]``: verl's PPO trainer with the TRAPO loss and config.

The config is ``config/trapo_trainer.yaml`` (verl's ``ppo_trainer`` plus the ``trapo:`` section). The TRAPO keys are
checked here (:func:`~trustrl.recipes.trapo.config.validate_trapo_run_config`), before Ray starts, so a bad value
fails in seconds with the key's name; then verl's ``main_ppo`` sequence runs (device detection, ``validate_config``,
``run_ppo``) through the shared :func:`~trustrl.recipes.runner.run_recipe` with
:class:`~trustrl.recipes.trapo.trainer.TrapoTaskRunner`, whose ``sync`` trainer is
:class:`~trustrl.recipes.trapo.trainer.TrapoTrainer` (installs ``trapo_loss`` on the actor workers, logs the
``actor/trapo/*`` and ``rollout/trapo/*`` metrics). The ``trapo`` estimator reaches the Ray workers through the
``verl.plugins`` entry point (``trustrl.recipes.plugin``), not through this module.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from trustrl.recipes.preflight import preflight
from trustrl.recipes.trapo.config import TrapoConfig, validate_trapo_run_config

__all__ = ["main", "run_trapo"]


def run_trapo(config: DictConfig) -> TrapoConfig:
    """Validate the TRAPO keys of a composed config (``ValueError`` naming the key), then train through verl.

    Nothing touches Ray or a device before the validation passes. Returns the validated ``trapo`` section.
    """
    trapo = validate_trapo_run_config(config)
    # the model's context window against prompt + response length (reads config.json; refuses before Ray)
    preflight(config)
    # imported after the check, as the QUATRO entry point: the trainer pulls in verl's V1 trainer stack
    from trustrl.recipes.runner import run_recipe
    from trustrl.recipes.trapo.trainer import TrapoTaskRunner

    run_recipe(config, TrapoTaskRunner)
    return trapo


@hydra.main(config_path="config", config_name="trapo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    """Check the TRAPO options, then run verl's V1 trainer with :class:`TrapoTrainer`."""
    run_trapo(config)


if __name__ == "__main__":
    main()
