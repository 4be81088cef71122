# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Experiment 2's figures, tables and observations, read off the runs of :mod:`trustrl.recipes.lab.staleness`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from trustrl.recipes.lab._common import md_table, pyplot, save_figure
from trustrl.recipes.lab.staleness import METHODS, PopulationResult, RunResult, StalenessConfig

__all__ = [
    "figure_curves",
    "figure_kl",
    "figure_population",
    "grid_runs",
    "grid_table",
    "observations",
    "population_table",
]

# ------------------------------------------------------------------------------------------ figures, report


def grid_runs(runs: list[RunResult], cfg: StalenessConfig) -> list[RunResult]:
    return [r for r in runs if r.delta == cfg.delta or r.method != "quatro"]


def _mean_curve(runs: list[RunResult], attr: str) -> np.ndarray:
    return np.mean([getattr(r, attr) for r in runs], axis=0)


def figure_curves(runs, cfg: StalenessConfig, path: Path) -> Path:
    plt = pyplot()
    rows = [(q, lr) for q in ("reward", "entropy") for lr in cfg.lrs]
    fig, axes = plt.subplots(len(rows), len(cfg.ks), figsize=(4.2 * len(cfg.ks), 2.6 * len(rows)), squeeze=False)
    grid = grid_runs(runs, cfg)
    for (quantity, lr), ax_row in zip(rows, axes):
        for k, ax in zip(cfg.ks, ax_row):
            for key in cfg.methods:
                sel = [r for r in grid if r.method == key and r.k == k and r.lr == lr]
                if sel:
                    ax.plot(_mean_curve(sel, quantity), label=METHODS[key].name)
            ax.set_title(f"{quantity}, K={k}, lr={lr:g}", fontsize=9)
            ax.set_xlabel("iteration (rollout batch)", fontsize=8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(
        f"Exact mean reward and entropy (nats/response) over {cfg.num_prompts} prompts; "
        f"QUATRO δ={cfg.delta:g}, {len(cfg.seeds)} seed(s)",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path)


_KL_FLOOR = 1e-6


def _kl_values(runs: list[RunResult], active: bool) -> np.ndarray:
    """Per-prompt KLs of ``runs`` (all prompt-iterations or the active ones), floored for a log axis."""
    values = [r.kl[r.active] if active else r.kl.reshape(-1) for r in runs]
    values = np.concatenate(values) if values else np.zeros(0)
    return np.maximum(values if values.size else np.zeros(1), _KL_FLOOR)


def figure_kl(runs, cfg: StalenessConfig, path: Path) -> Path:
    plt = pyplot()
    grid = grid_runs(runs, cfg)
    sweep = sorted({r.delta for r in runs if r.method == "quatro"})
    k_max = max(cfg.ks)
    ncols = len(cfg.ks) + (1 if len(sweep) > 1 else 0)
    fig, axes = plt.subplots(len(cfg.lrs), ncols, figsize=(4.2 * ncols, 3.4 * len(cfg.lrs)), squeeze=False)
    colors = dict(zip(cfg.methods, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    # one y range for all method panels, so the K and lr panels compare at a glance
    top = max(2 * max(float(r.kl.max()) for r in grid), 10 * cfg.delta)
    for ax_row, lr in zip(axes, cfg.lrs):
        for k, ax in zip(cfg.ks, ax_row):
            data, labels, box_colors = [], [], []
            for key in cfg.methods:
                sel = [r for r in grid if r.method == key and r.k == k and r.lr == lr]
                if not sel:
                    continue
                data += [_kl_values(sel, active=False), _kl_values(sel, active=True)]
                labels += [f"{METHODS[key].name}\nall", f"{METHODS[key].name}\nactive"]
                box_colors += [colors[key]] * 2
            boxes = ax.boxplot(data, whis=(0, 100), patch_artist=True, widths=0.6)
            for patch, color, j in zip(boxes["boxes"], box_colors, range(len(data))):
                patch.set(facecolor=color, alpha=0.35 if j % 2 == 0 else 0.75)
            ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
            ax.set_yscale("log")
            ax.axhline(cfg.delta, color="black", ls="--", lw=1, label=f"δ={cfg.delta:g}")
            ax.set_title(f"K={k}, lr={lr:g}", fontsize=9)
            ax.set_ylim(_KL_FLOOR / 2, top)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3, axis="y")
        if ncols > len(cfg.ks):
            ax = ax_row[-1]
            quatro = [r for r in runs if r.method == "quatro" and r.k == k_max and r.lr == lr]
            data = [_kl_values([r for r in quatro if r.delta == d], active=True) for d in sweep]
            ax.boxplot(data, whis=(0, 100), widths=0.5)
            ax.set_xticks(range(1, len(sweep) + 1), [f"δ={d:g}" for d in sweep], fontsize=8)
            ax.plot(range(1, len(sweep) + 1), sweep, "k_", ms=30, mew=2)
            ax.set_yscale("log")
            ax.set_title(f"QUATRO, active prompts, K={k_max}, lr={lr:g} (bar: δ)", fontsize=9)
            ax.grid(alpha=0.3, axis="y")
    fig.suptitle(
        "Per-prompt KL(π_new‖π_old) after each rollout batch's K updates, all prompt-iterations\n"
        f"(box: quartiles, whiskers: min-max, values below {_KL_FLOOR:g} drawn at {_KL_FLOOR:g}; "
        "'active': the sampled group had 0 < c < G)",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path)


def figure_population(pop: PopulationResult, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":"]
    for i, (delta, curve) in enumerate(pop.quatro_kl.items()):
        for j in range(curve.shape[1]):
            label = f"QUATRO δ={delta:g}" if j == 0 else None
            ax.plot(pop.steps, curve[:, j], styles[j % 3], color=colors[i], label=label)
        ax.axhline(delta, color=colors[i], lw=0.6, alpha=0.6)
    for i, (name, curve) in enumerate(pop.baseline_kl.items()):
        for j in range(curve.shape[1]):
            ax.plot(pop.steps, curve[:, j], styles[j % 3], color=colors[3 + i], label=name if j == 0 else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Adam step on one fixed batch (K → ∞)")
    ax.set_ylabel("KL(π_θ ‖ π_old), exact")
    ps = ", ".join(f"{p:.2f}" for p in pop.success_old)
    ax.set_title(f"Population check: tabular policy, whole response space as the group (p = {ps}: -, --, :)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def _fmt(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e3:
        return f"{value:.3f}"
    return f"{value:.2e}"


def grid_table(runs: list[RunResult], cfg: StalenessConfig) -> str:
    keys = [
        "reward_mid",
        "reward_final",
        "entropy_final",
        "kl_median",
        "kl_p90",
        "kl_max",
        "kl_active_median",
        "kl_active_p90",
        "share_active_above_2delta",
    ]
    headers = [
        "lr",
        "K",
        "method",
        "δ",
        f"reward @{cfg.iterations // 2}",
        "final reward",
        "final entropy",
        "KL median",
        "KL p90",
        "KL max",
        "KL median (active)",
        "KL p90 (active)",
        "share KL>2δ (active)",
        "collapsed / diverged",
    ]
    rows = []
    order = sorted({(r.lr, r.k, list(METHODS).index(r.method), r.delta) for r in runs})
    for lr, k, method_idx, delta in order:
        key = list(METHODS)[method_idx]
        sel = [r for r in runs if (r.lr, r.k, r.method, r.delta) == (lr, k, key, delta)]
        summaries = [r.summary() for r in sel]
        mean = {name: float(np.mean([s[name] for s in summaries])) for name in keys}
        bad = f"{int(sum(s['collapsed'] for s in summaries))}/{int(sum(s['diverged'] for s in summaries))}"
        delta_cell = f"{delta:g}" if key == "quatro" else "-"
        rows.append([f"{lr:g}", k, METHODS[key].name, delta_cell, *(_fmt(mean[name]) for name in keys), bad])
    return md_table(headers, rows)


def population_table(pop: PopulationResult) -> str:
    rows = []
    for delta, curve in pop.quatro_kl.items():
        for j, p in enumerate(pop.success_old):
            rows.append(
                [
                    f"{p:.3f}",
                    f"QUATRO δ={delta:g}",
                    f"{pop.target_success[delta][j]:.4f}",
                    f"{pop.quatro_success[delta][j]:.4f}",
                    f"{curve[-1, j]:.5f}",
                ]
            )
    for name, curve in pop.baseline_kl.items():
        for j, p in enumerate(pop.success_old):
            rows.append([f"{p:.3f}", name, "-", "-", f"{curve[-1, j]:.5f}"])
    return md_table(["p under π_old", "method", "target p'", "final p", "final KL(π‖π_old)"], rows)


def _mean_summary(runs: list[RunResult], key: str, k: int, lr: float, delta: float) -> dict[str, float]:
    """Seed-mean summary of the runs of one method at (K, lr); QUATRO's at radius ``delta``."""
    sel = [r for r in runs if (r.method, r.k, r.lr) == (key, k, lr) and (key != "quatro" or r.delta == delta)]
    summaries = [r.summary() for r in sel]
    return {name: float(np.mean([s[name] for s in summaries])) for name in summaries[0]}


def observations(runs: list[RunResult], cfg: StalenessConfig) -> str:
    """What the grid shows, read off the numbers (no claim is written in advance)."""
    k_max = max(cfg.ks)
    names = {key: METHODS[key].name for key in cfg.methods}
    lines = []
    for lr in cfg.lrs:
        at = {(key, k): _mean_summary(runs, key, k, lr, cfg.delta) for key in cfg.methods for k in cfg.ks}
        growth = "; ".join(
            f"{names[key]} " + " → ".join(_fmt(at[key, k]["kl_active_p90"]) for k in cfg.ks) for key in cfg.methods
        )
        ks = ", ".join(map(str, cfg.ks))
        lines.append(f"- lr {lr:g}, KL p90 on active prompts at K = {ks}: {growth} (δ = {cfg.delta:g}).")
        final = "; ".join(
            f"{names[key]} reward {at[key, k_max]['reward_final']:.3f}, entropy {at[key, k_max]['entropy_final']:.2f}, "
            f"KL max {_fmt(at[key, k_max]['kl_max'])}, collapsed {at[key, k_max]['collapsed']:.0%} of seeds"
            for key in cfg.methods
        )
        lines.append(f"- lr {lr:g}, K = {k_max}: {final}.")
        grpo = [r for r in runs if (r.method, r.k, r.lr) == ("grpo", 1, lr)]
        gspo = [r for r in runs if (r.method, r.k, r.lr) == ("gspo", 1, lr)]
        if grpo and len(grpo) == len(gspo):
            gap = max(float(np.abs(a.kl - b.kl).max()) for a, b in zip(grpo, gspo))
            lines.append(
                f"- lr {lr:g}, K = 1: max |KL difference| between the GRPO and GSPO runs {gap:.1e} (with one step per "
                "batch the ratio is 1 and no clip binds, so the two losses give the same gradient)."
            )
    radii = sorted({r.delta for r in runs if r.method == "quatro" and r.k == k_max})
    if len(radii) > 1:
        for lr in cfg.lrs:
            medians = ", ".join(
                f"δ={d:g}: {_fmt(_mean_summary(runs, 'quatro', k_max, lr, d)['kl_active_median'])}" for d in radii
            )
            lines.append(f"- QUATRO, K = {k_max}, lr {lr:g}, KL median on active prompts: {medians}.")
    return "\n".join(lines)
