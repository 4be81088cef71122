#!/usr/bin/env python3
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Prepare training sets and math benchmarks as verl parquet files (logic: ``trustrl.recipes.data``).

Examples::

    # the six benchmarks (AMC = the 83-problem set LUFFY/TRAPO report; --amc 40 for AMC23)
    python scripts/data/prepare.py eval --out-dir data/eval
    # TRAPO training set: OpenR1-Math-46k-8192 + a second R1 trace from OpenR1-Math-220k; traces longer than the
    # response budget (default 8191 tokens + EOS = the TRAPO scripts' 8192) are removed and reported by id
    python scripts/data/prepare.py openr1_46k --out-dir data/train --second-traces --drop-invalid \\
        --tokenizer ~/models/Qwen2.5-Math-7B-16k
    # DAPO-Math-17k, deduplicated, from a local download
    python scripts/data/prepare.py dapo17k --input dapo17k=/data/dapo-math-17k.parquet --out-dir data/train
    # MATH train, levels 3-5, decontaminated against the prepared benchmarks
    python scripts/data/prepare.py math_train --levels 3,4,5 --exclude data/eval/*.parquet --out-dir data/train

Exit status 1 when any dataset failed (validation failures without --drop-invalid, a missing field, an
unreadable source, or any other error, reported with its type); the others are still written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trustrl.recipes.data import (
    DEFAULT_MAX_TRACE_TOKENS,
    DEFAULT_TEMPLATE,
    DEFAULT_TRACE_TOKENIZER,
    EVAL_SIX,
    OPENR1_220K,
    SPECS,
    TEMPLATES,
    DataValidationError,
    PrepareOptions,
    SchemaError,
    SourceError,
    get_template,
    prepare,
)


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise SystemExit(f"{flag} expects NAME=VALUE, got {value!r}")
        out[key] = rest
    return out


def _levels(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--levels expects comma-separated integers like 3,4,5, got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    datasets = ", ".join(f"{n} ({s.kind})" for n, s in SPECS.items())
    p = argparse.ArgumentParser(
        prog="prepare.py",
        description=__doc__.split("\n")[0],
        epilog=f"datasets: {datasets}; 'eval' = the six benchmarks. Run --list for sources and notes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("datasets", nargs="*", help="dataset names, or 'eval' for the six benchmarks")
    p.add_argument("--out-dir", type=Path, default=Path("data"), help="writes <out-dir>/<dataset>.parquet")
    p.add_argument("--list", action="store_true", help="list the datasets, their sources and notes, and exit")
    p.add_argument("--amc", choices=sorted(EVAL_SIX), default="83", help="which AMC set 'eval' includes")
    src = p.add_argument_group("sources")
    src.add_argument(
        "--input", action="append", default=[], metavar="NAME=SOURCE", help="hub id or local json/jsonl/parquet file"
    )
    src.add_argument("--hub-config", help="hub config (one dataset only); default: the dataset's")
    src.add_argument("--hub-split", help="hub split (one dataset only); default: the dataset's")
    src.add_argument("--field", action="append", default=[], metavar="NAME=KEY", help="source key of a field")
    src.add_argument("--limit", type=int, help="read only the first N rows of each source (smoke runs)")
    tpl = p.add_argument_group("prompt")
    tpl.add_argument("--template", choices=sorted(TEMPLATES), default=DEFAULT_TEMPLATE, help="prompt template")
    tpl.add_argument("--system-prompt", help="replace the template's system turn")
    tpl.add_argument("--user-template", help="custom user turn containing {problem} (overrides --template)")
    flt = p.add_argument_group("filtering and validation")
    flt.add_argument("--drop-invalid", action="store_true", help="drop rows that fail validation (default: abort)")
    flt.add_argument("--dedup", action=argparse.BooleanOptionalAction, default=None, help="default: on for train sets")
    flt.add_argument("--levels", type=_levels, help="MATH levels to keep, e.g. 3,4,5 (math_train)")
    flt.add_argument("--exclude", nargs="+", default=[], help="files whose problems are removed (decontamination)")
    flt.add_argument("--no-gold-check", action="store_true", help="skip the gold self-verification (not advised)")
    tr = p.add_argument_group("expert traces (openr1_46k, openr1_220k)")
    tr.add_argument(
        "--second-traces",
        nargs="?",
        const=OPENR1_220K.hub_id,
        metavar="SOURCE",
        help=f"openr1_46k: add a second R1 trace from OpenR1-Math-220k (hub id or file; bare: {OPENR1_220K.hub_id})",
    )
    tr.add_argument("--join-on", choices=("auto", "uuid", "problem"), default="auto", help="second-trace join key")
    tr.add_argument("--trace-correctness", choices=("math_verify", "any"), default="math_verify")
    tr.add_argument("--require-second-trace", action="store_true", help="rows without two traces fail validation")
    tr.add_argument(
        "--max-trace-tokens",
        type=int,
        default=DEFAULT_MAX_TRACE_TOKENS,
        help="remove expert traces (and second-trace candidates) longer than this many tokens, reported by id; "
        "the default fits the TRAPO scripts' response length 8192 with EOS; 0 turns the filter off",
    )
    tr.add_argument(
        "--tokenizer",
        default=DEFAULT_TRACE_TOKENIZER,
        help="the policy tokenizer (path or hub id) that --max-trace-tokens counts with",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _list() -> str:
    lines = []
    for name, s in SPECS.items():
        where = s.hub_id + (f" [{s.hub_config}]" if s.hub_config else "") + f" / {s.hub_split}"
        lines.append(f"{name:14s} {s.kind:5s} {where}\n{'':20s}{s.notes}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        print(_list())
        return 0
    names = [n for d in args.datasets for n in (EVAL_SIX[args.amc] if d == "eval" else (d,))]
    if not names:
        build_parser().error("name at least one dataset (or 'eval'); --list shows them")
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        build_parser().error(f"unknown dataset(s) {unknown}; choose from {sorted(SPECS)} or 'eval'")
    if len(names) > 1 and (args.hub_config or args.hub_split or args.field):
        build_parser().error("--hub-config, --hub-split and --field apply to a single dataset")
    inputs = _pairs(args.input, "--input")
    template = get_template(args.template, system=args.system_prompt, user=args.user_template)
    failed = []
    for name in names:
        opts = PrepareOptions(
            source=inputs.get(name),
            hub_config=args.hub_config,
            hub_split=args.hub_split,
            template=template,
            fields=_pairs(args.field, "--field"),
            drop_invalid=args.drop_invalid,
            dedup=args.dedup,
            levels=args.levels if name == "math_train" else None,
            exclude=tuple(args.exclude) if SPECS[name].kind == "train" else (),
            second_traces=args.second_traces if name == "openr1_46k" else None,
            join_on=args.join_on,
            trace_correctness=args.trace_correctness,
            min_traces=2 if args.require_second_trace and SPECS[name].expert_traces else None,
            max_trace_tokens=args.max_trace_tokens or None,
            tokenizer=args.tokenizer,
            limit=args.limit,
            gold_check=None if args.no_gold_check else PrepareOptions().gold_check,
            progress=not args.no_progress,
        )
        try:
            print(prepare(name, args.out_dir / f"{name}.parquet", opts).format(), flush=True)
        except (DataValidationError, SchemaError, SourceError, ValueError) as e:
            print(f"== {name}: FAILED\n{e}", file=sys.stderr, flush=True)
            failed.append(name)
        except Exception as e:  # a bug or an unforeseen input must not cost the datasets after this one
            print(f"== {name}: FAILED with {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
