# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""A second expert trace per problem from OpenR1-Math-220k (TRAPO uses two R1 traces per prompt).

OpenR1-Math-46k-8192 carries one DeepSeek-R1 trace per problem; OpenR1-Math-220k (its source) has 2-4 per
problem. For every 46k problem we append to ``expert_solutions`` the think content of the first *acceptable*
220k generation (:mod:`.openr1`: correct, finished, with a ``</think>``) that differs from the traces the
problem already has. Rows are joined on ``uuid`` when both sides have one, otherwise on the normalized problem
text (the LUFFY copy of the 46k set has no uuid column).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .answers import problem_key
from .io import Records, get_path
from .openr1 import CORRECTNESS, pick_trace
from .specs import Problem, get_spec, resolve_fields

OPENR1_220K = get_spec("openr1_220k")


@dataclass
class JoinReport:
    join_on: str
    n_problems: int
    n_matched: int = 0
    n_attached: int = 0
    no_acceptable: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def format(self, limit: int = 5) -> str:
        text = (
            f"second traces (join on {self.join_on}): {self.n_attached} of {self.n_problems} problems got one; "
            f"{len(self.unmatched)} not found in the trace source, {len(self.no_acceptable)} found without an "
            f"acceptable distinct trace"
        )
        for name, ids in (("not found", self.unmatched), ("no acceptable trace", self.no_acceptable)):
            if ids:
                text += f"\n  {name}: {', '.join(ids[:limit])}" + (" ..." if len(ids) > limit else "")
        return text


def attach_second_traces(
    problems: Sequence[Problem],
    records: Records,
    *,
    join_on: str = "auto",
    correctness: str = "math_verify",
    fits: Callable[[str], bool] | None = None,
    progress: bool = True,
) -> JoinReport:
    """Append one trace from ``records`` (OpenR1-Math-220k rows) to each problem in place; returns a report."""
    from tqdm.auto import tqdm

    if join_on not in ("auto", "uuid", "problem"):
        raise ValueError(f"join_on must be 'auto', 'uuid' or 'problem', got {join_on!r}")
    if correctness not in CORRECTNESS:
        raise ValueError(f"correctness must be one of {CORRECTNESS}, got {correctness!r}")
    if join_on == "auto":
        join_on = "uuid" if problems and all(p.uuid for p in problems) else "problem"
    if join_on == "uuid" and not all(p.uuid for p in problems):
        missing = [p.problem_id for p in problems if not p.uuid][:5]
        raise ValueError(f"join_on='uuid' but some problems have no uuid (e.g. {missing}); use join_on='problem'")
    key_of = (lambda p: p.uuid) if join_on == "uuid" else (lambda p: problem_key(p.problem))
    wanted: dict[str, list[Problem]] = {}
    for p in problems:
        wanted.setdefault(key_of(p), []).append(p)
    report, matched, resolved = JoinReport(join_on, len(problems)), set(), None
    for row in tqdm(records, desc="second traces: scanning", disable=not progress):
        resolved = resolved or resolve_fields(OPENR1_220K, row)
        if join_on == "uuid" and resolved["uuid"] is None:
            raise ValueError(f"{records.origin} has no uuid column; use join_on='problem'")
        key = str(get_path(row, "uuid")) if join_on == "uuid" else problem_key(str(get_path(row, "problem")))
        if key not in wanted or key in matched:
            continue
        matched.add(key)
        values = {name: (get_path(row, path) if path else None) for name, path in resolved.items()}
        for p in wanted[key]:
            think = pick_trace(values, p.expert_solutions, correctness=correctness, fits=fits)
            if think is None:
                report.no_acceptable.append(p.problem_id)
            else:
                p.expert_solutions.append(think)
                report.n_attached += 1
    report.n_matched = sum(len(wanted[k]) for k in matched)
    report.unmatched = [p.problem_id for k, ps in wanted.items() if k not in matched for p in ps]
    return report
