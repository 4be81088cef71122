# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
r"""Row validation: every failure is reported by problem id and counted by reason; rows are dropped only on request.

Checks, in order (``code``: meaning):

* ``empty_problem``: the problem text is empty after stripping;
* builder issues: ``missing_gold`` (no answer / no ``\boxed{}`` in the solution), ``prompt_not_dapo_template``,
  ``expert_trace_incomplete`` (a trace without ``</think>``);
* ``gold_unparseable`` / ``gold_not_self_verifying``: the gold, written as a model answer ``\boxed{gold}``, must
  be extracted and graded correct against itself by the grader (MATH_EVAL.md sections 0.3-0.4: a gold the
  grader cannot match would make every sample of that problem score 0);
* ``missing_expert_trace``: fewer expert traces than required (sets with expert traces only);
* ``duplicate_problem_id``: two rows share an id (pass/maj@k group samples by it).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .specs import Problem

GoldCheck = Callable[[str], "tuple[str, str] | None"]


class DataValidationError(ValueError):
    """Rows failed validation and dropping them was not requested."""


@dataclass(frozen=True)
class Failure:
    problem_id: str
    code: str
    detail: str


@dataclass
class ValidationReport:
    dataset: str
    n_checked: int
    failures: list[Failure] = field(default_factory=list)
    failed_rows: set[int] = field(default_factory=set)

    def counts(self) -> dict[str, int]:
        """Number of failures per reason code."""
        return dict(Counter(f.code for f in self.failures).most_common())

    def format(self, limit: int = 20) -> str:
        if not self.failures:
            return f"{self.dataset}: all {self.n_checked} rows valid"
        counts = ", ".join(f"{code} {n}" for code, n in self.counts().items())
        lines = [f"{self.dataset}: {len(self.failed_rows)} of {self.n_checked} rows failed validation ({counts})"]
        lines += [f"  {f.problem_id}: {f.code} ({f.detail})" for f in self.failures[:limit]]
        if len(self.failures) > limit:
            lines.append(f"  ... and {len(self.failures) - limit} more (full list in the failures file)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "n_checked": self.n_checked,
            "n_failed_rows": len(self.failed_rows),
            "counts": self.counts(),
            "failures": [f.__dict__ for f in self.failures],
        }


@functools.lru_cache(maxsize=1 << 16)
def math_verify_gold_check(gold: str) -> tuple[str, str] | None:
    r"""None when ``\boxed{gold}`` parses and verifies against the gold with strict math-verify settings.

    Gold side: ``\boxed{gold}`` with LaTeX extraction. Answer side: the strict reward configuration of
    MATH_EVAL.md section 3.2 (boxed first, no unanchored extraction, no malformed-operator or nits fixes).
    """
    from math_verify import LatexExtractionConfig, parse, verify
    from math_verify.parser import NormalizationConfig

    boxed = "\\boxed{" + gold + "}"
    gold_parsed = parse(boxed, extraction_config=[LatexExtractionConfig(boxed_match_priority=0)])
    if not gold_parsed:
        return "gold_unparseable", f"math-verify extracts nothing from {boxed!r}"
    strict = LatexExtractionConfig(
        normalization_config=NormalizationConfig(
            basic_latex=True, units=True, malformed_operators=False, nits=False, boxed="all", equations=False
        ),
        boxed_match_priority=0,
        try_extract_without_anchor=False,
    )
    answer = parse(boxed, extraction_config=[strict])
    if not answer or not verify(gold_parsed, answer):
        return "gold_not_self_verifying", f"the answer {boxed!r} is not graded correct against gold {gold!r}"
    return None


def validate(
    dataset: str,
    problems: Sequence[Problem],
    *,
    min_traces: int = 0,
    gold_check: GoldCheck | None = math_verify_gold_check,
    progress: bool = True,
) -> ValidationReport:
    """Check every problem; ``min_traces`` > 0 requires that many expert traces per row."""
    from tqdm.auto import tqdm

    report = ValidationReport(dataset, len(problems))
    seen: dict[str, int] = {}
    for row, p in enumerate(tqdm(problems, desc=f"{dataset}: validating", disable=not progress)):
        found = [] if p.problem else [("empty_problem", "the problem text is empty")]
        found += p.issues
        if p.gold is not None and gold_check is not None:
            found += [issue] if (issue := gold_check(p.gold)) else []
        if len(p.expert_solutions) < min_traces:
            found.append(("missing_expert_trace", f"has {len(p.expert_solutions)} of {min_traces} expert traces"))
        if p.problem_id in seen:
            found.append(("duplicate_problem_id", f"same id as row {seen[p.problem_id]}"))
        seen.setdefault(p.problem_id, row)
        report.failures += [Failure(p.problem_id, code, detail) for code, detail in found]
        if found:
            report.failed_rows.add(row)
    return report


def apply_validation(problems: Sequence[Problem], report: ValidationReport, *, drop_invalid: bool) -> list[Problem]:
    """The valid problems; raises DataValidationError when some failed and ``drop_invalid`` is False."""
    if report.failed_rows and not drop_invalid:
        raise DataValidationError(
            report.format()
            + "\nNothing was written. Fix the source, or pass --drop-invalid (drop_invalid=True) to drop these rows."
        )
    return [p for i, p in enumerate(problems) if i not in report.failed_rows]
