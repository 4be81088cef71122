# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The `verl.plugins` entry point registers every trustrl name in a fresh process that only imports verl.

verl swallows plugin import errors (they surface later as "Unsupported loss mode"), so each check runs in a
new interpreter, exactly like a Ray worker that starts and imports verl.
"""

import json
import os
import subprocess
import sys

import pytest

# Every name a user can put in a config. Grows with each algorithm.
EXPECTED_ADV = {"quatro", "trapo"}
EXPECTED_LOSS = {"quatro"}

PROBE = r"""
import json, sys
import verl
import verl.trainer.ppo.core_algos as c
from verl.plugin.platform import PlatformRegistry
from verl.workers.rollout.replica import RolloutReplicaRegistry
from importlib.metadata import entry_points
print(json.dumps({
    "entry_points": [ep.value for ep in entry_points(group="verl.plugins")],
    "plugin_imported": "trustrl.recipes.plugin" in sys.modules,
    "adv": sorted(c.ADV_ESTIMATOR_REGISTRY),
    "loss": sorted(c.POLICY_LOSS_REGISTRY),
    "platforms": list(PlatformRegistry.registered_names()),
    "cpu_modules": sorted(m for m in sys.modules if m.startswith("trustrl.recipes.cpu")),
    "vllm_replica_loader": RolloutReplicaRegistry._registry["vllm"].__module__,
    "vllm_imported": "vllm" in sys.modules,
}))
"""


def _probe(**env) -> dict:
    full_env = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "VERL_USE_EXTERNAL_PLUGINS")}
    full_env.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=full_env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def default_process() -> dict:
    return _probe()


def test_entry_point_is_discovered(default_process):
    assert "trustrl.recipes.plugin" in default_process["entry_points"]
    assert default_process["plugin_imported"]


def test_names_registered_by_import_verl_alone(default_process):
    missing_adv = EXPECTED_ADV - set(default_process["adv"])
    missing_loss = EXPECTED_LOSS - set(default_process["loss"])
    assert not missing_adv, f"estimators not registered by the plugin: {missing_adv}"
    assert not missing_loss, f"policy losses not registered by the plugin: {missing_loss}"


def test_cpu_tooling_is_not_loaded_unless_selected(default_process):
    # A GPU run never imports the CPU platform or the vLLM CPU-build subclasses.
    assert default_process["cpu_modules"] == []
    assert "cpu" not in default_process["platforms"]
    # verl's own vLLM replica, untouched
    assert default_process["vllm_replica_loader"] == "verl.workers.rollout.replica"


def test_cpu_platform_selected_by_env():
    cpu = _probe(VERL_PLATFORM="cpu")
    assert "cpu" in cpu["platforms"]
    # `rollout.name=vllm` builds the CPU subclasses of verl's vLLM replica; vLLM itself is imported only then
    assert cpu["vllm_replica_loader"] == "trustrl.recipes.cpu.registration"
    assert "trustrl.recipes.cpu.vllm_cpu" not in cpu["cpu_modules"]
    assert not cpu["vllm_imported"]


def test_plugins_disabled_means_no_trustrl_names():
    # Proves the names above come from the entry point, not from some other import path.
    off = _probe(VERL_USE_EXTERNAL_PLUGINS="none")
    assert not off["plugin_imported"]
    assert not (EXPECTED_ADV & set(off["adv"]))
