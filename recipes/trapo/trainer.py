# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""TRAPO trainer: verl's V1 sync trainer with the TRAPO loss installed on the actor workers.

The changes to ``PPOTrainerSync``: after the workers are built (``on_init_end``) the actor's loss is replaced by
``partial(trapo_loss, config=<ActorConfig>, trapo_config=<trapo.* loss keys>)`` through the ``set_loss_fn`` RPC;
after each actor update the ``actor/trapo/*`` SFT-token means are finalised (:func:`finalize_trapo_metrics`); each
step's metrics get the guided rollout's ``rollout/trapo/*`` statistics (:class:`TrapoRolloutMetricsMixin`; none
when the batch has no micro-group rows, e.g. ``trapo.micro_group.enable=False``); after verl's advantage step,
``actor/entropy`` and verl's rollout-mismatch diagnostics (``training/rollout_probs_diff_*``, ``rollout_corr/*``) are
recomputed over the model's own tokens (:func:`~trustrl.recipes.trapo.diagnostics.trapo_token_diagnostics`): expert
prefix tokens have no rollout log-prob and are no sample of the policy.
Everything else (rollout, reward, advantage via the registered ``trapo`` estimator, checkpoints) is verl's.
:class:`TrapoTaskRunner` is verl's V1 TaskRunner with this trainer (:mod:`trustrl.recipes.runner`).
"""

from __future__ import annotations

from functools import partial

from omegaconf import DictConfig
from trustrl.policy_loss.trapo import finalize_trapo_metrics, trapo_loss
from trustrl.recipes.runner import RecipeTaskRunner
from trustrl.recipes.trapo.config import validate_trapo_run_config
from trustrl.recipes.trapo.diagnostics import trapo_token_diagnostics
from trustrl.recipes.trapo.rollout_metrics import TrapoRolloutMetricsMixin
from verl.trainer.ppo.v1 import PPOTrainerSync
from verl.utils.config import omega_conf_to_dataclass

__all__ = ["TrapoTaskRunner", "TrapoTrainer", "build_trapo_actor_loss"]


def build_trapo_actor_loss(config: DictConfig) -> partial:
    """The engine loss for a validated run config: ``partial(trapo_loss, config=..., trapo_config=...)``.

    The actor config is built as the workers build theirs (``omega_conf_to_dataclass`` on
    ``actor_rollout_ref.actor``, so its ``_target_`` picks FSDP/Megatron and any ``policy_loss`` subclass). The
    partial is pickled by Ray (cloudpickle) and references module-level functions of the installed package.
    """
    trapo = validate_trapo_run_config(config)
    actor_config = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    return partial(trapo_loss, config=actor_config, trapo_config=trapo.loss)


class TrapoTrainer(TrapoRolloutMetricsMixin, PPOTrainerSync):
    """V1 sync PPO trainer that trains the actor with :func:`trustrl.policy_loss.trapo.trapo_loss`.

    :class:`~trustrl.recipes.trapo.rollout_metrics.TrapoRolloutMetricsMixin` adds the micro-group rollout's
    ``rollout/trapo/*`` metrics (guided shares per level, prefix lengths, unguided reward) to each step; nothing
    without guided rows.
    """

    def __init__(self, config: DictConfig):
        # fail before any worker starts (the launcher validated too; this covers other entry paths)
        self.trapo_config = validate_trapo_run_config(config)
        super().__init__(config)

    def on_init_end(self):
        super().on_init_end()  # pushes the (possibly restored) weights to the rollout replicas
        self.actor_rollout_wg.set_loss_fn(build_trapo_actor_loss(self.config))

    def _compute_advantage(self, batch, metrics: dict):
        batch = super()._compute_advantage(batch, metrics)
        # every field of the diagnostics is in TransferQueue now (old_log_probs, entropy, rollout_log_probs)
        trapo_token_diagnostics(batch, metrics, bool(self.config.actor_rollout_ref.rollout.calculate_log_probs))
        return batch

    def _update_actor(self, batch, metrics: dict):
        batch = super()._update_actor(batch, metrics)
        finalize_trapo_metrics(metrics)
        return batch


class TrapoTaskRunner(RecipeTaskRunner):
    """verl's V1 TaskRunner whose ``sync`` trainer is :class:`TrapoTrainer`."""

    trainer_class = "trustrl.recipes.trapo.trainer.TrapoTrainer"
