# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The e2e tier's shared-memory sweep: what a run leaves in /dev/shm and /tmp (`psm_*`, `vllm_dist_*`) is removed,
unless a live process still holds it."""

import os
import subprocess
import sys
import time

from trustrl.recipes.cpu import launch


def test_leftovers_removed_and_segments_in_use_kept(tmp_path, monkeypatch):
    # Stand-ins for /dev/shm and /tmp: the sweep must never see (or remove) the segments of a trainer run that the
    # e2e tier may be running on another worker at the same time, nor that run's sweep see these.
    shm_dir, tmp_dir = tmp_path / "dev_shm", tmp_path / "tmp"
    shm_dir.mkdir()
    tmp_dir.mkdir()
    monkeypatch.setattr(launch, "SHM_DIRS", (shm_dir, tmp_dir))
    before = launch.shm_entries()
    tag = f"trustrl_test_{os.getpid()}"
    leaked = shm_dir / f"psm_{tag}"
    held = shm_dir / f"psm_{tag}_held"
    vllm_tmp = tmp_dir / f"vllm_dist_{tag}"
    other = shm_dir / f"other_{tag}"  # not one of the patterns: never touched
    for path in (leaked, held, other):
        path.write_bytes(b"x" * 16)
    vllm_tmp.mkdir()
    (vllm_tmp / "queue").write_text("x")
    holder = subprocess.Popen([sys.executable, "-c", f"f = open({str(held)!r}); import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 10
        while str(held) not in launch._open_paths() and time.monotonic() < deadline:
            time.sleep(0.1)
        removed, kept = launch.remove_leaked_shm(before)
        assert str(leaked) in removed and str(vllm_tmp) in removed
        assert not leaked.exists() and not vllm_tmp.exists()
        # (a trainer run elsewhere on the machine may add its own entries: only ours are checked)
        assert str(held) in kept and str(held) not in removed and held.exists()
        assert other.exists()
        # entries that existed before the run are not the run's: left alone (only ours are checked, as above)
        removed, kept = launch.remove_leaked_shm(launch.shm_entries())
        assert str(held) not in removed + kept and held.exists() and other.exists()
    finally:
        holder.kill()
        holder.wait()
        for path in (leaked, held, other):
            path.unlink(missing_ok=True)
