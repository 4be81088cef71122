# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Shared plumbing of the lab: determinism, progress lines, markdown tables and figure files."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
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


def worker_pool(workers: int) -> ProcessPoolExecutor | None:
    """A pool of ``workers`` spawned processes for :func:`parallel_map`, or ``None`` (serial) when ``workers`` ≤ 1.

    Spawned, not forked: a fork after torch has used its OpenMP pool can deadlock the child. Workers start with
    the parent's thread count and deterministic mode. Make one pool for the whole lab: each worker imports torch
    and verl once (seconds).
    """
    if workers <= 1:
        return None
    init = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=init)


def _init_worker(threads: int, deterministic: bool) -> None:
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def parallel_map(fn: Callable, jobs: Sequence[tuple], pool: Executor | None, done: Callable | None = None) -> list:
    """``[fn(*job) for job in jobs]``, on ``pool`` when given, else in this process.

    Every job seeds its own generators, so the results do not depend on the pool or on the order in which jobs
    finish. ``done(index, result)`` is called here as each job finishes (progress lines).
    """
    if pool is None:
        results = []
        for i, job in enumerate(jobs):
            results.append(fn(*job))
            if done is not None:
                done(i, results[-1])
        return results
    results: list = [None] * len(jobs)
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
