# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""End-to-end tier: verl's own trainer on the CPU platform (marked `slow`; tens of seconds per run)."""

import math
import subprocess
import time

import pytest

# Marks of a module whose tests run verl's trainer. Under pytest-xdist (`--dist loadgroup`, as `scripts/dev.sh test`
# runs) all such runs go to one worker, one after another: each starts its own Ray cluster and keeps a core busy.
# Static marks, because xdist reads the group before any conftest hook could add it.
TRAINER_GROUP = "verl_trainer_runs"
TRAINER_RUN = [pytest.mark.slow, pytest.mark.xdist_group(name=TRAINER_GROUP)]


def session_processes(session_id: int) -> list[str]:
    """Processes (``pid command``) still alive in a session; the trainer's Ray processes inherit its session."""
    out = subprocess.run(["ps", "-eo", "sid=,pid=,stat=,args="], capture_output=True, text=True, check=True)
    left = []
    for line in out.stdout.splitlines():
        sid, pid, stat, *args = line.split(None, 3)
        if int(sid) == session_id and not stat.startswith("Z"):  # a zombie is already dead, awaiting its reaper
            left.append(" ".join([pid, *args]))
    return left


def assert_no_leftover(result, grace_s: float = 15.0):
    """Every process the run started (trainer, raylet, GCS, workers) is gone, also when the run failed."""
    assert result.session_id > 0, "run() did not record the trainer's session"
    deadline = time.monotonic() + grace_s
    while (left := session_processes(result.session_id)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"the trainer left processes running: {left[:5]}"


def assert_finite(values, name):
    assert values, f"no values logged for {name}"
    assert all(math.isfinite(v) for v in values), f"{name} not finite: {values}"
