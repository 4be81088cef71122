# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""What the CPU demo prints and draws: one condensed line per step, the curves and an end-of-run summary.

For a TRAPO run the numbers a user reads are the ones of the model's own (unguided) rollouts: the step line's and
the summary's ``reward`` is ``rollout/trapo/unguided/reward_mean`` (the paper reports reward and length without the
expert-guided trajectories); the guided rows' reward is shown apart (``guided_r``), next to the guided share per
micro-group, the expert prefix length, the NLL of the expert (SFT) tokens and the share of them with p < α.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

REWARD = "critic/score/mean"
ENTROPY = "actor/entropy"
_T = "rollout/trapo/"
UNGUIDED_REWARD = _T + "unguided/reward_mean"
UNGUIDED_LENGTH = _T + "unguided/response_length_mean"
GUIDED_REWARD = _T + "guided/reward_mean"
GUIDED_SHARE = _T + "guided_share/g"
PREFIX_LEN = _T + "prefix_len/mean"
SFT_NLL = "actor/trapo/sft_nll"
SFT_P_LT_ALPHA = "actor/trapo/sft_p_lt_alpha_share"

# step-line columns: (metric key, label); the reward column is chosen per algorithm
_COMMON = (
    ("actor/entropy", "entropy"),
    ("actor/pg_loss", "pg_loss"),
    ("actor/grad_norm", "grad_norm"),
)
# QUATRO's columns: its dual variable, active-constraint share and every actor/quatro/* statistic
_QUATRO_PREFIXES = ("actor/quatro/", "quatro/lambda_mean", "quatro/share_active")
_TRAPO = (
    (GUIDED_REWARD, "guided_r"),
    (UNGUIDED_LENGTH, "len"),
    (GUIDED_SHARE + "2", "guided_g2"),
    (GUIDED_SHARE + "3", "guided_g3"),
    (GUIDED_SHARE + "4", "guided_g4"),
    (PREFIX_LEN, "prefix"),
    (SFT_NLL, "sft_nll"),
    (SFT_P_LT_ALPHA, "p<alpha"),
)


def is_trapo(keys) -> bool:
    """Whether a run logged TRAPO's guided-rollout metrics (then its reward is the unguided one)."""
    return any(k.startswith(_T) for k in keys)


def step_line(fields: Mapping[str, Any]) -> str:
    """One condensed console line of a training step from verl's ``key:value`` step fields.

    ``reward`` is ``critic/score/mean`` for GRPO and QUATRO and the unguided rollouts' reward for TRAPO (guided rows
    apart as ``guided_r``); the algorithm's own columns follow.
    """
    trapo = is_trapo(fields)
    columns = [("step", "step"), (UNGUIDED_REWARD if trapo else REWARD, "reward"), *_COMMON]
    columns += list(_TRAPO) if trapo else [(k, k.split("/", 1)[1]) for k in fields if k.startswith(_QUATRO_PREFIXES)]
    columns.append(("timing_s/step", "step_s"))
    return "  ".join(f"{label}={_short(fields[key])}" for key, label in columns if key in fields)


def _short(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)[:10]
    return str(int(number)) if number.is_integer() and abs(number) < 1e6 else f"{number:.4g}"


def plot_curves(metrics: list[dict[str, Any]], path: Path, title: str) -> Path:
    """The demo's ``curves.png``: the generic run plot of :mod:`trustrl.recipes.curves` (TRAPO panels included)."""
    from trustrl.recipes.curves import plot_run

    return plot_run(metrics, path, title=title)


def window(n_steps: int) -> int:
    """Steps averaged at each end of a run in the summary: 6, fewer for a short run (half of it, at least 1)."""
    return max(1, min(6, n_steps // 2))


def _ends(values: list[float], k: int) -> tuple[float, float]:
    return sum(values[:k]) / len(values[:k]), sum(values[-k:]) / len(values[-k:])


def summarize(result, png: Path) -> str:
    """End-of-run text: mean of the first and last steps of the reward (unguided for TRAPO) and the key metrics."""
    metrics = result.metrics
    trapo = is_trapo({k for m in metrics for k in m})
    lines = [f"[trustrl] done in {result.wall_s:.0f}s, {len(metrics)} steps"]
    rewards = result.series(UNGUIDED_REWARD if trapo else REWARD)
    k = window(len(rewards))
    rows = [
        (UNGUIDED_REWARD, "reward of the model's own (unguided) rollouts") if trapo else (REWARD, "mean reward"),
    ]
    if trapo:
        rows += [
            (REWARD, "reward of all rows, guided included"),
            (GUIDED_REWARD, "reward of the guided rows"),
            (UNGUIDED_LENGTH, "unguided response length"),
            *[(key, f"guided share, micro-group {key[len(GUIDED_SHARE) :]}") for key in _group_keys(metrics)],
            (PREFIX_LEN, "expert prefix length (tokens)"),
            (SFT_NLL, "NLL of the expert (SFT) tokens"),
            (SFT_P_LT_ALPHA, "share of expert tokens with p < alpha"),
        ]
    else:
        rows += [(key, key) for key in _quatro_keys(metrics)]
    rows.append((ENTROPY, "entropy"))
    for key, label in rows:
        values = result.series(key)
        if values:
            first, last = _ends(values, window(len(values)))
            lines.append(f"[trustrl] {label}: first {window(len(values))} steps {first:.3f} -> last {last:.3f}")
    if trapo and rewards:
        lines.append(
            f"[trustrl] (reward above: unguided rows only, as the paper reports it; {k}-step means at each end)"
        )
    lines.append(f"[trustrl] curves: {png}")
    return "\n".join(lines)


def _group_keys(metrics: list[dict[str, Any]]) -> list[str]:
    keys = {k for m in metrics for k in m if k.startswith(GUIDED_SHARE) and k[len(GUIDED_SHARE) :].isdigit()}
    return sorted(keys, key=lambda k: int(k[len(GUIDED_SHARE) :]))


def _quatro_keys(metrics: list[dict[str, Any]]) -> list[str]:
    return sorted({k for m in metrics for k in m if k.startswith(_QUATRO_PREFIXES)})
