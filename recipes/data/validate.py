# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
r"""Row validation: every failure is reported by problem id and counted by reason; rows are dropped only on request.

Checks, in order (``code``: meaning):

* ``empty_problem``: the problem text is empty after stripping;
* builder issues: ``missing_gold`` (no answer / no ``\boxed{}`` in the solution), ``prompt_not_dapo_template``,
  ``expert_trace_incomplete`` (a trace without ``</think>``);
* ``gold_unparseable`` / ``gold_not_self_verifying``: the gold, written as a model answer ``\boxed{gold}``, must
  score 1.0 against itself under ``trustrl.reward.math_reward`` (a gold the
  grader cannot match makes every sample of that problem score 0, so it teaches and measures nothing);
* ``missing_expert_trace``: fewer expert traces than required (sets with expert traces only);
* ``duplicate_problem_id``: two rows share an id (pass/maj@k group samples by it);
* ``conflicting_duplicate``: the same problem text appears in several rows of a set that is not deduplicated (a
  benchmark) with different golds; every row of the group fails, naming the others (which gold is right is not
  for the pipeline to guess);
* ``row_not_object``, ``missing_field``, ``gold_not_scalar``, ``gold_list``: a row that is not an object, lacks a
  required field the first row has, or whose answer is an object / a list of different values (see
  :mod:`.specs`). A row with one of the first two is reported with that code only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .answers import problem_key
from .specs import ROW_ISSUES, Problem

# golds -> one (code, detail) or None per gold
GoldCheck = Callable[[Sequence[str]], "Sequence[tuple[str, str] | None]"]


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


def reward_gold_check(
    golds: Sequence[str], *, chunk: int = 2048, progress: bool = True
) -> list[tuple[str, str] | None]:
    r"""Round trip through the training/eval reward: ``\boxed{gold}`` must score 1.0 against ``gold``.

    Uses :func:`trustrl.reward.math_reward.compute_scores` (strict math-verify in a hang-proof worker pool), so a
    row passes exactly when the grader used for training and evaluation can match its own gold. Returns one
    ``(code, detail)`` or None per gold.
    """
    from tqdm.auto import tqdm
    from trustrl.reward.math_reward import compute_scores

    out: list[tuple[str, str] | None] = []
    with tqdm(total=len(golds), desc="gold check", disable=not progress) as bar:
        for lo in range(0, len(golds), chunk):
            part = list(golds[lo : lo + chunk])
            for gold, r in zip(part, compute_scores(["\\boxed{" + g + "}" for g in part], part)):
                if r["acc"]:
                    out.append(None)
                elif r["status"] == "gold_unparseable":
                    out.append(("gold_unparseable", f"the reward cannot parse gold {gold!r}"))
                else:
                    out.append(
                        ("gold_not_self_verifying", f"\\boxed{{{gold}}} scores 0 against itself (status {r['status']})")
                    )
            bar.update(len(part))
    return out


def validate(
    dataset: str,
    problems: Sequence[Problem],
    *,
    min_traces: int = 0,
    gold_check: GoldCheck | None = reward_gold_check,
    check_duplicate_golds: bool = True,
) -> ValidationReport:
    """Check every problem; ``min_traces`` > 0 requires that many expert traces per row.

    ``gold_check`` is called once with the distinct golds (None skips the check). ``check_duplicate_golds`` fails
    rows that repeat a problem text with a different gold (for sets that are not deduplicated).
    """
    golds = sorted({p.gold for p in problems if p.gold is not None})
    gold_issues = {}
    if gold_check is not None and golds:
        verdicts = list(gold_check(golds))
        if len(verdicts) != len(golds):
            raise ValueError(f"gold_check returned {len(verdicts)} verdicts for {len(golds)} golds")
        gold_issues = dict(zip(golds, verdicts))
    report = ValidationReport(dataset, len(problems))
    seen: dict[str, int] = {}
    conflicts = conflicting_duplicates(problems) if check_duplicate_golds else {}
    for row, p in enumerate(problems):
        if any(code in ROW_ISSUES for code, _ in p.issues):
            report.failures += [Failure(p.problem_id, code, detail) for code, detail in p.issues]
            report.failed_rows.add(row)
            continue
        found = [] if p.problem else [("empty_problem", "the problem text is empty")]
        found += p.issues
        if row in conflicts:
            found.append(("conflicting_duplicate", conflicts[row]))
        found += [gold_issues[p.gold]] if gold_issues.get(p.gold) else []
        if len(p.expert_solutions) < min_traces:
            found.append(("missing_expert_trace", f"has {len(p.expert_solutions)} of {min_traces} expert traces"))
        if p.problem_id in seen:
            found.append(("duplicate_problem_id", f"same id as row {seen[p.problem_id]}"))
        seen.setdefault(p.problem_id, row)
        report.failures += [Failure(p.problem_id, code, detail) for code, detail in found]
        if found:
            report.failed_rows.add(row)
    return report


def duplicate_groups(problems: Sequence[Problem]) -> list[list[int]]:
    """Row numbers of each group of rows that share a problem text (two or more rows), in row order."""
    by_key: dict[str, list[int]] = {}
    for row, p in enumerate(problems):
        if p.problem:
            by_key.setdefault(problem_key(p.problem), []).append(row)
    return [rows for rows in by_key.values() if len(rows) > 1]


def conflicting_duplicates(problems: Sequence[Problem]) -> dict[int, str]:
    """Row -> detail, for every row of a duplicate group whose golds differ."""
    out = {}
    for rows in duplicate_groups(problems):
        golds = {problems[r].gold for r in rows}
        if len(golds) > 1:
            for r in rows:
                others = ", ".join(f"{problems[o].problem_id} (gold {problems[o].gold!r})" for o in rows if o != r)
                out[r] = f"same problem as {others} with a different gold ({problems[r].gold!r})"
    return out


def apply_validation(problems: Sequence[Problem], report: ValidationReport, *, drop_invalid: bool) -> list[Problem]:
    """The valid problems; raises DataValidationError when some failed and ``drop_invalid`` is False."""
    if report.failed_rows and not drop_invalid:
        raise DataValidationError(
            report.format()
            + "\nNothing was written. Fix the source, or pass --drop-invalid (drop_invalid=True) to drop these rows."
        )
    return [p for i, p in enumerate(problems) if i not in report.failed_rows]
