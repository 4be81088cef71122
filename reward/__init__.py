# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""trustrl.reward: the strict, hang-proof math-verify reward (see ``math_reward``)."""

from trustrl.reward.math_reward import (
    STATUSES,
    MathRewardConfig,
    MathRewardResult,
    compute_score,
    compute_score_async,
    compute_scores,
    shutdown,
    warmup,
)

__all__ = [
    "STATUSES",
    "MathRewardConfig",
    "MathRewardResult",
    "compute_score",
    "compute_score_async",
    "compute_scores",
    "shutdown",
    "warmup",
]
