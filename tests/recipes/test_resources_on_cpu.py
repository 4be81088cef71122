# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""``trustrl.recipes.resources``: start-up checks of paths, GPUs and shared storage, and the did-you-mean helper."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf
from trustrl.recipes import resources
from trustrl.recipes.resources import ResourceError


def _config(tmp_path, **over):
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    train = tmp_path / "train.parquet"
    rows = [{"prompt": "p", "extra_info": {"index": i, "expert_solutions": ["t"] if i else []}} for i in range(3)]
    pq.write_table(pa.Table.from_pylist(rows), train)
    val = tmp_path / "val.parquet"
    pq.write_table(pa.Table.from_pylist(rows), val)
    base = {
        "data": {"train_files": str(train), "val_files": [str(val)]},
        "actor_rollout_ref": {"model": {"path": str(model), "tokenizer_path": None}},
        "trainer": {
            "nnodes": 1,
            "n_gpus_per_node": 8,
            "device": "cuda",
            "default_local_dir": str(tmp_path / "ckpt"),
        },
        "ray_kwargs": {"ray_init": {}},
        "trapo": {"micro_group": {"enable": False, "expert_field": "expert_solutions"}},
    }
    config = OmegaConf.create(base)
    for key, value in over.items():
        OmegaConf.update(config, key, value, force_add=True)
    return config


def test_did_you_mean():
    assert resources.did_you_mean("dleta", ["delta", "kappa"]) == " (did you mean 'delta'?)"
    # the last component of a dotted key is matched too
    assert "'ratio_level'" in resources.did_you_mean("policy_loss.ratio_levle", ["ratio_level", "loss_mode"])
    assert resources.did_you_mean("zzz", ["delta"]) == ""
    msg = resources.unknown_keys_message("algorithm.quatro", ["dleta"], ["delta", "kappa"])
    assert msg.startswith("unknown key(s) algorithm.quatro.dleta (did you mean 'delta'?)")


def test_local_paths_ok_and_counted(tmp_path):
    config = _config(tmp_path, **{"trapo.micro_group.enable": True})
    report = resources.check_local_paths(config)
    states = {k: s for k, _, s in report.rows}
    # guided TRAPO: rows without traces are counted, not dropped
    assert states["data.train_files"] == "2 of 3 rows with expert traces, 1 run unguided"
    assert states["actor_rollout_ref.model.path"] == "ok"


def test_local_paths_missing_named(tmp_path):
    config = _config(tmp_path)
    config.data.val_files = [str(tmp_path / "val.parquet"), str(tmp_path / "aime.parquet")]
    config.actor_rollout_ref.model.path = str(tmp_path / "no_model")
    with pytest.raises(ResourceError) as err:
        resources.check_local_paths(config)
    text = str(err.value)
    assert f"data.val_files: {tmp_path / 'aime.parquet'} does not exist" in text
    assert "actor_rollout_ref.model.path=" in text and "no such model folder" in text
    assert "CHECK_PATHS=0" in text


def test_model_path_kinds(tmp_path):
    config = _config(tmp_path)
    # a hub id is the hub's business; a remote URL is not checked; a folder without config.json is refused
    for path, state in [("Qwen/Qwen2.5-Math-7B", "hub id"), ("hdfs://x/y", "remote")]:
        config.actor_rollout_ref.model.path = path
        row = next(r for r in resources.check_local_paths(config).rows if r[0] == "actor_rollout_ref.model.path")
        assert row[2].startswith(state)
    (tmp_path / "empty").mkdir()
    config.actor_rollout_ref.model.path = str(tmp_path / "empty")
    with pytest.raises(ResourceError, match="no config.json"):
        resources.check_local_paths(config)


def test_guided_trapo_without_the_field(tmp_path):
    config = _config(tmp_path, **{"trapo.micro_group.enable": True, "trapo.micro_group.expert_field": "expert_soln"})
    with pytest.raises(ResourceError, match="extra_info has no field 'expert_soln' \\(did you mean 'expert_solutions'"):
        resources.check_local_paths(config)
    pq.write_table(pa.Table.from_pylist([{"prompt": "p"}]), tmp_path / "train.parquet")
    config.trapo.micro_group.expert_field = "expert_solutions"
    with pytest.raises(ResourceError, match="no extra_info column"):
        resources.check_local_paths(config)


def test_gpus_local(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "_local_gpus", lambda device: (0.0, "torch.cuda.device_count()"))
    config = _config(tmp_path)
    with pytest.raises(ResourceError, match=r"trainer\.n_gpus_per_node=8 = 8 GPUs asked, this machine has 0"):
        resources.check_gpus(config)
    # the CPU tier asks for no GPU; a fake Ray GPU count is what Ray will advertise
    assert "no GPU needed" in resources.check_gpus(_config(tmp_path, **{"trainer.device": "cpu"}))
    config.ray_kwargs.ray_init.num_gpus = 8
    assert "ray_kwargs.ray_init.num_gpus" in resources.check_gpus(config)
    config.trainer.nnodes = 2
    with pytest.raises(ResourceError, match="RAY_ADDRESS is not set"):
        resources.check_gpus(config)


def test_gpus_on_an_attached_cluster(tmp_path):
    config = _config(tmp_path, **{"trainer.nnodes": 2})
    assert "2 node(s)" in resources.check_gpus(config, node_gpus=[8, 8])
    # two nodes, but one has only 4 GPUs: Ray would wait forever
    with pytest.raises(ResourceError, match=r"1 of them with >= 8"):
        resources.check_gpus(config, node_gpus=[8, 4])


def test_checkpoints_in_rays_job_copy_refused(tmp_path):
    job_copy = tmp_path / "session_x" / "runtime_resources" / "working_dir_files" / "ckpts"
    config = _config(tmp_path, **{"trainer.default_local_dir": str(job_copy)})
    with pytest.raises(ResourceError, match="inside Ray's per-job copy"):
        resources.check_shared_storage(config)


def test_shared_storage_one_node(tmp_path):
    config = _config(tmp_path)
    assert "writable (one node)" in resources.check_shared_storage(config)
    # the token file is removed again
    assert list((tmp_path / "ckpt").iterdir()) == []


class _FakeRemote:
    """ray.remote(...)(fn) stand-in: node "b" runs the probe with a different filesystem (nothing visible)."""

    def __init__(self, fn):
        self.fn = fn
        self.node = None

    def options(self, scheduling_strategy):
        self.node = scheduling_strategy.node_id
        return self

    def remote(self, paths, model_dir, token_path, token):
        if self.node == "b" * 56:
            result = self.fn(["/nonexistent" + p for p in paths], "/nonexistent", "/nonexistent/token", token)
            result["host"] = "node-b"
            return result
        return self.fn(paths, model_dir, token_path, token)


def test_shared_storage_several_nodes(tmp_path, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "remote", lambda **kw: _FakeRemote)
    monkeypatch.setattr(ray, "get", lambda refs, timeout: refs)
    config = _config(tmp_path)
    nodes = [{"NodeID": "a" * 56}, {"NodeID": "b" * 56}]
    with pytest.raises(ResourceError) as err:
        resources.check_shared_storage(config, nodes)
    text = str(err.value)
    assert "1 of 2 nodes do not see the run's storage" in text
    assert "node-b: missing /nonexistent" in text and "does not see" in text
    ok = resources.check_shared_storage(config, [nodes[0], {"NodeID": "c" * 56}])
    assert "seen by all 2 nodes" in ok


def test_node_probe_reads_the_token(tmp_path):
    token = tmp_path / "t"
    token.write_text("abc")
    (tmp_path / "m").mkdir()
    out = resources._node_probe([str(token)], str(tmp_path / "m"), str(token), "abc")
    # the model folder has no config.json
    assert out["token_seen"] and out["missing"] == [str(tmp_path / "m" / "config.json")]


def test_override_hint_for_quatro_loss_keys_and_typos():
    hydra = (
        "Could not override 'actor_rollout_ref.actor.policy_loss.ratio_level'. To append to your config use "
        "+actor_rollout_ref.actor.policy_loss.ratio_level=seq"
    )
    hint = resources.override_hint(hydra)
    assert "policy_loss._target_=trustrl.policy_loss.quatro.QuatroPolicyLossConfig" in hint
    assert "+actor_rollout_ref.actor.policy_loss.ratio_level=<value>" in hint
    # the same key added with '+': verl's dataclass rejects it
    verl = (
        "Error in call to target 'verl.workers.config.actor.PolicyLossConfig': TypeError(\"PolicyLossConfig.__init__()"
        " got an unexpected keyword argument 'zero_target'\") full_key: actor_rollout_ref.actor.policy_loss"
    )
    assert "_target_=" in resources.override_hint(verl)
    config = OmegaConf.create({"actor_rollout_ref": {"actor": {"ppo_mini_batch_size": 1, "clip_ratio": 0.2}}})
    typo = "Could not override 'actor_rollout_ref.actor.ppo_mini_batch_sizee'. To append to your config use +..."
    assert "did you mean 'ppo_mini_batch_size'" in resources.override_hint(typo, lambda: config)
    assert resources.override_hint("Could not override 'actor_rollout_ref.actor.zzzz'", config) == ""
    assert resources.override_hint("some other error", config) == ""
