# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""RecipeTaskRunner answers verl's trainer lookup with the recipe trainer, only during `run`."""

import pytest
import verl.trainer.ppo.v1 as v1
from trustrl.recipes.quatro.trainer import QuatroTaskRunner, QuatroTrainer
from trustrl.recipes.runner import RecipeTaskRunner
from verl.trainer.main_ppo import TaskRunnerV1


@pytest.fixture
def parent_run(monkeypatch):
    """Replace verl's TaskRunnerV1.run by a probe that performs the same trainer lookup verl's run does."""
    seen = {}

    def probe(self, config):
        seen["sync"] = v1.get_trainer_cls("sync")
        with pytest.raises(ValueError, match="trainer.v1.trainer_mode=sync"):
            v1.get_trainer_cls("colocate_async")
        return "ran"

    monkeypatch.setattr(TaskRunnerV1.__ray_metadata__.modified_class, "run", probe)
    return seen


def test_recipe_trainer_is_used_and_lookup_restored(parent_run):
    original = v1.get_trainer_cls
    assert QuatroTaskRunner().run(config=None) == "ran"
    assert parent_run["sync"] is QuatroTrainer
    assert v1.get_trainer_cls is original
    assert original("sync") is not QuatroTrainer


def test_lookup_restored_when_run_fails(monkeypatch):
    def boom(self, config):
        raise RuntimeError("trainer failed")

    monkeypatch.setattr(TaskRunnerV1.__ray_metadata__.modified_class, "run", boom)
    original = v1.get_trainer_cls
    with pytest.raises(RuntimeError, match="trainer failed"):
        QuatroTaskRunner().run(config=None)
    assert v1.get_trainer_cls is original


def test_quatro_trainer_logs_estimator_statistics():
    from trustrl.advantage.quatro import QuatroAdvantageMetricsMixin

    assert issubclass(QuatroTrainer, QuatroAdvantageMetricsMixin) and issubclass(QuatroTrainer, v1.PPOTrainerSync)
    assert issubclass(QuatroTaskRunner, RecipeTaskRunner)
