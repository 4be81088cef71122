# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The QUATRO recipe config composes with verl's ppo_trainer, passes verl's validation, and bad values fail early."""

import os
import re
import subprocess
import sys

import pytest
import trustrl.recipes.quatro as recipe
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from trustrl.advantage.quatro import QuatroConfig
from trustrl.policy_loss.quatro import QuatroPolicyLossConfig
from trustrl.recipes.quatro.config import check_quatro_config
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import omega_conf_to_dataclass, validate_config

# verl notes that the critic is off for non-GAE estimators; expected here
pytestmark = pytest.mark.filterwarnings("ignore:Disabled critic")

RECIPE_DIR = os.path.dirname(recipe.__file__)
CONFIG_DIR = os.path.join(RECIPE_DIR, "config")
# the micro-batch sizes verl requires when use_dynamic_bsz is off (no default in ppo_trainer)
SIZES = [
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.rollout.n=4",
]


def _compose(overrides=(), name="quatro_trainer", config_dir=CONFIG_DIR):
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name=name, overrides=[*SIZES, *overrides])


def _verl_validate(config):
    validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))


def test_recipe_composes_and_verl_accepts_the_quatro_section():
    config = _compose()
    assert config.algorithm.adv_estimator == "quatro"
    assert OmegaConf.to_container(config.algorithm.quatro) == {
        "delta": 0.05,
        "kappa": 0.1,
        "solver": "exact",
        "lambda_min": 0.0,
    }
    actor = config.actor_rollout_ref.actor
    assert (actor.policy_loss.loss_mode, actor.use_kl_loss, actor.entropy_coeff) == ("quatro", False, 0)
    assert actor.loss_agg_mode == "seq-mean-token-mean" and not config.algorithm.use_kl_in_reward
    assert not need_reference_policy(config)  # no KL anywhere: no reference model
    _verl_validate(config)  # verl's own checks, including ActorConfig instantiation
    actor_cfg = omega_conf_to_dataclass(actor)
    assert isinstance(actor_cfg.policy_loss, QuatroPolicyLossConfig)
    assert actor_cfg.policy_loss.ratio_level == "seq_len_norm"
    assert check_quatro_config(config) == QuatroConfig()


def test_plain_verl_config_with_only_the_two_names():
    # verl's own ppo_trainer, only adv_estimator=quatro and loss_mode=quatro: no other key needed
    verl_config_dir = os.path.join(os.path.dirname(sys.modules["verl"].__file__), "trainer", "config")
    config = _compose(
        ["algorithm.adv_estimator=quatro", "actor_rollout_ref.actor.policy_loss.loss_mode=quatro"],
        name="ppo_trainer",
        config_dir=verl_config_dir,
    )
    _verl_validate(config)
    assert type(omega_conf_to_dataclass(config.actor_rollout_ref.actor).policy_loss).__name__ == "PolicyLossConfig"
    assert check_quatro_config(config) == QuatroConfig()


def test_overrides_reach_the_dataclasses():
    config = _compose(
        [
            "algorithm.quatro.delta=0.02",
            "algorithm.quatro.solver=quadratic",
            "actor_rollout_ref.actor.policy_loss.ratio_level=seq",
            "actor_rollout_ref.actor.policy_loss.zero_target=mask",
        ]
    )
    _verl_validate(config)
    assert check_quatro_config(config) == QuatroConfig(delta=0.02, solver="quadratic")
    policy_loss = omega_conf_to_dataclass(config.actor_rollout_ref.actor).policy_loss
    assert (policy_loss.ratio_level, policy_loss.zero_target) == ("seq", "mask")


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm", "token-sum"])
def test_length_weighting_modes_are_accepted_with_a_warning(mode, caplog):
    # every (ratio_level, loss_agg_mode) pair is exact, so none is refused; a mode that weights each sequence's
    # term by its length is named in a warning (the stock ppo_trainer default, token-mean, is one)
    import logging

    from trustrl.recipes.quatro import main

    assert main.check_quatro_config is check_quatro_config  # the entry point uses the same check
    with caplog.at_level(logging.WARNING, logger="trustrl.recipes.quatro.config"):
        assert check_quatro_config(_compose([f"actor_rollout_ref.actor.loss_agg_mode={mode}"])) == QuatroConfig()
    assert f"loss_agg_mode={mode}" in caplog.text and "seq-mean-token-mean" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trustrl.recipes.quatro.config"):
        check_quatro_config(_compose())
    assert caplog.text == ""


@pytest.mark.parametrize(
    "overrides,pattern",
    [
        (["algorithm.quatro.delta=-0.1"], r"algorithm\.quatro\.delta=-0\.1 is invalid"),
        (["algorithm.quatro.kappa=1.5"], r"algorithm\.quatro\.kappa=1\.5 is invalid"),
        (["algorithm.quatro.solver=bisect"], r"algorithm\.quatro\.solver='bisect' is invalid"),
        (["+algorithm.quatro.radius=0.1"], r"unknown key.*algorithm\.quatro\.radius"),
        (["actor_rollout_ref.actor.policy_loss.ratio_level=tok"], r"policy_loss\.ratio_level='tok' is invalid"),
        (["algorithm.adv_estimator=grpo"], r"loss_mode=quatro needs algorithm\.adv_estimator=quatro"),
    ],
)
def test_bad_values_fail_with_the_key_name(overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_quatro_config(_compose(overrides))


@pytest.mark.slow  # a fresh interpreter importing verl takes ~10 s
def test_entry_point_rejects_bad_values_before_ray(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "trustrl.recipes.quatro.main", *SIZES, "algorithm.quatro.delta=0"],
        cwd=tmp_path,  # hydra writes its outputs/ run folder into the working directory
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "algorithm.quatro.delta=0 is invalid" in output
    assert "ray init kwargs" not in output  # run_ppo was never reached


def test_readme_documents_every_recipe_key():
    with open(os.path.join(CONFIG_DIR, "quatro_trainer.yaml")) as f:
        raw = OmegaConf.create(f.read())
    keys = [f"algorithm.quatro.{k}" for k in raw.algorithm.quatro]
    keys += [f"policy_loss.{k}" for k in raw.actor_rollout_ref.actor.policy_loss if k not in ("_target_", "loss_mode")]
    with open(os.path.join(RECIPE_DIR, "README.md")) as f:
        readme = f.read()
    missing = [k for k in keys if not re.search(re.escape(k.split(".", 1)[1] if k.startswith("policy") else k), readme)]
    assert not missing, f"README.md does not document {missing}"
    assert "reconstruction" in readme.lower()
