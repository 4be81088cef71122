# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""pass@k against enumeration of subsets, maj@k ties, the unique-correct count, benchmark aggregation."""

import itertools
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trustrl.recipes.eval import (
    ProblemResult,
    average_metrics,
    benchmark_metrics,
    canonical_answer,
    maj_at_k,
    majority_vote,
    pass_at_k,
    pass_ks,
    unique_correct,
)


def _brute_pass_at_k(n, c, k):
    """Fraction of the C(n, k) k-subsets of n samples (the first c correct) that contain a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(i < c for i in s) for s in subsets), len(subsets))


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_subset_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(float(_brute_pass_at_k(n, c, k)), rel=0, abs=1e-12), (n, c, k)


@pytest.mark.parametrize("n, c, k", [(256, 1, 128), (256, 3, 200), (512, 17, 256), (1024, 1, 1)])
def test_pass_at_k_is_stable_where_binomials_overflow(n, c, k):
    # C(512, 256) ~ 4.7e152 and C(1024, 512) overflow float64; exact rational arithmetic as the reference
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)
    assert pass_at_k(256, 1, 128) == pytest.approx(0.5, abs=1e-15)  # 1 - C(255,128)/C(256,128) = 128/256


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 64).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_properties(nck):
    n, c, k = nck
    p = pass_at_k(n, c, k)
    assert 0.0 <= p <= 1.0
    assert pass_at_k(n, c, 1) == pytest.approx(c / n, abs=1e-12)  # pass@1 is the mean accuracy
    if k < n:
        assert pass_at_k(n, c, k + 1) >= p - 1e-12  # more tries never hurt
    if c < n:
        assert pass_at_k(n, c + 1, k) >= p - 1e-12


@pytest.mark.parametrize(
    "args, err", [((4, 5, 1), ValueError), ((4, 1, 0), ValueError), ((4, 1, 5), ValueError), ((4.0, 1, 1), TypeError)]
)
def test_pass_at_k_rejects_bad_input(args, err):
    with pytest.raises(err):
        pass_at_k(*args)


def test_pass_ks():
    assert pass_ks(1) == [1]
    assert pass_ks(32) == [1, 2, 4, 8, 16, 32]
    assert pass_ks(12) == [1, 2, 4, 8, 12]
    with pytest.raises(ValueError):
        pass_ks(0)


def test_majority_vote_tie_rule():
    assert majority_vote(["b", "a", "a", "b"]) == "b"  # 2-2 tie: "b" was voted first
    assert majority_vote(["a", "b", "b", "a"]) == "a"
    assert majority_vote([None, "x", None, "y", "y"]) == "y"  # abstentions do not count
    assert majority_vote(["x", "y", "z"]) == "x"  # all tied at 1
    assert majority_vote([None, None]) is None


def test_maj_at_k_blocks_and_ties():
    keys = ["G", "w1", "w1", "G", "w2", "G", None, None]
    correct = [True, False, False, True, False, True, False, False]
    # k=8: G 3 votes vs w1 2 -> correct
    assert maj_at_k(keys, correct, 8) == 1.0
    # k=4: [G w1 w1 G] tie 2-2, G voted first -> correct; [w2 G None None] tie 1-1, w2 first -> wrong
    assert maj_at_k(keys, correct, 4) == 0.5
    # k=2: [G w1] G; [w1 G] w1; [w2 G] w2; [None None] no vote -> 1/4
    assert maj_at_k(keys, correct, 2) == 0.25
    # k=1: each voting sample on its own = fraction of correct samples
    assert maj_at_k(keys, correct, 1) == 3 / 8
    # k=3: floor(8/3) = 2 blocks, the last 2 samples unused: [G w1 w1] w1; [G w2 G] G -> 1/2
    assert maj_at_k(keys, correct, 3) == 0.5
    with pytest.raises(ValueError):
        maj_at_k(keys, correct[:-1], 2)


def test_canonical_answer():
    assert canonical_answer(r"\left( 3, \dfrac{\pi}{2} \right)") == canonical_answer(r"(3,\frac{\pi}{2})")
    assert canonical_answer(r"\text{Evelyn}") == "Evelyn"
    assert canonical_answer(r"30^\circ") == canonical_answer("30") == "30"
    assert canonical_answer("") is None and canonical_answer(None) is None


def _result(pid, bench, correct, responses=()):
    keys = ["gold" if ok else f"w{i}" for i, ok in enumerate(correct)]
    return ProblemResult(
        pid, bench, "1", list(correct), ["x"] * len(correct), ["ok"] * len(correct), keys, list(responses)
    )


def test_unique_correct_on_a_hand_built_case():
    results = [
        _result("p1", "b", [False, False, False]),  # never solved
        _result("p2", "b", [False, True, False], ["a", "Solve: x = 1.", "c"]),
        _result("p3", "b", [True, True, True], ["x = 1", "x  =\n1", "y = 1"]),  # two texts up to whitespace
    ]
    results[0].responses = ["a", "b", "c"]
    # coverage: problems solved at least once = 2 (p2, p3)
    assert unique_correct(results, "coverage") == 2
    # distinct correct responses per problem: p1 0, p2 1, p3 2 -> mean 1
    assert unique_correct(results, "distinct_responses") == 1.0
    with pytest.raises(KeyError):
        unique_correct(results, "strategies")
    with pytest.raises(ValueError, match="response text"):
        unique_correct([_result("q", "b", [True])], "distinct_responses")


def test_benchmark_and_average_metrics():
    a = [_result("a1", "A", [True, False, False, False]), _result("a2", "A", [True, True, False, False])]
    b = [_result("b1", "B", [True]), _result("b2", "B", [False])]
    ma, mb = benchmark_metrics(a), benchmark_metrics(b)
    assert ma["n_problems"] == 2 and ma["n_samples"] == 4
    assert ma["avg@n"] == pytest.approx((1 / 4 + 2 / 4) / 2)
    # pass@2: a1 1 - C(3,2)/C(4,2) = 1/2; a2 1 - C(2,2)/C(4,2) = 5/6
    assert ma["pass@k"] == pytest.approx({"1": 0.375, "2": (1 / 2 + 5 / 6) / 2, "4": 1.0})
    assert set(ma["maj@k"]) == {"1", "2", "4"} and ma["unique_correct"] == 2
    assert mb["pass@k"] == {"1": 0.5} and mb["unique_correct"] == 1
    avg = average_metrics({"A": ma, "B": mb})
    assert avg["avg@n"] == pytest.approx((0.375 + 0.5) / 2)
    assert avg["pass@k"] == pytest.approx({"1": (0.375 + 0.5) / 2})  # only the k both benchmarks have
    assert avg["unique_correct"] == 3 and avg["n_problems"] == 4
    # unequal n within a benchmark: k stops at the smallest n, and both are reported
    mixed = benchmark_metrics([_result("m1", "M", [True, False]), _result("m2", "M", [True, False, True, True])])
    assert mixed["n_samples"] == [2, 4] and list(mixed["pass@k"]) == ["1", "2"]
    with pytest.raises(ValueError):
        benchmark_metrics([])
