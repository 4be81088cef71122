# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""End-to-end tier: verl's own trainer on the CPU platform (marked `slow`; tens of seconds per run)."""

import math
import subprocess

import pytest


def ray_process_count() -> int:
    out = subprocess.run(["pgrep", "-f", "raylet|gcs_server"], capture_output=True, text=True)
    return len(out.stdout.split())


@pytest.fixture
def no_leftover_ray():
    """Every Ray process a run starts is stopped, also when the test fails."""
    before = ray_process_count()
    yield
    assert ray_process_count() <= before, "the trainer left Ray processes running"


def assert_finite(values, name):
    assert values, f"no values logged for {name}"
    assert all(math.isfinite(v) for v in values), f"{name} not finite: {values}"
