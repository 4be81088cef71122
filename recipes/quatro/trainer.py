# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""QUATRO trainer: verl's V1 sync trainer plus the estimator's per-step statistics in the logged metrics.

The ``quatro`` estimator runs inside ``_compute_advantage`` in this trainer's process and keeps the statistics of
its last call (lambda_q, shares of active/slack/all-equal/singleton groups, solver residual); the mixin adds them to
the step's metrics as ``quatro/*``. Stock ``verl.trainer.main_ppo`` runs QUATRO too, without these metrics.
"""

from __future__ import annotations

from trustrl.advantage.quatro import QuatroAdvantageMetricsMixin
from trustrl.recipes.runner import RecipeTaskRunner
from verl.trainer.ppo.v1 import PPOTrainerSync

__all__ = ["QuatroTaskRunner", "QuatroTrainer"]


class QuatroTrainer(QuatroAdvantageMetricsMixin, PPOTrainerSync):
    """``PPOTrainerSync`` that logs the QUATRO estimator's statistics every step."""


class QuatroTaskRunner(RecipeTaskRunner):
    trainer_class = "trustrl.recipes.quatro.trainer.QuatroTrainer"
