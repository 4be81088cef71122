# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The CPU demo: ``python -m trustrl.recipes.cpu --algo grpo|quatro|trapo --steps N``.

Runs verl's own trainer (V1, TransferQueue, FSDP2 actor) on the CPU platform with verl's vLLM rollout (vLLM's CPU
build) and a tiny randomly initialised model on the
copy-digit task (``trustrl.recipes.cpu.task``), prints one line per step and a summary, and writes ``curves.png``
and ``metrics.jsonl`` to ``--out``. For TRAPO the reward shown is the unguided rollouts' (guided rows apart), with
the guided share per micro-group, the expert prefix length and the TrSFT statistics. Tooling for a laptop, not a
real run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trustrl.recipes.cpu.launch import ALGOS, RunSpec, run
from trustrl.recipes.cpu.report import plot_curves, summarize

RECIPE_ENTRY = {"quatro": "trustrl.recipes.quatro.main", "trapo": "trustrl.recipes.trapo.main"}


def demo_spec(
    algo: str,
    *,
    steps: int = 30,
    prompts: int = 8,
    n: int = 8,
    lr: float = 2e-3,
    seed: int = 0,
    updates_per_step: int | None = None,
    extra: list[str] | tuple[str, ...] = (),
) -> RunSpec:
    """The run the demo launches for ``algo`` (its defaults are the demo's; the mechanism test runs this spec)."""
    return RunSpec(
        algo=algo,
        steps=steps,
        prompts_per_step=prompts,
        n=n,
        lr=lr,
        seed=seed,
        updates_per_step=updates_per_step or (1 if algo == "grpo" else 2),
        # The recipe entry points (stock main_ppo runs QUATRO too; ours also logs the estimator's lambda_q).
        entry=RECIPE_ENTRY.get(algo),
        extra=list(extra),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trustrl.recipes.cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=ALGOS, default="quatro", help="default quatro (grpo: the verl baseline)")
    parser.add_argument("--steps", type=int, default=30, help="training steps (default 30, about 2-3 minutes)")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step")
    parser.add_argument("--n", type=int, default=8, help="rollouts per prompt")
    parser.add_argument("--lr", type=float, default=2e-3, help="actor learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--updates-per-step",
        type=int,
        default=None,
        help="optimizer steps per rollout batch (default: 1 for grpo, 2 for quatro/trapo so the trust region binds)",
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default ./demo_out)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before the run is stopped")
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides passed to verl")
    args = parser.parse_args(argv)

    spec = demo_spec(
        args.algo,
        steps=args.steps,
        prompts=args.prompts,
        n=args.n,
        lr=args.lr,
        seed=args.seed,
        updates_per_step=args.updates_per_step,
        extra=args.overrides,
    )
    out = args.out / args.algo
    print(f"[trustrl] {args.algo}: {args.steps} steps of verl's trainer on CPU; log and figures in {out}", flush=True)
    result = run(spec, out, timeout_s=args.timeout)
    if result.returncode != 0:
        print(f"[trustrl] verl's trainer failed (exit {result.returncode}); full log: {out / 'train.log'}")
        return result.returncode or 1
    png = plot_curves(result.metrics, out / "curves.png", title=f"{args.algo} on the CPU copy-digit task")
    print(summarize(result, png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
