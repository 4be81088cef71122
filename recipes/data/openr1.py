# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Which DeepSeek-R1 generations of an OpenR1-Math-220k row are usable as expert traces.

A generation is *acceptable* when it

* is graded correct: ``correctness_math_verify`` (``correctness="any"`` also accepts ``correctness_llama``,
  the Llama-3.3-70B judge the set used for about 12% of its problems),
* finished: ``is_reasoning_complete`` and ``finish_reasons == "stop"``, where those fields exist,
* has a ``</think>`` and a non-empty reasoning, and
* passes ``fits(think)`` when given (a token budget).

What is kept is the think content (:func:`~.answers.extract_think`), never the text after ``</think>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from .answers import extract_think

CORRECTNESS = ("math_verify", "any")


def _at(values: Mapping, name: str, j: int):
    seq = values.get(name)
    if seq is None:
        return None
    seq = seq.tolist() if hasattr(seq, "tolist") else seq
    return seq[j] if j < len(seq) else None


def acceptable_traces(
    values: Mapping, *, correctness: str = "math_verify", fits: Callable[[str], bool] | None = None
) -> Iterator[str]:
    """Think contents of the acceptable generations of one row, in generation order, without repeats."""
    if correctness not in CORRECTNESS:
        raise ValueError(f"correctness must be one of {CORRECTNESS}, got {correctness!r}")
    generations = values.get("generations")
    generations = generations.tolist() if hasattr(generations, "tolist") else generations or []
    seen = set()
    for j, text in enumerate(generations):
        correct = _at(values, "correctness_math_verify", j) is True
        if correctness == "any":
            correct = correct or _at(values, "correctness_llama", j) is True
        finished = _at(values, "is_reasoning_complete", j) is not False and _at(values, "finish_reasons", j) in (
            None,
            "stop",
        )
        think = extract_think(text) if correct and finished and isinstance(text, str) else None
        if think and think not in seen and (fits is None or fits(think)):
            seen.add(think)
            yield think


def pick_trace(values: Mapping, existing: Sequence[str], **kw) -> str | None:
    """The first acceptable think content that is not already in ``existing`` (None if there is none)."""
    return next((t for t in acceptable_traces(values, **kw) if t not in existing), None)
