# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Benchmark the math reward: throughput against verl's math-verify path, and batch latency with hanging inputs.

    python scripts/bench/bench_reward.py --out bench_reward.json          # 4,096 responses, timeout 5 s
    python scripts/bench/bench_reward.py --n 512 --skip-verl-threads      # quick look
    python scripts/bench/bench_reward.py --load-test --out load.json      # Math-Verify's suite, idle vs loaded

Rows of the printed table:

* ``trustrl compute_scores``: the batch API on ``--n`` typical responses (pool started, caches empty: every trustrl
  row gets a fresh pool, so no row reuses answers verified by an earlier one).
* ``trustrl compute_score x T threads``: verl's naive manager pattern, one blocking call per sample from a thread
  pool of ``min(32, cores + 4)`` threads (asyncio's default executor, which verl's reward loop uses).
* ``verl math_verify sequential``: ``verl.utils.reward_score.math_verify.compute_score`` one call after another,
  the path whose ~62 calls/s the issue quotes; ``... x T threads``: the same from the thread pool.
* ``hang batch``: the same responses with 1% replaced by inputs that hang math-verify (Math-Verify #65 and
  power towers). Overhead = its wall time minus the clean batch's; the target is at most ``timeout_s + 1``.

``--load-test`` scores Math-Verify's own test suite (``tests/fixtures/reward/math_verify_cases.json``, turned into
responses as ``tests/reward/math_verify_suite.py`` does) twice with fresh pools: on the machine as it is, then with
``--burners`` CPU-burning processes running (default 4 per core: a load of about 9 on 2 cores), each bounded to
``--burn-s`` seconds and killed at the end. It reports both sets of scores, timeouts and wall times, and every case
whose score differs. Run it with the reward under test on ``PYTHONPATH`` to compare versions.

Typical responses are synthetic and seeded: 512 problems x 8 samples, reasoning of 0.3-4 kB with inline LaTeX, half
wrapped in ``<think>``, 70% end in a box (correct in a different notation or wrong), the rest end unboxed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HANG_TEMPLATES = (
    # Math-Verify #65 ("forever hang"), with the base and the constants varied so no cache can help
    (r"\dfrac{{{k}^{{\left({k}^{{\left({k}^{{\left({k}^{k}\right)}}\right)}} - {j}\right)}} - 5}}{{16}}", range(3, 10)),
    # power towers: sympy evaluates k^(k^k) exactly when it compares the answer with the gold
    (r"{k}^{{{k}^{{{k}}}}} - {j}", range(9, 12)),
    (r"{k}^{{{k}^{{{k}^{{{k}}}}}}} + {j}", range(3, 6)),
)
# (gold, [correct notations], [wrong answers]) per answer family
FAMILIES = (
    lambda r, a, b: (f"{a}", [f"{a}", f"{a}.0"], [f"{a + 1}", f"{a * 2}"]),
    lambda r, a, b: (f"\\frac{{{a}}}{{{b}}}", [f"\\dfrac{{{a}}}{{{b}}}", f"{a}/{b}"], [f"\\frac{{{b}}}{{{a}}}"]),
    lambda r, a, b: (f"{a}\\sqrt{{{b}}}", [f"\\sqrt{{{a * a * b}}}", f"{a}\\sqrt{b}"], [f"{a + 1}\\sqrt{{{b}}}"]),
    lambda r, a, b: (f"({a}, {b})", [f"\\left({a},{b}\\right)", f"({a},{b})"], [f"({b}, {a})"]),
    lambda r, a, b: (f"[{a}, {a + b})", [f"[{a},{a + b})"], [f"({a}, {a + b})", f"[{a}, {a + b}]"]),
    lambda r, a, b: (f"{a}\\pi", [f"{a} \\pi", f"\\pi \\cdot {a}"], [f"{a + b}\\pi"]),
    lambda r, a, b: (f"x^2 + {a}x + {b}", [f"{b} + {a}x + x^2"], [f"x^2 - {a}x + {b}"]),
    lambda r, a, b: (f"{a}.{b}", [f"{a}.{b}0"], [f"{a}.{b + 1}"]),
    lambda r, a, b: (f"{a}^\\circ", [f"{a}", f"{a}^{{\\circ}}"], [f"{a + 10}^\\circ"]),
    lambda r, a, b: (
        f"{a}.{b}e{b % 9 + 3}",
        [f"{a}.{b} \\times 10^{{{b % 9 + 3}}}"],
        [f"{a}.{b} \\times 10^{{{b % 9 + 4}}}"],
    ),
)
FILLER = (
    "We first note that the expression $f(x) = x^2 + {a}x + {b}$ has discriminant ${a}^2 - 4 \\cdot {b}$.",
    "Substituting $n = {a}$ gives $\\frac{{n(n+1)}}{{2}} = {c}$, so the sum checks out.",
    "Let me double-check: ${a} \\times {b} = {d}$, and ${d} + {a} = {e}$.",
    "Consider the triangle with sides ${a}$, ${b}$ and $\\sqrt{{{a}^2 + {b}^2}}$; by Pythagoras it is right-angled.",
    "Wait, that is not quite right. Going back to the equation $x + {a} = {b}$, we get $x = {f}$.",
    "Hence the probability is $\\frac{{{a}}}{{{e}}}$ in lowest terms, since $\\gcd({a}, {e}) = 1$.",
    "The interval of convergence is $(-{a}, {a})$ and the radius is ${a}$.",
)


def make_responses(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    solutions, golds = [], []
    n_problems = max(1, n // 8)
    problems = []
    for i in range(n_problems):
        a, b = rng.randint(2, 97), rng.randint(2, 97)
        problems.append(FAMILIES[i % len(FAMILIES)](rng, a, b))
    for i in range(n):
        gold, right, wrong = problems[i % n_problems]
        a, b = rng.randint(2, 999), rng.randint(2, 999)
        fmt = {"a": a, "b": b, "c": a * (a + 1) // 2, "d": a * b, "e": a * b + a, "f": b - a}
        paragraphs = [rng.choice(FILLER).format(**fmt) for _ in range(rng.randint(3, 40))]
        body = " ".join(paragraphs)
        roll = rng.random()
        if roll < 0.45:
            ending = f"Therefore, the final answer is $\\boxed{{{rng.choice(right)}}}$."
        elif roll < 0.7:
            ending = f"Therefore, the final answer is $\\boxed{{{rng.choice(wrong)}}}$."
        else:
            ending = f"Therefore, the answer is {rng.choice(right + wrong)}."
        text = f"{body}\n\n{ending}"
        if rng.random() < 0.5:
            text = f"<think>\n{body}\n</think>\n\n{ending}"
        solutions.append(text)
        golds.append(gold)
    return solutions, golds


def with_hangs(solutions: list[str], fraction: float, seed: int = 1) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    k = max(1, round(len(solutions) * fraction))
    where = sorted(rng.sample(range(len(solutions)), k))
    out = list(solutions)
    for n, i in enumerate(where):
        template, bases = HANG_TEMPLATES[n % len(HANG_TEMPLATES)]
        latex = template.format(k=bases[n % len(bases)], j=4 + n)
        out[i] = f"Computing carefully, the answer is $\\boxed{{{latex}}}$."
    return out, where


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


_BURN = "import time\nend = time.time() + float(__import__('sys').argv[1])\nwhile time.time() < end: pass"


def _cores() -> int:
    """The cores this process may run on (its affinity where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _sample_runnable(runnable: list[int], stop: threading.Event) -> None:
    """Append the node's runnable task count (/proc/loadavg field 4) to ``runnable`` every 0.5 s until ``stop``."""
    while not stop.wait(0.5):
        try:
            with open("/proc/loadavg") as f:
                runnable.append(int(f.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return


def _suite_phase(phase: str, args, cases: list[dict], responses: list[str], golds: list[str]) -> dict:
    """Score the suite once on a fresh pool; in phase ``loaded`` with ``args.burners`` CPU burners running."""
    import subprocess
    import sys

    from trustrl.reward import math_reward

    math_reward.shutdown()
    math_reward.warmup(args.num_workers)
    burners = []
    if phase == "loaded":
        burners = [subprocess.Popen([sys.executable, "-c", _BURN, str(args.burn_s)]) for _ in range(args.burners)]
        time.sleep(2.0)  # let the load average rise
    load_start = os.getloadavg()[0]
    runnable, stop = [], threading.Event()
    sampler = threading.Thread(target=_sample_runnable, args=(runnable, stop), daemon=True)
    sampler.start()
    try:
        results, seconds = timed(
            lambda: math_reward.compute_scores(
                responses, golds, timeout_s=args.suite_timeout_s, num_workers=args.num_workers
            )
        )
    finally:
        stop.set()
        for b in burners:
            b.kill()
            b.wait()
    return {
        "seconds": seconds,
        "runnable_mean": sum(runnable) / len(runnable) if runnable else None,
        "load_avg_1m_start": load_start,
        "load_avg_1m_end": os.getloadavg()[0],
        "burners": len(burners),
        "scores": [r["score"] for r in results],
        "statuses": _count(r["status"] for r in results),
        "timeouts": [c["id"] for c, r in zip(cases, results) if r["status"] == "timeout"],
        "agree_with_expected": sum(int(r["score"]) == c["expected"] for c, r in zip(cases, results)),
    }


def load_test(args) -> dict:
    """Math-Verify's suite scored idle and under CPU load; see the module docstring."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from trustrl.reward import math_reward

    from tests.reward import math_verify_suite as suite

    cases = suite.load_cases()
    responses, golds = [suite.response_for(c) for c in cases], [c["gold"] for c in cases]
    phases = {phase: _suite_phase(phase, args, cases, responses, golds) for phase in ("idle", "loaded")}
    idle, loaded = phases["idle"]["scores"], phases["loaded"]["scores"]
    return {
        "n_cases": len(cases),
        "timeout_s": args.suite_timeout_s,
        "cores": _cores(),
        "reward_module": math_reward.__file__,
        "phases": phases,
        "differing": [{"id": c["id"], "idle": a, "loaded": b} for c, a, b in zip(cases, idle, loaded) if a != b],
    }


def _hang_inputs(solutions: list[str], golds: list[str], fraction: float) -> tuple[list[str], list[str], list[int]]:
    """The responses with ``fraction`` of them hanging, their golds, and the hanging indices.

    A hanging response gets a numeric gold: sympy rejects a power tower against a tuple or interval without
    evaluating it.
    """
    hung, where = with_hangs(solutions, fraction)
    hung_golds = list(golds)
    for i in where:
        hung_golds[i] = "7"
    return hung, hung_golds, where


def hang_pairs(args) -> dict:
    """The hang figure alone, measured as adjacent (clean, hang) pairs."""
    from trustrl.reward import math_reward

    solutions, golds = make_responses(args.n)
    hung, hung_golds, where = _hang_inputs(solutions, golds, args.hang_fraction)
    kw = {"timeout_s": args.timeout_s, "num_workers": args.num_workers}
    pairs = []
    for _ in range(args.hang_only):
        math_reward.shutdown()
        math_reward.warmup(args.num_workers)
        clean, t_clean = timed(lambda: math_reward.compute_scores(solutions, golds, **kw))
        math_reward.shutdown()
        math_reward.warmup(args.num_workers)
        res, t_hang = timed(lambda: math_reward.compute_scores(hung, hung_golds, **kw))
        skip = set(where)
        pairs.append(
            {
                "clean_s": t_clean,
                "hang_s": t_hang,
                "overhead_s": t_hang - t_clean,
                "timed_out": sum(res[i]["status"] == "timeout" for i in where),
                "others_unaffected": all(
                    res[i]["score"] == clean[i]["score"] for i in range(len(solutions)) if i not in skip
                ),
                "load_avg_1m": os.getloadavg()[0],
            }
        )
    return {"n": args.n, "n_hanging": len(where), "timeout_s": args.timeout_s, "pairs": pairs}


def _print_load_test(fig: dict) -> None:
    print(f"\nMath-Verify suite, {fig['n_cases']} cases, timeout {fig['timeout_s']} s, {fig['cores']} cores")
    for phase, p in fig["phases"].items():
        print(
            f"{phase:7s} burners {p['burners']:2d}  load avg {p['load_avg_1m_start']:5.2f} -> "
            f"{p['load_avg_1m_end']:5.2f}  runnable {p['runnable_mean'] or 0:5.1f}"
            f"  {p['seconds']:6.1f} s  agree with expected {p['agree_with_expected']}  timeouts {len(p['timeouts'])}"
            f" {p['timeouts']}  statuses {p['statuses']}"
        )
    print(f"scores that differ between idle and loaded: {len(fig['differing'])} {fig['differing']}")


def _parse_args() -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="number of typical responses")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="per-sample timeout of the trustrl reward")
    parser.add_argument("--num-workers", type=int, default=None, help="trustrl pool size (default min(4, cores))")
    parser.add_argument("--hang-fraction", type=float, default=0.01, help="fraction of hanging inputs")
    parser.add_argument("--skip-verl", action="store_true", help="skip verl's math_verify path entirely")
    parser.add_argument("--skip-verl-threads", action="store_true", help="skip verl's path from a thread pool")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument("--load-test", action="store_true", help="score Math-Verify's suite idle and under load")
    parser.add_argument("--burners", type=int, default=None, help="CPU burners of the load test (default 4 per core)")
    parser.add_argument("--burn-s", type=float, default=600.0, help="upper bound on each burner's life (s)")
    parser.add_argument("--suite-timeout-s", type=float, default=10.0, help="reward timeout of the load test")
    parser.add_argument(
        "--hang-only",
        type=int,
        default=0,
        metavar="R",
        help="only the hang figure: R pairs of (clean batch, hang batch) back to back, fresh pools, so each overhead "
        "compares batches run under the same machine load",
    )
    return parser.parse_args()


def _fresh_pool(num_workers: int | None) -> float:
    """Restart the trustrl pool; returns its start-up time (s).

    A new pool for every trustrl row: workers cache verified (gold, answer) pairs, and a row must not reuse the
    cache of an earlier row on the same responses (the cache within one batch is real: GRPO repeats).
    """
    from trustrl.reward import math_reward

    math_reward.shutdown()
    return timed(lambda: math_reward.warmup(num_workers))[1]


def _time_trustrl(args, solutions: list[str], golds: list[str], threads: int, rows: list) -> tuple[list, float]:
    """The two trustrl rows (batch API, then one call per sample from ``threads`` threads); appends to ``rows``.

    Returns the batch API's results and wall time.
    """
    from trustrl.reward import math_reward

    kw = {"timeout_s": args.timeout_s, "num_workers": args.num_workers}
    ours, t_ours = timed(lambda: math_reward.compute_scores(solutions, golds, **kw))
    rows.append(("trustrl compute_scores", args.n, t_ours))

    def one(i):
        return math_reward.compute_score("bench", solutions[i], golds[i], None, **kw)["score"]

    _fresh_pool(args.num_workers)
    with ThreadPoolExecutor(threads) as ex:
        _, t_threads = timed(lambda: list(ex.map(one, range(args.n))))
    rows.append((f"trustrl compute_score x {threads} threads", args.n, t_threads))
    return ours, t_ours


def _time_verl(args, solutions: list[str], golds: list[str], threads: int, rows: list):
    """verl's math_verify rows (sequential, then from ``threads`` threads) unless skipped; appends to ``rows``.

    Returns (sequential scores, sequential seconds, threaded seconds), each None where skipped.
    """
    verl_scores, t_verl, t_verl_threads = None, None, None
    if not args.skip_verl:
        from verl.utils.reward_score.math_verify import compute_score as verl_score

        verl_score("\\boxed{1}", "1")  # start verl's process pool outside the timing
        verl_scores, t_verl = timed(lambda: [verl_score(s, g) for s, g in zip(solutions, golds)])
        rows.append(("verl math_verify sequential", args.n, t_verl))
        if not args.skip_verl_threads:
            with ThreadPoolExecutor(threads) as ex:
                _, t_verl_threads = timed(lambda: list(ex.map(verl_score, solutions, golds)))
            rows.append((f"verl math_verify x {threads} threads", args.n, t_verl_threads))
    return verl_scores, t_verl, t_verl_threads


def _time_hang_batch(args, solutions: list[str], golds: list[str], ours: list, t_ours: float, rows: list) -> dict:
    """The hang batch on a fresh pool, against the clean batch ``ours`` (``t_ours`` s); appends to ``rows``."""
    from trustrl.reward import _pool, math_reward

    hung, hung_golds, where = _hang_inputs(solutions, golds, args.hang_fraction)
    _fresh_pool(args.num_workers)
    kw = {"timeout_s": args.timeout_s, "num_workers": args.num_workers}
    stats_before = dict(_pool.get_pool(args.num_workers).stats)
    hang_results, t_hang = timed(lambda: math_reward.compute_scores(hung, hung_golds, **kw))
    stats_after = dict(_pool.get_pool(args.num_workers).stats)
    rows.append((f"hang batch ({len(where)} hanging)", args.n, t_hang))
    hang_set = set(where)
    return {
        "n_hanging": len(where),
        "batch_s": t_hang,
        "clean_batch_s": t_ours,
        "overhead_s": t_hang - t_ours,
        "target_overhead_s": args.timeout_s + 1.0,
        "timed_out": sum(hang_results[i]["status"] == "timeout" for i in where),
        "hanging_statuses": _count(hang_results[i]["status"] for i in where),
        "others_unaffected": all(
            hang_results[i]["score"] == ours[i]["score"] and hang_results[i]["status"] == ours[i]["status"]
            for i in range(args.n)
            if i not in hang_set
        ),
        "pool_stats_delta": {k: stats_after.get(k, 0) - stats_before.get(k, 0) for k in stats_after},
    }


def throughput(args) -> dict:
    """The throughput rows and the hang batch on ``--n`` typical responses; see the module docstring."""
    from trustrl.reward import _pool

    solutions, golds = make_responses(args.n)
    threads = min(32, (os.cpu_count() or 1) + 4)  # asyncio's default executor size
    rows = []
    startup = _fresh_pool(args.num_workers)
    ours, t_ours = _time_trustrl(args, solutions, golds, threads, rows)
    verl_scores, t_verl, t_verl_threads = _time_verl(args, solutions, golds, threads, rows)
    hang = _time_hang_batch(args, solutions, golds, ours, t_ours, rows)
    return {
        "n": args.n,
        "timeout_s": args.timeout_s,
        "num_workers": _pool.get_pool(args.num_workers).num_workers,
        "cores": _cores(),
        "load_avg_1m_at_end": os.getloadavg()[0],
        "platform": platform.platform(),
        "pool_startup_s": startup,
        "rows": [{"path": p, "n": n, "seconds": s, "per_s": n / s} for p, n, s in rows],
        "ratio_vs_verl_sequential": (t_verl / t_ours) if t_verl else None,
        "ratio_vs_verl_threads": (t_verl_threads / t_ours) if t_verl_threads else None,
        "trustrl_mean_score": sum(r["score"] for r in ours) / args.n,
        "verl_mean_score": (sum(verl_scores) / args.n) if verl_scores else None,
        "score_disagreements": (sum(r["score"] != v for r, v in zip(ours, verl_scores)) if verl_scores else None),
        "status_counts": _count(r["status"] for r in ours),
        "hang": hang,
    }


def _print_pairs(figures: dict, timeout_s: float) -> None:
    """One line per (clean, hang) pair of :func:`hang_pairs`."""
    for i, pair in enumerate(figures["pairs"]):
        print(
            f"pair {i}: clean {pair['clean_s']:.2f} s, with {figures['n_hanging']} hanging {pair['hang_s']:.2f} s, "
            f"overhead {pair['overhead_s']:.2f} s (target <= {timeout_s + 1.0:.1f}); timed out "
            f"{pair['timed_out']}; rest unaffected {pair['others_unaffected']}; load avg {pair['load_avg_1m']:.2f}"
        )


def _write_json(figures: dict, out: str | None, announce: bool = True) -> None:
    """Write ``figures`` to ``out`` as indented JSON (nothing without ``out``); ``announce`` prints the path."""
    if out:
        with open(out, "w") as f:
            json.dump(figures, f, indent=2)
        if announce:
            print(f"wrote {out}")


def main() -> None:
    """Run the chosen measurement (hang pairs, load test or the throughput table), print it and write ``--out``."""
    args = _parse_args()
    if args.hang_only:
        figures = hang_pairs(args)
        _print_pairs(figures, args.timeout_s)
        _write_json(figures, args.out, announce=False)
        return
    if args.load_test:
        if args.burners is None:
            args.burners = 4 * _cores()
        figures = load_test(args)
        _print_load_test(figures)
        _write_json(figures, args.out)
        return
    figures = throughput(args)
    _print_table(figures)
    _write_json(figures, args.out)


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _print_table(fig: dict) -> None:
    print(f"\n{fig['n']} responses, {fig['cores']} cores, {fig['num_workers']} workers, timeout {fig['timeout_s']} s")
    print(f"{'path':<44} {'n':>6} {'seconds':>9} {'per s':>9}")
    for row in fig["rows"]:
        print(f"{row['path']:<44} {row['n']:>6} {row['seconds']:>9.2f} {row['per_s']:>9.1f}")
    if fig["ratio_vs_verl_sequential"]:
        print(f"throughput ratio vs verl sequential: {fig['ratio_vs_verl_sequential']:.2f} (target >= 3)")
    if fig["ratio_vs_verl_threads"]:
        print(f"throughput ratio vs verl from threads: {fig['ratio_vs_verl_threads']:.2f}")
    h = fig["hang"]
    print(
        f"hang overhead: {h['overhead_s']:.2f} s (target <= {h['target_overhead_s']:.1f} s); "
        f"{h['timed_out']}/{h['n_hanging']} timed out {h['hanging_statuses']}; "
        f"rest unaffected: {h['others_unaffected']}; "
        f"pool: {h['pool_stats_delta']}"
    )
    print(
        f"mean score trustrl {fig['trustrl_mean_score']:.3f}, verl {fig['verl_mean_score']}, "
        f"disagreements {fig['score_disagreements']}; statuses {fig['status_counts']}; "
        f"load avg {fig['load_avg_1m_at_end']:.2f}"
    )


if __name__ == "__main__":
    main()
