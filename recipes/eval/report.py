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


def _names(reports: Mapping[str, dict]) -> list[str]:
    return list(dict.fromkeys(b for rep in reports.values() for b in rep["benchmarks"]))


def _max_k(m: dict) -> int:
    return max(map(int, m["pass@k"]))


def curve_average(rep: dict) -> tuple[dict[str, float], list[str]] | None:
    """pass@k averaged over the benchmarks of one run that have more than one k, for the k they all have, and
    their names; None when no benchmark has a curve, or every one has (then the report's own ``average`` is the
    curve)."""
    multi = {b: m for b, m in rep["benchmarks"].items() if len(m["pass@k"]) > 1}
    if not multi or len(multi) == len(rep["benchmarks"]):
        return None
    first = next(iter(multi.values()))["pass@k"]
    common = [k for k in first if all(k in m["pass@k"] for m in multi.values())]
    return {k: sum(m["pass@k"][k] for m in multi.values()) / len(multi) for k in common}, list(multi)


def plot_notes(reports: Mapping[str, dict], benchmarks: Sequence[str] | None = None) -> list[str]:
    """What the pass@k figure leaves out or shows differently, one sentence each (also printed under the figure)."""
    names = _names(reports)
    notes = []
    if benchmarks is not None:
        left = [b for b in names if b not in benchmarks]
        if left:
            notes.append(f"not drawn (not asked for): {', '.join(left)}")
    drawn = [b for b in (benchmarks or names) if b != "average"]
    single = sorted(
        {b for rep in reports.values() for b, m in rep["benchmarks"].items() if b in drawn and _max_k(m) == 1}
    )
    if single:
        notes.append(f"n = 1, a single point at k = 1: {', '.join(single)}")
    for run, rep in reports.items():
        missing = [b for b in drawn if b not in rep["benchmarks"]]
        if missing:
            notes.append(f"run {run} has no {', '.join(missing)}")
        curve = curve_average(rep)
        if (benchmarks is None or "average" in benchmarks) and curve is not None:
            out = [b for b in rep["benchmarks"] if b not in curve[1]]
            notes.append(
                f"average curve of {run}: mean of {', '.join(curve[1])} only ({', '.join(out)} have n = 1; the "
                f"average over all {len(rep['benchmarks'])} benchmarks has pass@1 only)"
            )
    return notes


def plot_pass_at_k(reports: Mapping[str, dict], path: str | Path, benchmarks: Sequence[str] | None = None) -> Path:
    """One panel per benchmark, plus ``average``: pass@k (%) against k, one line per run, on one y range (0-100).

    Every benchmark is drawn: one with n = 1 is a single point at k = 1. The x axis is log2 with a tick at each k
    that occurs (1, 2, 4, ..., and a last k that is not a power of two, such as 10). The ``average`` panel is the
    report's macro average when every benchmark has a curve; otherwise it is the mean curve of the benchmarks with
    n > 1, named in the panel title. What is left out or shown differently is written under the figure
    (:func:`plot_notes`).
    """
    import matplotlib.pyplot as plt

    fig, _ = pass_at_k_figure(reports, benchmarks)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pass_at_k_figure(reports: Mapping[str, dict], benchmarks: Sequence[str] | None = None):
    """The figure of :func:`plot_pass_at_k` and its notes, without saving it (the caller closes the figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, asked = _names(reports), benchmarks
    if benchmarks is None:
        benchmarks = names + (["average"] if len(names) > 1 else [])
    if not benchmarks:
        raise ValueError("no benchmarks to plot")
    unknown = [b for b in benchmarks if b != "average" and b not in names]
    if unknown:
        raise ValueError(f"no run has benchmark(s) {unknown}; the runs have {names}")
    notes = plot_notes(reports, asked)
    cols = min(3, len(benchmarks))
    rows = -(-len(benchmarks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows + 0.25 * len(notes)), squeeze=False)
    for ax, bench in zip(axes.flat, benchmarks):
        title, all_ks = bench, set()
        for run, rep in reports.items():
            if bench == "average":
                curve = curve_average(rep)
                values = curve[0] if curve is not None else rep["average"]["pass@k"]
                if curve is not None:
                    title = "average of " + ", ".join(curve[1])
            elif bench in rep["benchmarks"]:
                values = rep["benchmarks"][bench]["pass@k"]
            else:
                continue
            ks = sorted(map(int, values))
            all_ks.update(ks)
            ys = [100 * values[str(k)] for k in ks]
            ax.plot(ks, ys, marker="o", ms=4 if len(ks) > 1 else 6, label=run, clip_on=False)
        ax.set_xscale("log", base=2)
        ticks = sorted(all_ks) or [1]
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlim(0.8, max(ticks) * 1.25 if max(ticks) > 1 else 2)
        ax.set_ylim(0, 100)
        ax.set_title(title, fontsize=9 if len(title) > 30 else 11)
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(benchmarks) :]:
        ax.set_visible(False)
    fig.tight_layout(rect=(0, 0.06 * len(notes) / rows if notes else 0, 1, 1))
    if notes:
        fig.text(0.01, 0.01, "\n".join(notes), fontsize=7, va="bottom", ha="left", wrap=True)
    return fig, notes


def format_table(reports: Mapping[str, dict]) -> str:
    """A short text table for the terminal: avg@n, pass@1, pass@k at each row's largest k (column k), uniq.

    The average row's largest k is the largest k *every* benchmark has; a line under the table names the
    benchmarks that limit it (the average of pass@n over benchmarks with different n is no pass@n).
    """
    lines = [
        f"{'run':16s} {'benchmark':14s} {'N':>5s} {'n':>4s} {'avg@n':>7s} {'pass@1':>7s} {'k':>4s} {'pass@k':>7s} "
        f"{'uniq':>6s}"
    ]
    notes = []
    for run, rep in reports.items():
        for bench, m in [*rep["benchmarks"].items(), ("average", rep["average"])]:
            k = _max_k(m)
            n = m.get("n_samples", "")
            n = str(n[0] if isinstance(n, list) else n) if bench != "average" else "-"
            pass_k = f"{100 * m['pass@k'][str(k)]:7.2f}" if k > 1 else f"{'-':>7s}"
            lines.append(
                f"{run[:16]:16s} {bench[:14]:14s} {m['n_problems']:5d} {n:>4s} "
                f"{100 * m['avg@n']:7.2f} {100 * m['pass@k']['1']:7.2f} {k:4d} {pass_k} "
                f"{m['unique_correct']:6g}"
            )
            if bench == "average" and m.get("k_limited_by"):
                notes.append(
                    f"{run}: the average row has k <= {k}, the largest k every benchmark has "
                    f"(limited by {', '.join(m['k_limited_by'])}); pass@k of the others is in their rows"
                )
    return "\n".join(lines + notes)
