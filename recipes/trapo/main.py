# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""TRAPO entry point: ``python -m trustrl.recipes.trapo.main [hydra overrides]``.

Composes ``config/trapo_trainer.yaml`` (verl's ``ppo_trainer`` plus the ``trapo:`` section), validates the TRAPO keys
in the launcher (before Ray starts), then runs verl's ``run_ppo`` with a TaskRunner whose trainer is
:class:`~trustrl.recipes.trapo.trainer.TrapoTrainer`.
"""

from __future__ import annotations

from pprint import pprint

import hydra
import ray
from omegaconf import DictConfig, OmegaConf
from trustrl.recipes.trapo.config import validate_trapo_run_config
from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import validate_config
from verl.utils.device import auto_set_device
from verl.utils.logging_utils import configure_verl_logging

__all__ = ["TrapoTaskRunner", "main", "run_trapo"]


class TrapoTaskRunner(TaskRunnerV1.__ray_metadata__.modified_class):
    """verl's V1 TaskRunner with :class:`TrapoTrainer` in place of the registry's ``sync`` trainer.

    ``TaskRunnerV1.run`` picks the trainer class from ``trainer.v1.trainer_mode``; TRAPO keeps ``sync`` (the base
    trainer branches on that literal), so ``run`` is restated here with our class; the agent-loop manager is the
    parent's (``actor_rollout_ref.rollout.agent.agent_loop_manager_class`` still selects it).
    """

    def run(self, config: DictConfig):
        import transfer_queue as tq
        from trustrl.recipes.trapo.trainer import TrapoTrainer

        configure_verl_logging()
        config.transfer_queue.enable = True
        pprint(OmegaConf.to_container(config, resolve=True))
        OmegaConf.resolve(config)
        self.config = config
        tq.init(config.transfer_queue)
        succeeded = False
        try:
            self.trainer = TrapoTrainer(config=config)
            self.trainer.init()
            self.init_agent_loop_manager()
            self.trainer.fit(self.agent_loop_manager)
            succeeded = True
        finally:
            try:
                tracking = getattr(self.trainer, "logger", None)
                if tracking is not None:
                    tracking.finish(exit_code=0 if succeeded else 1)
            finally:
                tq.close()


def run_trapo(config: DictConfig) -> None:
    """Validates a composed config (TRAPO keys, then verl's checks) and trains through verl's ``run_ppo``."""
    auto_set_device(config)
    validate_trapo_run_config(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    run_ppo(config, task_runner_class=ray.remote(TrapoTaskRunner))


@hydra.main(config_path="config", config_name="trapo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    run_trapo(config)


if __name__ == "__main__":
    main()
