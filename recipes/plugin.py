# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""verl plugin entry point (group ``verl.plugins``): registers every trustrl name in every process.

``import verl`` loads this module in the driver, the TaskRunner actor and every worker, so our advantage
estimators and policy losses are in verl's registries wherever verl looks them up. verl swallows plugin import
errors (they only surface later as "Unsupported loss mode"), so ``tests/recipes/test_plugin_on_cpu.py`` imports
verl in a fresh process and asserts the names are there.

The CPU platform and the vLLM CPU-build subclasses are test/demo tooling: they are registered only when
``VERL_PLATFORM=cpu`` selects them, so a GPU run never imports them.
"""

import os

import trustrl.advantage  # noqa: F401  (registers trustrl's advantage estimators)
import trustrl.policy_loss  # noqa: F401  (registers trustrl's policy losses)

if os.environ.get("VERL_PLATFORM", "").lower() == "cpu":
    from trustrl.recipes.cpu import registration as _cpu_registration

    _cpu_registration.register()
