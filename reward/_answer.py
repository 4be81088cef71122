# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Pure-string answer handling for the math reward: think split, last complete box, gold and answer normalization.

Everything here is linear-time string work with no sympy, so it runs in the calling process before anything is sent
to a worker, and it cannot hang on any input (the property test feeds it 100 kB of arbitrary unicode).
"""

from __future__ import annotations

import re
from typing import NamedTuple

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# One token per brace event. A box opener is `\boxed{` or `\fbox{` (LaTeX allows spaces before the brace);
# `\{` and `\}` are literal braces in LaTeX and never open or close a group.
_BRACE_TOKEN = re.compile(r"\\(?:boxed|fbox)\s*\{|\\[{}]|[{}]")
# `4.5e33`, `3E+08`, `1e-3` as whole tokens; `2e` or `x2e3` are left alone.
_E_NOTATION = re.compile(r"(?<![\w.\\])(\d+(?:\.\d*)?|\.\d+)[eE]([+-]?\d+)(?![\w.])")
# latex2sympy2_extended 1.11 mangles `\frac{1}{\mathrm{e}}` into `1 + \frac{1}{`; the bare letters parse fine.
_MATHRM_CONST = re.compile(r"\\(?:mathrm|operatorname)\s*\{\s*([ei])\s*\}")
# TeX shorthand that is valid LaTeX but that latex2sympy only reads braced: `\frac12`, `\dfrac ab`, `\frac{1}2`,
# `\sqrt2`, `\sqrt x`. Each argument is one token, as in TeX (`\frac123` is `\frac{1}{2}3`). The repairs of
# math-verify's `malformed_operators` (`\sqrt(2)`, `^(n)`) stay off: those are not valid LaTeX.
_TEX_ARG = r"(\{[^{}]*\}|\\[a-zA-Z]+|[0-9a-zA-Z])"
_FRAC_SHORTHAND = re.compile(r"\\([dt]?frac)(?![a-zA-Z])\s*" + _TEX_ARG + r"\s*" + _TEX_ARG)
_SQRT_SHORTHAND = re.compile(r"\\sqrt(?:\s+([a-zA-Z])|\s*([0-9])|\s*(\\[a-zA-Z]+))")
_EXPONENT_GROUP = re.compile(r"\^\s*\{")
_BIG_FACTORIAL = re.compile(r"\d{6,}\s*!|!\s*!")  # 123456! or n!!! (100! itself takes microseconds)
_TRAILING_PERCENT = re.compile(r"\s*(?:\\%|%|\\text\s*\{\s*\\?%\s*\})\s*$")
_MATH_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)"))
# boxes of one multi-part answer (box_group): separated by under 10 characters, or under 70 with a separator
_GROUP_NEAR, _GROUP_FAR = 10, 70
_GROUP_SEPARATOR = re.compile(r"\b(?:and|or)\b|[,;]")
_TRAILING_PUNCT = re.compile(r"(?<![\\.,])[.,]\s*$")


class Box(NamedTuple):
    """Where the last complete box sits in the scored text, and whether an opener after it never closed."""

    content: str | None  # stripped content of the last complete `\boxed{...}`; None when there is none
    unterminated_after: bool  # a box opened after the last complete one and never closed (cut-off output)


def split_think(text: str, mode: str) -> str | None:
    """Return the text to score, or None when a thinking block is left open.

    Modes: ``"auto"`` scores after the last ``</think>``, rejects a ``<think>`` that is never closed (also one opened
    after the last ``</think>``) and scores the whole text when neither tag appears; ``"require"`` also rejects any
    text without ``</think>`` (templates whose prompt already ends in ``<think>``); ``"ignore"`` always scores the
    whole text.
    """
    if mode == "ignore":
        return text
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        rest = text[close + len(THINK_CLOSE) :]
        return None if THINK_OPEN in rest else rest  # `...</think>\\boxed{1}<think>`: a block reopened
    if mode == "require" or THINK_OPEN in text:
        return None
    return text


def _scan_boxes(text: str) -> tuple[list[tuple[int, int, int]], bool]:
    """Complete boxes as (command start, content start, closing brace), in closing order, with one pass of a brace
    stack (linear in ``len(text)``); and whether a box opened after the last complete one never closed."""
    stack: list[tuple[int, int]] = []  # (command start, content start) of each open group; content start -1: plain
    boxes: list[tuple[int, int, int]] = []
    for m in _BRACE_TOKEN.finditer(text):
        tok = m.group()
        if tok[0] == "\\" and tok[-1] == "{" and len(tok) > 2:
            stack.append((m.start(), m.end()))
        elif tok == "{":
            stack.append((m.start(), -1))
        elif tok == "}" and stack:
            command, start = stack.pop()
            if start >= 0:
                boxes.append((command, start, m.start()))
    last_end = boxes[-1][2] if boxes else -1
    return boxes, any(start > last_end for _, start in stack if start >= 0)


def last_box(text: str) -> Box:
    """Find the last complete ``\\boxed{}`` / ``\\fbox{}`` (linear in ``len(text)``).

    "Last" is the box whose closing brace comes last, so ``\\boxed{\\boxed{5}}`` yields ``\\boxed{5}`` and a nested
    box inside an unterminated one is still found. Unmatched ``}`` are ignored.
    """
    boxes, unterminated = _scan_boxes(text)
    if not boxes:
        return Box(None, unterminated)
    _, start, end = boxes[-1]
    return Box(text[start:end].strip(), unterminated)


def box_group(text: str) -> tuple[str, ...]:
    """Contents of the last complete box and of the boxes before it that belong to the same answer, in text order.

    The rule is math-verify's for a multi-part answer (``latex2sympy2_extended`` ``extract_boxed_content``): walking
    back from the last box, an earlier box joins when fewer than 10 characters separate the two, or fewer than 70
    that contain a separator (``and``, ``or``, ``,``, ``;``) and the two contents differ. ``\\boxed{2}, \\boxed{3}``
    and ``\\(\\boxed{1}\\) and \\(\\boxed{-2}\\)`` are one answer each; ``\\boxed{1} no no no no no \\boxed{2}`` is
    just ``2``. Repeated contents appear once; empty boxes are left out.
    """
    boxes, _ = _scan_boxes(text)
    if not boxes:
        return ()
    group = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        current = group[-1]
        if box[2] > current[0]:
            continue  # nested inside the current member
        between = text[box[2] + 1 : current[0]]
        same = text[box[1] : box[2]].strip() == text[current[1] : current[2]].strip()
        if len(between) < _GROUP_NEAR or (len(between) < _GROUP_FAR and not same and _GROUP_SEPARATOR.search(between)):
            group.append(box)
        else:
            break
    contents = [text[start:end].strip() for _, start, end in reversed(group)]
    return tuple(c for i, c in enumerate(contents) if c and (i == 0 or c != contents[i - 1]))


def strip_trailing_punctuation(latex: str) -> str:
    """Drop one sentence-final ``.`` or ``,`` written inside a box: ``42.``, ``\\frac{1}{3}.``, ``7,``.

    ``42.5``, ``42!``, ``1, 2, ...`` and the LaTeX thin space ``7\\,`` are left alone.
    """
    return _TRAILING_PUNCT.sub("", latex)


def is_risky(latex: str) -> bool:
    """Answers whose evaluation can run for minutes: power towers (``5^{5^{5^5}}``, Math-Verify #65), huge factorials.

    A risky answer is still scored; the pool only starts it on its own process and lets it run while no other sample
    waits (``_pool``), so it never takes a worker from the rest of the batch. ``e^{x^2}`` is flagged too, harmlessly.
    """
    if _BIG_FACTORIAL.search(latex):
        return True
    for m in _EXPONENT_GROUP.finditer(latex):
        depth, i = 1, m.end()
        while i < len(latex) and depth:
            ch = latex[i]
            if ch == "^":
                return True
            depth += (ch == "{") - (ch == "}")
            i += 1
    return False


def normalize_answer(latex: str, e_notation: bool = True) -> str:
    """Rewrite what math-verify misreads: ``4.5e33`` (as 4.5·e·33), ``\\frac12``/``\\sqrt2``, ``\\mathrm{e}``."""
    if e_notation:
        latex = _E_NOTATION.sub(lambda m: f"{m.group(1)} \\times 10^{{{int(m.group(2))}}}", latex)
    latex = _FRAC_SHORTHAND.sub(lambda m: f"\\{m.group(1)}{_braced(m.group(2))}{_braced(m.group(3))}", latex)
    latex = _SQRT_SHORTHAND.sub(lambda m: "\\sqrt{" + (m.group(1) or m.group(2) or m.group(3)) + "}", latex)
    return _MATHRM_CONST.sub(r"\1", latex)


def _braced(arg: str) -> str:
    return arg if arg.startswith("{") else "{" + arg + "}"


def strip_percent(latex: str) -> tuple[str, bool]:
    """Drop one trailing percent sign (``10\\%``, ``10%``, ``10\\text{\\%}``); report whether there was one."""
    stripped = _TRAILING_PERCENT.sub("", latex)
    return stripped, stripped != latex


def normalize_gold(gold: str, e_notation: bool = True) -> str:
    """Normalize one gold answer as benchmarks store it.

    Strips whitespace, one trailing period or comma, ``$…$`` / ``\\(…\\)`` / ``\\[…\\]`` wrapping (OlympiadBench),
    takes the final boxed answer when the gold is a worked solution (MATH): the last box, joined with the boxes that
    belong to it (:func:`box_group`: ``\\boxed{2}, \\boxed{3}`` is the set ``2, 3``), and rewrites e-notation
    (Minerva: 58 of 272 golds).

    >>> normalize_gold("$4.5e33$")
    '4.5 \\\\times 10^{33}'
    >>> normalize_gold("The area is $\\\\boxed{\\\\frac{1}{2}}$.")
    '\\\\frac{1}{2}'
    """
    gold = gold.strip()
    if "\\boxed" in gold or "\\fbox" in gold:
        group = box_group(gold)
        gold = ", ".join(strip_trailing_punctuation(g) for g in group) if group else gold
    gold = strip_trailing_punctuation(gold).rstrip()
    for left, right in _MATH_WRAPPERS:
        inner = gold[len(left) : -len(right)]
        # `$a$ or $b$` is two formulas, not one wrapped formula
        if len(gold) > len(left) + len(right) and gold.startswith(left) and gold.endswith(right) and left not in inner:
            gold = strip_trailing_punctuation(inner.strip()).rstrip()
            break
    return normalize_answer(gold, e_notation)
