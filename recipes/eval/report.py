# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Writing reports: JSON (everything), CSV (one row per run and benchmark) and a PNG of pass@k curves.

A *reports* mapping is ``{run name: report}`` with reports from :func:`~.scoring.build_report`; several runs
land in one JSON, one CSV and one figure so they can be compared.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path


def write_json(reports: Mapping[str, dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": dict(reports)}, indent=1, ensure_ascii=False))
    return path


def read_json(path: str | Path) -> dict[str, dict]:
    """Runs of a metrics JSON written by :func:`write_json`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("runs"), dict):
        raise ValueError(f"{path}: not a trustrl metrics file (expected an object with a 'runs' object)")
    return data["runs"]


def _ks(reports: Mapping[str, dict], metric: str) -> list[str]:
    ks = {k for rep in reports.values() for m in (*rep["benchmarks"].values(), rep["average"]) for k in m[metric]}
    return sorted(ks, key=int)


def write_csv(reports: Mapping[str, dict], path: str | Path) -> Path:
    """Columns: run, benchmark, n_problems, n_samples, avg@n, unique_correct, pass@1..., maj@1...; '' where n < k."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pk, mk = _ks(reports, "pass@k"), _ks(reports, "maj@k")
    header = ["run", "benchmark", "n_problems", "n_samples", "avg@n", "unique_correct"]
    header += [f"pass@{k}" for k in pk] + [f"maj@{k}" for k in mk]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for run, rep in reports.items():
            for bench, m in [*rep["benchmarks"].items(), ("average", rep["average"])]:
                n = m.get("n_samples", "")
                row = [run, bench, m["n_problems"], "-".join(map(str, n)) if isinstance(n, list) else n]
                row += [f"{m['avg@n']:.6f}", f"{m['unique_correct']:g}"]
                row += [f"{m['pass@k'][k]:.6f}" if k in m["pass@k"] else "" for k in pk]
                row += [f"{m['maj@k'][k]:.6f}" if k in m["maj@k"] else "" for k in mk]
                writer.writerow(row)
    return path


def _curve_panels(reports: Mapping[str, dict]) -> list[str]:
    """Benchmarks (and 'average') with a curve, i.e. at least two k in some run; all benchmarks if none has."""
    names = list(dict.fromkeys(b for rep in reports.values() for b in rep["benchmarks"]))
    curves = [
        b for b in names if any(len(rep["benchmarks"].get(b, {}).get("pass@k", {})) > 1 for rep in reports.values())
    ]
    if len(names) > 1 and any(len(rep["average"]["pass@k"]) > 1 for rep in reports.values()):
        curves.append("average")
    return curves or names


def plot_pass_at_k(reports: Mapping[str, dict], path: str | Path, benchmarks: Sequence[str] | None = None) -> Path:
    """One panel per benchmark: pass@k (%) against k on a log2 axis, one line per run.

    Default panels: every benchmark with at least two k (n > 1) in some run, plus the macro average when it has
    two k; if no benchmark has, every benchmark (single points).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if benchmarks is None:
        benchmarks = _curve_panels(reports)
    if not benchmarks:
        raise ValueError("no benchmarks to plot")
    cols = min(3, len(benchmarks))
    rows = -(-len(benchmarks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, bench in zip(axes.flat, benchmarks):
        for run, rep in reports.items():
            m = rep["average"] if bench == "average" else rep["benchmarks"].get(bench)
            if m is None:
                continue
            ks = sorted(m["pass@k"], key=int)
            ax.plot([int(k) for k in ks], [100 * m["pass@k"][k] for k in ks], marker="o", ms=3, label=run)
        ax.set_xscale("log", base=2)
        ax.set_title(bench)
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(benchmarks) :]:
        ax.set_visible(False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def format_table(reports: Mapping[str, dict]) -> str:
    """A short text table for the terminal: avg@n, pass@1, pass@n and unique_correct per run and benchmark."""
    lines = [
        f"{'run':16s} {'benchmark':14s} {'N':>5s} {'n':>4s} {'avg@n':>7s} {'pass@1':>7s} {'pass@n':>7s} {'uniq':>6s}"
    ]
    for run, rep in reports.items():
        for bench, m in [*rep["benchmarks"].items(), ("average", rep["average"])]:
            last = max(m["pass@k"], key=int)
            n = m.get("n_samples", "")
            n = str(n[0] if isinstance(n, list) else n)
            lines.append(
                f"{run[:16]:16s} {bench[:14]:14s} {m['n_problems']:5d} {n:>4s} "
                f"{100 * m['avg@n']:7.2f} {100 * m['pass@k']['1']:7.2f} {100 * m['pass@k'][last]:7.2f} "
                f"{m['unique_correct']:6g}"
            )
    return "\n".join(lines)
