# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Curves and a text summary of a CPU-tier run (reward, entropy and the algorithm's own metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REWARD = "critic/score/mean"
ENTROPY = "actor/entropy"
ALGO_PREFIXES = ("actor/quatro/", "actor/trapo/", "quatro/lambda_mean", "quatro/share_active", "trapo/")


def algo_keys(metrics: list[dict[str, Any]]) -> list[str]:
    keys = sorted({k for m in metrics for k in m if k.startswith(ALGO_PREFIXES)})
    return keys


def plot_curves(metrics: list[dict[str, Any]], path: Path, title: str) -> Path:
    """The demo's ``curves.png``: the generic run plot of :mod:`trustrl.recipes.curves`."""
    from trustrl.recipes.curves import plot_run

    return plot_run(metrics, path, title=title)


def summarize(result, png: Path) -> str:
    rewards = result.series(REWARD)
    k = max(1, len(rewards) // 5)
    first, last = sum(rewards[:k]) / k, sum(rewards[-k:]) / k
    lines = [
        f"[trustrl] done in {result.wall_s:.0f}s, {len(result.metrics)} steps",
        f"[trustrl] mean reward: first {k} steps {first:.3f} -> last {k} steps {last:.3f}",
    ]
    entropy = result.series(ENTROPY)
    if entropy:
        lines.append(f"[trustrl] entropy: {entropy[0]:.3f} -> {entropy[-1]:.3f}")
    for key in algo_keys(result.metrics):
        vals = result.series(key)
        lines.append(f"[trustrl] {key}: {vals[0]:.4g} -> {vals[-1]:.4g}")
    lines.append(f"[trustrl] curves: {png}")
    return "\n".join(lines)
