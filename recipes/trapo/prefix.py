# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Pure helpers of TRAPO's adaptive prefix selection: expert-trace tokens, the prefix cut, the micro-group rule.

TRAPO (arXiv:2512.17636, Sec. 3.2 and Algorithm 1; recipes/trapo/README.md) samples the ``rollout.n``
trajectories of a prompt as micro-groups g_1..g_N of sizes n_i. Before g_i (i > 1) the mean reward of *all* earlier
trajectories of the prompt is compared with the threshold t_i::

    guided(g_i)  ⇔  (1/m_i) Σ_{j < m_i} R_j  <  t_i,        m_i = n_1 + … + n_{i-1}

and a guided g_i continues an expert prefix of ratio L_i (L_i = 1: the whole trace, nothing generated).

The prefix is cut in token space (policy tokenizer) as the official code does (``mix_vllm_rollout.py``,
``get_prefix_end_idx``): with ``k = int(len · L)``, the cut moves forward to just after the first paragraph break at a
token index ``j > k`` if ``j < len · (L + window)`` (official window 0.3), and stays at ``k`` otherwise. ``len`` counts
the EOS appended to the trace.

Everything here is framework-free; :mod:`trustrl.recipes.trapo.rollout` wires it into verl's agent loop.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

__all__ = [
    "decide_micro_group",
    "expert_trace_ids",
    "expert_trace_tokens",
    "expert_traces_of",
    "paragraph_breaks",
    "prefix_cut",
    "trace_index",
]


def expert_traces_of(extra_info, field: str) -> list[str]:
    """The non-blank expert traces ``extra_info[field]`` of a data row (a list, a parquet array or one string).

    >>> expert_traces_of({"expert_solutions": ["a\\n\\nb", "  "]}, "expert_solutions")
    ['a\\n\\nb']
    """
    if not isinstance(extra_info, dict):
        return []
    traces = extra_info.get(field)
    if traces is None:
        return []
    if isinstance(traces, str):
        traces = [traces]
    elif hasattr(traces, "tolist"):  # parquet list columns arrive as numpy object arrays
        traces = traces.tolist()
    return [t for t in traces if isinstance(t, str) and t.strip()]


def expert_trace_tokens(tokenizer, text: str, response_length: int) -> tuple[list[int], int]:
    """Token ids of one expert trace as a full response, and how many trace tokens did not fit.

    The text is tokenized without special tokens, right-truncated to ``response_length - 1`` tokens, then EOS is
    appended (so the full trace fits the response and ends like a sample). A cut trace ends mid-reasoning: as a
    full-trace row its TrSFT tokens teach the model to stop there, so the caller counts it (the rollout's
    ``rollout/trapo/trace_cut*`` metrics); the data preparation should have filtered such traces.

    Args:
        tokenizer: the policy tokenizer (``encode``, ``eos_token_id``).
        text: think content of the expert solution.
        response_length: ``actor_rollout_ref.rollout.response_length`` (>= 2).

    Returns:
        ``(ids, dropped)``: ``list[int]`` of length <= ``response_length`` ending with ``tokenizer.eos_token_id``,
        and the number of trace tokens cut off (0 when the trace fits).
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the policy tokenizer has no eos_token_id; TRAPO appends EOS to every expert trace")
    ids = tokenizer.encode(text, add_special_tokens=False)
    budget = response_length - 1  # one slot for EOS
    return list(ids[:budget]) + [tokenizer.eos_token_id], max(len(ids) - budget, 0)


def expert_trace_ids(tokenizer, text: str, response_length: int) -> list[int]:
    """The ids of :func:`expert_trace_tokens` (trace cut to ``response_length - 1`` tokens, then EOS)."""
    return expert_trace_tokens(tokenizer, text, response_length)[0]


def paragraph_breaks(pieces: Sequence[str]) -> list[bool]:
    """Per token: does a paragraph break ``"\\n\\n"`` end in this token?

    ``pieces[j]`` is the decoded text of token j alone. A break is a token containing ``"\\n\\n"`` (a byte-level BPE
    token such as ``ĊĊ`` or ``.ĊĊ``, the official criterion) or a newline token right after a token that ends in a
    newline (tokenizers that split ``"\\n\\n"`` into two tokens).

    >>> paragraph_breaks(["a", "\\n", "\\n", "b", ".\\n\\n"])
    [False, False, True, False, True]
    """
    out = []
    for j, piece in enumerate(pieces):
        split = j > 0 and pieces[j - 1].endswith("\n") and piece.startswith("\n")
        out.append("\n\n" in piece or split)
    return out


def prefix_cut(breaks: Sequence[bool], ratio: float, window: float) -> int:
    """Number of trace tokens in the expert prefix of ratio ``ratio`` (``breaks[j]``: token j ends a paragraph).

    ``k = int(len · ratio)``; the cut is ``j + 1`` for the first break ``j > k`` with ``j < len · (ratio + window)``,
    else ``k``. ``ratio >= 1`` keeps the whole trace (EOS included); ``window = 0`` always cuts at ``k``.

    >>> prefix_cut([False] * 3 + [True] + [False] * 6, ratio=0.25, window=0.3)  # k = 2, break at 3 < 5.5
    4
    >>> prefix_cut([False] * 8 + [True, False], ratio=0.25, window=0.3)  # break at 8 >= 5.5: stay at k
    2
    """
    n = len(breaks)
    if ratio >= 1.0:
        return n
    k = int(n * ratio)
    for j in range(k + 1, n):
        if breaks[j]:
            return j + 1 if j < n * (ratio + window) else k
    return k


def trace_index(n_traces: int, ratio: float, choice: str, rng: random.Random | None = None) -> int | None:
    """Which expert trace guides a micro-group of prefix ratio ``ratio`` (``None``: the prompt has none).

    ``fixed`` is the official code's choice: trace 0 for partial prefixes, trace 1 for the full one (ratio 1.0),
    falling back to trace 0 when the prompt has a single trace. ``random`` draws uniformly with ``rng``.
    """
    if n_traces <= 0:
        return None
    if choice == "fixed":
        return 1 if ratio >= 1.0 and n_traces > 1 else 0
    if choice == "random":
        if rng is None:
            raise ValueError("trace_choice=random needs a seeded random.Random")
        return rng.randrange(n_traces)
    raise ValueError(f"trapo.micro_group.trace_choice must be 'fixed' or 'random', got {choice!r}")


def decide_micro_group(
    known: Sequence[float], n_earlier: int, threshold: float, bounds: tuple[float, float] | None = None
) -> bool | None:
    """The guidance decision of a micro-group, or ``None`` while it still depends on pending rewards.

    Args:
        known: rewards of the earlier trajectories of the prompt that are already scored.
        n_earlier: m_i, the number of earlier trajectories (``len(known) <= n_earlier``).
        threshold: t_i; the group is guided iff the mean of the m_i rewards is ``< t_i`` (the official "<").
        bounds: ``(lo, hi)`` bounds of one reward. With pending rewards the decision is returned early when it is
            the same for every outcome in the bounds (the mean is monotone in each reward); ``None`` waits for all.

    Returns:
        ``True`` (guided), ``False`` (unguided) or ``None`` (undecided).

    ``math.fsum`` is exactly rounded, so the bound with pending rewards at ``hi`` equals the final mean when they do
    land on ``hi``: an early decision can never disagree with the one taken on the complete rewards.

    >>> decide_micro_group([0.0, 1.0, 0.0], 4, threshold=0.5, bounds=(0.0, 1.0))  # mean <= 2/4, undecided
    >>> decide_micro_group([0.0, 0.0, 0.0], 4, threshold=0.5, bounds=(0.0, 1.0))  # mean <= 1/4 < 0.5
    True
    """
    pending = n_earlier - len(known)
    if pending < 0:
        raise ValueError(f"{len(known)} known rewards for {n_earlier} earlier trajectories")
    if pending == 0:
        return math.fsum(known) / n_earlier < threshold
    if bounds is None:
        return None
    lo, hi = bounds
    if math.fsum([*known, *[hi] * pending]) / n_earlier < threshold:
        return True
    if math.fsum([*known, *[lo] * pending]) / n_earlier >= threshold:
        return False
    return None
