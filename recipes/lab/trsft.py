# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Experiment 3: Trust-Region SFT against SFT on a discrete bimodal expert.

A student categorical p_θ over C ordered categories learns from a bimodal expert p_E (two discretised Gaussians)
with the exact expected losses

    SFT:    −Σ_c p_E(c) · log p_θ(c)                                   (forward KL up to a constant)
    TrSFT:  Σ_c p_E(c) · ℓ_α(c),  ℓ_α = −sg(min(1, p_θ(c)/α)) · log p_θ(c)

where ℓ_α is the shipped per-token TrSFT loss (:func:`trustrl.policy_loss.trapo.trsft_token_loss`, Eq. (3) of
arXiv:2512.17636) evaluated on the row of all C log-probabilities. Adam on the exact losses, two student
parameterisations and two starts, all eight combinations:

* ``tabular``: free logits, one per category; it can represent TrSFT's optimum, so its converged solution is
  compared with Proposition 1: p*(c) = p_E(c)/λ on S = {c : p_E(c) > αλ}, 0 elsewhere, with λ = Σ_{c∈S} p_E(c)
  solved here independently of any training (by sorting p_E);
* ``smooth``: logits = a linear combination of a few wide radial basis functions of the category position, a
  stand-in for a model whose parameters are shared across neighbouring outputs. Moving mass to the far mode must
  then pass through the categories between the modes;
* start ``floor``: a bump just left of the first expert mode, mixed with a 5 % uniform floor, so every category, the far
  mode included, starts with probability ≥ 0.05/C;
* start ``bump``: the same bump without the floor; the far mode starts exponentially unlikely (log p ≈ −65).

Reported over training: snapshots of p_θ, KL(p_E ‖ p_θ), the distance to p*, and the probability mass in the
"void" (the categories between the two expert modes with p_E(c) < ``void_threshold``: neither mode supports
them) and outside S.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from trustrl.policy_loss.trapo import trsft_token_loss
from trustrl.recipes.lab._common import Log, Section, md_table, parallel_map, pyplot, save_figure, silent


@dataclass(frozen=True)
class TrsftConfig:
    """Sizes and constants of experiment 3."""

    num_categories: int = 32
    # expert: (weight, mean, std) per mode, positions in category units
    modes: tuple[tuple[float, float, float], ...] = ((0.55, 9.0, 1.0), (0.45, 24.0, 1.3))
    # student start: a bump near the first mode, mixed with a uniform floor of this total mass (one run each)
    student_mean: float = 7.0
    student_std: float = 1.5
    floors: tuple[float, ...] = (0.05, 0.0)
    students: tuple[str, ...] = ("tabular", "smooth")
    alpha: float = 0.1
    steps: int = 2000
    lr: float = 0.1
    snapshots: tuple[int, ...] = (0, 25, 100, 400)
    num_basis: int = 8
    basis_width: float = 3.0
    void_threshold: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        if "tabular" not in self.students or not any(f > 0 for f in self.floors):
            raise ValueError("the Proposition 1 check needs students to include 'tabular' and a floor > 0")
        unknown = sorted(set(self.students) - {"tabular", "smooth"})
        if unknown:
            raise ValueError(f"unknown student kind(s) {unknown}; use 'tabular' and/or 'smooth'")


def discretised_mixture(num_categories: int, modes) -> torch.Tensor:
    """Σ_i w_i N(x; μ_i, σ_i²) on x = 0..C−1, normalised over the categories (float64)."""
    x = torch.arange(num_categories, dtype=torch.float64)
    density = sum(w * torch.exp(-0.5 * ((x - mu) / sd) ** 2) / sd for w, mu, sd in modes)
    return density / density.sum()


def proposition1(p_expert: torch.Tensor, alpha: float) -> tuple[torch.Tensor, float, torch.Tensor]:
    """TrSFT's optimum by Proposition 1 of arXiv:2512.17636, solved without training.

    λ is the unique fixed point λ = Σ_{c: p_E(c) > αλ} p_E(c). With p_E sorted in decreasing order and
    λ_k = Σ_{j≤k} p_(j), the support is the top k with p_(k) > α λ_k ≥ p_(k+1) (first such k).

    Returns:
        (p*, λ, S): p* (C,) float64, λ, and the support S as a bool mask.
    """
    order = torch.argsort(p_expert, descending=True)
    sorted_p = p_expert[order]
    cumulative = torch.cumsum(sorted_p, 0)
    following = torch.cat([sorted_p[1:], sorted_p.new_zeros(1)])
    fits = (sorted_p > alpha * cumulative) & (following <= alpha * cumulative)
    k = int(torch.nonzero(fits)[0]) + 1
    lam = float(cumulative[k - 1])
    support = torch.zeros_like(p_expert, dtype=torch.bool)
    support[order[:k]] = True
    return torch.where(support, p_expert / lam, torch.zeros_like(p_expert)), lam, support


class Student(torch.nn.Module):
    """Categorical student: free logits (``tabular``) or logits = RBF features · θ (``smooth``)."""

    def __init__(self, kind: str, cfg: TrsftConfig, floor: float):
        super().__init__()
        x = torch.arange(cfg.num_categories, dtype=torch.float64)
        bump = torch.exp(-0.5 * ((x - cfg.student_mean) / cfg.student_std) ** 2)
        # start logits: log((1−floor)·bump + floor/C); tabular fits them exactly, smooth by least squares
        start = torch.log((1 - floor) * bump / bump.sum() + floor / cfg.num_categories)
        if kind == "tabular":
            self.features = torch.eye(cfg.num_categories, dtype=torch.float64)
        elif kind == "smooth":
            centres = torch.linspace(0, cfg.num_categories - 1, cfg.num_basis, dtype=torch.float64)
            rbf = torch.exp(-0.5 * ((x[:, None] - centres[None]) / cfg.basis_width) ** 2)
            self.features = torch.cat([rbf, torch.ones_like(x)[:, None]], dim=1)
        else:
            raise ValueError(f"unknown student kind {kind!r}; use 'tabular' or 'smooth'")
        theta = torch.linalg.lstsq(self.features, start.unsqueeze(-1)).solution.squeeze(-1)
        self.theta = torch.nn.Parameter(theta)

    def log_probs(self) -> torch.Tensor:
        return torch.log_softmax(self.features @ self.theta, dim=-1)


def expected_loss(method: str, log_probs: torch.Tensor, p_expert: torch.Tensor, alpha: float) -> torch.Tensor:
    """E_{c~p_E}[per-category loss]: SFT's −log p, or the shipped TrSFT token loss on the row of log p."""
    if method == "sft":
        return -(p_expert * log_probs).sum()
    token_loss, _ = trsft_token_loss(log_probs.unsqueeze(0), alpha)
    return (p_expert * token_loss.squeeze(0)).sum()


@dataclass
class Trajectory:
    """One (student, method) training run."""

    kind: str
    method: str
    floor: float
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    kl_expert: list[float] = field(default_factory=list)  # KL(p_E ‖ p_θ) per step (step 0 = start)
    l1_to_optimum: list[float] = field(default_factory=list)  # Σ_c |p_θ − p*|
    void_mass: list[float] = field(default_factory=list)  # Σ_{void} p_θ
    pruned_mass: list[float] = field(default_factory=list)  # Σ_{c ∉ S} p_θ
    final: np.ndarray | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.method.upper()}, start {start_name(self.floor)}"


def start_name(floor: float) -> str:
    """The start's name: ``floor`` (uniform floor mixed in) or ``bump`` (none)."""
    return "floor" if floor > 0 else "bump"


def _kl(p: torch.Tensor, log_q: torch.Tensor) -> float:
    return float(torch.where(p > 0, p * (torch.log(p) - log_q), torch.zeros_like(p)).sum())


def void_region(p_expert: torch.Tensor, cfg: TrsftConfig) -> torch.Tensor:
    """Categories strictly between the two outermost mode means where p_E < ``cfg.void_threshold``."""
    x = torch.arange(cfg.num_categories, dtype=torch.float64)
    means = [mu for _, mu, _ in cfg.modes]
    return (x > min(means)) & (x < max(means)) & (p_expert < cfg.void_threshold)


def train(kind: str, method: str, floor: float, cfg: TrsftConfig, p_expert, p_star, support, void) -> Trajectory:
    """Adam on the exact expected loss for ``cfg.steps`` steps, recording every step."""
    torch.manual_seed(cfg.seed)
    student = Student(kind, cfg, floor)
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    out = Trajectory(kind, method, floor)
    for step in range(cfg.steps + 1):
        log_probs = student.log_probs()
        with torch.no_grad():
            probs = log_probs.exp()
            out.kl_expert.append(_kl(p_expert, log_probs))
            out.l1_to_optimum.append(float((probs - p_star).abs().sum()))
            out.void_mass.append(float(probs[void].sum()))
            out.pruned_mass.append(float(probs[~support].sum()))
            if step in cfg.snapshots:
                out.snapshots[step] = probs.numpy().copy()
        if step == cfg.steps:
            out.final = probs.numpy().copy()
            out.snapshots[step] = out.final
            break
        loss = expected_loss(method, log_probs, p_expert, cfg.alpha)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return out


def _figure_snapshots(runs: list[Trajectory], p_expert, p_star, cfg: TrsftConfig, path: Path) -> Path:
    """One panel per run (rows: starts, columns: student × loss); snapshots overlaid from light to dark."""
    plt = pyplot()
    floors = sorted({r.floor for r in runs}, reverse=True)
    columns = [(kind, method) for kind in cfg.students for method in ("sft", "trsft")]
    fig, axes = plt.subplots(
        len(floors), len(columns), figsize=(4.0 * len(columns), 3.0 * len(floors)), squeeze=False, sharey=True
    )
    x = np.arange(cfg.num_categories)
    steps = sorted(runs[0].snapshots)
    for run in runs:
        ax = axes[floors.index(run.floor), columns.index((run.kind, run.method))]
        ax.fill_between(x, p_expert.numpy(), step="mid", color="lightgrey", label="expert p_E")
        ax.step(x, p_star.numpy(), where="mid", color="black", lw=0.8, ls=":", label="Prop. 1 p*")
        cmap = plt.get_cmap("Reds" if run.method == "sft" else "Blues")
        for i, step in enumerate(steps):
            shade = cmap(0.3 + 0.7 * i / max(len(steps) - 1, 1))
            ax.plot(x, run.snapshots[step], "-", marker=".", ms=3, lw=1.2, color=shade, label=f"step {step}")
        ax.set_title(run.label, fontsize=9)
        ax.set_xlabel("category", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    axes[0, 0].set_ylim(0, max(0.5, float(p_star.max()) * 1.1))
    fig.suptitle(f"Student snapshots over training (α = {cfg.alpha:g}, Adam lr {cfg.lr:g})", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _figure_curves(runs: list[Trajectory], cfg: TrsftConfig, path: Path) -> Path:
    plt = pyplot()
    panels = (
        ("kl_expert", "KL(p_E ‖ p_θ)"),
        ("l1_to_optimum", "Σ|p_θ − p*| (Prop. 1)"),
        ("void_mass", f"void mass (between modes, p_E < {cfg.void_threshold:g})"),
        ("pruned_mass", "mass outside S"),
    )
    floors = sorted({r.floor for r in runs}, reverse=True)
    fig, axes = plt.subplots(len(floors), len(panels), figsize=(4.0 * len(panels), 3.2 * len(floors)), squeeze=False)
    for ax_row, floor in zip(axes, floors):
        for ax, (attr, title) in zip(ax_row, panels):
            for run in (r for r in runs if r.floor == floor):
                color = "tab:red" if run.method == "sft" else "tab:blue"
                style = "-" if run.kind == "tabular" else "--"
                values = np.maximum(np.array(getattr(run, attr)), 1e-12)
                # ~150 log-spaced points: enough for a log axis, and fast to draw
                at = np.unique(np.concatenate([[0], np.geomspace(1, len(values), 150).astype(int) - 1]))
                ax.plot(at, values[at], style, color=color, label=f"{run.kind} {run.method.upper()}")
            ax.set_yscale("log")
            ax.set_xscale("symlog", linthresh=10)
            ax.set_xlim(0, cfg.steps)
            ax.set_title(f"{title}, start {start_name(floor)}", fontsize=9)
            ax.set_xlabel("Adam step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def _peak(values: list[float]) -> str:
    return f"{max(values):.3f} (step {int(np.argmax(values))})"


def _train_all(cfg: TrsftConfig, p_expert, p_star, support, void, log: Log, pool: Executor | None) -> list[Trajectory]:
    """Train every (start, student, loss) on ``pool``, logging each finished run."""
    jobs = [
        (kind, method, floor, cfg, p_expert, p_star, support, void)
        for floor in cfg.floors
        for kind in cfg.students
        for method in ("sft", "trsft")
    ]

    def progress(_, r: Trajectory) -> None:
        log(f"exp3 {r.label}: final KL(p_E‖p) {r.kl_expert[-1]:.3g}, peak void mass {max(r.void_mass):.3f}")

    return parallel_map(train, jobs, pool, progress)


def _draw(runs: list[Trajectory], p_expert, p_star, cfg: TrsftConfig, out_dir: Path) -> list[Path]:
    """Write the snapshot and curve figures to ``out_dir``."""
    return [
        _figure_snapshots(runs, p_expert, p_star, cfg, out_dir / "fig3_trsft_snapshots.png"),
        _figure_curves(runs, cfg, out_dir / "fig3_trsft_curves.png"),
    ]


def _results_table(runs: list[Trajectory], p_star) -> str:
    """The markdown table of every run's final and peak quantities."""
    rows = [
        [
            start_name(r.floor),
            r.kind,
            r.method.upper(),
            f"{r.kl_expert[-1]:.4f}",
            f"{r.l1_to_optimum[-1]:.2e}",
            f"{float(np.abs(r.final - p_star.numpy()).max()):.2e}",
            _peak(r.void_mass),
            f"{r.void_mass[-1]:.1e}",
            f"{r.pruned_mass[-1]:.2e}",
        ]
        for r in runs
    ]
    return md_table(
        [
            "start",
            "student",
            "loss",
            "final KL(p_E‖p_θ)",
            # pipes escaped: a bare | splits a markdown table cell
            "final Σ\\|p_θ − p*\\|",
            "final max\\|p_θ − p*\\|",
            "peak void mass",
            "final void mass",
            "final mass outside S",
        ],
        rows,
    )


def _far_mode(cfg: TrsftConfig) -> tuple[np.ndarray, float]:
    """The far mode as (mask, midpoint): categories past the midpoint of the outermost mode means.

    The start bump sits at the near mode.

    >>> mask, midpoint = _far_mode(TrsftConfig())
    >>> midpoint, int(mask.sum())
    (16.5, 15)
    """
    x = np.arange(cfg.num_categories)
    means = [mu for _, mu, _ in cfg.modes]
    midpoint = 0.5 * (min(means) + max(means))
    return x > midpoint, midpoint


def _per_student(cfg: TrsftConfig, value) -> str:
    """``"<kind> student, start <start>: <value(kind, floor)>"`` for every (start, student), joined by ``"; "``."""
    return "; ".join(
        f"{kind} student, start {start_name(f)}: {value(kind, f)}" for f in cfg.floors for kind in cfg.students
    )


def _setup_text(cfg: TrsftConfig, void, lam: float, support) -> list[str]:
    """The report's first two paragraphs: the setup, and Proposition 1's solution."""
    support_idx = torch.nonzero(support).flatten().tolist()
    return [
        f"C = {cfg.num_categories} categories; expert modes (weight, mean, std) = {list(cfg.modes)}; student "
        f"starts as a bump at {cfg.student_mean:g} (std {cfg.student_std:g}) with a uniform floor of total "
        f"mass {list(cfg.floors)}; α = {cfg.alpha:g}; {cfg.steps} Adam steps at lr {cfg.lr:g} on the exact "
        f"expected loss. Void: the {int(void.sum())} categories between the modes with "
        f"p_E < {cfg.void_threshold:g} ({torch.nonzero(void).flatten().tolist()}).",
        f"Proposition 1 (solved by sorting, no training): λ = {lam:.6f}, S = {support_idx} "
        f"({int(support.sum())} categories), expert mass outside S = {1 - lam:.4f}.",
    ]


def _findings(cfg: TrsftConfig, by: dict, err: float, far_mass: dict, p_expert, p_star) -> list[str]:
    """The report's bullet points: Proposition 1's check, the mass outside S, the void and the far mode."""
    floor = max(cfg.floors)
    tab_trsft, tab_sft = by["tabular", "trsft", floor], by["tabular", "sft", floor]
    far, midpoint = _far_mode(cfg)
    expert_far, star_far = float(p_expert.numpy()[far].sum()), float(p_star.numpy()[far].sum())
    return [
        f"- Tabular TrSFT from the floor start vs Proposition 1: max |p_θ − p*| = {err:.2e}.",
        f"- Tabular SFT from the floor start ends at p_E (KL(p_E‖p_θ) = {tab_sft.kl_expert[-1]:.1e}) and keeps "
        f"{tab_sft.pruned_mass[-1]:.4f} of its mass outside S, where tabular TrSFT keeps "
        f"{tab_trsft.pruned_mass[-1]:.1e}.",
        "- Peak void mass (between the modes, where p_E < "
        f"{cfg.void_threshold:g}), SFT vs TrSFT: "
        + _per_student(
            cfg, lambda kind, f: f"{max(by[kind, 'sft', f].void_mass):.3f} vs {max(by[kind, 'trsft', f].void_mass):.3f}"
        )
        + ".",
        f"- Final mass on the far mode (categories > {midpoint:g}; expert {expert_far:.3f}, "
        f"p* {star_far:.3f}), SFT vs TrSFT: "
        + _per_student(cfg, lambda kind, f: f"{far_mass[kind, 'sft', f]:.3f} vs {far_mass[kind, 'trsft', f]:.3g}")
        + ". TrSFT's gradient on a category is weighted by min(1, p_θ/α), so a mode the student starts "
        "without receives almost no pull.",
    ]


def _numbers(runs: list[Trajectory], by: dict, cfg: TrsftConfig, lam: float, support, err: float, far_mass: dict):
    """The section's numbers for ``numbers.json``."""
    floor = max(cfg.floors)
    tab_trsft, tab_sft = by["tabular", "trsft", floor], by["tabular", "sft", floor]
    numbers = {
        "lambda": lam,
        "support_size": int(support.sum()),
        "tabular_trsft_max_abs_err": err,
        "tabular_sft_mass_outside_support": tab_sft.pruned_mass[-1],
        "tabular_trsft_mass_outside_support": tab_trsft.pruned_mass[-1],
    }
    for (kind, method, f), mass in far_mass.items():
        numbers[f"{kind}_{method}_{start_name(f)}_final_far_mode_mass"] = mass
    for r in runs:
        tag = f"{r.kind}_{r.method}_{start_name(r.floor)}"
        numbers[f"{tag}_peak_void_mass"] = max(r.void_mass)
        numbers[f"{tag}_final_kl_expert"] = r.kl_expert[-1]
    return numbers


def run(
    out_dir: Path,
    cfg: TrsftConfig | None = None,
    log: Log = silent,
    pool: Executor | None = None,
    draw: bool = True,
) -> Section:
    """Train every (start, student, loss), write two figures (unless ``draw`` is off) and return the section."""
    cfg = cfg or TrsftConfig()
    start = time.perf_counter()
    p_expert = discretised_mixture(cfg.num_categories, cfg.modes)
    p_star, lam, support = proposition1(p_expert, cfg.alpha)
    void = void_region(p_expert, cfg)
    runs = _train_all(cfg, p_expert, p_star, support, void, log, pool)
    by = {(r.kind, r.method, r.floor): r for r in runs}
    err = float(np.abs(by["tabular", "trsft", max(cfg.floors)].final - p_star.numpy()).max())
    log(
        f"exp3: λ = {lam:.4f}, |S| = {int(support.sum())}/{cfg.num_categories}; "
        f"tabular TrSFT (start floor) max |p − p*| = {err:.1e}"
    )
    figures = _draw(runs, p_expert, p_star, cfg, out_dir) if draw else []
    far, _ = _far_mode(cfg)
    far_mass = {(r.kind, r.method, r.floor): float(r.final[far].sum()) for r in runs}
    body = "\n\n".join(
        [
            *_setup_text(cfg, void, lam, support),
            _results_table(runs, p_star),
            *_findings(cfg, by, err, far_mass, p_expert, p_star),
        ]
    )
    numbers = _numbers(runs, by, cfg, lam, support, err, far_mass)
    return Section("3. TrSFT vs SFT on a discrete mixture", body, figures, numbers, time.perf_counter() - start)
