# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
r"""Text helpers shared by the dataset builders: boxed answers, gold normalization, think content, dedup keys.

Gold normalization is deliberately small and only fixes forms that math-verify
misreads:

* ``$...$`` delimiters are removed (OlympiadBench stores ``$\frac{1}{2}$``);
* e-notation becomes ``\times 10^{k}``: math-verify reads ``$4.5e33$`` as ``4.5·e·33`` (e = Euler's number),
  so 58 of Minerva's 272 golds could never match a model's ``4.5 \times 10^{33}``;
* integral floats lose their ``.0`` (``142.0`` -> ``142``; the AMC sets store floats) and integers their
  leading zeros (AIME ``025`` -> ``25``);
* one trailing period is dropped (``(-\infty, 0) \cup\{1\}.``).
"""

from __future__ import annotations

import math
import re
import unicodedata

_BOX_TOKENS = ("\\boxed", "\\fbox")
# mantissa (digits with an optional fraction) + e/E + signed integer exponent, not glued to a word or a command
_E_NOTATION = re.compile(r"(?<![\w\\.])(\d+(?:\.\d+)?|\.\d+)[eE]([+-]?\d+)(?![\w.])")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_FLOAT_INTEGRAL = re.compile(r"[+-]?\d+\.0+")
_LEADING_ZERO = re.compile(r"0\d+")


def last_boxed(text: str) -> str | None:
    r"""Content of the last complete ``\boxed{...}`` (or ``\fbox{...}``, or ``\boxed 5``); None if there is none.

    >>> last_boxed(r"so \boxed{\frac{1}{2}} and then \boxed{3}")
    '3'
    >>> last_boxed(r"cut off \boxed{2") is None
    True
    """
    start, token = max((text.rfind(t), t) for t in _BOX_TOKENS)
    if start < 0:
        return None
    i = start + len(token)
    if text[i : i + 1] == " ":  # "\boxed 5": the argument runs to the next "$" or the end
        return text[i + 1 :].split("$")[0].strip() or None
    if text[i : i + 1] != "{":
        return None
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None  # unterminated: a truncated box is no answer


def solution_gold(solution: str) -> tuple[str | None, int]:
    r"""The gold of a worked solution and the number of boxes it joins: its final boxed answer, with the boxes before
    the last one that belong to the same answer (``trustrl.reward._answer.box_group``, math-verify's rule), so a
    multi-part answer is never cut to its last part. None when there is no complete box.

    >>> solution_gold(r"The roots are $\boxed{1}$ and $\boxed{-2}$.")
    ('1, -2', 2)
    >>> solution_gold(r"so \boxed{3}. Earlier we guessed \boxed{5} but the final answer is \boxed{3}")
    ('3', 1)
    """
    from trustrl.reward._answer import box_group, strip_trailing_punctuation

    group = box_group(solution)
    if group:
        return normalize_gold(", ".join(strip_trailing_punctuation(g) for g in group)), len(group)
    return normalize_gold(last_boxed(solution)), 1


def e_notation_to_latex(text: str) -> str:
    r"""``4.5e33`` -> ``4.5 \times 10^{33}``; ``1E-3`` -> ``1 \times 10^{-3}``; other text is left alone.

    >>> e_notation_to_latex("4.4e7")
    '4.4 \\times 10^{7}'
    """
    return _E_NOTATION.sub(lambda m: f"{m.group(1)} \\times 10^{{{int(m.group(2))}}}", text)


def normalize_gold(value) -> str | None:
    """The gold answer as a clean LaTeX string, or None when the value is missing or empty."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value)
    text = (_UNESCAPED_DOLLAR.sub("", text) if "$" in text else text).strip()
    if text.endswith(".") and not text[:-1].rstrip().endswith("\\"):
        text = text[:-1].rstrip()
    if _FLOAT_INTEGRAL.fullmatch(text):  # "142.0" -> "142"
        text = text.split(".")[0]
    if _LEADING_ZERO.fullmatch(text):  # AIME "025" -> "25"
        text = str(int(text))
    return (e_notation_to_latex(text) if "e" in text or "E" in text else text) or None


def extract_think(trace: str) -> str | None:
    """The reasoning of an R1 trace: text between ``<think>`` (optional) and the first ``</think>``, stripped.

    Returns None when the trace has no ``</think>`` (unfinished reasoning) or the reasoning is empty. The
    solution written after ``</think>`` is not part of it.

    >>> extract_think("<think>\\nLet x = 2.\\n</think>\\n\\nSo \\\\boxed{2}.")
    'Let x = 2.'
    """
    end = trace.find("</think>")
    if end < 0:
        return None
    head = trace[:end]
    start = head.find("<think>")
    body = head[start + len("<think>") :] if start >= 0 else head
    return body.strip() or None


def problem_key(text: str) -> str:
    """Dedup / join / decontamination key: NFKC, case-folded, whitespace runs collapsed to one space."""
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()
