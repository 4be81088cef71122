# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The math-verify side of the reward; imported only inside the pool's worker processes.

Each worker runs this on its own main thread, so no signal-based timeout of math-verify is needed: the worker loop
arms one interval timer per task (soft timeout) and the parent kills the worker outright at the hard deadline.
math-verify's own per-call timeouts are therefore switched off (``None``), which also keeps it from touching SIGALRM.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import sympy
from latex2sympy2_extended import NormalizationConfig
from math_verify import LatexExtractionConfig, parse, verify
from trustrl.reward._answer import normalize_answer, strip_percent

# Gold: math-verify's default LaTeX extraction of `\boxed{gold}` (what verl's wrapper does).
GOLD_CONFIG = (LatexExtractionConfig(),)
# Prediction: the strict reward config of the math-verify README / open-r1: the model must write valid LaTeX,
# so no malformed-operator or "nits" repairs; boxed first, nothing extracted without an anchor.
PRED_CONFIG = (
    LatexExtractionConfig(
        normalization_config=NormalizationConfig(
            basic_latex=True, units=True, malformed_operators=False, nits=False, boxed="all"
        ),
        boxed_match_priority=0,
        try_extract_without_anchor=False,
    ),
)
_PERCENT = sympy.Rational(1, 100)

for _name in ("math_verify", "latex2sympy2_extended"):
    # NOTE: timeouts are disabled on purpose (see module docstring); the "Timeout is disabled" warning and the
    # per-expression parse errors would otherwise flood the trainer's stderr. Outcomes travel in `status`.
    logging.getLogger(_name).setLevel(logging.CRITICAL + 1)


def _parse_boxed(latex: str, config) -> list:
    # The plain-boxed regex of math-verify stops at a newline, and the box is already isolated, so flatten it.
    return parse("\\boxed{" + latex.replace("\n", " ") + "}", config, parsing_timeout=None)


@lru_cache(maxsize=4096)
def parse_gold(golds: tuple[str, ...]) -> tuple:
    """Parsed targets of all gold alternatives; empty when none yields a sympy object (string-only = unparseable)."""
    targets: list = []
    for gold in golds:
        body, _ = strip_percent(gold)
        parsed = _parse_boxed(body, GOLD_CONFIG)
        if any(not isinstance(x, str) for x in parsed):
            targets.extend(parsed)
    return tuple(targets)


def parse_pred(content: str) -> list:
    """Parsed prediction; a trailing percent adds the value/100 reading (`10\\%` matches gold 10 and gold 0.1)."""
    body, percent = strip_percent(content)
    parsed = _parse_boxed(body, PRED_CONFIG)
    if percent:
        parsed += [x * _PERCENT for x in parsed if isinstance(x, sympy.Number)]
    return parsed


def _rel_close(gold, pred, rel_tol: float) -> bool:
    """Relative closeness of two numbers, to veto math-verify's absolute 6-decimal rounding on tiny values.

    math-verify accepts 1/2^98 for 1/2^99 and 1/2006! for 1/2004! (Math-Verify #14) because both round to 0.
    Non-numbers (sets, equations, strings) pass: this check only narrows a numeric match.
    """
    if not (isinstance(gold, sympy.Expr) and isinstance(pred, sympy.Expr) and gold.is_number and pred.is_number):
        return True
    try:
        g, p = gold.evalf(30), pred.evalf(30)  # sympy floats keep exponents like 1e-5700 that a double flushes to 0
        scale = sympy.Max(abs(g), abs(p))
        return bool(abs(g - p) <= rel_tol * scale)
    except Exception:  # evalf/comparison of an exotic number: keep math-verify's verdict
        return True


def equivalent(golds: tuple, preds: list, rel_tol: float | None) -> bool:
    # verify is asymmetric: gold first (an inequality gold accepts an interval answer, not the reverse)
    return any(
        verify(g, p, timeout_seconds=None) and (rel_tol is None or _rel_close(g, p, rel_tol))
        for g in golds
        for p in preds
    )


def score(pre_status: str | None, content: str, golds: tuple[str, ...], rel_tol: float | None, e_notation: bool):
    """Score one prepared sample: returns ``(status, acc)``; the gold is checked first for every sample."""
    gold_targets = parse_gold(golds) if golds else ()
    if not gold_targets:
        return "gold_unparseable", False
    if pre_status is not None:
        return pre_status, False
    preds = parse_pred(normalize_answer(content, e_notation))
    return "ok", bool(preds) and equivalent(gold_targets, preds, rel_tol)


def warmup() -> None:
    """Load antlr, sympy's printers and math-verify's regexes once, before the zygote forks workers."""
    golds = ("\\frac{1}{2}", "(1, 2)", "x^2+1")
    for gold in golds:
        score(None, gold, (gold,), 1e-4, True)
