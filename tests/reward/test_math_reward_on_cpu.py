# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The math reward: regression table, outcomes, config, and the same scores from threads, asyncio and Ray actors.

Expected values are pinned to math-verify 0.9.0 / latex2sympy2_extended 1.11.0 (setup.py pins math-verify <0.10);
where they differ from plain math-verify the row says why (reward/README.md, Pitfalls).
"""

import asyncio
import inspect
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from trustrl.reward.math_reward import (
    STATUSES,
    MathRewardConfig,
    MathRewardResult,
    compute_score,
    compute_score_async,
    compute_scores,
)

HANG = r"\boxed{\dfrac{5^{\left(5^{\left(5^{\left(5^5\right)}\right)} - 4\right)} - 5}{16}}"  # Math-Verify #65
TIMEOUT_S = 5.0  # per sample in this file: a legit row needs < 0.2 s of CPU even on a loaded machine

# (response, gold, extra_info, score, status)
CASES = [
    # -- formats and unboxed answers --
    (r"The answer is $\boxed{204}$.", "204", None, 1.0, "ok"),  # the plain case
    (r"$\boxed{142}$", "142.0", None, 1.0, "ok"),  # AMC golds are floats as strings
    (r"\boxed{25}", "025", None, 1.0, "ok"),  # AIME golds with leading zeros (OAT set)
    ("Thus the final answer is 204.", "204", None, 0.0, "no_box"),  # unboxed: lenient configs credit it
    ("We compute 17*12 = 204", "204", None, 0.0, "no_box"),  # the last number anywhere is not an answer
    ("Final Answer: **73**", "73", None, 0.0, "no_box"),  # markdown answer line (Math-Verify #76)
    ("So $x = 204$.", "204", None, 0.0, "no_box"),  # inline math without a box
    (r"\boxed{}", "5", None, 0.0, "no_box"),  # an empty box is no answer
    (r"\fbox{7}", "7", None, 1.0, "ok"),  # \fbox counts as a box
    # -- multiple boxes and self-correction --
    (r"\boxed{3} and \boxed{5}", "5", None, 1.0, "ok"),  # last box; math-verify alone joins them into {3, 5}
    (r"\boxed{3} and \boxed{5}", "3", None, 0.0, "ok"),  # an earlier box is not credited: no hedging
    (r"\boxed{204} hmm wait, actually \boxed{205}", "204", None, 0.0, "ok"),  # last box 205 is wrong
    (r"\boxed{205} wait, I made an error: \boxed{204}", "204", None, 1.0, "ok"),  # correction within 50 chars
    (
        r"First guess \boxed{205}. Let me recheck the arithmetic carefully, step by step, once more. So \boxed{204}",
        "204",
        None,
        1.0,
        "ok",
    ),  # a far self-correction
    (r"\boxed{\boxed{5}}", "5", None, 1.0, "ok"),  # a box inside a box
    # -- truncated output and think tags --
    (r"So \boxed{204}. Double-checking, the answer is \boxed{2", "204", None, 0.0, "truncated"),  # no earlier credit
    (r"\boxed{204}", "204", {"finish_reason": "length"}, 0.0, "truncated"),  # the engine says it was cut off
    (r"\boxed{204}", "204", {"stop_reason": "length"}, 0.0, "truncated"),  # verl's TokenOutput spelling
    (r"\boxed{204}", "204", {"truncated": np.bool_(True)}, 0.0, "truncated"),  # a numpy flag from parquet
    (r"\boxed{204}", "204", {"finish_reason": "stop", "truncated": False}, 1.0, "ok"),  # flags say complete
    (r"<think>I guess \boxed{7}</think> The answer is \boxed{8}", "8", None, 1.0, "ok"),  # after </think>
    (r"<think>maybe \boxed{8}</think> I am not sure.", "8", None, 0.0, "no_box"),  # a box only in the draft
    (r"<think>still thinking \boxed{8}", "8", None, 0.0, "no_think_end"),  # never closed: draft reasoning
    # -- e-notation (Minerva) --
    (r"\boxed{4.5 \times 10^{33}}", "4.5e33", None, 1.0, "ok"),  # gold normalized; math-verify reads 4.5*e*33
    (r"\boxed{4.5e33}", r"4.5 \times 10^{33}", None, 1.0, "ok"),  # e-notation in the answer
    (r"\boxed{3 \times 10^{6}}", "3e6", None, 1.0, "ok"),  # integer mantissa, bare e-notation gold
    (r"\boxed{4.6 \times 10^{33}}", "4.5e33", None, 0.0, "ok"),  # a different mantissa
    (r"\boxed{10^{-3}}", "1e-3", None, 1.0, "ok"),  # negative exponent
    (r"\boxed{44000000}", ["4.4e7", r"4.4 \times 10^7"], None, 1.0, "ok"),  # OAT minerva: a list of golds
    # -- tiny values --
    (r"\boxed{\frac{1}{2^{98}}}", r"\frac{1}{2^{99}}", None, 0.0, "ok"),  # math-verify alone: 1 (rounds to 0)
    (r"\boxed{\frac{1}{2006!}}", r"\frac{1}{2004!}", None, 0.0, "ok"),  # math-verify alone: 1 (Math-Verify #14)
    (r"\boxed{2^{-99}}", r"\frac{1}{2^{99}}", None, 1.0, "ok"),  # the same tiny value, other notation
    (r"\boxed{0.000012}", r"1.2 \times 10^{-5}", None, 1.0, "ok"),  # small but equal
    # -- fractions and decimals --
    (r"\boxed{0.5}", r"\frac{1}{2}", None, 1.0, "ok"),  # a decimal answer for a fraction gold
    (r"\boxed{0.3333}", r"\frac{1}{3}", None, 0.0, "ok"),  # 4 decimals are not enough
    (r"\boxed{0.333333}", r"\frac{1}{3}", None, 1.0, "ok"),  # 6 decimals are
    (r"\boxed{\frac12}", "0.5", None, 1.0, "ok"),  # TeX shorthand; strict math-verify alone fails it
    (r"\boxed{1/2}", r"\frac{1}{2}", None, 1.0, "ok"),  # a slash is valid LaTeX for a fraction
    (r"\boxed{\frac{2}{4}}", r"\frac{1}{2}", None, 1.0, "ok"),  # not in lowest terms, still equal
    (r"\boxed{-\frac{1}{2}}", r"\frac{-1}{2}", None, 1.0, "ok"),  # the sign outside or inside the fraction
    # -- \dfrac and nested braces --
    (r"\boxed{\dfrac{9}{7}}", r"\frac{9}{7}", None, 1.0, "ok"),  # \dfrac answer, \frac gold
    (r"\boxed{\tfrac{9}{7}}", r"\dfrac{9}{7}", None, 1.0, "ok"),  # a \dfrac gold (lm-eval issue Math-Verify #70)
    (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt3}{2}", None, 1.0, "ok"),  # braces inside braces; TeX \sqrt3 gold
    (r"\boxed{\frac{\frac{1}{2}}{\frac{3}{\sqrt{4}}}}", r"\frac{1}{3}", None, 1.0, "ok"),  # 4 brace levels in one box
    (r"\boxed{1 - \frac{1}{\mathrm{e}}}", r"1 - \frac{1}{e}", None, 1.0, "ok"),  # 3 brace levels with \mathrm
    (r"\boxed{1 + \frac{1}{\mathrm{e}}}", r"1 - \frac{1}{e}", None, 0.0, "ok"),  # inline math-verify says 1 (#14)
    (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"\left( 3, \frac{\pi}{2} \right)", None, 1.0, "ok"),  # MATH-500
    (r"\boxed{\sqrt{\frac{a}{b}}}", r"\frac{\sqrt{a}}{\sqrt{b}}", None, 0.0, "ok"),  # sympy keeps them apart (#64)
    (r"\boxed{4\sqrt(2)}", "4", None, 0.0, "ok"),  # malformed LaTeX is not repaired (Math-Verify #41)
    # -- intervals and sets --
    (r"\boxed{[2, 5)}", "[2,5)", None, 1.0, "ok"),  # a half-open interval, spacing differs
    (r"\boxed{(2, 5)}", "[2,5)", None, 0.0, "ok"),  # open vs half-open
    (r"\boxed{(-\infty, 3]}", r"x \leq 3", None, 1.0, "ok"),  # an inequality gold accepts the interval
    (r"\boxed{x \le 3}", r"(-\infty, 3]", None, 0.0, "ok"),  # not the reverse: verify is asymmetric
    (r"\boxed{(-\infty,0)\cup\{1\}}", r"$(-\infty, 0) \cup\{1\}$.", None, 1.0, "ok"),  # OlympiadBench gold
    (r"\boxed{\{3,2,1\}}", r"\{1,2,3\}", None, 1.0, "ok"),  # set order does not matter
    (r"\boxed{3, 2, 1}", "1,2,3", None, 1.0, "ok"),  # a bare list is a set
    (r"\boxed{1, 2}", "1,2,3", None, 0.0, "ok"),  # a missing element
    (r"\boxed{2021}", r"\pm 2021", None, 0.0, "ok"),  # one of two roots
    # -- units, degrees, currency, percent --
    (r"\boxed{1.6 \text{ m}}", "1.6", None, 1.0, "ok"),  # units are dropped
    (r"\boxed{30^\circ}", "30", None, 1.0, "ok"),  # degrees are dropped
    (r"\boxed{\$5}", "5", None, 1.0, "ok"),  # a currency sign is dropped
    (r"\boxed{10\%}", "10", None, 1.0, "ok"),  # the percent question's gold omits the sign
    (r"\boxed{10\%}", "0.1", None, 1.0, "ok"),  # ... or is the fraction
    (r"\boxed{15\%}", "10", None, 0.0, "ok"),  # a wrong percentage stays wrong in both readings
    (r"\boxed{1{,}000}", "1000", None, 1.0, "ok"),  # thousands separator
    # -- text answers, equations, expressions --
    (r"\boxed{\text{Evelyn}}", r"\text{Evelyn}", None, 1.0, "ok"),  # MATH-500 name answer
    (r"\boxed{\text{(C)}}", "C", None, 1.0, "ok"),  # multiple choice
    (r"\boxed{C}", r"\text{(C)}", None, 1.0, "ok"),
    (r"\boxed{\text{Monday}}", r"\text{Tuesday}", None, 0.0, "ok"),  # a wrong text answer
    (r"\boxed{\text{no solution}}", r"\text{No solution}", None, 1.0, "ok"),  # case-insensitive text
    (r"\boxed{x = 5}", "5", None, 1.0, "ok"),  # the right-hand side of an equation
    (r"\boxed{y = 2x + 3}", "y=2x+3", None, 1.0, "ok"),  # an equation answer, spacing differs
    (r"\boxed{(x+1)^2}", "x^2+2x+1", None, 1.0, "ok"),  # symbolic equality
    (r"\boxed{\infty}", r"\infty", None, 1.0, "ok"),  # infinity
    (r"\boxed{\begin{pmatrix} 1 \\ 2 \end{pmatrix}}", r"\begin{pmatrix}1\\2\end{pmatrix}", None, 1.0, "ok"),  # a vector
    # -- golds that do not parse, and the known hanging input --
    (r"\boxed{5}", "", None, 0.0, "gold_unparseable"),  # empty gold: never a silent 1.0
    (r"\boxed{5}", "np.arcsin(10/13)", None, 0.0, "gold_unparseable"),  # Minerva code gold, string only
    (r"no box at all", None, None, 0.0, "gold_unparseable"),  # missing gold wins over the response's problems
    (HANG, "1", None, 0.0, "timeout"),  # Math-Verify #65 runs for minutes: killed or interrupted at HANG_TIMEOUT_S
]
HANG_TIMEOUT_S = 1.0  # the rows expected to time out get a short budget, so the table costs about a second for them


@pytest.fixture(scope="module")
def table():
    slow = [c[-1] == "timeout" for c in CASES]
    results = {}
    for is_slow, timeout_s in ((False, TIMEOUT_S), (True, HANG_TIMEOUT_S)):
        rows = [i for i, s in enumerate(slow) if s == is_slow]
        solutions, golds, extras = ([CASES[i][k] for i in rows] for k in range(3))
        results.update(zip(rows, compute_scores(solutions, golds, extra_infos=extras, timeout_s=timeout_s)))
    return [results[i] for i in range(len(CASES))]


def test_table_is_big_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{i}:{c[0][:40]}" for i, c in enumerate(CASES)])
def test_regression_table(table, i):
    *_, score, status = CASES[i]
    assert (table[i]["score"], table[i]["status"]) == (score, status)


def test_result_contract(table):
    # every result has exactly the documented keys and types (verl needs the same keys for every sample)
    for r in table:
        assert set(r) == set(MathRewardResult.__annotations__)
        assert isinstance(r["score"], float) and isinstance(r["pred"], str) and r["status"] in STATUSES
        assert all(isinstance(r[k], bool) for k in ("acc", "has_box", "truncated", "timed_out", "gold_unparseable"))
        assert r["score"] == (1.0 if r["acc"] else 0.0)
        assert r["timed_out"] == (r["status"] == "timeout")
        assert r["gold_unparseable"] == (r["status"] == "gold_unparseable")


def test_pred_and_flags(table):
    by_response = {c[0]: r for c, r in zip(CASES, table)}
    assert by_response[r"\boxed{3} and \boxed{5}"]["pred"] == "5"
    cut = by_response[r"So \boxed{204}. Double-checking, the answer is \boxed{2"]
    assert cut["truncated"] and cut["pred"] == "204" and cut["has_box"]
    assert not by_response["Thus the final answer is 204."]["has_box"]


def test_batch_api_signature_matches_config():
    # the batch API documents every MathRewardConfig field as a keyword (evaluation calls it with reward kwargs)
    params = inspect.signature(compute_scores).parameters
    assert set(params) == {"solutions", "ground_truths", "extra_infos"} | set(MathRewardConfig.__annotations__)
    for name, value in vars(MathRewardConfig()).items():
        assert params[name].default == value, name
    assert list(inspect.signature(compute_score).parameters)[:4] == [
        "data_source",
        "solution_str",
        "ground_truth",
        "extra_info",
    ]


def test_gold_unparseable_is_explicit(caplog):
    with caplog.at_level(logging.WARNING, logger="trustrl.reward.math_reward"):
        r = compute_score("minerva", r"\boxed{7}", "np.arccos(0.25)", timeout_s=TIMEOUT_S)
    assert r["status"] == "gold_unparseable" and r["gold_unparseable"] and r["score"] == 0.0 and not r["acc"]
    assert "np.arccos(0.25)" in caplog.text  # logged once per distinct gold, not silent


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, (0.0, "truncated")),  # default: a cut-off response scores 0
        ({"truncation": "score"}, (1.0, "ok")),  # opt out: its last complete box is scored
    ],
)
def test_truncation_policy(kwargs, expected):
    r = compute_score("x", r"So \boxed{204}. Checking: \boxed{2", "204", timeout_s=TIMEOUT_S, **kwargs)
    assert (r["score"], r["status"]) == expected and r["truncated"]


@pytest.mark.parametrize(
    "text, mode, expected",
    [
        (r"The answer is \boxed{8}", "require", (0.0, "no_think_end")),  # prompt ended in <think>: must close
        (r"reasoning</think> \boxed{8}", "require", (1.0, "ok")),
        (r"<think>\boxed{8}", "ignore", (1.0, "ok")),  # tags ignored: whole text
        (r"<think>\boxed{7}</think>\boxed{8}", "ignore", (1.0, "ok")),  # last box of the whole text
    ],
)
def test_think_modes(text, mode, expected):
    r = compute_score("x", text, "8", timeout_s=TIMEOUT_S, think_mode=mode)
    assert (r["score"], r["status"]) == expected


def test_box_too_long_is_not_parsed():
    digits = "9" * 1200  # a valid 1,200-digit integer: cheap to parse, so only the length limit can reject it
    r = compute_score("x", f"\\boxed{{{digits}}}", digits, timeout_s=TIMEOUT_S)
    assert r["status"] == "box_too_long" and r["score"] == 0.0 and r["pred"] == digits[:1000]
    assert compute_score("x", f"\\boxed{{{digits}}}", digits, timeout_s=TIMEOUT_S, max_box_chars=2000)["score"] == 1.0


def test_rel_tol_none_restores_math_verify_verdict():
    kwargs = {"timeout_s": TIMEOUT_S, "rel_tol": None}
    assert compute_score("x", r"\boxed{\frac{1}{2^{98}}}", r"\frac{1}{2^{99}}", **kwargs)["score"] == 1.0


def test_odd_inputs_never_raise():
    odd = [None, b"\\boxed{5}", 5, "\udcff\\boxed{5}", "\x00" * 10, float("nan"), ["list"], {"a": 1}]
    results = compute_scores(odd, ["5"] * len(odd), timeout_s=TIMEOUT_S)
    assert [r["score"] for r in results[:2]] == [0.0, 1.0]  # None is an empty response; bytes are decoded
    assert all(r["status"] in STATUSES for r in results)
    golds = [None, 5, np.array(["5", "6"]), ("5",), b"5", float("nan"), {"x": 1}, ""]
    results = compute_scores(["\\boxed{5}"] * len(golds), golds, timeout_s=TIMEOUT_S)
    assert [r["score"] for r in results] == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_config_errors_raise_and_unknown_kwargs_warn(caplog):
    with pytest.raises(ValueError, match="think_mode"):
        compute_score("x", r"\boxed{1}", "1", think_mode="sometimes")
    with pytest.raises(ValueError, match="timeout_s"):
        compute_score("x", r"\boxed{1}", "1", timeout_s=0)
    with pytest.raises(ValueError, match="differ in length"):
        compute_scores(["a"], ["1", "2"])
    with caplog.at_level(logging.WARNING, logger="trustrl.reward.math_reward"):
        r = compute_score("x", r"\boxed{1}", "1", timeout_sec=3, reward_router_address=None)
    assert r["score"] == 1.0 and "timeout_sec" in caplog.text and "reward_router_address" not in caplog.text


PROPERTY_TIMEOUT_S = 1.0
FUZZ_TOKENS = ["\\boxed{", "}", "{", "\\{", "</think>", "<think>", "^{", "$", "\\frac", "9", "e5", "\\left(", "!"]


# deadline=None: the pool caches verified pairs, so hypothesis' deadline re-run of a slow example would be fast and
# report "unreliable timings"; the bound that matters (the reward's own timeout) is asserted in the body instead.
@settings(
    max_examples=12,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(
    parts=st.lists(st.one_of(st.text(max_size=300), st.sampled_from(FUZZ_TOKENS)), max_size=40),
    repeat=st.integers(1, 3000),
    gold=st.one_of(st.text(max_size=50), st.sampled_from(["1", "\\frac{1}{2}", "4.5e33", "[2, 5)"])),
)
@example(parts=["\\boxed{"], repeat=14_300, gold="1")  # 100 kB of unclosed boxes
@example(parts=["x" * 99_000, HANG], repeat=1, gold="1")  # the known hanging input at the end of 100 kB
@example(parts=["\U0010ffff\u202e\x00\ud7ff</think>\\boxed{\u00bd}"], repeat=3000, gold="\u00bd")  # astral, bidi, NUL
def test_property_arbitrary_unicode_returns_within_timeout(parts, repeat, gold):
    text = ("".join(parts) * repeat)[:100_000]  # up to 100 kB of arbitrary unicode
    start = time.monotonic()
    r = compute_score("fuzz", text, gold, timeout_s=PROPERTY_TIMEOUT_S)
    # the bound is the reward's timeout plus the round trip; 10 s of slack for a loaded CI machine
    assert time.monotonic() - start < PROPERTY_TIMEOUT_S + 10.0
    assert r["status"] in STATUSES and r["score"] == (1.0 if r["acc"] else 0.0)
    assert r["pred"] == "" or r["pred"] in text


# -- the same scores wherever verl calls the reward -------------------------------------------------------------

EASY = [c for c in CASES if c[-1] != "timeout"]


def _expected():
    return [(c[3], c[4]) for c in EASY]


def _score_one(case):
    r = compute_score("x", case[0], case[1], case[2], timeout_s=TIMEOUT_S)
    return r["score"], r["status"]


def test_threads_score_like_the_main_thread():
    with ThreadPoolExecutor(8) as ex:  # verl's naive manager: run_in_executor on the default thread pool
        assert list(ex.map(_score_one, EASY)) == _expected()
    out = []
    t = threading.Thread(target=lambda: out.append(_score_one(EASY[0])))
    t.start()
    t.join()
    assert out == _expected()[:1]


def test_asyncio_paths_score_like_the_main_thread():
    async def main():
        loop = asyncio.get_running_loop()
        via_executor = await asyncio.gather(*(loop.run_in_executor(None, _score_one, c) for c in EASY))
        native = await asyncio.gather(*(compute_score_async("x", c[0], c[1], c[2], timeout_s=TIMEOUT_S) for c in EASY))
        return list(via_executor), [(r["score"], r["status"]) for r in native]

    via_executor, native = asyncio.run(main())
    assert via_executor == _expected() and native == _expected()


def test_verl_naive_reward_manager_end_to_end():
    # load the function the way verl does (pkg:// path + reward_kwargs) and score through its naive manager
    import torch
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.trainer.ppo.reward import get_custom_reward_fn

    class CharTokenizer:
        def decode(self, ids, skip_special_tokens=True):
            return "".join(chr(int(i)) for i in ids)

    def one(name, text, gold):
        config = OmegaConf.create(
            {
                "reward": {
                    "custom_reward_function": {
                        "path": "pkg://trustrl.reward.math_reward",
                        "name": name,
                        "reward_kwargs": {"timeout_s": TIMEOUT_S, "think_mode": "require"},
                    }
                }
            }
        )
        fn = get_custom_reward_fn(config)
        manager = NaiveRewardManager(config, CharTokenizer(), fn)
        ids = torch.tensor([[ord(c) for c in text]])
        data = DataProto.from_dict(
            tensors={"responses": ids, "attention_mask": torch.ones_like(ids)},
            non_tensors={
                "data_source": np.array(["math"], dtype=object),
                "reward_model": np.array([{"ground_truth": gold}], dtype=object),
                "extra_info": np.array([{"index": 0}], dtype=object),
            },
        )
        return manager.loop.run_until_complete(manager.run_single(data))

    for name in ("compute_score", "compute_score_async"):
        out = one(name, "draft \\boxed{1}</think> so \\boxed{\\frac12}", "0.5")
        assert out["reward_score"] == 1.0 and out["reward_extra_info"]["status"] == "ok"
        out = one(name, "no think end \\boxed{0.5}", "0.5")  # think_mode=require arrived through reward_kwargs
        assert out["reward_score"] == 0.0 and out["reward_extra_info"]["status"] == "no_think_end"


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.timeout(600)
def test_ray_actor_scores_like_the_main_thread(local_ray):
    ray = local_ray

    # defined here so Ray ships the class by value; the actor imports trustrl.reward from the installed package
    @ray.remote(num_cpus=0)
    class Scorer:
        def sync_call(self, cases):  # a sync actor method: Ray's own execution thread
            from trustrl.reward.math_reward import compute_score

            return [
                (r["score"], r["status"])
                for r in (compute_score("x", c[0], c[1], c[2], timeout_s=TIMEOUT_S) for c in cases)
            ]

        def thread_pool_call(self, cases):  # verl's RewardLoopWorker: a thread pool inside the actor
            from trustrl.reward.math_reward import compute_score

            def one(c):
                r = compute_score("x", c[0], c[1], c[2], timeout_s=TIMEOUT_S)
                return r["score"], r["status"]

            with ThreadPoolExecutor(4) as ex:
                return list(ex.map(one, cases))

    actor = Scorer.options(runtime_env={"env_vars": {"TRUSTRL_REWARD_WARMUP": "0"}}).remote()  # 2 s less CPU
    cases = [tuple(c) for c in EASY]
    assert ray.get(actor.sync_call.remote(cases), timeout=300) == _expected()
    assert ray.get(actor.thread_pool_call.remote(cases), timeout=300) == _expected()
