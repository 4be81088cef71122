# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Text helpers and prompt templates of trustrl.recipes.data."""

import pytest
from trustrl.recipes.data import (
    TEMPLATES,
    e_notation_to_latex,
    extract_think,
    get_template,
    last_boxed,
    normalize_gold,
    problem_key,
)
from trustrl.recipes.data.templates import PromptTemplate


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{\frac{1}{2}}", r"\frac{1}{2}"),  # nested braces
        (r"\boxed{1} then \boxed{2}", "2"),  # last box wins
        (r"\fbox{7}", "7"),  # \fbox counts as a box
        (r"it is \boxed 5$ done", "5"),  # brace-less form runs to the next $
        (r"cut \boxed{2", None),  # unterminated: no answer
        ("no box", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    "raw, gold",
    [
        ("4.5e33", r"4.5 \times 10^{33}"),  # Minerva e-notation (math-verify reads 4.5*e*33)
        ("3E+08", r"3 \times 10^{8}"),  # sign and leading zeros of the exponent dropped
        ("1e-3 m", r"1 \times 10^{-3} m"),
        (r"e^{2}", r"e^{2}"),  # Euler's e is not e-notation
        ("x2e3", "x2e3"),  # glued to a word: left alone
        (r"$\frac{1}{2 n+2}$", r"\frac{1}{2 n+2}"),  # OlympiadBench $-wrapping
        (r"$(-\infty, 0) \cup\{1\}$.", r"(-\infty, 0) \cup\{1\}"),  # trailing period
        (r"\$5", r"\$5"),  # an escaped dollar is content
        (142.0, "142"),  # AMC floats
        ("142.0", "142"),
        (1.5, "1.5"),
        ("025", "25"),  # AIME leading zero
        (7, "7"),
        ("  ", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_normalize_gold(raw, gold):
    assert normalize_gold(raw) == gold


def test_e_notation_inside_text():
    assert e_notation_to_latex("between 2e5 and 3.1e-2") == r"between 2 \times 10^{5} and 3.1 \times 10^{-2}"


@pytest.mark.parametrize(
    "trace, think",
    [
        ("<think>\nstep 1\nstep 2\n</think>\n\nanswer", "step 1\nstep 2"),
        ("reasoning without an opening tag</think> solution", "reasoning without an opening tag"),
        ("<think>\nunfinished", None),  # no </think>: incomplete
        ("<think>\n  \n</think> x", None),  # empty reasoning
        ("<think>a</think> b <think>c</think>", "a"),  # first block only
    ],
)
def test_extract_think(trace, think):
    assert extract_think(trace) == think


def test_problem_key_normalizes_case_space_and_unicode():
    assert problem_key("How many  positive\ndivisors?") == problem_key("how many positive divisors?")
    assert problem_key("ｘ＋１") == problem_key("x+1")  # NFKC folds full-width forms
    assert problem_key("x + 1") != problem_key("x + 2")


def test_default_template_is_trapo_training_template():
    msgs = get_template().render(r"What is $\frac{1}{2}$? Use {braces}.")
    assert msgs == [
        {"role": "system", "content": "You are a helpful assistant."},
        {
            "role": "user",
            "content": "What is $\\frac{1}{2}$? Use {braces}.\n"
            "Please reason step by step, and put your final answer within \\boxed{}.",
        },
    ]


def test_templates_custom_and_errors():
    assert TEMPLATES["plain"].render("p") == [{"role": "user", "content": "p"}]
    custom = get_template(user="Q: {problem}\nA:", system="sys")
    assert custom.render("1+1") == [{"role": "system", "content": "sys"}, {"role": "user", "content": "Q: 1+1\nA:"}]
    assert get_template("verl_math", system="S").render("x")[0] == {"role": "system", "content": "S"}
    with pytest.raises(ValueError, match="exactly once"):
        PromptTemplate("bad", user="no placeholder")
    with pytest.raises(KeyError, match="unknown prompt template"):
        get_template("nope")
