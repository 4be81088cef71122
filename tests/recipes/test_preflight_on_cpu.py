# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The model-context check before Ray (``trustrl.recipes.preflight``) and its three callers: the TRAPO and QUATRO
entry points and the dry run of the launch scripts (``DRY_RUN=1``)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from trustrl.recipes.dry_run import DryRunError, Launch, check_launch, record_script_launches
from trustrl.recipes.preflight import check_model_context, find_model_config, preflight

ROOT = Path(__file__).resolve().parents[2]
TRAPO_7B = ROOT / "scripts" / "train" / "run_trapo_qwen2.5_math_7b.sh"
QUATRO_7B = ROOT / "scripts" / "train" / "run_quatro_qwen2.5_math_7b.sh"


def model_dir(root: Path, name: str, max_position_embeddings: int | None, **extra) -> Path:
    """A model folder holding only a config.json, as a checkpoint folder has one (no weights needed)."""
    folder = root / name
    folder.mkdir(parents=True)
    hf = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "rope_theta": 10000.0, **extra}
    if max_position_embeddings is not None:
        hf["max_position_embeddings"] = max_position_embeddings
    (folder / "config.json").write_text(json.dumps(hf))
    return folder


def run_config(model: str | Path | None, prompt: int = 1024, response: int = 8192, **rollout) -> dict:
    """The keys the check reads, as a composed verl config nests them."""
    return {
        "data": {"max_prompt_length": prompt, "max_response_length": response},
        "actor_rollout_ref": {
            "model": {"path": None if model is None else str(model), "override_config": {}},
            "rollout": {"prompt_length": prompt, "response_length": response, "max_model_len": None, **rollout},
        },
    }


# ------------------------------------------------------------------ the check


def test_refuses_the_stock_4k_context_naming_keys_and_fix(tmp_path):
    stock = model_dir(tmp_path, "Qwen2.5-Math-7B", 4096)
    with pytest.raises(ValueError) as e:
        check_model_context(run_config(stock))
    msg = str(e.value)
    assert f"{stock / 'config.json'} has max_position_embeddings=4096" in msg
    assert "data.max_prompt_length + data.max_response_length = 1024 + 8192 = 9216" in msg
    assert "actor_rollout_ref.model.path" in msg and "max_position_embeddings=16384, rope_theta=40000" in msg
    # the other way out: a response budget that fits
    assert "lower data.max_response_length to at most 3072" in msg


@pytest.mark.parametrize("context", [9216, 16384, 32768])
def test_accepts_a_context_that_holds_prompt_plus_response(tmp_path, context):
    result = check_model_context(run_config(model_dir(tmp_path, "m", context)))
    assert (result.required, result.context, result.skipped, result.note) == (9216, context, False, "")


def test_one_token_short_is_refused(tmp_path):
    with pytest.raises(ValueError, match="max_position_embeddings=9215"):
        check_model_context(run_config(model_dir(tmp_path, "m", 9215)))


def test_rollout_max_model_len_below_the_need_is_refused_without_reading_the_model():
    with pytest.raises(ValueError) as e:
        check_model_context(run_config(None, max_model_len=8192))
    msg = str(e.value)
    assert msg.startswith("actor_rollout_ref.rollout.max_model_len=8192 cannot hold data.max_prompt_length")
    assert "set actor_rollout_ref.rollout.max_model_len=9216 or larger, or null" in msg


def test_rollout_max_model_len_above_the_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"max_model_len=32768 exceeds the model's max_position_embeddings=16384"):
        check_model_context(run_config(model_dir(tmp_path, "m", 16384), max_model_len=32768))
    # within the model: the server's length is the configured one
    assert check_model_context(run_config(model_dir(tmp_path, "n", 32768), max_model_len=9216)).context == 9216


def test_the_rollout_lengths_count_when_larger_than_the_data_lengths(tmp_path):
    config = run_config(model_dir(tmp_path, "m", 9216))
    config["actor_rollout_ref"]["rollout"]["response_length"] = 16384
    with pytest.raises(ValueError, match=r"rollout\.prompt_length \+ actor_rollout_ref\.rollout\.response_length"):
        check_model_context(config)


def test_override_config_and_text_config_are_read_as_verl_reads_them(tmp_path):
    stock = model_dir(tmp_path, "m", 4096)
    config = run_config(stock)
    # verl applies model.override_config (or its model_config sub-dict) to the loaded config
    config["actor_rollout_ref"]["model"]["override_config"] = {"model_config": {"max_position_embeddings": 16384}}
    assert check_model_context(config).context == 16384
    # a multimodal config keeps the field in text_config (verl's get_max_position_embeddings)
    vl = model_dir(tmp_path, "vl", None, text_config={"max_position_embeddings": 32768})
    assert check_model_context(run_config(vl)).context == 32768
    with pytest.raises(ValueError, match="states no usable max_position_embeddings"):
        check_model_context(run_config(model_dir(tmp_path, "none", None)))


def test_rope_scaling_is_named_but_does_not_raise_the_limit(tmp_path):
    yarn = model_dir(tmp_path, "m", 4096, rope_scaling={"type": "yarn", "factor": 4.0})
    with pytest.raises(ValueError, match=r"rope_scaling \{'type': 'yarn', 'factor': 4.0\} does not count"):
        check_model_context(run_config(yarn))


def test_paths_without_a_local_config_are_skipped_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    for path, why in (
        ("Qwen/Qwen2.5-Math-7B", "is a hub id that is not in the local Hugging Face cache"),
        ("hdfs://models/q7b", "is a remote path"),
        (str(tmp_path / "absent"), "no folder"),
    ):
        result = check_model_context(run_config(path))
        assert result.skipped and why in result.note and "needs at least 9216" in result.note
    empty = tmp_path / "no_config"
    empty.mkdir()
    assert "has no config.json" in check_model_context(run_config(empty)).note
    out = io.StringIO()
    preflight(run_config("Qwen/Qwen2.5-Math-7B"), out=out)
    assert out.getvalue().startswith("[trustrl preflight] context check skipped: Qwen/Qwen2.5-Math-7B is a hub id")


def test_hub_ids_resolve_from_the_local_cache(tmp_path, monkeypatch):
    # the Hugging Face cache layout: models--org--name/{refs/main, snapshots/<rev>/config.json}
    repo = tmp_path / "hub" / "models--Qwen--Qwen2.5-Math-7B"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    model_dir(repo / "snapshots", "abc123", 4096)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    file, source = find_model_config("Qwen/Qwen2.5-Math-7B")
    assert file == repo / "snapshots" / "abc123" / "config.json" and "Hugging Face cache" in source
    with pytest.raises(ValueError, match=r"Qwen/Qwen2\.5-Math-7B \(Hugging Face cache: .*\) has max_position_embed"):
        check_model_context(run_config("Qwen/Qwen2.5-Math-7B"))


def test_hf_config_path_is_preferred_as_verl_does(tmp_path):
    config = run_config(model_dir(tmp_path, "weights", 4096))
    config["actor_rollout_ref"]["model"]["hf_config_path"] = str(model_dir(tmp_path, "cfg", 16384))
    assert check_model_context(config).context == 16384


# ------------------------------------------------------------------ the callers


def _trapo_config(model: Path):
    config_dir = str(ROOT / "recipes" / "trapo" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(
            config_name="trapo_trainer",
            overrides=[
                "data.train_batch_size=4",
                "data.max_prompt_length=1024",
                "data.max_response_length=8192",
                "actor_rollout_ref.actor.ppo_mini_batch_size=4",
                f"actor_rollout_ref.model.path={model}",
            ],
        )


def test_trapo_entry_point_refuses_before_ray(tmp_path, monkeypatch):
    import trustrl.recipes.runner as runner
    from trustrl.recipes.trapo import main as trapo_main

    calls = []
    monkeypatch.setattr(runner, "run_recipe", lambda *a, **k: calls.append("run_recipe"))
    with pytest.raises(ValueError, match="max_position_embeddings=4096"):
        trapo_main.run_trapo(_trapo_config(model_dir(tmp_path, "4k", 4096)))
    assert calls == []
    trapo_main.run_trapo(_trapo_config(model_dir(tmp_path, "32k", 32768)))
    assert calls == ["run_recipe"]


def test_quatro_entry_point_refuses_before_ray(tmp_path, monkeypatch):
    import trustrl.recipes.runner as runner
    from trustrl.recipes.quatro import main as quatro_main

    calls = []
    monkeypatch.setattr(runner, "run_recipe", lambda *a, **k: calls.append("run_recipe"))
    config_dir = str(ROOT / "recipes" / "quatro" / "config")
    overrides = ["data.max_prompt_length=1024", "data.max_response_length=8192"]
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        short = compose(
            "quatro_trainer", [*overrides, f"actor_rollout_ref.model.path={model_dir(tmp_path, 'a', 4096)}"]
        )
        long = compose(
            "quatro_trainer", [*overrides, f"actor_rollout_ref.model.path={model_dir(tmp_path, 'b', 32768)}"]
        )
    with pytest.raises(ValueError, match="max_position_embeddings=4096"):
        quatro_main.main.__wrapped__(short)
    assert calls == []
    quatro_main.main.__wrapped__(long)
    assert calls == ["run_recipe"]


@pytest.mark.parametrize(
    ("script", "short", "enough", "need"),
    [
        # TRAPO: 1024 + 8192 tokens need the long-context copy; the stock 4k model is refused
        (TRAPO_7B, 4096, 32768, r"1024 \+ 8192 = 9216"),
        # QUATRO's 7B run is sized for the stock model: 1024 + 3072 = 4096 fits exactly
        (QUATRO_7B, 4095, 4096, r"1024 \+ 3072 = 4096"),
    ],
    ids=["trapo_7b", "quatro_7b"],
)
def test_dry_run_of_the_7b_scripts_checks_the_model_context(tmp_path, monkeypatch, script, short, enough, need):
    # the scripts' data files are not on this machine (the path check: tests/recipes/test_resources_on_cpu.py)
    monkeypatch.setenv("CHECK_PATHS", "0")

    def launch(name: str, context: int) -> Launch:
        model = model_dir(tmp_path, name, context)
        (one,) = record_script_launches(script, extra_env={"PYTHON": sys.executable, "MODEL_PATH": str(model)})
        return one

    with pytest.raises(DryRunError, match=rf"has max_position_embeddings={short}.* {need} tokens"):
        check_launch(launch("short", short), out=io.StringIO())
    out = io.StringIO()
    check_launch(launch("enough", enough), out=out)
    assert f"model context {enough} >= " in out.getvalue().splitlines()[-1]


def test_dry_run_notes_a_skipped_check(monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("CHECK_PATHS", "0")
    env = {"PYTHON": sys.executable, "MODEL_PATH": "Qwen/Qwen2.5-Math-7B"}
    (launch,) = record_script_launches(TRAPO_7B, extra_env=env)
    out = io.StringIO()
    check_launch(launch, out=out)
    lines = out.getvalue().splitlines()
    assert any(
        line.startswith("[dry_run] note: context check skipped: Qwen/Qwen2.5-Math-7B is a hub id") for line in lines
    )
    assert lines[-1].startswith("[dry_run] OK")
