# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Shared pytest set-up: offline environment and the `gpu` marker's skip."""

import os

import pytest

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "RAY_DISABLE_USAGE_STATS": "1",
}.items():
    os.environ.setdefault(_key, _value)


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def pytest_runtest_setup(item):
    """Fail loudly, before any fixture starts a trainer, if `--dist loadgroup` is silently not grouping
    (pytest-xdist#1386: pytest >= 9.2 drops the group suffix xdist writes into the node id). Then the trainer runs of
    tests/e2e would overlap on the cores, and each module's trainer would start once per worker."""
    grouped = item.get_closest_marker("xdist_group") is not None
    if grouped and getattr(item.config.option, "loadgroup", False) and "@" not in item.nodeid:
        pytest.fail(
            "pytest-xdist's --dist loadgroup is not in effect with this pytest (pytest-xdist#1386); install the "
            "test extra's pin (pip install 'pytest<9.2') or run in one process: "
            "PYTEST_WORKERS=0 bash scripts/dev.sh test"
        )
