# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The TRAPO launch scripts' presets: ``TRAPO_PRESET=official_code`` (default) and ``paper``, batch and learning rate
as each source states them, through the scripts' own ``DRY_RUN=1`` path (launches recorded, validated in-process)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from trustrl.recipes.dry_run import check_launch, record_script_launches

ROOT = Path(__file__).resolve().parents[3]
TRAIN = ROOT / "scripts" / "train"
SCRIPTS = [TRAIN / "run_trapo_qwen2.5_math_7b.sh", TRAIN / "run_trapo_qwen2.5_math_1.5b.sh"]
# ablations and the Megatron variant re-run the 7B script: they inherit its preset
VARIANTS = sorted(TRAIN.glob("run_trapo_ablation_*.sh")) + [TRAIN / "run_trapo_qwen2.5_math_7b_megatron.sh"]

EXPECTED = {
    # https://github.com/Su-my/TRAPO exp_scripts/train_trapo.sh: data.train_batch_size=8 (the DataLoader's batch of
    # prompts), ppo_mini_batch_size=8 (one optimizer step), actor lr 1e-6
    "official_code": {"train_batch_size": 8, "ppo_mini_batch_size": 8, "lr": 1e-6, "micro_group": "official_code"},
    # arXiv:2512.17636's setup as quoted: 128 prompts, lr 5e-6
    "paper": {"train_batch_size": 128, "ppo_mini_batch_size": 128, "lr": 5e-6, "micro_group": "paper"},
}


def composed(script: Path, **env: str):
    (launch,) = record_script_launches(script, extra_env={"PYTHON": sys.executable, **env})
    return check_launch(launch, out=io.StringIO())


def values(config) -> dict:
    return {
        "train_batch_size": config.data.train_batch_size,
        "ppo_mini_batch_size": config.actor_rollout_ref.actor.ppo_mini_batch_size,
        "lr": config.actor_rollout_ref.actor.optim.lr,
        "micro_group": config.trapo.micro_group.preset,
    }


@pytest.fixture(autouse=True)
def _no_path_checks(monkeypatch):
    monkeypatch.setenv("CHECK_PATHS", "0")  # the scripts' data and model are not on this machine


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_default_is_the_official_code(script):
    config = composed(script)
    assert values(config) == EXPECTED["official_code"]
    # 8 prompts x 8 trajectories, one optimizer step per training step
    assert config.actor_rollout_ref.rollout.n == 8 and config.actor_rollout_ref.actor.ppo_epochs == 1


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_each_preset_sets_its_source_values(script, preset):
    assert values(composed(script, TRAPO_PRESET=preset)) == EXPECTED[preset]


def test_the_micro_group_rule_can_be_switched_alone():
    got = values(composed(SCRIPTS[0], MICRO_GROUP_PRESET="paper"))
    assert got == {**EXPECTED["official_code"], "micro_group": "paper"}


@pytest.mark.parametrize("script", VARIANTS, ids=lambda p: p.name)
def test_variants_inherit_the_preset(script):
    assert values(composed(script))["train_batch_size"] == 8
    assert values(composed(script, TRAPO_PRESET="paper"))["train_batch_size"] == 128


def test_an_unknown_preset_fails_before_launching():
    proc = subprocess.run(
        ["bash", str(SCRIPTS[0])],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "DRY_RUN": "1", "TRAPO_PRESET": "papr"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "TRAPO_PRESET must be official_code or paper, got 'papr'" in proc.stderr
