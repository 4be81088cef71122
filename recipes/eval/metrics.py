# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
r"""Sampling metrics for math benchmarks: avg@n, unbiased pass@k, maj@k and the unique-correct count.

For problem i with n_i samples of which c_i are correct, over N problems:

* ``avg@n``    = (1/N) Σ_i c_i / n_i (LUFFY/DAPO "avg@32", also "mean@n" or pass@1 from n samples).
* ``pass@k``   = (1/N) Σ_i [1 − C(n_i − c_i, k) / C(n_i, k)], the unbiased estimator of Chen et al. (2021),
  Sec. 2.1 of arXiv:2107.03374, computed as 1 − ∏_{j=n−c+1}^{n} (1 − k/j), which never forms a binomial
  coefficient (C(256, 128) overflows a float64). Reported for k = 1, 2, 4, ..., up to n, and n itself.
* ``maj@k``    = the fraction of k-sample blocks whose majority answer is correct, averaged over the ⌊n/k⌋
  disjoint blocks of consecutive samples and then over problems (for k = n: the majority of all samples).
  Only samples the grader fully compared (status ``ok``: a complete box, parsed against a parsable gold) vote;
  answers are clustered by a canonical string, or by grader equivalence (:mod:`.scoring`). **Tie rule**:
  among clusters with the most votes, the one whose first vote comes earliest in the block wins. Samples are
  i.i.d., so this is a uniformly random tie-break, made reproducible. A block without any vote counts as wrong.
* ``unique_correct`` (definition ``coverage``, the default): the number of problems with at least one correct
  sample among all n, i.e. the count of distinct problems solved, N · pass@n. See :data:`UNIQUE_CORRECT`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

MAJ_TIE_RULE = "earliest first vote among tied clusters wins (a reproducible uniform tie-break for i.i.d. samples)"


def pass_at_k(n: int, c: int, k: int) -> float:
    r"""Unbiased pass@k of one problem: 1 − C(n−c, k)/C(n, k) = 1 − ∏_{j=n−c+1}^{n} (1 − k/j).

    Args:
        n: samples drawn (≥ 1).
        c: correct samples, 0 ≤ c ≤ n.
        k: budget, 1 ≤ k ≤ n.

    >>> pass_at_k(4, 1, 2)  # 1 − C(3,2)/C(4,2) = 1 − 3/6
    0.5
    """
    if not (isinstance(n, int | np.integer) and isinstance(c, int | np.integer) and isinstance(k, int | np.integer)):
        raise TypeError(f"pass_at_k takes integers, got n={n!r}, c={c!r}, k={k!r}")
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    # every k-subset contains a correct sample once fewer than k samples are wrong
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_ks(n: int) -> list[int]:
    """k = 1, 2, 4, ... ≤ n, plus n itself when n is not a power of two.

    >>> pass_ks(32), pass_ks(12), pass_ks(1)
    ([1, 2, 4, 8, 16, 32], [1, 2, 4, 8, 12], [1])
    """
    if n < 1:
        raise ValueError(f"need at least one sample, got n={n}")
    ks = [1 << i for i in range(n.bit_length()) if 1 << i <= n]
    return ks if ks[-1] == n else [*ks, n]


_CANON = [
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"\\(?:left|right)(?![a-zA-Z])"), ""),
    (re.compile(r"\\[!,;: ]|\$"), ""),
    (re.compile(r"\\text\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\^\{?\\circ\}?"), ""),
    (re.compile(r"\s+"), ""),
]


def canonical_answer(pred: str | None) -> str | None:
    r"""Vote key of an extracted answer: spacing, ``\left``/``\right``, ``\dfrac``, ``\text{}``, ``^\circ`` dropped.

    >>> canonical_answer(r"\dfrac{1}{2}") == canonical_answer(r"\frac{1}{2} ")
    True
    """
    if not pred:
        return None
    for pattern, repl in _CANON:
        pred = pattern.sub(repl, pred)
    return pred.rstrip(".") or None


def majority_vote(keys: Sequence[str | None]) -> str | None:
    """The most frequent non-None key; ties go to the key voted first (see :data:`MAJ_TIE_RULE`)."""
    counts = Counter(k for k in keys if k is not None)  # insertion order = order of first votes
    if not counts:
        return None
    top = max(counts.values())
    return next(k for k, v in counts.items() if v == top)


def maj_at_k(keys: Sequence[str | None], correct: Sequence[bool], k: int) -> float:
    """maj@k of one problem: mean over the ⌊n/k⌋ disjoint blocks of whether the block's majority is correct.

    ``keys[i]`` is sample i's vote (None: abstains); a cluster is correct when its first sample is (clusters hold
    one answer up to notation, so its samples agree).
    """
    n = len(keys)
    if len(correct) != n or not 1 <= k <= n:
        raise ValueError(f"maj_at_k needs len(keys) == len(correct) >= k >= 1, got {n}, {len(correct)}, k={k}")
    key_correct: dict[str, bool] = {}
    for key, ok in zip(keys, correct):
        if key is not None:
            key_correct.setdefault(key, ok)  # a cluster is as correct as its first answer (one graded string)
    blocks = n // k
    wins = sum(key_correct.get(majority_vote(keys[b * k : (b + 1) * k]), False) for b in range(blocks))
    return wins / blocks


@dataclass
class ProblemResult:
    """One problem's graded samples. ``vote_keys[i]`` is None for samples that do not vote in maj@k."""

    problem_id: str
    benchmark: str
    ground_truth: str
    correct: list[bool]
    preds: list[str]
    statuses: list[str]
    vote_keys: list[str | None]
    responses: list[str] = field(default_factory=list, repr=False)

    @property
    def n(self) -> int:
        return len(self.correct)

    @property
    def c(self) -> int:
        return int(sum(self.correct))


def _coverage(results: Sequence[ProblemResult]) -> float:
    return float(sum(r.c > 0 for r in results))


def _distinct_responses(results: Sequence[ProblemResult]) -> float:
    per_problem = [len({" ".join(t.split()) for t, ok in zip(r.responses, r.correct) if ok}) for r in results]
    return float(np.mean(per_problem)) if per_problem else 0.0


UNIQUE_CORRECT: dict[str, tuple[Callable[[Sequence[ProblemResult]], float], str]] = {
    "coverage": (
        _coverage,
        "number of problems solved by at least one of the n samples (candidate (c) of recipes/eval/README.md)",
    ),
    "distinct_responses": (
        _distinct_responses,
        "distinct correct responses per problem after whitespace normalization, averaged over problems "
        "(candidate (a); needs the response texts)",
    ),
}


def unique_correct(results: Sequence[ProblemResult], definition: str = "coverage") -> float:
    """The unique-correct count under ``definition`` (a key of :data:`UNIQUE_CORRECT`)."""
    if definition not in UNIQUE_CORRECT:
        raise KeyError(f"unknown unique-correct definition {definition!r}; choose from {sorted(UNIQUE_CORRECT)}")
    if definition == "distinct_responses" and any(len(r.responses) != r.n for r in results):
        raise ValueError("unique_correct='distinct_responses' needs the response text of every sample")
    return UNIQUE_CORRECT[definition][0](results)


def benchmark_metrics(results: Sequence[ProblemResult], *, unique_correct_definition: str = "coverage") -> dict:
    """avg@n, pass@k, maj@k (k = 1, 2, 4, ..., min n) and unique_correct of one benchmark's problems."""
    if not results:
        raise ValueError("no problems to score")
    n_min = min(r.n for r in results)
    ks = pass_ks(n_min)
    return {
        "n_problems": len(results),
        "n_samples": n_min if n_min == max(r.n for r in results) else [n_min, max(r.n for r in results)],
        "avg@n": float(np.mean([r.c / r.n for r in results])),
        "pass@k": {str(k): float(np.mean([pass_at_k(r.n, r.c, k) for r in results])) for k in ks},
        "maj@k": {str(k): float(np.mean([maj_at_k(r.vote_keys, r.correct, k) for r in results])) for k in ks},
        "unique_correct": unique_correct(results, unique_correct_definition),
        "status_counts": dict(Counter(s for r in results for s in r.statuses).most_common()),
    }


def average_metrics(per_benchmark: Mapping[str, dict], *, unique_correct_definition: str = "coverage") -> dict:
    """Macro average over benchmarks (LUFFY/TRAPO's "Avg." column); pass/maj@k for the k every benchmark has.

    ``unique_correct`` is summed for ``coverage`` (problems solved across all benchmarks), else averaged. ``k_max``
    is the largest k of the average and ``k_limited_by`` the benchmarks whose sample count sets it (empty when every
    benchmark has that k as its largest): with the ``luffy`` preset, MATH-500 (n = 1) limits the average to pass@1.
    """
    if not per_benchmark:
        raise ValueError("no benchmarks to average")
    ms = list(per_benchmark.values())
    common = [k for k in ms[0]["pass@k"] if all(k in m["pass@k"] for m in ms)]
    uc = [m["unique_correct"] for m in ms]
    k_max = max(map(int, common))
    return {
        "n_benchmarks": len(ms),
        "n_problems": sum(m["n_problems"] for m in ms),
        "avg@n": float(np.mean([m["avg@n"] for m in ms])),
        "pass@k": {k: float(np.mean([m["pass@k"][k] for m in ms])) for k in common},
        "maj@k": {k: float(np.mean([m["maj@k"][k] for m in ms])) for k in common},
        "unique_correct": float((sum if unique_correct_definition == "coverage" else np.mean)(uc)),
        # the average's largest k is the largest k every benchmark has; these benchmarks set it (fewest samples)
        "k_max": k_max,
        "k_limited_by": [b for b, m in per_benchmark.items() if max(map(int, m["pass@k"])) == k_max]
        if any(max(map(int, m["pass@k"])) > k_max for m in ms)
        else [],
    }
