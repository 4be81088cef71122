# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""``python -m trustrl.recipes.quatro.main [hydra overrides]``: verl's PPO trainer with the QUATRO config.

The config is ``config/quatro_trainer.yaml`` (verl's ``ppo_trainer`` plus the QUATRO deltas). The QUATRO
options are checked first (:func:`trustrl.recipes.quatro.config.check_quatro_config`), before Ray starts, so a
bad value fails in seconds with the key's name; then the model's context window is checked and verl's
``main_ppo`` sequence runs (device detection, ``validate_config``, ``run_ppo``) with
:class:`~trustrl.recipes.quatro.trainer.QuatroTrainer`, which adds the estimator's ``quatro/*`` statistics
(lambda_q, active/slack shares) to the logged metrics.
The estimator and the loss reach the Ray workers through the ``verl.plugins`` entry point
(``trustrl.recipes.plugin``), not through this module.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from trustrl.recipes.quatro.config import check_quatro_config

__all__ = ["check_quatro_config", "main"]


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
