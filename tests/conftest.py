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
