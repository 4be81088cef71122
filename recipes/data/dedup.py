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


def dedup(problems: Sequence[Problem]) -> tuple[list[Problem], DedupReport]:
    """Keep the first row of every problem text; report groups whose golds disagree."""
    groups: dict[str, list[Problem]] = {}
    for p in problems:
        groups.setdefault(problem_key(p.problem), []).append(p)
    kept = [group[0] for group in groups.values()]
    report = DedupReport(len(problems), len(kept))
    for group in groups.values():
        golds = list(dict.fromkeys(p.gold for p in group))
        if len(golds) > 1:
            report.conflicts.append((group[0].problem_id, [p.problem_id for p in group[1:]], golds))
    return kept, report


def count_duplicates(problems: Sequence[Problem]) -> int:
    """Rows whose problem text repeats an earlier row (reported for benchmarks, which are never deduplicated)."""
    return len(problems) - len({problem_key(p.problem) for p in problems})


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
