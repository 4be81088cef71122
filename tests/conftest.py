# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Shared pytest set-up: offline environment, the `gpu` marker's skip, the `slow` runs kept on one xdist worker."""

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

    # Under pytest-xdist (`--dist loadgroup`, as `scripts/dev.sh test` runs), every `slow` run of verl's trainer goes
    # to one worker, one after another: each starts its own Ray cluster and uses most of a core; the unit tests
    # share the other worker.
    serial = pytest.mark.xdist_group(name="verl_trainer_runs")
    skip_gpu = None if torch.cuda.is_available() else pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(serial)
        if skip_gpu is not None and "gpu" in item.keywords:
            item.add_marker(skip_gpu)
