# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
from trustrl.advantage import (
    quatro,  # noqa: F401  registers "quatro"
    trapo,  # noqa: F401  registers "trapo"
)
