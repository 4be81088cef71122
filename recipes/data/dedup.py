# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Deduplication and decontamination on the normalized problem text (:func:`~.answers.problem_key`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .answers import problem_key
from .io import get_path, has_path, load_records
from .specs import Problem, SchemaError


@dataclass
class DedupReport:
    n_in: int
    n_out: int
    # (kept id, dropped ids, the distinct golds) for duplicate groups whose golds disagree
    conflicts: list[tuple[str, list[str], list[str]]] = field(default_factory=list)

    @property
    def n_dropped(self) -> int:
        return self.n_in - self.n_out

    def format(self, limit: int = 5) -> str:
        text = f"dedup: {self.n_in} -> {self.n_out} rows ({self.n_dropped} duplicates dropped)"
        if self.conflicts:
            text += f"; {len(self.conflicts)} duplicate groups disagree on the gold (first row kept):"
            for kept, dropped, golds in self.conflicts[:limit]:
                text += f"\n  {kept} vs {dropped}: golds {golds}"
        return text


def dedup(problems: Iterable[Problem]) -> tuple[list[Problem], DedupReport]:
    """Keep the first row of every problem text; report groups whose golds disagree.

    Streams: only the kept problems and the (id, gold) of dropped rows are held, so DAPO-Math-17k's 1.8M rows
    (about 100 copies of each problem) never sit in memory as Problem objects.
    """
    kept: dict[str, Problem] = {}
    dropped: dict[str, list[tuple[str, str | None]]] = {}
    n_in = 0
    for p in problems:
        n_in += 1
        key = problem_key(p.problem)
        if key in kept:
            dropped.setdefault(key, []).append((p.problem_id, p.gold))
        else:
            kept[key] = p
    report = DedupReport(n_in, len(kept))
    for key, rows in dropped.items():
        golds = list(dict.fromkeys([kept[key].gold] + [gold for _, gold in rows]))
        if len(golds) > 1:
            report.conflicts.append((kept[key].problem_id, [pid for pid, _ in rows], golds))
    return list(kept.values()), report


_EXCLUDE_FIELDS = ("extra_info.raw_problem", "problem", "question", "Problem", "Question")


def exclusion_keys(sources: Iterable[str]) -> set[str]:
    """Problem keys of prepared parquet files (``extra_info.raw_problem``) or raw benchmark files."""
    keys: set[str] = set()
    for source in sources:
        records = load_records(source)
        path = None
        for row in records:
            path = path or next((f for f in _EXCLUDE_FIELDS if has_path(row, f)), None)
            if path is None:
                raise SchemaError(
                    f"{records.origin}: no problem field to decontaminate against (tried {list(_EXCLUDE_FIELDS)}; "
                    f"the first row has keys {sorted(row)})"
                )
            keys.add(problem_key(str(get_path(row, path))))
    return keys


def decontaminate(problems: Sequence[Problem], keys: set[str]) -> tuple[list[Problem], list[str]]:
    """Drop problems whose text appears in ``keys``; returns the kept problems and the dropped ids."""
    kept, dropped = [], []
    for p in problems:
        if problem_key(p.problem) in keys:
            dropped.append(p.problem_id)
        else:
            kept.append(p)
    return kept, dropped
