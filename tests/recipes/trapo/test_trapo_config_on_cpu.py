# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The TRAPO recipe config (hydra composition, ``trapo:`` validation), the trainer hooks and the entry point."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import fields as dataclass_fields
from functools import partial
from pathlib import Path

import pytest
import ray.cloudpickle
import trustrl.recipes.trapo as trapo_pkg
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from trustrl.policy_loss.trapo import TrapoLossConfig, trapo_loss
from trustrl.recipes.runner import RecipeTaskRunner
from trustrl.recipes.trapo import main as trapo_main
from trustrl.recipes.trapo.config import (
    MICRO_GROUP_PRESETS,
    MicroGroupConfig,
    TrapoConfig,
    trapo_config_from,
    validate_trapo_run_config,
)
from trustrl.recipes.trapo.rollout_metrics import TrapoRolloutMetricsMixin
from trustrl.recipes.trapo.trainer import TrapoTaskRunner, TrapoTrainer, build_trapo_actor_loss
from verl.trainer.main_ppo import TaskRunnerV1
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.trainer.ppo.v1 import PPOTrainerSync
from verl.utils.config import validate_config
from verl.workers.config import FSDPActorConfig

from tests.policy_loss.test_trapo_on_cpu import global_info, make_rows, model_output, to_td

CONFIG_DIR = str(Path(trapo_pkg.__file__).parent / "config")
# the minimum a real launch sets (batch sizes); everything else is the recipe's default
LAUNCH = [
    "data.train_batch_size=4",
    "data.max_response_length=64",
    "actor_rollout_ref.rollout.n=8",
    "actor_rollout_ref.actor.ppo_mini_batch_size=4",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
    "trainer.n_gpus_per_node=1",
    "trainer.nnodes=1",
]


def compose_trapo(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name="trapo_trainer", overrides=[*LAUNCH, *overrides])


@pytest.fixture(scope="module")
def base_config():
    return compose_trapo()


def with_overrides(base, overrides):
    """``key=value`` overrides on a copy of a composed config, as hydra's command line would set them (a full
    compose per case costs seconds on a loaded CPU; interpolations such as the actor mirrors stay live)."""
    cfg = copy.deepcopy(base)
    with open_dict(cfg):
        for item in overrides:
            key, value = item.lstrip("+").split("=", 1)
            OmegaConf.update(cfg, key, yaml.safe_load(value), force_add=True)
    return cfg


def test_full_config_composes_with_verl_defaults_and_validates():
    cfg = compose_trapo()
    # verl's own sections are there (composed from pkg://verl.trainer.config) ...
    assert cfg.trainer.use_v1 and cfg.trainer.v1.trainer_mode == "sync"
    assert cfg.actor_rollout_ref.actor.strategy in ("fsdp", "fsdp2")
    # ... with the recipe's deltas
    assert cfg.algorithm.adv_estimator == "trapo" and cfg.algorithm.trapo.norm_adv_by_std is False
    assert cfg.actor_rollout_ref.actor.loss_agg_mode == "seq-mean-token-sum-norm"
    assert cfg.actor_rollout_ref.actor.policy_loss.loss_mode == "vanilla"
    assert cfg.actor_rollout_ref.actor.loss_scale_factor == 64  # = rollout.response_length
    trapo = validate_trapo_run_config(cfg)
    assert trapo.loss == TrapoLossConfig(alpha=0.1, sft_coef=1.0, rl_loss_mode="vanilla")
    assert trapo.micro_group.enable is False and trapo.micro_group.schedule == MICRO_GROUP_PRESETS["official_code"]
    validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))


def test_the_loss_reads_verls_own_actor_keys():
    """One key sets verl's actor and the TRAPO loss (no trapo.* copy to keep in agreement)."""
    cfg = compose_trapo(
        "actor_rollout_ref.actor.policy_loss.loss_mode=gspo",
        "actor_rollout_ref.actor.loss_agg_mode=token-mean",
        "trapo.alpha=0.25",
    )
    assert cfg.actor_rollout_ref.actor.policy_loss.loss_mode == "gspo"
    assert cfg.actor_rollout_ref.actor.loss_agg_mode == "token-mean"
    loss = validate_trapo_run_config(cfg).loss
    assert (loss.alpha, loss.rl_loss_mode, loss.loss_agg_mode) == (0.25, "gspo", "token-mean")
    assert build_trapo_actor_loss(cfg).keywords["trapo_config"] == loss


def test_the_loss_config_is_built_by_name():
    """TrapoConfig's loss fields are TrapoLossConfig's (declared once) and copied by name, whatever their order."""
    loss_fields = [f.name for f in dataclass_fields(TrapoLossConfig)]
    assert [f.name for f in dataclass_fields(TrapoConfig)][: len(loss_fields)] == loss_fields
    trapo = TrapoConfig(alpha=0.3, sft_coef=0.7, entropy_agg="loss_agg_mode", rl_loss_mode="gspo")
    assert trapo.loss == TrapoLossConfig(
        alpha=0.3,
        sft_coef=0.7,
        entropy_agg="loss_agg_mode",
        rl_loss_mode="gspo",
        loss_agg_mode="seq-mean-token-sum-norm",
    )


def test_the_recipe_yaml_states_the_dataclass_defaults():
    """The yaml must list each trapo key for the command line; its values are the dataclasses' defaults."""
    section = OmegaConf.to_container(compose_trapo().trapo)
    micro_group = section.pop("micro_group")
    assert section == {f: getattr(TrapoLossConfig(), f) for f in section} and "alpha" in section
    assert micro_group == {f: getattr(MicroGroupConfig(), f) for f in micro_group}
    assert set(section) | {"rl_loss_mode", "loss_agg_mode"} == {f.name for f in dataclass_fields(TrapoLossConfig)}


def test_quatro_as_rl_term_with_its_estimator():
    cfg = compose_trapo(
        "actor_rollout_ref.actor.policy_loss.loss_mode=quatro",
        "algorithm.adv_estimator=quatro",
        "+algorithm.quatro.delta=0.05",
        "actor_rollout_ref.actor.loss_agg_mode=token-mean",
    )
    assert validate_trapo_run_config(cfg).rl_loss_mode == "quatro"
    loss_fn = build_trapo_actor_loss(cfg)
    rows = make_rows(0)
    loss, _ = loss_fn(model_output=model_output(rows), data=to_td(rows, **global_info(rows)))
    loss.backward()
    assert all(r["lp"].grad.isfinite().all() for r in rows)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["trapo.alpha=0"], r"trapo\.alpha must be in \(0, 1\]"),
        (["trapo.alpha=1.5"], r"trapo\.alpha"),
        (["trapo.sft_coef=-0.5"], r"trapo\.sft_coef must be finite and >= 0"),
        (
            ["actor_rollout_ref.actor.policy_loss.loss_mode=not_a_loss"],
            r"actor_rollout_ref\.actor\.policy_loss\.loss_mode='not_a_loss' is not a registered verl policy loss",
        ),
        (
            ["actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean"],
            r"actor_rollout_ref\.actor\.loss_agg_mode='seq-mean-token-mean' is not supported by TRAPO",
        ),
        # the former trapo copies of verl's keys point to them
        (["+trapo.rl_loss_mode=gspo"], r"trapo\.rl_loss_mode is not a TRAPO key: .* set that instead"),
        (["+trapo.loss_agg_mode=token-mean"], r"reads verl's actor_rollout_ref\.actor\.loss_agg_mode"),
        (["trapo.entropy_agg=mean"], r"trapo\.entropy_agg='mean' is not supported"),
        (["+trapo.alpah=0.2"], r"unknown key\(s\) \['trapo\.alpah'\]"),
        # the estimator's option, read in the workers, is checked before Ray too
        (["+algorithm.trapo.norm_adv_by_sdt=True"], r"unknown key\(s\) \['algorithm\.trapo\.norm_adv_by_sdt'\]"),
        (["algorithm.trapo.norm_adv_by_std=1"], r"algorithm\.trapo\.norm_adv_by_std must be true or false"),
        (["actor_rollout_ref.actor.loss_scale_factor=null"], r"loss_scale_factor is null"),
        (["distillation.enabled=True"], r"set distillation\.enabled=False"),
        (["actor_rollout_ref.actor.policy_loss.loss_mode=quatro"], r"needs algorithm\.adv_estimator=quatro"),
        (["trainer.v1.trainer_mode=colocate_async"], r"trainer\.v1\.trainer_mode=sync"),
        (["trapo.micro_group.preset=luffy"], r"trapo\.micro_group\.preset must be one of"),
        (["trapo.micro_group.thresholds=[-1,0.7,0.5,0.9]"], r"thresholds must be strictly increasing"),
        (["trapo.micro_group.thresholds=[0,0.5,0.7,0.9]"], r"thresholds\[0\] must be -1"),
        (["trapo.micro_group.prefix_ratios=[0,0.25,0.5,1.5]"], r"prefix_ratios must lie in \[0, 1\]"),
        (["trapo.micro_group.prefix_ratios=[0,0.5,0.25,1]"], r"prefix_ratios must be non-decreasing"),
        (["trapo.micro_group.sizes=[4,2,2]"], r"one entry per micro-group"),
        (["trapo.micro_group.sizes=[4,2,0,2]"], r"sizes must be positive integers"),
        (["trapo.micro_group.sizes=4"], r"sizes must be a list"),
        (["trapo.micro_group.trace_choice=first"], r"trace_choice must be one of"),
        (["trapo.micro_group.sft_copies=some"], r"sft_copies must be one of"),
        (["trapo.micro_group.paragraph_window=2"], r"paragraph_window must be in \[0, 1\]"),
        (["trapo.micro_group.prefetch_unguided=1"], r"prefetch_unguided must be true or false"),
        (["trapo.micro_group.reward_bounds=[1,0]"], r"reward_bounds must satisfy lo < hi"),
        (["trapo.micro_group.reward_bounds=[0,1,2]"], r"reward_bounds must be \[lo, hi\] or null"),
        (["trapo.micro_group.reward_bounds=[0,.inf]"], r"reward_bounds must hold two finite numbers"),
        (["trapo.micro_group.enable=True", "actor_rollout_ref.rollout.n=6"], r"sum to 8 but .*rollout\.n=6"),
        (
            ["trapo.micro_group.enable=True", "algorithm.rollout_correction.bypass_mode=True"],
            r"bypass_mode=True would use the placeholder",
        ),
    ],
)
def test_validation_errors_name_the_key_and_the_fix(base_config, overrides, match):
    cfg = with_overrides(base_config, overrides)
    with pytest.raises(ValueError, match=match):
        validate_trapo_run_config(cfg)


def test_missing_trapo_section_points_to_the_entry_point():
    with pytest.raises(ValueError, match=r"python -m trustrl\.recipes\.trapo\.main"):
        trapo_config_from(OmegaConf.create({"algorithm": {}}))


def test_micro_group_sizes_checked_against_rollout_n_only_when_guided():
    # an unguided run (before the rollout issue) may use any n, e.g. the CPU tier's n=4
    assert validate_trapo_run_config(compose_trapo("actor_rollout_ref.rollout.n=4")).micro_group.enable is False
    cfg = compose_trapo(
        "trapo.micro_group.enable=True",
        "trapo.micro_group.sizes=[2,1,1]",
        "trapo.micro_group.thresholds=[-1,0.5,1.0]",
        "trapo.micro_group.prefix_ratios=[0,0.5,1]",
        "actor_rollout_ref.rollout.n=4",
    )
    schedule = validate_trapo_run_config(cfg).micro_group.schedule
    assert schedule.sizes == (2, 1, 1) and schedule.thresholds == (-1.0, 0.5, 1.0)


def test_presets():
    official = MicroGroupConfig().schedule
    # mix_trainer.py: S(4) < 2, S(6) < 4, S(7) < 7 as running means
    assert official.sizes == (4, 2, 1, 1)
    assert official.thresholds == (-1.0, 0.5, 4 / 6, 1.0)
    assert official.prefix_ratios == (0.0, 0.25, 0.5, 1.0)
    paper = MicroGroupConfig(preset="paper").schedule
    assert paper.thresholds == (-1.0, 0.5, 0.7, 0.9) and paper.prefix_ratios == (0.0, 0.2, 0.5, 1.0)
    # a list replaces the preset's value, the others stay
    mixed = MicroGroupConfig(preset="paper", prefix_ratios=[0, 0.25, 0.5, 1]).schedule
    assert mixed.prefix_ratios == (0.0, 0.25, 0.5, 1.0) and mixed.thresholds == paper.thresholds
    assert TrapoConfig(micro_group={"preset": "paper"}).micro_group.schedule == paper


def test_actor_loss_is_a_picklable_partial_that_trains():
    cfg = compose_trapo("trapo.alpha=0.2", "trapo.sft_coef=0.5")
    loss_fn = build_trapo_actor_loss(cfg)
    assert isinstance(loss_fn, partial) and loss_fn.func is trapo_loss
    assert isinstance(loss_fn.keywords["config"], FSDPActorConfig)
    assert loss_fn.keywords["config"].loss_scale_factor == 64
    assert loss_fn.keywords["trapo_config"] == TrapoLossConfig(alpha=0.2, sft_coef=0.5)
    # Ray ships it to the workers with cloudpickle; module-level functions travel by reference
    restored = ray.cloudpickle.loads(ray.cloudpickle.dumps(loss_fn))
    assert restored.func is trapo_loss
    rows = make_rows(1)
    loss, metrics = restored(model_output=model_output(rows), data=to_td(rows, **global_info(rows)), dp_group=None)
    loss.backward()
    assert "actor/trapo/sft_loss" in metrics and any(r["lp"].grad.abs().sum() > 0 for r in rows)


class _Recorder:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def __getattr__(self, method):
        return lambda *args, **kwargs: self.log.append((self.name, method, args))


def test_trainer_installs_the_loss_after_the_parent_hook():
    assert issubclass(TrapoTrainer, PPOTrainerSync)
    log = []
    trainer = TrapoTrainer.__new__(TrapoTrainer)  # no workers: only the hook under test
    trainer.config = compose_trapo("trapo.alpha=0.3")
    trainer.global_steps = 0
    trainer.checkpoint_manager = _Recorder(log, "checkpoint_manager")
    trainer.actor_rollout_wg = _Recorder(log, "actor_rollout_wg")
    trainer.on_init_end()
    assert [(name, method) for name, method, _ in log] == [
        ("checkpoint_manager", "update_weights"),  # PPOTrainerSync.on_init_end
        ("actor_rollout_wg", "set_loss_fn"),
    ]
    (loss_fn,) = log[1][2]
    assert loss_fn.func is trapo_loss and loss_fn.keywords["trapo_config"].alpha == 0.3


def test_trainer_finalises_the_sft_token_means(monkeypatch):
    def fake_update_actor(self, batch, metrics):
        metrics.update(
            {
                "actor/trapo/sft_token_share": 0.25,
                "actor/trapo/per_resp_token/sft_nll": 0.5,
                "actor/trapo/per_resp_token/sft_p_mean": 0.1,
                "actor/trapo/per_resp_token/sft_p_lt_alpha_share": 0.05,
            }
        )
        return batch

    monkeypatch.setattr(PPOTrainerSync, "_update_actor", fake_update_actor)
    metrics = {}
    trainer = TrapoTrainer.__new__(TrapoTrainer)
    assert trainer._update_actor("batch", metrics) == "batch"
    assert metrics["actor/trapo/sft_nll"] == pytest.approx(2.0)
    assert metrics["actor/trapo/sft_p_mean"] == pytest.approx(0.4)
    assert metrics["actor/trapo/sft_p_lt_alpha_share"] == pytest.approx(0.2)
    assert not any("per_resp_token" in key for key in metrics)


def test_trainer_is_the_sync_trainer_with_the_rollout_metrics():
    assert issubclass(TrapoTrainer, PPOTrainerSync) and issubclass(TrapoTrainer, TrapoRolloutMetricsMixin)
    # the mixin's _compute_metrics runs first and calls verl's (cooperative super chain)
    mro = TrapoTrainer.__mro__
    assert mro.index(TrapoRolloutMetricsMixin) < mro.index(PPOTrainerSync)


def test_trainer_adds_the_rollout_metrics(monkeypatch):
    import trustrl.recipes.trapo.rollout_metrics as rollout_metrics

    calls = []
    monkeypatch.setattr(PPOTrainerSync, "_compute_metrics", lambda self, *args: calls.append(("verl", args)))
    monkeypatch.setattr(rollout_metrics, "trapo_rollout_metrics", lambda batch: {"rollout/trapo/guided_share/any": 0.5})
    trainer = TrapoTrainer.__new__(TrapoTrainer)
    metrics = {"actor/pg_loss": 0.1}
    trainer._compute_metrics("batch", metrics, {}, 3, 0)
    assert calls == [("verl", ("batch", metrics, {}, 3, 0))]
    assert metrics == {"actor/pg_loss": 0.1, "rollout/trapo/guided_share/any": 0.5}


def test_task_runner_runs_verl_with_the_trapo_trainer(monkeypatch):
    """TrapoTaskRunner is the shared RecipeTaskRunner: during ``run`` verl's ``sync`` lookup answers TrapoTrainer."""
    import verl.trainer.ppo.v1 as v1

    assert issubclass(TrapoTaskRunner, RecipeTaskRunner)
    assert TrapoTaskRunner.run is RecipeTaskRunner.run  # verl's run body is not restated
    seen = {}

    def verl_run(self, config):
        seen["sync"] = v1.get_trainer_cls("sync")
        return "ran"

    monkeypatch.setattr(TaskRunnerV1.__ray_metadata__.modified_class, "run", verl_run)
    original = v1.get_trainer_cls
    assert TrapoTaskRunner().run(config=None) == "ran"
    assert seen["sync"] is TrapoTrainer and v1.get_trainer_cls is original


def test_entry_point_validates_before_ray(monkeypatch):
    import trustrl.recipes.runner as runner

    calls = []
    # the resource check (paths, GPUs) has its own tests; the composed default config names verl's example data
    monkeypatch.setattr(runner, "preflight_resources", lambda config: None)
    monkeypatch.setattr(runner, "run_ppo", lambda config, task_runner_class: calls.append(task_runner_class))
    # a bad TRAPO key fails before verl's run_ppo (the first Ray call) and before verl's own checks
    monkeypatch.setattr(runner, "validate_config", lambda **kw: calls.append("validate_config"))
    with pytest.raises(ValueError, match=r"trapo\.alpha"):
        trapo_main.run_trapo(compose_trapo("trapo.alpha=0"))
    assert calls == []
    assert trapo_main.run_trapo(compose_trapo("trapo.alpha=0.2")).alpha == 0.2
    assert calls[0] == "validate_config"
    (actor_cls,) = calls[1:]
    # verl's run_ppo gets a Ray actor class wrapping TrapoTaskRunner
    assert hasattr(actor_cls, "remote") and actor_cls.__ray_metadata__.modified_class is TrapoTaskRunner


def test_module_entry_point_composes_its_config():
    """``python -m trustrl.recipes.trapo.main --cfg job`` prints the composed config (hydra) and starts nothing."""
    env = dict(os.environ, RAY_ADDRESS="", WANDB_MODE="disabled")
    out = subprocess.run(
        [sys.executable, "-m", "trustrl.recipes.trapo.main", "--cfg", "job", "trapo.alpha=0.2"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    job = OmegaConf.create(out.stdout)
    assert job.trapo.alpha == 0.2 and job.algorithm.adv_estimator == "trapo"
    assert job.actor_rollout_ref.rollout.n == 1 and "ppo_mini_batch_size" in job.actor_rollout_ref.actor
