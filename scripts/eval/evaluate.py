#!/usr/bin/env python3
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Generate with vLLM (GPU), grade and report (CPU); logic in ``trustrl.recipes.eval``.

Examples::

    # 1. sample (vLLM; its CPU build without a GPU): the LUFFY/TRAPO protocol (avg@32 on AIME/AMC, 1 sample
    #    elsewhere). --model: a hub id, a HF folder, or a verl checkpoint (global_step_N or its actor/, FSDP or
    #    Megatron), merged once with verl's model merger into a cache folder when it has no HF weights
    python scripts/eval/evaluate.py generate --model ckpts/trustrl/trapo_qwen2.5_math_7b/global_step_500 \\
        --data data/eval/*.parquet --out runs/trapo/generations.jsonl --preset luffy
    #    check the model folder and the data files only (no vLLM, no merge)
    python scripts/eval/evaluate.py generate --dry-run --model ckpts/.../global_step_500 --data ... --out ...
    # 2. grade and report (CPU): metrics.json, metrics.csv, pass_at_k.png in --out-dir, runs side by side
    python scripts/eval/evaluate.py score runs/grpo/generations.jsonl runs/trapo/generations.jsonl \\
        --names grpo trapo --out-dir runs/compare
    # 3. re-plot runs from existing metrics files
    python scripts/eval/evaluate.py plot runs/compare/metrics.json other/metrics.json --out fig.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trustrl.recipes.eval import PRESETS, UNIQUE_CORRECT

_REWARD_KEYS = ("think_mode", "truncation", "timeout_s", "num_workers")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evaluate.py",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="sample n responses per problem with vLLM (GPU, or vLLM's CPU build)")
    g.add_argument(
        "--model",
        required=True,
        help="hub id, HF model folder, or verl checkpoint folder (global_step_N or its actor/; merged to HF once)",
    )
    g.add_argument("--merge-cache", type=Path, help="folder for merged checkpoints (default ~/.cache/trustrl/merged)")
    g.add_argument("--dry-run", action="store_true", help="check the model folder and data files, print the plan")
    g.add_argument("--data", nargs="+", required=True, help="prepared benchmark parquet files")
    g.add_argument("--out", type=Path, required=True, help="generations JSONL to write")
    g.add_argument("--preset", choices=sorted(PRESETS), default="luffy", help="sampling protocol")
    g.add_argument("--n", type=int, help="samples per problem for every benchmark (overrides the preset)")
    g.add_argument("--temperature", type=float)
    g.add_argument("--top-p", type=float)
    g.add_argument("--max-tokens", type=int)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--tensor-parallel-size", type=int, default=1)
    g.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    g.add_argument("--max-model-len", type=int)
    g.add_argument("--limit", type=int, help="first N problems of each file (smoke runs)")

    s = sub.add_parser("score", help="grade generations files and write metrics.json/.csv and pass_at_k.png (CPU)")
    s.add_argument("generations", nargs="+", type=Path, help="generations JSONL files, one per run")
    s.add_argument("--names", nargs="+", help="run names (default: each file's parent folder name)")
    s.add_argument("--out-dir", type=Path, required=True)
    s.add_argument(
        "--unique-correct",
        choices=sorted(UNIQUE_CORRECT),
        default="coverage",
        help="definition of the unique-correct count (README: why coverage is the default)",
    )
    s.add_argument("--maj-clustering", choices=("equivalence", "string"), default="equivalence")
    s.add_argument("--think-mode", choices=("auto", "require", "ignore"), default="auto", help="reward option")
    s.add_argument("--truncation", choices=("zero", "score"), default="zero", help="reward option")
    s.add_argument("--timeout-s", type=float, default=10.0, help="reward: seconds per sample")
    s.add_argument("--num-workers", type=int, help="reward: worker processes (default min(4, cores))")
    s.add_argument("--no-progress", action="store_true")

    pl = sub.add_parser("plot", help="one pass@k figure from metrics.json files")
    pl.add_argument("metrics", nargs="+", type=Path)
    pl.add_argument("--out", type=Path, required=True)
    pl.add_argument("--benchmarks", nargs="+", help="panels to draw (default: all, plus 'average')")
    return p


def _generate(args) -> int:
    from trustrl.recipes.eval.generate import CheckpointError, generate, read_prompt_rows, resolve_model

    if args.dry_run:
        try:
            source = resolve_model(args.model, args.merge_cache)
            missing = [str(f) for f in args.data if not Path(f).is_file()]
            if missing:
                raise CheckpointError(f"--data: missing benchmark file(s) {missing}")
            rows = read_prompt_rows(args.data, args.limit)
        except (CheckpointError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"[generate] model: {source.describe()}")
        print(f"[generate] {len(rows)} problems from {len(args.data)} file(s) -> {args.out}")
        return 0
    try:
        out = generate(
            args.model,
            args.data,
            args.out,
            preset=args.preset,
            n=args.n,
            temperature=args.temperature,
            top_p=args.top_p,
            max_tokens=args.max_tokens,
            seed=args.seed,
            tensor_parallel_size=args.tensor_parallel_size,
            gpu_memory_utilization=args.gpu_memory_utilization,
            max_model_len=args.max_model_len,
            limit=args.limit,
            merge_cache=args.merge_cache,
        )
    except (ImportError, CheckpointError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def _score(args) -> int:
    from trustrl.recipes.eval import (
        GenerationsError,
        build_report,
        format_table,
        plot_pass_at_k,
        read_generations,
        score_generations,
        write_csv,
        write_json,
    )

    names = args.names or [path.resolve().parent.name for path in args.generations]
    if len(names) != len(args.generations) or len(set(names)) != len(names):
        print(f"error: need one distinct name per generations file, got {names}", file=sys.stderr)
        return 2
    reward_kwargs = {k: getattr(args, k) for k in _REWARD_KEYS if getattr(args, k) is not None}
    reports = {}
    for name, path in zip(names, args.generations):
        try:
            gens = read_generations(path)
        except GenerationsError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        results = score_generations(
            gens,
            reward_kwargs=reward_kwargs,
            clustering=args.maj_clustering,
            keep_responses=args.unique_correct == "distinct_responses",
            progress=not args.no_progress,
        )
        reports[name] = build_report(
            results,
            run=name,
            source=str(path),
            unique_correct_definition=args.unique_correct,
            clustering=args.maj_clustering,
            reward_kwargs=reward_kwargs,
        )
    paths = [
        write_json(reports, args.out_dir / "metrics.json"),
        write_csv(reports, args.out_dir / "metrics.csv"),
        plot_pass_at_k(reports, args.out_dir / "pass_at_k.png"),
    ]
    from trustrl.recipes.eval.report import plot_notes

    print(format_table(reports))
    for note in plot_notes(reports):
        print(f"pass_at_k.png: {note}")
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def _plot(args) -> int:
    from trustrl.recipes.eval import plot_pass_at_k, read_json

    reports = {}
    for path in args.metrics:
        for name, rep in read_json(path).items():
            reports[name if name not in reports else f"{name} ({path})"] = rep
    print(f"wrote {plot_pass_at_k(reports, args.out, args.benchmarks)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return {"generate": _generate, "score": _score, "plot": _plot}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
