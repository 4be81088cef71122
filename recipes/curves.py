# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Training curves of any verl run from its ``file`` logger: ``python -m trustrl.recipes.curves RUN --out curves.png``.

verl's ``file`` logger (``trainer.logger=[...,file]``) writes one JSON line per step, ``{"step": s, "data": {...}}``,
to ``$VERL_FILE_LOGGER_PATH`` or else ``<VERL_FILE_LOGGER_ROOT or .>/<project_name>/<experiment_name>.jsonl``.
``RUN`` is such a file or a folder holding one (``metrics.jsonl`` first, then the ``metrics_<time>.jsonl`` files the
launch scripts write next to the checkpoints, one per launch of a resumed run, else the only ``*.jsonl`` below it);
several ``RUN`` arguments are drawn on the same axes, one line per run.

The figure is a grid of panels with plain titles: reward, policy entropy, response length and gradient norm for
every run, validation accuracy when the run validated, then the algorithm's own metrics:

* QUATRO: λ_q (the per-prompt dual variable), the share of prompts whose KL constraint is active, the per-prompt
  KL estimate and the gap between the target log-ratio and the achieved one (``quatro/*``, ``actor/quatro/*``).
* TRAPO: reward and length of the unguided rollouts, the guided share per micro-group, the expert prefix length,
  the SFT-token NLL and the share of expert tokens with p < α (``rollout/trapo/*``, ``actor/trapo/*``).

The algorithm is found from the metric names (``--algo`` to force it). From Python: :func:`plot_run` on a list of
per-step dicts (``{"step": s, key: value, ...}``), :func:`read_file_log` to load one.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ALGOS", "Panel", "detect_algo", "panels_for", "plot_run", "plot_runs", "read_file_log", "resolve_log"]

ALGOS = ("quatro", "trapo")


@dataclass(frozen=True)
class Panel:
    """One subplot: a title, a y label and the metric keys drawn in it (``(key, legend label)``)."""

    title: str
    ylabel: str
    series: tuple[tuple[str, str], ...]
    # keys matched by prefix (sorted), e.g. one line per micro-group
    prefix_series: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def keys(self, available: set[str]) -> list[tuple[str, str]]:
        out = [(k, label) for k, label in self.series if k in available]
        for prefix, label in self.prefix_series:
            out += [(k, label + k[len(prefix) :]) for k in sorted(available) if k.startswith(prefix)]
        return out


_T = "rollout/trapo/"
COMMON = (
    Panel(
        "Reward",
        "mean score per response",
        (("critic/score/mean", "all rollouts"), (_T + "unguided/reward_mean", "unguided (TRAPO)")),
    ),
    Panel("Policy entropy", "nats per token", (("actor/entropy", "entropy"),)),
    Panel(
        "Response length",
        "tokens",
        (("response_length/mean", "all rollouts"), (_T + "unguided/response_length_mean", "unguided (TRAPO)")),
    ),
    Panel("Gradient norm", "‖g‖ before clipping", (("actor/grad_norm", "grad norm"),)),
)
QUATRO = (
    Panel(
        "QUATRO λ_q (per-prompt dual variable)",
        "reward units",
        (("quatro/lambda_mean", "mean"), ("quatro/lambda_min", "min"), ("quatro/lambda_max", "max")),
    ),
    Panel(
        "QUATRO prompts with an active KL constraint",
        "share of prompt groups",
        (
            ("quatro/share_active", "active (KL = δ_q)"),
            ("quatro/share_slack", "slack"),
            ("quatro/share_all_equal", "all rewards equal"),
        ),
    ),
    Panel("QUATRO per-prompt KL estimate", "ρ log ρ − ρ + 1", (("actor/quatro/seq_kl", "seq KL"),)),
    Panel("QUATRO target gap", "mean |T − log ρ|", (("actor/quatro/target_gap", "gap"),)),
)
TRAPO = (
    Panel(
        "TRAPO guided share per micro-group",
        "share of prompts",
        (("rollout/trapo/guided_share/any", "any group"),),
        ((_T + "guided_share/g", "group "),),
    ),
    Panel(
        "TRAPO expert prefix length",
        "tokens",
        ((_T + "prefix_len/mean", "mean"),),
        ((_T + "prefix_len/g", "group "),),
    ),
    Panel("TRAPO SFT-token NLL", "−log p on expert tokens", (("actor/trapo/sft_nll", "NLL"),)),
    Panel(
        "TRAPO expert tokens with p < α",
        "share / probability",
        (("actor/trapo/sft_p_lt_alpha_share", "p < α"), ("actor/trapo/sft_p_mean", "mean p")),
    ),
)
ALGO_PANELS = {"quatro": QUATRO, "trapo": TRAPO}
_ALGO_MARKERS = {"quatro": ("quatro/", "actor/quatro/"), "trapo": (_T, "actor/trapo/")}
# verl's validation keys: val-core/<data_source>/<reward key>/mean@N (see verl/trainer/ppo/metric_utils.py)
_VAL_PREFIX = "val-core/"


def resolve_log(path: str | Path) -> Path:
    """The log of ``path``: the file itself; in a folder ``metrics.jsonl``, the folder itself when it holds several
    ``metrics_*.jsonl`` launches of one run (read together by :func:`read_file_log`), else the only ``*.jsonl``."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder (give verl's file-logger .jsonl or its run folder)")
    if (path / "metrics.jsonl").is_file():
        return path / "metrics.jsonl"
    segments = sorted(path.glob("metrics_*.jsonl"))
    if segments:
        return segments[-1] if len(segments) == 1 else path
    found = sorted(path.rglob("*.jsonl"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise FileNotFoundError(
            f"{path}: no *.jsonl below it; run with trainer.logger=[console,file] (verl writes "
            "$VERL_FILE_LOGGER_PATH or ./<project_name>/<experiment_name>.jsonl)"
        )
    listing = "\n  ".join(str(f) for f in found[:20])
    raise ValueError(f"{path}: {len(found)} *.jsonl files below it, name one (or several) of them:\n  {listing}")


def read_file_log(path: str | Path) -> list[dict[str, Any]]:
    """Per-step dicts ``{"step": s, **data}`` of a verl file-logger file (or run folder), in file order.

    A folder with several ``metrics_<time>.jsonl`` files (one per launch, as ``scripts/train/common.sh`` writes them
    next to the checkpoints) is one run resumed: the files are read in name order, and a step logged again after
    a resume replaces the earlier record (see :func:`_series`). Lines that are not JSON (a run killed mid-write
    leaves a partial last line) are skipped and counted on stderr. Rows already flat (``{"step": s, key: value}``)
    are accepted as they are.
    """
    path = resolve_log(path)
    if path.is_dir():
        return [row for segment in sorted(path.glob("metrics_*.jsonl")) for row in read_file_log(segment)]
    rows, bad = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad.append(lineno)
            continue
        if not isinstance(row, dict) or "step" not in row:
            bad.append(lineno)
            continue
        data = row.get("data")
        rows.append({"step": row["step"], **data} if isinstance(data, dict) else dict(row))
    if bad:
        print(f"[curves] {path}: skipped {len(bad)} line(s) that are not step records: {bad[:10]}", file=sys.stderr)
    return rows


def detect_algo(metrics: Sequence[Mapping[str, Any]]) -> str | None:
    """``quatro`` or ``trapo`` when the run logged that algorithm's metrics, else ``None``."""
    keys = {k for m in metrics for k in m}
    for algo, markers in _ALGO_MARKERS.items():
        if any(k.startswith(markers) for k in keys):
            return algo
    return None


def _series(metrics: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one key; non-numeric and non-finite values are left out; a repeated step keeps the last."""
    by_step: dict[float, float] = {}
    for m in metrics:
        v = m.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        by_step[m["step"]] = float(v)
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def _val_panel(available: set[str]) -> Panel | None:
    keys = sorted(k for k in available if k.startswith(_VAL_PREFIX) and "/mean@" in k)
    if not keys:
        return None
    # val-core/<source>/<reward key>/mean@N -> "<source> mean@N"
    series = tuple((k, " ".join(p for i, p in enumerate(k.split("/")[1:]) if i != 1)) for k in keys[:6])
    return Panel("Validation accuracy", "mean score", series)


def panels_for(metrics: Sequence[Mapping[str, Any]], algo: str | None = None) -> list[Panel]:
    """Panels with at least one logged key: the common ones, validation, then ``algo``'s (detected if ``None``)."""
    if algo is not None and algo not in ALGO_PANELS:
        raise ValueError(f"algo must be one of {ALGOS} or None (detect from the metric names), got {algo!r}")
    algo = algo or detect_algo(metrics)
    available = {k for m in metrics for k in m}
    candidates = [*COMMON, _val_panel(available), *ALGO_PANELS.get(algo, ())]
    return [p for p in candidates if p is not None and p.keys(available)]


def plot_runs(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | Path,
    title: str | None = None,
    algo: str | None = None,
    ncols: int = 3,
) -> Path:
    """Draw several runs (``{label: per-step dicts}``) on one grid of panels; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not runs or not any(runs.values()):
        raise ValueError("no step records to plot (is trainer.logger set to include 'file'?)")
    merged = [m for ms in runs.values() for m in ms]
    panels = panels_for(merged, algo)
    if not panels:
        raise ValueError("none of the plotted metrics is in the log (reward, entropy, response length, ...)")
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.3 * nrows), squeeze=False)
    multi = len(runs) > 1
    for ax, panel in zip(axes.flat, panels):
        for run_label, metrics in runs.items():
            for key, label in panel.keys({k for m in metrics for k in m}):
                steps, values = _series(metrics, key)
                if not steps:
                    continue
                name = f"{run_label}: {label}" if multi else label
                ax.plot(steps, values, marker="." if len(steps) < 60 else None, linewidth=1.3, label=name)
        ax.set_title(panel.title, fontsize=11)
        ax.set_ylabel(panel.ylabel, fontsize=9)
        ax.set_xlabel("training step", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if len(ax.get_lines()) > 1:
            ax.legend(fontsize=8, loc="best")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_run(
    metrics: Sequence[Mapping[str, Any]], path: str | Path, title: str | None = None, algo: str | None = None
) -> Path:
    """Draw one run's curves (per-step dicts ``{"step": s, key: value}``) to ``path``; returns the PNG path."""
    return plot_runs({"run": metrics}, path, title=title, algo=algo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trustrl.recipes.curves", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="verl file-logger .jsonl or a run folder holding one")
    parser.add_argument("--out", type=Path, default=Path("curves.png"), help="PNG to write (default curves.png)")
    parser.add_argument("--title", default=None, help="figure title (default: the run names)")
    parser.add_argument("--algo", choices=ALGOS, default=None, help="algorithm panels (default: from metric names)")
    parser.add_argument("--labels", nargs="*", default=None, help="legend label per run (default: file names)")
    args = parser.parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.runs):
        parser.error(f"--labels: {len(args.labels)} labels for {len(args.runs)} runs")
    try:
        logs = [resolve_log(r) for r in args.runs]
        labels = args.labels or [_label(p) for p in logs]
        runs = {label: read_file_log(p) for label, p in zip(labels, logs)}
        png = plot_runs(runs, args.out, title=args.title or ", ".join(labels), algo=args.algo)
    except (FileNotFoundError, ValueError) as err:
        print(f"[curves] {err}", file=sys.stderr)
        return 2
    steps = {label: len(ms) for label, ms in runs.items()}
    print(f"[curves] {png} ({', '.join(f'{k}: {v} steps' for k, v in steps.items())})")
    return 0


def _label(path: Path) -> str:
    # metrics.jsonl says nothing: use its folder's name
    return path.parent.name if path.stem == "metrics" else path.stem


if __name__ == "__main__":
    sys.exit(main())
