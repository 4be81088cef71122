# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The reward against material it was not written for: Math-Verify's own test suite, multi-part golds, punctuation
inside the box, a reopened think block.

The Math-Verify cases are a fixture (``tests/fixtures/reward/math_verify_cases.json``: source URL, commit, license);
``math_verify_suite.py`` turns each into a reward call and pins every disagreement with its reason.
"""

import pytest
from trustrl.reward._answer import box_group, normalize_gold, split_think, strip_trailing_punctuation
from trustrl.reward.math_reward import compute_score, compute_scores

from tests.reward import math_verify_suite as suite

TIMEOUT_S = 10.0

PRIMES = r"$$\boxed{2}, \boxed{3}, \boxed{5}, \boxed{7}, \boxed{13}$$"
ROOTS = r"\(\boxed{1}\) and \(\boxed{-2}\)."

# (response, gold, score): a gold with several boxes is one multi-part answer, never its last part
MULTI_PART = [
    (r"\boxed{\{2, 3, 5, 7, 13\}}", PRIMES, 1.0),  # the full answer (scored 0 when the gold was cut to 13)
    (r"\boxed{13}", PRIMES, 0.0),  # a partial answer (scored 1.0)
    (r"\boxed{2, 3, 5, 7}", PRIMES, 0.0),
    (r"\boxed{-2}", ROOTS, 0.0),  # scored 1.0
    (r"\boxed{1}", ROOTS, 0.0),
    (r"$\boxed{-2,1}$.", ROOTS, 1.0),
    (r"$\boxed{1,2}$", r"\boxed{1} papers and \boxed{2} bins", 1.0),  # joined by "and" within 70 characters
    (r"$\boxed{1,2}$", r"\boxed{1} no no no no no \boxed{2}", 0.0),  # no separator: the gold is 2 (upstream: 0)
    (r"\boxed{2}", r"\boxed{1} no no no no no \boxed{2}", 1.0),
    # the prediction's multi-part answer is a second reading of its last box
    (r"The integers are \boxed{-2} and \boxed{1}.", ROOTS, 1.0),
    (r"\boxed{2}, \boxed{3}, \boxed{5}, \boxed{7}, \boxed{13}", PRIMES, 1.0),
    (r"\boxed{2}, \boxed{13}", PRIMES, 0.0),  # still partial
    (r"\boxed{3} and \boxed{5}", "5", 1.0),  # a scalar gold: the last box, as before
    (r"\boxed{3} and \boxed{5}", "3", 0.0),  # an earlier box alone is never credited
    (r"\boxed{205} wait, I made an error: \boxed{204}", "204", 1.0),  # a self-correction keeps its credit
]

# (response, gold, score): a sentence-final "." or "," inside the final box
PUNCTUATION = [
    (r"\boxed{42.}", "42", 1.0),
    (r"\boxed{\frac{1}{3}.}", "1/3", 1.0),
    (r"\boxed{7,}", "7", 1.0),
    (r"\boxed{42.5}", "42", 0.0),
    (r"\boxed{42!}", "42", 0.0),
    (r"\boxed{42.}", r"\boxed{42.}", 1.0),  # the same on the gold side
]


@pytest.mark.parametrize("response, gold, score", MULTI_PART, ids=[f"{i}" for i in range(len(MULTI_PART))])
def test_multi_part_golds(response, gold, score):
    r = compute_score("x", response, gold, timeout_s=TIMEOUT_S)
    assert (r["score"], r["status"]) == (score, "ok")


def test_a_partial_answer_never_scores_1():
    # every proper part of a multi-part gold, boxed alone, scores 0
    golds = [PRIMES, ROOTS, r"$\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}$"]
    parts = [(g, p) for g in golds for p in box_group(g)]
    results = compute_scores(["\\boxed{" + p + "}" for _, p in parts], [g for g, _ in parts], timeout_s=TIMEOUT_S)
    assert [r["score"] for r in results] == [0.0] * len(parts)


def test_the_matching_reading_is_reported():
    r = compute_score("x", r"\boxed{-2} and \boxed{1}", ROOTS, timeout_s=TIMEOUT_S)
    assert r["pred"] == "-2, 1"
    r = compute_score("x", r"\boxed{-2} and \boxed{7}", ROOTS, timeout_s=TIMEOUT_S)
    assert r["pred"] == "7" and r["score"] == 0.0


@pytest.mark.parametrize(
    "gold, expected",
    [
        (PRIMES, "2, 3, 5, 7, 13"),
        (ROOTS, "1, -2"),
        (r"\boxed{1} no no no no no \boxed{2}", "2"),
        (r"so \boxed{5}, i.e. \boxed{5}", "5"),  # a repeated box is one answer
        (r"The area is $\boxed{\frac{1}{2}}$.", "\\frac{1}{2}"),
        (r"\boxed{\boxed{5}}", "\\boxed{5}"),  # a nested box is part of the outer one
    ],
)
def test_normalize_gold_joins_the_boxes_of_one_answer(gold, expected):
    assert normalize_gold(gold) == expected


@pytest.mark.parametrize("response, gold, score", PUNCTUATION)
def test_trailing_punctuation_inside_the_box(response, gold, score):
    assert compute_score("x", response, gold, timeout_s=TIMEOUT_S)["score"] == score


@pytest.mark.parametrize(
    "latex, expected",
    [("42.", "42"), ("7,", "7"), ("42.5", "42.5"), ("1, 2, ...", "1, 2, ..."), ("7\\,", "7\\,"), ("x.", "x")],
)
def test_strip_trailing_punctuation(latex, expected):
    assert strip_trailing_punctuation(latex) == expected


def test_a_think_block_reopened_after_the_last_close_scores_0():
    text = "<think></think>" * 1000 + r"\boxed{1}<think>"  # scored 1.0 although the last block never closed
    assert split_think(text, "auto") is None and split_think(text, "require") is None
    r = compute_score("x", text, "1", timeout_s=TIMEOUT_S)
    assert (r["score"], r["status"]) == (0.0, "no_think_end")
    assert compute_score("x", "<think>a</think>" * 1000 + r"\boxed{1}", "1", timeout_s=TIMEOUT_S)["score"] == 1.0


@pytest.fixture(scope="module")
def math_verify_suite():
    cases = suite.load_cases()
    return cases, suite.score_suite(compute_scores, cases, timeout_s=TIMEOUT_S)


def test_fixture_names_its_source():
    meta = suite.fixture_meta()
    assert meta["commit"] == "5d148cfaaf99214c2e4ffb4bc497ab042c592a7a" and "Apache-2.0" in meta["license"]
    assert meta["source"].startswith("https://github.com/huggingface/Math-Verify/")
    assert len(suite.load_cases()) == 269


def test_math_verify_suite_agreement(math_verify_suite):
    cases, results = math_verify_suite
    groups = suite.classify(cases, results)
    # every disagreement is pinned with its reason, and every pinned one still disagrees
    assert sorted(groups["by_design"]) == sorted(suite.BY_DESIGN)
    assert groups["remaining"] == sorted(suite.REMAINING)
    assert set(suite.FIXED_BY_BOX_GROUPS) <= set(groups["agree"])
    assert len(groups["agree"]) == len(cases) - len(suite.BY_DESIGN) - len(suite.REMAINING) == 211
    assert [r["status"] for r in results].count("timeout") == 0


def test_math_verify_suite_has_no_false_positive(math_verify_suite):
    # what Math-Verify's authors mark wrong, the reward scores 0
    cases, results = math_verify_suite
    false_pos = [c["id"] for c, r in zip(cases, results) if c["expected"] == 0 and r["score"] == 1.0]
    assert false_pos == []
