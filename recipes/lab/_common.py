# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Shared plumbing of the lab: determinism, progress lines, markdown tables and figure files."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

Log = Callable[[str], None]


def set_determinism(threads: int) -> None:
    """Fix torch's thread count and ask for deterministic kernels.

    NOTE: floating-point reductions may differ between thread counts, so results are reproducible run to run
    for one ``threads`` value (the lab's default is 1), not across values.
    """
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def parallel_map(fn: Callable, jobs: Sequence[tuple], workers: int, done: Callable | None = None) -> list:
    """``[fn(*job) for job in jobs]``, on ``workers`` forked processes when ``workers`` > 1.

    Every job seeds its own generators, so the results do not depend on ``workers`` or on the order in which
    jobs finish. ``done(index, result)`` is called in the parent as each job finishes (progress lines).
    """
    if workers <= 1 or len(jobs) <= 1:
        results = []
        for i, job in enumerate(jobs):
            results.append(fn(*job))
            if done is not None:
                done(i, results[-1])
        return results
    results: list = [None] * len(jobs)
    # fork: the children inherit torch's thread count, deterministic mode and verl's registries
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if done is not None:
                done(i, results[i])
    return results


def make_logger(prefix: str = "[lab]") -> Log:
    """A ``print`` that prefixes the seconds since the logger was made and flushes at once."""
    start = time.perf_counter()

    def log(message: str) -> None:
        print(f"{prefix} {time.perf_counter() - start:6.1f}s  {message}", flush=True)

    return log


def silent(message: str) -> None:
    """A logger that discards (tests)."""


@dataclass
class Section:
    """One experiment's contribution to ``report.md``: markdown body, figure files and headline numbers."""

    title: str
    body: str
    figures: list[Path] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats are written as given (format them before)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (no display on CPU machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as PNG (no timestamp in the metadata, so reruns write identical files) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    pyplot().close(fig)
    return path
