# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""End-to-end tier: verl's own trainer on the CPU platform (marked `slow`; tens of seconds per run)."""

import math
import os
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


def assert_weights_reach_generator(result, steps: int, loaded: int | None = None):
    """Every weight sync changed the model the rollout server generates with (its parameter checksum).

    One sync before step 1 (version 0, the actor's initial weights replacing vLLM's dummy ones) and one after each
    step; with a learning rate that moves the weights, every version's checksum differs from all earlier ones. A
    dropped or stale sync repeats a checksum (the negative control in test_grpo_vllm_e2e_on_cpu.py). ``loaded``: only
    versions 0 .. loaded - 1 are checked (a run that drops the later syncs on purpose).
    """
    syncs = result.weight_syncs
    assert [v for v, _ in syncs] == list(range(steps + 1)), f"expected syncs v0..v{steps}, got {syncs}"
    checksums = [c for _, c in syncs][: steps + 1 if loaded is None else loaded]
    assert len(set(checksums)) == len(checksums), f"a weight sync did not change the served model: {checksums}"


def assert_rollout_matches_actor(result, steps: int, bound: float = 5e-3, first: int | None = None):
    """The rollout's log-probs match the actor's recomputation on the same tokens (verl's rollout-mismatch metric):
    the server sampled with the weights the actor had at that step; a stale generator differs by the whole update.
    ``first``: only steps 1 .. first are checked."""
    diffs = result.series("training/rollout_probs_diff_max")
    assert len(diffs) == steps and max(diffs[: steps if first is None else first]) < bound, diffs


def assert_no_leaked_shm(result):
    """Nothing the run created in shared memory is left: run() removed what no live process held (and reported it in
    RunResult.leaked_shm); nothing was still held once the trainer's processes were gone."""
    assert all(not os.path.exists(p) for p in result.leaked_shm), result.leaked_shm
    assert result.shm_in_use == [], f"shared-memory entries still held after the run: {result.shm_in_use}"
