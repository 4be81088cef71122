# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""``evaluate.py generate --model <verl checkpoint>``: what a folder resolves to, and the cached merge.

The merge itself is verl's (``python -m verl.model_merger``); here a stand-in merger checks the command line, the
temporary target and the cache. The real merge of a real checkpoint runs in tests/e2e/test_checkpoint_eval_loop*.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from trustrl.recipes.eval.generate import CheckpointError, prepare_model, resolve_model


def fsdp_checkpoint(root: Path, exp: str = "exp", step: int = 2) -> Path:
    actor = root / "ckpts" / "proj" / exp / f"global_step_{step}" / "actor"
    (actor / "huggingface").mkdir(parents=True)
    (actor / "model_world_size_2_rank_0.pt").write_bytes(b"0")
    (actor / "model_world_size_2_rank_1.pt").write_bytes(b"1")
    (actor / "huggingface" / "config.json").write_text("{}")
    return actor.parent


def megatron_checkpoint(root: Path) -> Path:
    actor = root / "mg" / "global_step_4" / "actor"
    (actor / "model" / "dist_ckpt").mkdir(parents=True)
    (actor / "model" / "huggingface").mkdir(parents=True)
    (actor / "model" / "huggingface" / "config.json").write_text("{}")
    return actor.parent


def test_kinds(tmp_path):
    assert resolve_model("Qwen/Qwen2.5-Math-7B").kind == "hub"
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    (hf / "model.safetensors").write_bytes(b"w")
    assert resolve_model(str(hf)).kind == "hf"
    step = fsdp_checkpoint(tmp_path)
    for path in (step, step / "actor"):
        source = resolve_model(str(path), tmp_path / "cache")
        assert (source.kind, source.backend, source.checkpoint) == ("to_merge", "fsdp", (step / "actor").resolve())
        assert Path(source.model).parent == tmp_path / "cache"
        assert Path(source.model).name.startswith("exp_global_step_2_")
    mg = resolve_model(str(megatron_checkpoint(tmp_path)), tmp_path / "cache")
    assert (mg.kind, mg.backend) == ("to_merge", "megatron")
    # save_contents with hf_model: verl's own HF weights are used as they are
    (step / "actor" / "huggingface" / "model.safetensors").write_bytes(b"w")
    source = resolve_model(str(step))
    assert (source.kind, source.model) == ("hf", str(step / "actor" / "huggingface"))


def test_errors_name_the_layout(tmp_path):
    with pytest.raises(CheckpointError, match="no such folder"):
        resolve_model(str(tmp_path / "missing"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError, match=r"model_world_size_\*_rank_\*\.pt \(FSDP\).*found: \['notes.txt'\]"):
        resolve_model(str(tmp_path / "other"))
    step = fsdp_checkpoint(tmp_path)
    (step / "actor" / "huggingface" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="huggingface/config.json, which verl's merger needs"):
        resolve_model(str(step))


FAKE_MERGER = """
import json, sys
from pathlib import Path
args = sys.argv[1:]
log = Path(sys.argv[0]).with_name("calls.jsonl")
with log.open("a") as fh:
    fh.write(json.dumps(args) + "\\n")
if args[:3] != ["-m", "verl.model_merger", "merge"]:
    sys.exit(3)
target = Path(args[args.index("--target_dir") + 1])
if "fail" in str(target):
    print("merger: boom", file=sys.stderr)
    sys.exit(1)
target.mkdir(parents=True)
(target / "config.json").write_text("{}")
(target / "model.safetensors").write_bytes(b"merged")
"""


@pytest.fixture
def fake_python(tmp_path) -> Path:
    """An executable that answers ``python -m verl.model_merger merge ...`` like verl's merger, and logs calls."""
    script = tmp_path / "bin" / "merger.py"
    script.parent.mkdir()
    script.write_text(FAKE_MERGER)
    wrapper = tmp_path / "bin" / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def _calls(fake_python: Path) -> list[list[str]]:
    log = fake_python.with_name("calls.jsonl")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_merge_once_then_cached(tmp_path, fake_python):
    step = fsdp_checkpoint(tmp_path)
    cache = tmp_path / "cache"
    source = prepare_model(str(step), cache, python=str(fake_python))
    assert source.kind == "merged" and (Path(source.model) / "model.safetensors").read_bytes() == b"merged"
    (call,) = _calls(fake_python)
    assert call[call.index("--backend") + 1] == "fsdp"
    assert call[call.index("--local_dir") + 1] == str((step / "actor").resolve())
    # written to a temporary sibling, then renamed: no partial folder is left
    assert call[call.index("--target_dir") + 1] != source.model
    assert [p.name for p in cache.iterdir()] == [Path(source.model).name]
    # second call: cached, no merge
    assert prepare_model(str(step / "actor"), cache, python=str(fake_python)).kind == "merged"
    assert len(_calls(fake_python)) == 1
    # the checkpoint changed (a resumed run saved again): merged again
    (step / "actor" / "model_world_size_2_rank_2.pt").write_bytes(b"2")
    assert resolve_model(str(step), cache).kind == "to_merge"
    prepare_model(str(step), cache, python=str(fake_python))
    assert len(_calls(fake_python)) == 2


def test_failed_merge_leaves_nothing(tmp_path, fake_python):
    step = fsdp_checkpoint(tmp_path, exp="fail")
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="(?s)model merger failed \\(exit 1\\).*merger: boom"):
        prepare_model(str(step), cache, python=str(fake_python))
    assert list(cache.iterdir()) == []
