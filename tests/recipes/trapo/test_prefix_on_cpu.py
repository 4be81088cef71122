# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Pure helpers of TRAPO's prefix selection: paragraph breaks, the prefix cut, trace choice, the micro-group rule."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from trustrl.recipes.trapo.prefix import (
    decide_micro_group,
    expert_trace_ids,
    expert_traces_of,
    paragraph_breaks,
    prefix_cut,
    trace_index,
)

from tests.recipes.trapo.rollout_fakes import tiny_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def official_cut(break_ids: list[int], n: int, ratio: float) -> int:
    """The official ``get_prefix_end_idx`` (https://github.com/Su-my/TRAPO, ``mix_vllm_rollout.py``; window 0.3): the
    list of indices whose token contains a paragraph break, threshold ``int(n * ratio)``, the first index above it."""
    threshold = int(n * ratio)
    above = [i for i in break_ids if i > threshold]
    if above and above[0] < n * (ratio + 0.3):
        return above[0] + 1
    return threshold


def test_paragraph_breaks_single_token_and_split_newlines():
    # byte-level BPE style: the break is inside one token ("ĊĊ" decodes to "\n\n")
    assert paragraph_breaks(["So", "\n\n", "Then", ".\n\n", "x"]) == [False, True, False, True, False]
    # one token per character: the second newline of a pair ends the break; "\n\n\n" breaks twice
    assert paragraph_breaks(["a", "\n", "\n", "\n", "b"]) == [False, False, True, True, False]
    # a single newline, or newlines separated by text, is no break
    assert paragraph_breaks(["a", "\n", "b", "\n", " ", "\n"]) == [False] * 6
    # a token ending in a newline followed by one starting with a newline
    assert paragraph_breaks(["end.\n", "\nNext"]) == [False, True]


@pytest.mark.parametrize(
    "breaks_at, n, ratio, window, expected",
    [
        # k = int(10 * 0.25) = 2; first break above k at 3 < 10 * 0.55 = 5.5 -> cut after it
        ([3], 10, 0.25, 0.3, 4),
        # a break exactly at k does not count (strictly above): no other break -> k
        ([2], 10, 0.25, 0.3, 2),
        # first break above k at 6 >= 5.5: outside the window -> k (later breaks are not searched)
        ([6, 7], 10, 0.25, 0.3, 2),
        # k = 5; break at 7 < 10 * 0.8 = 8 -> 8
        ([1, 7], 10, 0.5, 0.3, 8),
        # window 0 disables the move: k
        ([3], 10, 0.25, 0.0, 2),
        # ratio 1.0: the whole trace, EOS included
        ([3], 10, 1.0, 0.3, 10),
        # ratio 0 in a guided group: k = 0; break at 3 >= 10 * 0.3 = 3 -> empty prefix
        ([3], 10, 0.0, 0.3, 0),
        # k = int(19 * 0.25) = 4; breaks 3, 7, 16; 7 < 19 * 0.55 = 10.45 -> 8
        ([3, 7, 16], 19, 0.25, 0.3, 8),
        # k = 9; next break 16 >= 19 * 0.8 = 15.2 -> 9
        ([3, 7, 16], 19, 0.5, 0.3, 9),
    ],
)
def test_prefix_cut_table(breaks_at, n, ratio, window, expected):
    breaks = [i in breaks_at for i in range(n)]
    assert prefix_cut(breaks, ratio, window) == expected


@pytest.mark.parametrize("seed", range(40))
def test_prefix_cut_matches_the_official_rule_on_random_traces(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 300)
    breaks = [rng.random() < rng.choice([0.0, 0.02, 0.2]) for _ in range(n)]
    for ratio in (0.0, 0.2, 0.25, 0.5, 0.75, 0.99):
        assert prefix_cut(breaks, ratio, 0.3) == official_cut([i for i, b in enumerate(breaks) if b], n, ratio)


def test_cut_in_token_space_with_the_policy_tokenizer(tok):
    # one token per character: a0 b1 \n2 \n3 c4 d5 \n6 \n7 e8 f9 " "10 g11 h12 i13 j14 \n15 \n16 Y17, then EOS = 19
    text = "ab\n\ncd\n\nef ghij\n\nY"
    ids = expert_trace_ids(tok, text, response_length=64)
    assert len(ids) == 19 and ids[-1] == tok.eos_token_id
    breaks = paragraph_breaks([tok.decode([t]) for t in ids])
    assert [i for i, b in enumerate(breaks) if b] == [3, 7, 16]
    assert tok.decode(ids[: prefix_cut(breaks, 0.25, 0.3)]) == "ab\n\ncd\n\n"  # moved forward to the break
    assert tok.decode(ids[: prefix_cut(breaks, 0.5, 0.3)]) == "ab\n\ncd\n\ne"  # no break in the window
    assert prefix_cut(breaks, 1.0, 0.3) == len(ids)


def test_expert_trace_ids_truncate_then_append_eos(tok):
    ids = expert_trace_ids(tok, "abcdefgh", response_length=5)
    assert tok.decode(ids[:-1]) == "abcd" and ids[-1] == tok.eos_token_id  # 4 = response_length - 1 tokens + EOS
    assert expert_trace_ids(tok, "ab", response_length=5) == tok.encode("ab", add_special_tokens=False) + [
        tok.eos_token_id
    ]


def test_expert_traces_of_accepts_lists_arrays_and_strings():
    field = "expert_solutions"
    assert expert_traces_of({field: ["t0", "t1"]}, field) == ["t0", "t1"]
    assert expert_traces_of({field: np.array(["t0", "t1"], dtype=object)}, field) == ["t0", "t1"]  # parquet
    assert expert_traces_of({field: "t0"}, field) == ["t0"]
    # missing, null, blank or non-string entries: no trace
    assert expert_traces_of({}, field) == [] and expert_traces_of({field: None}, field) == []
    assert expert_traces_of({field: ["", "  \n", 3]}, field) == []
    assert expert_traces_of(None, field) == []


def test_trace_index_fixed_is_the_official_choice_and_random_is_seeded():
    # fixed: trace 0 for partial prefixes, trace 1 for the full one, 0 when there is a single trace
    assert [trace_index(2, r, "fixed") for r in (0.25, 0.5, 1.0)] == [0, 0, 1]
    assert trace_index(1, 1.0, "fixed") == 0
    assert trace_index(0, 0.25, "fixed") is None and trace_index(0, 1.0, "random", random.Random(0)) is None
    draws = [trace_index(3, 0.5, "random", random.Random(f"7:{i}")) for i in range(60)]
    assert draws == [trace_index(3, 0.5, "random", random.Random(f"7:{i}")) for i in range(60)]
    assert set(draws) == {0, 1, 2}
    with pytest.raises(ValueError, match="trace_choice"):
        trace_index(2, 0.5, "first")


def test_decide_micro_group_exact_rule_uses_strict_less_than():
    # official g2: S(4) < 2; 2/4 = 0.5 is not below 0.5
    assert decide_micro_group([1, 1, 0, 0], 4, 2 / 4) is False
    assert decide_micro_group([1, 0, 0, 0], 4, 2 / 4) is True
    # g4: any failure among 7 -> guided; 7/7 -> unguided
    assert decide_micro_group([1] * 6 + [0], 7, 7 / 7) is True
    assert decide_micro_group([1] * 7, 7, 7 / 7) is False
    # without bounds nothing is decided while rewards are pending
    assert decide_micro_group([0, 0, 0], 4, 0.5, bounds=None) is None


@pytest.mark.parametrize("threshold", [0.5, 4 / 6, 0.7, 0.9, 1.0])
def test_early_decision_never_disagrees_with_the_complete_rewards(threshold):
    values = (0.0, 0.5, 1.0)
    for m in range(1, 7):
        for rewards in itertools.product(values, repeat=m):
            exact = decide_micro_group(list(rewards), m, threshold)
            for k in range(m):
                early = decide_micro_group(list(rewards[:k]), m, threshold, bounds=(0.0, 1.0))
                assert early in (None, exact), (rewards, k)
    # the presets' implication: a guided g2 (S(4) <= 1) fixes g3 (S(6) <= 3 < 4) and g4 (S(7) <= 4 < 7)
    for s4 in itertools.product((0.0, 1.0), repeat=4):
        if sum(s4) < 2:
            assert decide_micro_group(list(s4), 6, 4 / 6, bounds=(0.0, 1.0)) is True
            assert decide_micro_group(list(s4), 7, 7 / 7, bounds=(0.0, 1.0)) is True
