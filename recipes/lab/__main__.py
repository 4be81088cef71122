# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The lab: ``python -m trustrl.recipes.lab [--out DIR] [--only exp1,exp2,exp3] [--quick] [--no-figures] [sizes]``.

Three CPU experiments that show, with exact quantities and figures, the mechanisms the QUATRO and TRAPO papers
claim, calling the shipped functions through verl's registries:

* ``exp1`` QUATRO's update magnitude: λ_q, T+ and T- against the number of correct rollouts c;
* ``exp2`` staleness and learning-rate stress: GRPO, GSPO and QUATRO on a synthetic many-prompt policy, plus a
  population-level check that QUATRO's per-prompt KL settles at δ;
* ``exp3`` TrSFT against SFT on a bimodal expert, and TrSFT's limit against Proposition 1's closed form.

Writes PNG figures, ``report.md`` and ``numbers.json`` to ``--out`` (default ``./lab_out``). Seeds are fixed and
torch runs on ``--threads`` threads (default 1) with deterministic kernels, so a rerun reproduces every number;
``--jobs`` (default 2, one per core) spreads the independent training runs over processes without changing them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

EXPERIMENTS = ("exp1", "exp2", "exp3")
ALIASES = {"update_magnitude": "exp1", "staleness": "exp2", "trsft": "exp3"}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trustrl.recipes.lab", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("lab_out"), help="output folder (default ./lab_out)")
    parser.add_argument("--only", default=",".join(EXPERIMENTS), help="comma-separated subset of exp1,exp2,exp3")
    parser.add_argument("--quick", action="store_true", help="reduced sizes (seconds); the size flags still apply")
    parser.add_argument(
        "--no-figures", action="store_true", help="skip the PNG figures (numbers and report only; same numbers)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; results depend on it)")
    parser.add_argument(
        "--jobs",
        type=int,
        help="worker processes for the independent runs of exp2/exp3 (default 2, 1 with --quick; same results)",
    )
    size = parser.add_argument_group("sizes of experiment 2 (staleness)")
    size.add_argument("--prompts", type=int, help="number of prompts (default 64)")
    size.add_argument("--iterations", type=int, help="rollout batches per run (default 40)")
    size.add_argument("--seeds", type=int, help="seeds per configuration, 0..N-1 (default 1)")
    size.add_argument("--ks", help="updates per rollout batch, comma-separated (default 1,4,16)")
    size.add_argument("--lrs", help="learning rates, comma-separated (default 0.03,0.1)")
    size.add_argument("--population-steps", type=int, help="Adam steps of the population check (default 300)")
    trsft = parser.add_argument_group("sizes of experiment 3 (TrSFT)")
    trsft.add_argument("--trsft-steps", type=int, help="Adam steps per run (default 2000)")
    args = parser.parse_args(argv)
    chosen = [ALIASES.get(name.strip(), name.strip()) for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(EXPERIMENTS))
    if unknown or not chosen:
        parser.error(f"--only takes a comma-separated subset of {','.join(EXPERIMENTS)}; got {args.only!r}")
    args.only = [name for name in EXPERIMENTS if name in chosen]
    if args.jobs is None:
        # spawning workers costs seconds (each imports torch and verl), more than a quick run saves
        args.jobs = 1 if args.quick else 2
    return args


def _staleness_config(args):
    from trustrl.recipes.lab import staleness

    cfg = staleness.quick_config() if args.quick else staleness.StalenessConfig()
    overrides = {
        "num_prompts": args.prompts,
        "iterations": args.iterations,
        "seeds": tuple(range(args.seeds)) if args.seeds else None,
        "ks": tuple(int(k) for k in args.ks.split(",")) if args.ks else None,
        "lrs": tuple(float(lr) for lr in args.lrs.split(",")) if args.lrs else None,
        "population_steps": args.population_steps,
    }
    return replace(cfg, **{key: value for key, value in overrides.items() if value is not None})


def _trsft_config(args):
    from trustrl.recipes.lab import trsft

    cfg = trsft.TrsftConfig()
    if args.quick:
        cfg = replace(cfg, steps=300, snapshots=(0, 10, 50))
    if args.trsft_steps:
        cfg = replace(cfg, steps=args.trsft_steps)
    return cfg


def _report(sections, args, argv, wall_s: float) -> str:
    import torch
    import verl

    lines = [
        "# trustrl lab report",
        "",
        f"Command: `python -m trustrl.recipes.lab {' '.join(argv)}`".rstrip(),
        "",
        f"Total wall time {wall_s:.1f} s; torch {torch.__version__} on {args.threads} thread(s), verl "
        f"{verl.__version__}, Python {platform.python_version()}, {platform.machine()}. Seeds are fixed: a rerun "
        "with the same command and thread count reproduces every number below.",
        "",
    ]
    for section in sections:
        lines += [f"## {section.title}", "", f"Wall time {section.wall_s:.1f} s.", ""]
        lines += [f"![{fig.stem}]({fig.name})" for fig in section.figures]
        lines += ["", section.body, ""]
    return "\n".join(lines)


def _run_experiments(args, log, pool) -> list:
    sections = []
    if "exp1" in args.only:
        from trustrl.recipes.lab import update_magnitude

        sections.append(update_magnitude.run(args.out, log=log, draw=not args.no_figures))
        log(f"exp1 done ({sections[-1].wall_s:.1f}s)")
    if "exp2" in args.only:
        from trustrl.recipes.lab import staleness

        sections.append(staleness.run(args.out, _staleness_config(args), log=log, pool=pool, draw=not args.no_figures))
        log(f"exp2 done ({sections[-1].wall_s:.1f}s)")
    if "exp3" in args.only:
        from trustrl.recipes.lab import trsft

        sections.append(trsft.run(args.out, _trsft_config(args), log=log, pool=pool, draw=not args.no_figures))
        log(f"exp3 done ({sections[-1].wall_s:.1f}s)")
    return sections


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    from trustrl.recipes.lab._common import make_logger, set_determinism, worker_pool

    set_determinism(args.threads)
    log = make_logger()
    args.out.mkdir(parents=True, exist_ok=True)
    log(f"experiments {','.join(args.only)}{' (quick)' if args.quick else ''}; output in {args.out}")
    start = time.perf_counter()
    # one pool for exp2 and exp3: its workers import torch and verl once
    pool = worker_pool(args.jobs if {"exp2", "exp3"} & set(args.only) else 1)
    try:
        sections = _run_experiments(args, log, pool)
    finally:
        if pool is not None:
            pool.shutdown()
    wall_s = time.perf_counter() - start
    report = args.out / "report.md"
    report.write_text(_report(sections, args, argv, wall_s), encoding="utf-8")
    numbers = {section.title: section.numbers for section in sections}
    numbers["wall_s"] = {section.title: section.wall_s for section in sections} | {"total": wall_s}
    (args.out / "numbers.json").write_text(json.dumps(numbers, indent=1, default=str), encoding="utf-8")
    figures = [fig.name for section in sections for fig in section.figures]
    log(f"wrote {report} and {len(figures)} figures ({', '.join(figures)}) in {wall_s:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
