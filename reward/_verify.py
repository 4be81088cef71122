# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The math-verify side of the reward; imported only inside the pool's worker processes.

Each worker runs this on its own main thread, so no signal-based timeout of math-verify is needed: the worker loop
arms one interval timer per task (soft timeout) and the parent kills the worker outright at the hard deadline.
math-verify's own per-call timeouts are therefore switched off (``None``), which also keeps it from touching SIGALRM.
"""

from __future__ import annotations

import logging
import re
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


_CANON = re.compile(r"\s+|\\left(?![a-zA-Z])|\\right(?![a-zA-Z])|\\[,;!: ]|\\displaystyle")


def _canonical(latex: str) -> str:
    """Spacing- and sizing-free spelling; two answers with the same spelling are the same answer."""
    return _CANON.sub("", latex).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")


@lru_cache(maxsize=16384)
def _accept(golds: tuple[str, ...], content: str, rel_tol: float | None) -> bool:
    # GRPO samples of one prompt mostly repeat a few answers: each distinct (gold, answer) pair is verified once
    answer = _canonical(content)
    if any(answer == _canonical(g) for g in golds):
        return True  # spelled like a gold: no sympy needed (intervals and tuples cost 30-100 ms to verify)
    preds = parse_pred(content)
    return bool(preds) and equivalent(parse_gold(golds), preds, rel_tol)


def score(
    pre_status: str | None,
    content: str,
    golds: tuple[str, ...],
    rel_tol: float | None,
    e_notation: bool,
    joined: str | None = None,
):
    """Score one prepared sample: returns ``(status, acc, joined_matched)``; the gold is checked first for every sample.

    ``content`` is the last box; ``joined`` (or None) the multi-part answer that box ends (``_answer.box_group``),
    tried when the last box alone does not match, so ``\\boxed{-2} and \\boxed{1}`` matches the gold ``1, -2``.
    """
    if not golds or not parse_gold(golds):
        return "gold_unparseable", False, False
    if pre_status is not None:
        return pre_status, False, False
    if _accept(golds, normalize_answer(content, e_notation), rel_tol):
        return "ok", True, False
    if joined is not None and _accept(golds, normalize_answer(joined, e_notation), rel_tol):
        return "ok", True, True
    return "ok", False, False


# One pair per answer family, so the lazily imported parts of sympy and latex2sympy are loaded in the zygote and
# shared by every forked worker (a fresh worker otherwise spends 50-300 ms of CPU on its first interval or matrix).
_WARMUP_PAIRS = (
    ("204", "204"),
    ("0.5", "\\frac{1}{2}"),
    ("4.5 \\times 10^{33}", "4.5e33"),
    ("\\frac{1}{2^{98}}", "\\frac{1}{2^{99}}"),
    ("[2, 5)", "(2,5]"),
    ("(-\\infty, 3]", "x \\leq 3"),
    ("x \\le 3", "3"),
    ("(-\\infty,0)\\cup\\{1\\}", "(-\\infty, 0) \\cup\\{1\\}"),
    ("\\{3,2,1\\}", "\\{1,2,3\\}"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
    ("y = 2x+3", "y=2x+3"),
    ("(x+1)^2", "x^2+2x+1"),
    ("10\\%", "0.1"),
    ("30^\\circ", "30"),
    ("1.6 \\text{ m}", "1.6"),
    ("\\text{(C)}", "C"),
    ("\\sqrt{\\frac{a}{b}}", "\\frac{\\sqrt{a}}{\\sqrt{b}}"),
    ("1 - \\frac{1}{\\mathrm{e}}", "1+\\frac{1}{e}"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ("2+3i", "2+3i"),
    ("\\log_2 8", "3"),
    ("\\sin(\\pi/6)", "\\frac12"),
    ("5!", "120"),
    ("\\pm 2021", "2021"),
    ("\\infty", "\\infty"),
)


def warmup() -> None:
    """Score one pair of each answer family once, before the zygote forks workers (about 2 s of CPU)."""
    for pred, gold in _WARMUP_PAIRS:
        score(None, pred, (gold,), 1e-4, True)
