# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Benchmark the QUATRO estimator and loss against verl's ``grpo_vectorized`` and ``gspo`` on the same tensors.

Cases:

* estimator: ``quatro`` vs ``grpo_vectorized`` on 16,384 responses x 2,048 tokens, G = 16, binary rewards with a
  spread of per-prompt success rates, response mask in the V1 trainer's dtype (int64). Target time ratio <= 1.2.
* loss: forward + backward of ``quatro`` vs ``gspo`` on 256 x 8,192 tokens, float32 on CPU (bf16 log-probs on a
  GPU), bool mask (as verl's ``ppo_loss`` passes it), ``seq-mean-token-mean``. Targets: time ratio <= 0.5
  (aim 0.2), peak memory ratio <= 1.0.

* grad (``--parts grad``, no timing): the scale of the loss's gradient at the first mini-batch (ρ = 1) on one
  seeded batch of mixed-length responses (``--grad-lengths``, default 256-2,048 tokens), G = 16 binary rewards
  with a spread of success rates: the L2 norm of ∂loss/∂log π of ``quatro`` (the recipe's ratio level and
  ``loss_agg_mode``, ``quatro`` targets) over that of verl's ``gspo`` (``seq-mean-token-mean``) and ``vanilla``
  (``token-mean``), both with ``grpo`` advantages; and the length bias: the slope of log(push_i / |A_i|) on
  log |o_i|, where push_i = Σ_t ∂loss/∂log π(o_{i,t}) and A_i is the row's advantage (T_i for quatro). GSPO's
  slope is 0 (every sequence pushed by its advantage whatever its length). Also, per (ratio_level,
  loss_agg_mode): whether the loss accepts the pair, and the largest relative gap between the backward's
  directional derivative and a central finite difference of the reported value (float64).

Time: both methods alternate on the same tensors in this process; the ratio is of the medians (and of the
minima). Memory on CPU: torch's CPU allocations are invisible to tracemalloc, so each case runs in a fresh
subprocess that rebuilds the same seeded tensors (with glibc's mmap threshold fixed at 64 KiB, so freed
tensors leave RSS at once), runs the case once to warm up, resets the kernel's peak-RSS mark
(``/proc/self/clear_refs`` = 5) and reports VmHWM - VmRSS before the measured run. On CUDA:
``torch.cuda.max_memory_allocated`` minus the allocation before the run.

    python scripts/bench/bench_quatro.py --out bench_quatro.json
    python scripts/bench/bench_quatro.py --device cuda --out bench_quatro_gpu.json   # loss in bf16
    python scripts/bench/bench_quatro.py --parts grad --grad-lengths 300 3000          # gradient scale only
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


def _actor_config(loss_mode, loss_agg_mode="seq-mean-token-mean", policy_loss=None):
    from verl.workers.config import ActorConfig, PolicyLossConfig

    # GSPO's published clip range (arXiv:2507.18071 / verl's GSPO example)
    return ActorConfig(
        strategy="fsdp",
        rollout_n=1,
        ppo_micro_batch_size_per_gpu=1,
        loss_agg_mode=loss_agg_mode,
        clip_ratio_low=3e-4,
        clip_ratio_high=4e-4,
        policy_loss=policy_loss or PolicyLossConfig(loss_mode=loss_mode),
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


def _recipe_loss_settings():
    """(ratio_level, loss_agg_mode) the recipe yaml ships (the defaults a user of the recipe gets)."""
    import trustrl.recipes.quatro as recipe
    from omegaconf import OmegaConf

    yaml = os.path.join(os.path.dirname(recipe.__file__), "config", "quatro_trainer.yaml")
    actor = OmegaConf.load(yaml).actor_rollout_ref.actor
    return str(actor.policy_loss.ratio_level), str(actor.loss_agg_mode)


def _build_grad_inputs(args):
    """Seeded float64 batch at ρ = 1: (old log-probs, bool mask, quatro targets, grpo advantages, lengths)."""
    import trustrl.advantage.quatro  # noqa: F401  registers "quatro"
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    g = torch.Generator().manual_seed(args.seed + 2)
    n, (lo, hi) = args.grad_prompts * args.group, args.grad_lengths
    lengths = torch.randint(lo, hi + 1, (n,), generator=g)
    mask = torch.arange(hi)[None] < lengths[:, None]
    p = torch.rand(args.grad_prompts, generator=g).repeat_interleave(args.group)
    scores = (torch.rand(n, generator=g) < p).double()
    rewards = torch.zeros(n, hi, dtype=torch.float64)
    rewards[torch.arange(n), lengths - 1] = scores
    uid = np.array([f"prompt-{i // args.group}" for i in range(n)], dtype=object)
    targets, _ = get_adv_estimator_fn("quatro")(token_level_rewards=rewards, response_mask=mask, index=uid)
    grpo, _ = get_adv_estimator_fn("grpo")(token_level_rewards=rewards, response_mask=mask, index=uid)
    old = -2.0 * torch.rand(n, hi, generator=g, dtype=torch.float64)
    return old, mask, targets.double() * mask, grpo.double() * mask, lengths


def _loss_grad(loss_mode, old, new, adv, mask, mode, ratio_level=None):
    from trustrl.policy_loss.quatro import QuatroPolicyLossConfig
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    policy_loss = QuatroPolicyLossConfig(ratio_level=ratio_level) if ratio_level is not None else None
    cfg = _actor_config(loss_mode, mode, policy_loss)
    log_prob = new.detach().clone().requires_grad_(True)
    loss, _ = get_policy_loss_fn(loss_mode)(old, log_prob, adv, mask, mode, cfg, None)
    loss.backward()
    return loss.detach(), log_prob.grad


def _length_bias(grad, adv, mask, lengths):
    """Slope and correlation of log(push_i/|A_i|) against log|o_i| over rows with A_i ≠ 0."""
    a = (adv * mask).sum(-1) / lengths
    push = (grad * mask).sum(-1)
    rows = a.abs() > 1e-12
    y = torch.log(push[rows].abs() / a[rows].abs())
    x = torch.log(lengths[rows].double())
    xc, yc = x - x.mean(), y - y.mean()
    slope = float((xc * yc).sum() / (xc * xc).sum())
    denom = float(xc.norm() * yc.norm())
    # a constant push per unit advantage (GSPO at ρ = 1) has no correlation to speak of: report 0
    corr = float((xc * yc).sum()) / denom if float(yc.norm()) > 1e-9 * max(float(y.abs().max()), 1.0) else 0.0
    return slope, corr


def _fd_gaps(args):
    """Per (ratio_level, loss_agg_mode): 'refused' or the max relative gap of backward vs finite differences."""
    from trustrl.policy_loss import quatro

    g = torch.Generator().manual_seed(args.seed + 3)
    bs, length = 6, 40
    lengths = torch.tensor([5, 10, 20, 40, 13, 31])
    mask = torch.arange(length)[None] < lengths[:, None]
    old = -2.0 * torch.rand(bs, length, generator=g, dtype=torch.float64)
    new = old + 0.05 * torch.randn(bs, length, generator=g, dtype=torch.float64)
    adv = torch.randn(bs, 1, generator=g, dtype=torch.float64) * mask
    modes = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm", "token-sum")
    out = {}
    for level in quatro.RATIO_LEVELS:
        for mode in modes:
            try:
                _, grad = _loss_grad("quatro", old, new, adv, mask, mode, level)
            except ValueError:
                out[f"{level}/{mode}"] = "refused"
                continue
            worst = 0.0
            for _ in range(4):
                v = torch.randn(bs, length, generator=g, dtype=torch.float64) * mask
                eps = 1e-6
                hi_ = _loss_grad("quatro", old, new + eps * v, adv, mask, mode, level)[0]
                lo_ = _loss_grad("quatro", old, new - eps * v, adv, mask, mode, level)[0]
                fd = float(hi_ - lo_) / (2 * eps)
                worst = max(worst, abs(float((grad * v).sum()) - fd) / max(abs(fd), 1e-300))
            out[f"{level}/{mode}"] = worst
    return out


def _grad_scale(args):
    level, mode = _recipe_loss_settings()
    old, mask, targets, grpo, lengths = _build_grad_inputs(args)
    rows = {}
    for name, loss_mode, adv, agg, ratio_level in (
        ("quatro", "quatro", targets, mode, level),
        ("gspo", "gspo", grpo, "seq-mean-token-mean", None),
        ("vanilla", "vanilla", grpo, "token-mean", None),
    ):
        _, grad = _loss_grad(loss_mode, old, old.clone(), adv, mask, agg, ratio_level)
        slope, corr = _length_bias(grad, adv, mask, lengths)
        rows[name] = {"loss_agg_mode": agg, "l2": float(grad.norm()), "length_slope": slope, "length_corr": corr}
    rows["quatro"]["ratio_level"] = level
    result = {
        "rows": int(mask.shape[0]),
        "mean_length": float(lengths.double().mean()),
        "lengths": list(args.grad_lengths),
        "l2_ratio_vs_gspo": rows["quatro"]["l2"] / rows["gspo"]["l2"],
        "l2_ratio_vs_vanilla": rows["quatro"]["l2"] / rows["vanilla"]["l2"],
        "losses": rows,
        "fd_relative_gap": _fd_gaps(args),
    }
    print(
        f"grad scale at rho = 1, {result['rows']} rows, lengths {args.grad_lengths[0]}-{args.grad_lengths[1]} "
        f"(mean {result['mean_length']:.0f}); quatro ratio_level={level}, loss_agg_mode={mode}"
    )
    print(f"{'loss':<10}{'agg':<22}{'L2':>12}{'len slope':>11}{'len corr':>10}")
    for name, r in rows.items():
        print(f"{name:<10}{r['loss_agg_mode']:<22}{r['l2']:>12.4e}{r['length_slope']:>11.3f}{r['length_corr']:>10.3f}")
    print(f"L2 ratio quatro/gspo {result['l2_ratio_vs_gspo']:.4g}, quatro/vanilla {result['l2_ratio_vs_vanilla']:.4g}")
    print("backward vs finite difference of the value (max relative gap, float64):")
    for pair, gap in result["fd_relative_gap"].items():
        print(f"  {pair:<40}{gap if isinstance(gap, str) else f'{gap:.2e}'}")
    return result


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


def _parse_args(argv) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``); see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=16384, help="estimator: number of responses")
    parser.add_argument("--response-length", type=int, default=2048, help="estimator: tokens per response")
    parser.add_argument("--group", type=int, default=16, help="estimator: responses per prompt (G)")
    parser.add_argument("--mask-dtype", default="int64", help="estimator mask dtype (V1 trainer: int64)")
    parser.add_argument("--loss-batch", type=int, default=256, help="loss: sequences")
    parser.add_argument("--loss-length", type=int, default=8192, help="loss: tokens per sequence")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case (after one warm-up)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--parts", nargs="+", default=["estimator", "loss", "grad"], choices=["estimator", "loss", "grad"]
    )
    parser.add_argument("--grad-prompts", type=int, default=4, help="grad: prompts (G = --group responses each)")
    parser.add_argument(
        "--grad-lengths", type=int, nargs=2, default=[256, 2048], help="grad: min and max response length"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda: loss log-probs in bf16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--child", default=None, choices=CASES, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _print_rows(rows: list[dict]) -> None:
    """The table of :func:`_ratio_rows`: times, their ratios and peak memory per case against its baseline."""
    header = f"{'case':<18}{'vs':<17}{'median ms':>10}{'base ms':>10}{'ratio':>8}{'min ratio':>10}"
    header += f"{'peak MiB':>10}{'base MiB':>10}{'mem ratio':>10}"
    print(header)
    for r in rows:
        print(
            f"{r['case']:<18}{r['baseline']:<17}{r['time_median_ms']:>10.1f}{r['baseline_time_median_ms']:>10.1f}"
            f"{r['time_ratio_median']:>8.3f}{r['time_ratio_min']:>10.3f}{r['peak_mib']:>10.1f}"
            f"{r['baseline_peak_mib']:>10.1f}{r['memory_ratio']:>10.3f}"
        )


def _result(args, times: dict, memory: dict, rows: list[dict], grad: dict | None) -> dict:
    """Everything measured, with the command, the settings and the platform (the ``--out`` JSON)."""
    return {
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
        "grad": grad,
    }


def main(argv=None):
    """Run the chosen parts (or one memory child), print the tables, write ``--out`` and return the result."""
    args = _parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    if args.child:
        print(json.dumps({"peak_bytes": _child_peak(args, device)}))
        return

    grad = _grad_scale(args) if "grad" in args.parts else None
    timed = [part for part in args.parts if part != "grad"]
    args.parts = timed
    runners = _runners(args, device) if timed else {}
    times = _time(runners, args, device)
    del runners
    memory = _memory(args, device, list(times))
    rows = _ratio_rows(times, memory, [("quatro_estimator", "grpo_vectorized"), ("quatro_loss", "gspo")])
    _print_rows(rows)
    result = _result(args, times, memory, rows, grad)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
