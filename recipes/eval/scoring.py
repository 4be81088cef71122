# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
r"""Generations files and their grading with ``trustrl.reward.math_reward`` (the training reward).

A generations file is JSON Lines, one problem per line (what ``evaluate.py generate`` writes)::

    {"problem_id": "aime24/60", "data_source": "aime24", "ground_truth": "204",
     "responses": ["...", ...], "finish_reasons": ["stop", "length", ...], "prompt": "<rendered prompt>"}

``finish_reasons`` and ``prompt`` are optional. One sample per line is read too (``"response"`` and
``"finish_reason"`` instead of the lists; lines of one problem are grouped by ``problem_id`` in file order),
so per-sample dumps of other tools can be re-graded. ``ground_truth`` may be a list of acceptable answers.

Grading calls :func:`trustrl.reward.math_reward.compute_scores`, the batch API of the training reward, so
evaluation and training use one grader: the last complete ``\boxed{}`` after the
last ``</think>``, strict math-verify, hang-proof worker pool. A response with ``finish_reason == "length"``
scores 0 under the reward's default ``truncation="zero"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .metrics import (
    MAJ_TIE_RULE,
    UNIQUE_CORRECT,
    ProblemResult,
    average_metrics,
    benchmark_metrics,
    canonical_answer,
)

_GOLD_KEY = "\x00gold"  # vote key shared by all correct samples under equivalence clustering


class GenerationsError(ValueError):
    """A malformed generations file: names the line and the fix."""


@dataclass
class Generation:
    """All samples of one problem."""

    problem_id: str
    data_source: str
    ground_truth: str | list[str]
    responses: list[str]
    finish_reasons: list[str | None] = field(default_factory=list)
    prompt: str | None = None

    def __post_init__(self):
        if not self.finish_reasons:
            self.finish_reasons = [None] * len(self.responses)
        if len(self.finish_reasons) != len(self.responses):
            raise GenerationsError(
                f"{self.problem_id}: {len(self.responses)} responses but {len(self.finish_reasons)} finish_reasons"
            )


def write_generations(generations: Iterable[Generation], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for g in generations:
            f.write(json.dumps(asdict(g), ensure_ascii=False) + "\n")
    return path


_REQUIRED = ("problem_id", "data_source", "ground_truth")


def _parse_line(line: str, where: str) -> tuple[str, dict]:
    """``("problem" | "sample", row)`` of one non-empty line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise GenerationsError(f"{where}: not valid JSON ({e.msg})") from e
    layout = "problem" if "responses" in row else "sample" if "response" in row else None
    missing = [k for k in _REQUIRED if k not in row] + ([] if layout else ["responses (or response)"])
    if missing:
        raise GenerationsError(f"{where}: missing key(s) {missing}; the line has {sorted(row)}")
    return layout, row


def _add_sample(by_id: dict, first_line: dict, row: dict, line_no: int, where: str) -> None:
    pid = str(row["problem_id"])
    g = by_id.setdefault(pid, Generation(pid, str(row["data_source"]), row["ground_truth"], [], []))
    first_line.setdefault(pid, line_no)
    if (g.data_source, g.ground_truth) != (str(row["data_source"]), row["ground_truth"]):
        raise GenerationsError(
            f"{where}: problem_id {pid!r} has data_source/ground_truth {row['data_source']!r}/"
            f"{row['ground_truth']!r} but line {first_line[pid]} says {g.data_source!r}/{g.ground_truth!r}"
        )
    g.responses.append(str(row["response"]))
    g.finish_reasons.append(row.get("finish_reason"))


def _add_problem(by_id: dict, first_line: dict, row: dict, line_no: int, where: str) -> None:
    pid = str(row["problem_id"])
    if pid in by_id:
        raise GenerationsError(f"{where}: problem_id {pid!r} already on line {first_line[pid]}")
    responses = [str(r) for r in row["responses"]]
    by_id[pid] = Generation(
        pid,
        str(row["data_source"]),
        row["ground_truth"],
        responses,
        list(row.get("finish_reasons") or []),
        row.get("prompt"),
    )
    first_line[pid] = line_no


def read_generations(path: str | Path) -> list[Generation]:
    """Problems of a generations file, in file order (see the module docstring for the two layouts)."""
    path = Path(path)
    if not path.exists():
        raise GenerationsError(f"{path}: no such generations file")
    by_id: dict[str, Generation] = {}
    first_line: dict[str, int] = {}
    layout = None
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            this, row = _parse_line(line, where)
            if layout not in (None, this):
                raise GenerationsError(f"{where}: mixes one-problem and one-sample lines; use one layout per file")
            layout = this
            (_add_problem if this == "problem" else _add_sample)(by_id, first_line, row, line_no, where)
    if not by_id:
        raise GenerationsError(f"{path}: no generations")
    empty = [pid for pid, g in by_id.items() if not g.responses]
    if empty:
        raise GenerationsError(f"{path}: problems without responses: {empty[:5]}")
    return list(by_id.values())


def _chunked_scores(solutions, golds, extra_infos, reward_kwargs, desc, progress, chunk=4096):
    from tqdm.auto import tqdm
    from trustrl.reward.math_reward import compute_scores

    out = []
    with tqdm(total=len(solutions), desc=desc, disable=not progress) as bar:
        for lo in range(0, len(solutions), chunk):
            hi = lo + chunk
            out += compute_scores(solutions[lo:hi], golds[lo:hi], extra_infos=extra_infos[lo:hi], **reward_kwargs)
            bar.update(len(solutions[lo:hi]))
    return out


def _equivalence_keys(results: Sequence[ProblemResult], reward_kwargs, progress) -> None:
    """Cluster each problem's wrong answers by grader equivalence (union-find); correct ones share one key."""
    pairs = []  # (problem index, key a, key b): is a's answer graded correct against b's answer as gold?
    reps = []  # per problem: vote key -> the first extracted answer with that key (graded as written)
    for i, r in enumerate(results):
        rep: dict[str, str] = {}
        for key, ok, pred in zip(r.vote_keys, r.correct, r.preds):
            if key is not None and not ok:
                rep.setdefault(key, pred)
        reps.append(rep)
        wrong = list(rep)
        pairs += [(i, a, b) for x, a in enumerate(wrong) for b in wrong[x + 1 :]]
    verdicts = _chunked_scores(
        ["\\boxed{" + reps[i][a] + "}" for i, a, _ in pairs],
        [reps[i][b] for i, _, b in pairs],
        [None] * len(pairs),
        {k: v for k, v in reward_kwargs.items() if k != "truncation"},
        "maj@k clustering",
        progress,
    )
    parent: dict[tuple[int, str], tuple[int, str]] = {}

    def find(node):
        while parent.get(node, node) != node:
            node = parent[node]
        return node

    for (i, a, b), v in zip(pairs, verdicts):
        if v["acc"]:
            parent[find((i, b))] = find((i, a))
    for i, r in enumerate(results):
        r.vote_keys = [
            None if k is None else _GOLD_KEY if ok else find((i, k))[1] for k, ok in zip(r.vote_keys, r.correct)
        ]


def score_generations(
    generations: Sequence[Generation],
    *,
    reward_kwargs: Mapping | None = None,
    clustering: str = "equivalence",
    keep_responses: bool = False,
    progress: bool = True,
) -> list[ProblemResult]:
    """Grade every sample and build each problem's maj@k vote keys.

    Args:
        reward_kwargs: keyword options of ``compute_scores`` (``think_mode``, ``truncation``, ``timeout_s``, ...).
        clustering: ``"string"`` votes by :func:`~.metrics.canonical_answer`; ``"equivalence"`` also merges
            answers the grader finds equal (all correct answers into one cluster, wrong answers pairwise:
            ``\\boxed{a}`` graded against gold ``b``), so notational variants of one answer do not split votes.
        keep_responses: keep the response texts (needed by the ``distinct_responses`` unique-correct count).
    """
    if clustering not in ("string", "equivalence"):
        raise ValueError(f"clustering must be 'string' or 'equivalence', got {clustering!r}")
    reward_kwargs = dict(reward_kwargs or {})
    solutions = [s for g in generations for s in g.responses]
    golds = [g.ground_truth for g in generations for _ in g.responses]
    extra = [None if fr is None else {"finish_reason": fr} for g in generations for fr in g.finish_reasons]
    scores = _chunked_scores(solutions, golds, extra, reward_kwargs, "grading", progress)
    results, pos = [], 0
    for g in generations:
        mine, pos = scores[pos : pos + len(g.responses)], pos + len(g.responses)
        results.append(
            ProblemResult(
                problem_id=g.problem_id,
                benchmark=g.data_source,
                ground_truth=json.dumps(g.ground_truth) if isinstance(g.ground_truth, list) else g.ground_truth,
                correct=[bool(s["acc"]) for s in mine],
                preds=[s["pred"] for s in mine],
                statuses=[s["status"] for s in mine],
                # only fully compared samples vote: a cut-off or box-less answer is no answer
                vote_keys=[canonical_answer(s["pred"]) if s["status"] == "ok" else None for s in mine],
                responses=list(g.responses) if keep_responses else [],
            )
        )
    if clustering == "equivalence":
        _equivalence_keys(results, reward_kwargs, progress)
    return results


def build_report(
    results: Sequence[ProblemResult],
    *,
    run: str,
    source: str = "",
    unique_correct_definition: str = "coverage",
    clustering: str = "equivalence",
    reward_kwargs: Mapping | None = None,
) -> dict:
    """Per-benchmark and averaged metrics of one run, with the definitions they use and per-problem counts."""
    by_benchmark: dict[str, list[ProblemResult]] = {}
    for r in results:
        by_benchmark.setdefault(r.benchmark, []).append(r)
    benchmarks = {
        b: benchmark_metrics(rs, unique_correct_definition=unique_correct_definition) for b, rs in by_benchmark.items()
    }
    return {
        "run": run,
        "source": source,
        "grader": {"function": "trustrl.reward.math_reward.compute_scores", **dict(reward_kwargs or {})},
        "definitions": {
            "avg@n": "mean over problems of c/n",
            "pass@k": "unbiased estimator 1 - C(n-c,k)/C(n,k), mean over problems (Chen et al. 2021)",
            "maj@k": f"majority answer of each of the floor(n/k) disjoint k-sample blocks; clustering={clustering}; "
            f"tie rule: {MAJ_TIE_RULE}",
            "unique_correct": f"{unique_correct_definition}: {UNIQUE_CORRECT[unique_correct_definition][1]}",
        },
        "benchmarks": benchmarks,
        "average": average_metrics(benchmarks, unique_correct_definition=unique_correct_definition),
        "problems": [
            {"problem_id": r.problem_id, "benchmark": r.benchmark, "n": r.n, "c": r.c, "preds": r.preds}
            for r in results
        ],
    }
