# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
from trustrl.policy_loss import (
    quatro,  # noqa: F401  registers "quatro"
    trapo,  # noqa: F401  the TRAPO engine-level loss (trapo_loss); registers no loss name
)
