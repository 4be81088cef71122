# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The README's quickstart commands, as written, pass the dry run on fixture files, and fail fast without GPUs."""

from __future__ import annotations

import io
import os
import re
import shlex
from pathlib import Path

import pytest
from trustrl.recipes.dry_run import Launch, check_launch
from trustrl.recipes.resources import ResourceError, check_gpus

from tests.scripts.test_launch_scripts_on_cpu import write_run_files

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def quickstart_commands() -> list[tuple[str, list[str]]]:
    """(entry module, overrides) of every ``python -m`` command in the README's quickstart sections."""
    text = README.read_text()
    commands = []
    for section in re.findall(r"^## Quickstart: \w+\n(.*?)(?=^## )", text, flags=re.S | re.M):
        for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
            for command in block.replace("\\\n", " ").splitlines():
                command = command.split("  #")[0]
                if command.startswith("python -m "):
                    argv = shlex.split(os.path.expandvars(command))
                    commands.append((argv[2], argv[3:]))
    return commands


COMMANDS = quickstart_commands()


def test_the_quickstarts_are_found_and_complete():
    entries = [entry for entry, _ in COMMANDS]
    assert entries == ["verl.trainer.main_ppo", "trustrl.recipes.quatro.main", "trustrl.recipes.trapo.main"]
    for _, overrides in COMMANDS:
        assert "..." not in " ".join(overrides), "a quickstart hides keys behind '...'"


@pytest.mark.parametrize(("entry", "overrides"), COMMANDS, ids=[e for e, _ in COMMANDS])
def test_quickstart_passes_the_dry_run(entry, overrides, tmp_path, monkeypatch):
    # the README's relative paths, from a folder holding the prepared data; $HOME holds the 16k-context model copy
    files = write_run_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    Path(files["MODEL_PATH"]).rename(home / "models" / "Qwen2.5-Math-7B-16k")
    monkeypatch.setenv("HOME", str(home))
    entry, overrides = next((e, o) for e, o in quickstart_commands() if e == entry)
    out = io.StringIO()
    config = check_launch(Launch(entry, overrides), out=out)
    assert out.getvalue().splitlines()[-1].startswith(f"[dry_run] OK {entry}")
    assert "local paths" in out.getvalue().splitlines()[-1]
    # on this machine (no GPU) the run would fail at once, naming the keys
    monkeypatch.setattr("trustrl.recipes.resources._local_gpus", lambda device: (0.0, "torch.cuda.device_count()"))
    with pytest.raises(ResourceError, match=r"trainer\.n_gpus_per_node=8 = 8 GPUs asked, this machine has 0"):
        check_gpus(config)
