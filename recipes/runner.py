# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Run verl's V1 TaskRunner with a recipe's trainer class, without restating verl's ``run`` body.

``TaskRunnerV1.run`` (``verl/trainer/main_ppo.py``) takes its trainer from ``verl.trainer.ppo.v1.get_trainer_cls``
(looked up at call time). A recipe cannot register a new ``trainer_mode`` (``PPOTrainer`` branches on the literal
``"sync"``), so :class:`RecipeTaskRunner` answers that one lookup with the recipe's trainer, inside the TaskRunner's
own Ray process and only for the duration of ``run``; everything else is verl's.
"""

from __future__ import annotations

import importlib

import ray
from omegaconf import DictConfig
from trustrl.recipes.resources import preflight_resources
from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import validate_config
from verl.utils.device import auto_set_device

__all__ = ["RecipeTaskRunner", "run_recipe"]


def _load(path: str) -> type:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


class RecipeTaskRunner(TaskRunnerV1.__ray_metadata__.modified_class):
    """verl's V1 TaskRunner whose ``sync`` trainer is ``trainer_class`` (a dotted path, set by subclasses)."""

    trainer_class: str = ""

    def run(self, config: DictConfig):
        import verl.trainer.ppo.v1 as v1

        trainer_cls = _load(self.trainer_class)
        verl_lookup = v1.get_trainer_cls

        def recipe_lookup(mode: str):
            if mode != "sync":
                raise ValueError(
                    f"{trainer_cls.__name__} is a sync trainer: set trainer.v1.trainer_mode=sync (got {mode!r})"
                )
            return trainer_cls

        v1.get_trainer_cls = recipe_lookup
        try:
            return super().run(config)
        finally:
            v1.get_trainer_cls = verl_lookup


def run_recipe(config: DictConfig, task_runner_cls: type[RecipeTaskRunner]) -> None:
    """verl's ``main_ppo`` sequence (device, ``validate_config``, ``run_ppo``) with a recipe's TaskRunner.

    Before Ray starts, :func:`~trustrl.recipes.resources.preflight_resources` checks the data files, the model
    folder, the GPUs the config asks for and the checkpoint storage, and fails at once naming what is missing.
    """
    auto_set_device(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    preflight_resources(config)
    run_ppo(config, task_runner_class=ray.remote(task_runner_cls))
