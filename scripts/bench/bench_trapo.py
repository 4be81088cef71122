# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Benchmark ``trapo_loss`` against verl's ``ppo_loss`` (vanilla) on the same nested batch.

The batch is shaped as verl's engines pass a micro-batch to the loss: jagged nested ``prompts``, ``responses``,
``response_mask``, ``old_log_probs``, ``advantages``, ``prefix_mask``, ``sft_mask`` (ignored by ``ppo_loss``) and the
engine's scalars; ``model_output`` holds nested ``log_probs`` (a leaf that receives the gradient) and ``entropy``.
A share of the rows is guided: an expert prefix of random length at the start of the response, with the SFT flag
on one copy of two, and one full-expert row per prompt group. Both losses use the same actor config (vanilla,
``seq-mean-token-sum-norm`` with a constant ``loss_scale_factor``, entropy coefficient 0.001, as the recipe).

Time: forward + backward (``loss.backward()`` into the leaf), both losses alternating in this process, after
warm-up; the ratio is of the medians (and of the minima, and of the process CPU time, which a machine shared
with other jobs distorts less than wall time; use ``--threads 1`` there). Target: trapo / ppo <= 1.3.

    python scripts/bench/bench_trapo.py --out bench_trapo.json
    python scripts/bench/bench_trapo.py --rows 256 --response-length 8192 --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from trustrl.policy_loss.trapo import TrapoLossConfig, trapo_loss
from verl.utils import tensordict_utils as tu
from verl.workers.config import ActorConfig
from verl.workers.utils.losses import ppo_loss


def _nested(rows: list[torch.Tensor]) -> torch.Tensor:
    return torch.nested.as_nested_tensor(rows, layout=torch.jagged)


def build_batch(args, device):
    """(data TensorDict, log-prob leaf values, offsets, entropy nested) for one micro-batch."""
    g = torch.Generator().manual_seed(args.seed)
    rows = args.rows
    plens = torch.randint(args.prompt_length // 2, args.prompt_length + 1, (rows,), generator=g)
    rlens = torch.randint(args.response_length // 4, args.response_length + 1, (rows,), generator=g)
    guided = torch.rand(rows, generator=g) < args.guided_share
    fields = {key: [] for key in ("prompts", "responses", "response_mask", "old", "adv", "prefix", "sft")}
    for j in range(rows):
        plen, rlen = int(plens[j]), int(rlens[j])
        full_expert = j % args.group == args.group - 1 and bool(guided[j])
        prefix_len = rlen if full_expert else (int(torch.randint(1, rlen, (1,), generator=g)) if guided[j] else 0)
        prefix = torch.zeros(rlen, dtype=torch.int64)
        prefix[:prefix_len] = 1
        fields["prompts"].append(torch.randint(0, 32000, (plen,), generator=g))
        fields["responses"].append(torch.randint(0, 32000, (rlen,), generator=g))
        fields["response_mask"].append(torch.ones(rlen, dtype=torch.int64))
        fields["old"].append(-2.0 * torch.rand(rlen, generator=g))
        fields["adv"].append(torch.full((rlen,), float(torch.randn(1, generator=g))))
        fields["prefix"].append(prefix)
        fields["sft"].append(prefix * (j % 2))
    n_resp = int(rlens.sum())
    data = tu.get_tensordict(
        {
            "prompts": _nested(fields["prompts"]),
            "responses": _nested(fields["responses"]),
            "response_mask": _nested(fields["response_mask"]),
            "old_log_probs": _nested(fields["old"]),
            "advantages": _nested(fields["adv"]),
            "prefix_mask": _nested(fields["prefix"]),
            "sft_mask": _nested(fields["sft"]),
        },
        {"dp_size": 1, "batch_num_tokens": n_resp, "global_batch_size": rows},
    ).to(device)
    seq = plens + rlens
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), seq.cumsum(0)]).to(device)
    log_probs = (-2.0 * torch.rand(int(seq.sum()), generator=g)).to(device=device, dtype=getattr(torch, args.dtype))
    entropy = torch.nested.nested_tensor_from_jagged(torch.rand(int(seq.sum()), generator=g).to(device), offsets)
    stats = {"rows": rows, "response_tokens": n_resp, "guided_rows": int(guided.sum())}
    stats["sft_tokens"] = int(sum(int((p * s).sum()) for p, s in zip(fields["prefix"], fields["sft"])))
    return data, log_probs, offsets, entropy, stats


def _step(loss_fn, leaf_values, offsets, entropy, data, sync):
    leaf = leaf_values.detach().requires_grad_()
    model_output = {"log_probs": torch.nested.nested_tensor_from_jagged(leaf, offsets), "entropy": entropy}
    start, cpu_start = time.perf_counter(), time.process_time()
    loss, _ = loss_fn(model_output=model_output, data=data)
    loss.backward()
    sync()
    return time.perf_counter() - start, time.process_time() - cpu_start, float(loss.detach())


def _parse_args() -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=64, help="rows in the micro-batch (8 prompts x 8 rollouts)")
    parser.add_argument("--group", type=int, default=8, help="rows per prompt group (one full-expert row each)")
    parser.add_argument("--prompt-length", type=int, default=256)
    parser.add_argument("--response-length", type=int, default=4096, help="max response length (L_max)")
    parser.add_argument("--guided-share", type=float, default=0.3, help="share of rows with an expert prefix")
    parser.add_argument("--dtype", default="float32", help="log-prob dtype (bfloat16 on a GPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON")
    return parser.parse_args()


def _losses(args) -> dict:
    """Name → loss function: verl's ``ppo_loss`` (vanilla) first, then ``trapo_loss``, on one shared actor config."""
    config = ActorConfig(
        strategy="fsdp",
        rollout_n=args.group,
        ppo_micro_batch_size_per_gpu=args.rows,
        loss_agg_mode="seq-mean-token-sum-norm",
        loss_scale_factor=args.response_length,
        entropy_coeff=0.001,
    )
    return {
        "ppo_loss (vanilla)": lambda **kw: ppo_loss(config, **kw),
        "trapo_loss (vanilla RL + TrSFT)": lambda **kw: trapo_loss(config, trapo_config=TrapoLossConfig(), **kw),
    }


def _measure(losses: dict, batch, sync, warmup: int, repeats: int) -> tuple[dict, dict, dict]:
    """Wall and CPU times (s) of the ``repeats`` runs after ``warmup``, losses alternating; and the last loss values.

    ``batch`` is (leaf values, offsets, entropy, data) as :func:`build_batch` returns them.
    """
    leaf_values, offsets, entropy, data = batch
    times = {name: [] for name in losses}
    cpu_times = {name: [] for name in losses}
    values = {}
    for i in range(warmup + repeats):
        for name, fn in losses.items():  # alternate, so drifts in machine load hit both
            elapsed, cpu, values[name] = _step(fn, leaf_values, offsets, entropy, data, sync)
            if i >= warmup:
                times[name].append(elapsed)
                cpu_times[name].append(cpu)
    return times, cpu_times, values


def _summarise(times: dict, cpu_times: dict) -> tuple[list[dict], dict[str, float]]:
    """Per-loss rows (median, min and CPU-time median, ms) and the trapo / ppo ratios of the medians and minima."""
    base, trapo = list(times)
    rows = []
    for name in times:
        median, fastest = statistics.median(times[name]), min(times[name])
        cpu = statistics.median(cpu_times[name])
        rows.append({"loss": name, "median_ms": 1e3 * median, "min_ms": 1e3 * fastest, "cpu_median_ms": 1e3 * cpu})
    ratios = {
        "ratio_median": statistics.median(times[trapo]) / statistics.median(times[base]),
        "ratio_min": min(times[trapo]) / min(times[base]),
        "ratio_cpu_time": statistics.median(cpu_times[trapo]) / statistics.median(cpu_times[base]),
    }
    return rows, ratios


def _print_table(stats: dict, device, dtype: str, rows: list[dict], ratios: dict[str, float]) -> None:
    """The batch, one line per loss, and the ratios against the target."""
    print(f"batch: {stats}, device={device}, dtype={dtype}, threads={torch.get_num_threads()}")
    print(f"{'loss':34s} {'median ms':>10s} {'min ms':>10s} {'CPU-time median ms':>19s}")
    for row in rows:
        print(f"{row['loss']:34s} {row['median_ms']:10.2f} {row['min_ms']:10.2f} {row['cpu_median_ms']:19.2f}")
    print(
        f"time ratio trapo/ppo: median {ratios['ratio_median']:.3f}, min {ratios['ratio_min']:.3f}, "
        f"process CPU time {ratios['ratio_cpu_time']:.3f}"
    )
    print("target: <= 1.3")


def _write_json(path: str, args, stats: dict, rows: list[dict], ratios: dict[str, float], values: dict) -> None:
    """The settings, batch, rows, ratios, loss values and platform as indented JSON."""
    result = {
        "args": vars(args),
        "batch": stats,
        "rows": rows,
        **ratios,
        "target": 1.3,
        "loss_values": values,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
    }
    with open(path, "w") as f:
        json.dump(result, f, indent=2)


def main() -> None:
    """Build the batch, time both losses alternately, print the table and write ``--out``."""
    args = _parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    data, leaf_values, offsets, entropy, stats = build_batch(args, device)
    losses = _losses(args)
    times, cpu_times, values = _measure(losses, (leaf_values, offsets, entropy, data), sync, args.warmup, args.repeats)
    rows, ratios = _summarise(times, cpu_times)
    _print_table(stats, device, args.dtype, rows, ratios)
    if args.out:
        _write_json(args.out, args, stats, rows, ratios, values)


if __name__ == "__main__":
    main()
