# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Benchmark the QUATRO estimator and loss against verl's ``grpo_vectorized`` and ``gspo`` on the same tensors.

Cases (issue 4, "Performance"):

* estimator: ``quatro`` vs ``grpo_vectorized`` on 16,384 responses x 2,048 tokens, G = 16, binary rewards with a
  spread of per-prompt success rates, response mask in the V1 trainer's dtype (int64). Target time ratio <= 1.2.
* loss: forward + backward of ``quatro`` vs ``gspo`` on 256 x 8,192 tokens, float32 on CPU (bf16 log-probs on a
  GPU), bool mask (as verl's ``ppo_loss`` passes it), ``seq-mean-token-mean``. Targets: time ratio <= 0.5
  (aim 0.2), peak memory ratio <= 1.0.

Time: both methods alternate on the same tensors in this process; the ratio is of the medians (and of the
minima). Memory on CPU: torch's CPU allocations are invisible to tracemalloc, so each case runs in a fresh
subprocess that rebuilds the same seeded tensors (with glibc's mmap threshold fixed at 64 KiB, so freed
tensors leave RSS at once), runs the case once to warm up, resets the kernel's peak-RSS mark
(``/proc/self/clear_refs`` = 5) and reports VmHWM - VmRSS before the measured run. On CUDA:
``torch.cuda.max_memory_allocated`` minus the allocation before the run.

    python scripts/bench/bench_quatro.py --out bench_quatro.json
    python scripts/bench/bench_quatro.py --device cuda --out bench_quatro_gpu.json   # loss in bf16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

CASES = ("grpo_vectorized", "quatro_estimator", "gspo", "quatro_loss")


def _build_estimator_inputs(args, device):
    g = torch.Generator().manual_seed(args.seed)
    n, length, group = args.responses, args.response_length, args.group
    lengths = torch.randint(1, length + 1, (n,), generator=g)
    mask = (torch.arange(length)[None] < lengths[:, None]).to(getattr(torch, args.mask_dtype))
    # per-prompt success probability spread over [0, 1], so some groups are all-correct / all-wrong
    p = torch.rand(n // group, generator=g).repeat_interleave(group)
    scores = (torch.rand(n, generator=g) < p).float()
    rewards = torch.zeros(n, length)
    rewards[torch.arange(n), lengths - 1] = scores
    uid = np.array([f"prompt-{i // group}" for i in range(n)], dtype=object)
    return rewards.to(device), mask.to(device), uid


def _build_loss_inputs(args, device):
    g = torch.Generator().manual_seed(args.seed + 1)
    bs, length = args.loss_batch, args.loss_length
    lengths = torch.randint(length // 8, length + 1, (bs,), generator=g)
    mask = torch.arange(length)[None] < lengths[:, None]
    old = -2.0 * torch.rand(bs, length, generator=g)
    new = old + 0.02 * torch.randn(bs, length, generator=g)
    adv = torch.randn(bs, 1, generator=g) * mask
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return old.to(device, dtype), new.to(device, dtype), adv.to(device), mask.to(device)


def _actor_config(loss_mode):
    from verl.workers.config import ActorConfig, PolicyLossConfig

    # GSPO's published clip range (arXiv:2507.18071 / verl's GSPO example)
    return ActorConfig(
        strategy="fsdp",
        rollout_n=1,
        ppo_micro_batch_size_per_gpu=1,
        loss_agg_mode="seq-mean-token-mean",
        clip_ratio_low=3e-4,
        clip_ratio_high=4e-4,
        policy_loss=PolicyLossConfig(loss_mode=loss_mode),
    )


def _runners(args, device):
    """Name → zero-argument callable running one case once (the tensors are built here, once)."""
    import trustrl.advantage.quatro  # noqa: F401  registers "quatro" (also done by the verl plugin)
    import trustrl.policy_loss.quatro  # noqa: F401
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn, get_policy_loss_fn

    runners = {}
    if "estimator" in args.parts:
        rewards, mask, uid = _build_estimator_inputs(args, device)
        for name, estimator in (("grpo_vectorized", "grpo_vectorized"), ("quatro_estimator", "quatro")):
            fn = get_adv_estimator_fn(estimator)
            inputs = {"token_level_rewards": rewards, "response_mask": mask, "index": uid, "config": None}
            runners[name] = lambda fn=fn, inputs=inputs: fn(**inputs)
    if "loss" in args.parts:
        old, new, adv, mask = _build_loss_inputs(args, device)
        for name, mode in (("gspo", "gspo"), ("quatro_loss", "quatro")):
            fn, cfg = get_policy_loss_fn(mode), _actor_config(mode)

            def run(fn=fn, cfg=cfg, old=old, new=new, adv=adv, mask=mask):
                log_prob = new.detach().requires_grad_(True)
                loss, _ = fn(old, log_prob, adv, mask, cfg.loss_agg_mode, cfg, None)
                loss.backward()
                return log_prob.grad

            runners[name] = run
    return runners


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(runners, args, device):
    times = {name: [] for name in runners}
    for fn in runners.values():  # warm-up
        fn()
    for _ in range(args.repeats):
        for name, fn in runners.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child_peak(args, device):
    """Peak extra memory (bytes) of one run of ``args.child`` after a warm-up run."""
    fn = _runners(args, device)[args.child]
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    base = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    fn()
    return (_status_kib("VmHWM") - base) * 1024


def _memory(args, device, names):
    if device.type == "cuda":  # one process is enough: the allocator's peak counter resets per case
        out = {}
        for name in names:
            args.child = name
            out[name] = _child_peak(args, device)
        args.child = None
        return out
    out = {}
    for name in names:
        # glibc: serve every allocation > 64 KiB by mmap and unmap it on free, so RSS follows live memory
        # (otherwise freed heap pages from the warm-up stay resident and hide the measured run's peak)
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
        proc = subprocess.run(_child_command(args, name), capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"memory child {name} failed:\n{proc.stderr[-3000:]}")
        out[name] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_bytes"]
    return out


def _child_command(args, name):
    """The same settings, one case, in a fresh interpreter."""
    flags = ["responses", "response_length", "group", "mask_dtype", "loss_batch", "loss_length", "threads", "seed"]
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--device", args.device, "--parts", *args.parts]
    for flag in flags:
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return cmd


def _ratio_rows(times, memory, pairs):
    rows = []
    for name, ref in pairs:
        if name not in times:
            continue
        med, ref_med = statistics.median(times[name]), statistics.median(times[ref])
        rows.append(
            {
                "case": name,
                "baseline": ref,
                "time_median_ms": 1e3 * med,
                "baseline_time_median_ms": 1e3 * ref_med,
                "time_min_ms": 1e3 * min(times[name]),
                "baseline_time_min_ms": 1e3 * min(times[ref]),
                "time_ratio_median": med / ref_med,
                "time_ratio_min": min(times[name]) / min(times[ref]),
                "peak_mib": memory[name] / 2**20,
                "baseline_peak_mib": memory[ref] / 2**20,
                "memory_ratio": memory[name] / memory[ref] if memory[ref] > 0 else float("nan"),
            }
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=16384, help="estimator: number of responses")
    parser.add_argument("--response-length", type=int, default=2048, help="estimator: tokens per response")
    parser.add_argument("--group", type=int, default=16, help="estimator: responses per prompt (G)")
    parser.add_argument("--mask-dtype", default="int64", help="estimator mask dtype (V1 trainer: int64)")
    parser.add_argument("--loss-batch", type=int, default=256, help="loss: sequences")
    parser.add_argument("--loss-length", type=int, default=8192, help="loss: tokens per sequence")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case (after one warm-up)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--parts", nargs="+", default=["estimator", "loss"], choices=["estimator", "loss"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda: loss log-probs in bf16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--child", default=None, choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    if args.child:
        print(json.dumps({"peak_bytes": _child_peak(args, device)}))
        return

    runners = _runners(args, device)
    times = _time(runners, args, device)
    del runners
    memory = _memory(args, device, list(times))
    rows = _ratio_rows(times, memory, [("quatro_estimator", "grpo_vectorized"), ("quatro_loss", "gspo")])
    header = f"{'case':<18}{'vs':<17}{'median ms':>10}{'base ms':>10}{'ratio':>8}{'min ratio':>10}"
    header += f"{'peak MiB':>10}{'base MiB':>10}{'mem ratio':>10}"
    print(header)
    for r in rows:
        print(
            f"{r['case']:<18}{r['baseline']:<17}{r['time_median_ms']:>10.1f}{r['baseline_time_median_ms']:>10.1f}"
            f"{r['time_ratio_median']:>8.3f}{r['time_ratio_min']:>10.3f}{r['peak_mib']:>10.1f}"
            f"{r['baseline_peak_mib']:>10.1f}{r['memory_ratio']:>10.3f}"
        )
    result = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "settings": {k: v for k, v in vars(args).items() if k not in ("child", "out")},
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "times_ms": {k: [1e3 * t for t in v] for k, v in times.items()},
        "peak_bytes": memory,
        "rows": rows,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
