# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Run verl's own trainer on the CPU tier: overrides, environment, subprocess, metrics.

Used by the CPU demo (``python -m trustrl.recipes.cpu``) and by the ``slow`` end-to-end tests. The trainer runs
as a child process (``python -m verl.trainer.main_ppo`` or one of our entry points) exactly as a user would
launch it; metrics come back through verl's own ``file`` logger (one JSON line per step).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustrl.recipes.cpu import report, task

ALGOS = ("grpo", "quatro", "trapo")

# Entry point and algorithm overrides per algorithm. GRPO and QUATRO run through stock verl (drop-in names);
# TRAPO needs its own trainer (it installs the TRAPO loss on the workers).
ENTRY = {"grpo": "verl.trainer.main_ppo", "quatro": "verl.trainer.main_ppo", "trapo": "trustrl.recipes.trapo.main"}
ALGO_OVERRIDES = {
    "grpo": ["algorithm.adv_estimator=grpo", "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla"],
    "quatro": ["algorithm.adv_estimator=quatro", "actor_rollout_ref.actor.policy_loss.loss_mode=quatro"],
    # the paper's guided rollout (TrapoAgentLoopManager, selected by the recipe yaml); the task rows carry
    # extra_info.expert_solutions and n must be 8 (micro-groups 4, 2, 1, 1)
    "trapo": ["trapo.micro_group.enable=True"],
}
# The served model's parameter checksum after each weight sync, printed by vLLM's CPU worker extension
# (trustrl.recipes.cpu.vllm_cpu): version 0 is the sync before step 1.
_CHECKSUM = re.compile(r"\[vllm_cpu\] weights v(\d+) checksum=([-\d.eE+]+)")
PROMPT_LENGTH = 16
# Read by the vLLM CPU server (trustrl.recipes.cpu.vllm_cpu): drop every weight sync from version K on (K >= 1; the
# negative control of the sync checks: K=1 keeps the initial weights, K=3 serves version 2 from step 3 on), and a
# JSON-lines log of every generate request.
DROP_SYNCS_ENV = "TRUSTRL_CPU_DROP_WEIGHT_SYNCS"
REQUEST_LOG_ENV = "TRUSTRL_CPU_REQUEST_LOG"


def first_dropped_sync(environ: Mapping[str, str] | None = None) -> float:
    """The first weight-sync version the vLLM CPU server drops (``inf``: none), from ``TRUSTRL_CPU_DROP_WEIGHT_SYNCS``
    in ``environ`` (default: the process environment as it is at the call; some libraries rebind ``os.environ``).

    >>> first_dropped_sync({}), first_dropped_sync({DROP_SYNCS_ENV: "3"})
    (inf, 3)
    >>> first_dropped_sync({DROP_SYNCS_ENV: "0"})
    Traceback (most recent call last):
    ...
    ValueError: TRUSTRL_CPU_DROP_WEIGHT_SYNCS='0': give the first dropped sync version, an integer >= 1 (version 0, \
the sync before step 1, replaces vLLM's dummy weights and is never dropped), or leave it unset
    """
    value = (os.environ if environ is None else environ).get(DROP_SYNCS_ENV, "")
    if not value:
        return math.inf
    if not value.isdigit() or int(value) < 1:
        raise ValueError(
            f"{DROP_SYNCS_ENV}={value!r}: give the first dropped sync version, an integer >= 1 (version 0, the sync "
            "before step 1, replaces vLLM's dummy weights and is never dropped), or leave it unset"
        )
    return int(value)


@dataclass
class RunSpec:
    """One CPU training run: the knobs the demo and the tests vary; everything else is fixed below."""

    algo: str = "grpo"
    steps: int = 2
    prompts_per_step: int = 8
    n: int = 4
    response_length: int = 16
    lr: float = 2e-3
    seed: int = 0
    # Optimizer steps per rollout batch (mini-batches): > 1 makes later updates off-policy (staleness).
    updates_per_step: int = 1
    # Module run with `python -m`; default ENTRY[algo] (stock verl for grpo and quatro).
    entry: str | None = None
    # Sample every response to response_length (vLLM's ignore_eos): long sequences from a tiny model.
    ignore_eos: bool = False
    # Extra environment of the trainer and every process it starts (Ray workers, the vLLM server).
    env: dict[str, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if self.steps < 1 or self.prompts_per_step < 1 or self.n < 2:
            raise ValueError("need steps >= 1, prompts_per_step >= 1 and n >= 2 (groups need two samples)")
        if self.updates_per_step < 1 or self.prompts_per_step % self.updates_per_step:
            raise ValueError(
                f"updates_per_step={self.updates_per_step} must divide prompts_per_step={self.prompts_per_step}"
            )


def cpu_env(workdir: Path) -> dict[str, str]:
    """Environment of a CPU run: our platform, no hub, no telemetry, metrics to a JSON-lines file."""
    env = dict(os.environ)
    env.update(
        VERL_PLATFORM="cpu",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        WANDB_MODE="disabled",
        RAY_DISABLE_USAGE_STATS="1",
        RAY_DEDUP_LOGS="0",
        VERL_FILE_LOGGER_PATH=str(workdir / "metrics.jsonl"),
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
    )
    return env


def overrides(spec: RunSpec, paths: dict[str, Path], workdir: Path) -> list[str]:
    """Hydra overrides that put verl's trainer on the CPU platform, verl's vLLM rollout and the tiny task."""
    mini = spec.prompts_per_step // spec.updates_per_step
    return [
        *ALGO_OVERRIDES[spec.algo],
        # Data: the copy-digit task.
        f"data.train_files={paths['train']}",
        f"data.val_files={paths['val']}",
        f"data.train_batch_size={spec.prompts_per_step}",
        f"data.max_prompt_length={PROMPT_LENGTH}",
        f"data.max_response_length={spec.response_length}",
        "data.dataloader_num_workers=0",
        f"data.seed={spec.seed}",
        # Model and actor.
        f"actor_rollout_ref.model.path={paths['model']}",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.model.use_remove_padding=False",
        "actor_rollout_ref.actor.strategy=fsdp2",
        "actor_rollout_ref.ref.strategy=fsdp2",
        "actor_rollout_ref.actor.use_torch_compile=False",
        f"actor_rollout_ref.actor.optim.lr={spec.lr}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={mini}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={mini * spec.n}",
        "actor_rollout_ref.actor.use_kl_loss=False",
        "actor_rollout_ref.actor.entropy_coeff=0",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={mini * spec.n}",
        *rollout_overrides(spec),
        f"actor_rollout_ref.rollout.n={spec.n}",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={mini * spec.n}",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "algorithm.use_kl_in_reward=False",
        # Reward: the task's own verifier.
        "reward.custom_reward_function.path=pkg://trustrl.recipes.cpu.task",
        "reward.custom_reward_function.name=compute_score",
        "reward.num_workers=1",
        # Resources: one trainer rank on the CPU; Ray gets fake GPUs and enough logical CPUs for TransferQueue.
        "trainer.device=cpu",
        "trainer.nnodes=1",
        "trainer.n_gpus_per_node=1",
        "ray_kwargs.ray_init.num_cpus=32",
        "+ray_kwargs.ray_init.num_gpus=1",
        "+ray_kwargs.ray_init.include_dashboard=False",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
        # Schedule and logging.
        f"trainer.total_training_steps={spec.steps}",
        "trainer.val_before_train=False",
        "trainer.test_freq=-1",
        "trainer.save_freq=-1",
        "trainer.logger=[console,file]",
        "trainer.project_name=trustrl_cpu",
        f"trainer.experiment_name={spec.algo}",
        f"trainer.default_local_dir={workdir / 'checkpoints'}",
        *spec.extra,
    ]


def rollout_overrides(spec: RunSpec) -> list[str]:
    """verl's vLLM rollout with the settings vLLM's CPU build needs next to verl's trainer."""
    max_model_len = PROMPT_LENGTH + spec.response_length
    return [
        "actor_rollout_ref.rollout.name=vllm",
        # vLLM's CPU build has no sleep mode (trustrl.recipes.cpu.vllm_cpu checks both).
        "+actor_rollout_ref.rollout.enable_sleep_mode=False",
        "actor_rollout_ref.rollout.free_cache_engine=False",
        # Same precision as the FSDP actor, so rollout and actor log-probs agree to ~1e-3 (the rest: verl's FSDP engine
        # sends the weights in bf16, get_per_tensor_param in verl/workers/engine/fsdp/transformer_impl.py).
        "actor_rollout_ref.rollout.dtype=float32",
        # No torch.compile or graph capture: each would cost minutes per run on two cores.
        "actor_rollout_ref.rollout.enforce_eager=True",
        f"actor_rollout_ref.rollout.max_model_len={max_model_len}",
        f"actor_rollout_ref.rollout.max_num_batched_tokens={max(1024, max_model_len)}",
        "actor_rollout_ref.rollout.max_num_seqs=32",
        "actor_rollout_ref.rollout.enable_prefix_caching=False",
        f"actor_rollout_ref.rollout.ignore_eos={spec.ignore_eos}",
        # The default 2 GB bucket would be a 2 GB shared-memory segment per sync; the tiny model needs kilobytes.
        "actor_rollout_ref.rollout.checkpoint_engine.update_weights_bucket_megabytes=16",
    ]


@dataclass
class RunResult:
    returncode: int
    wall_s: float
    log: str
    metrics: list[dict[str, Any]]
    command: list[str]
    # Session of the trainer process (started with start_new_session): Ray's raylet, GCS and workers inherit it.
    session_id: int = -1
    # Shared-memory segments and vLLM temporary files the run left behind: removed by run(), and those it kept
    # because a live process still held them.
    leaked_shm: list[str] = field(default_factory=list)
    shm_in_use: list[str] = field(default_factory=list)

    @property
    def weight_syncs(self) -> list[tuple[int, float]]:
        """(version, checksum of the served model) of every weight sync the rollout server reported."""
        return [(int(v), float(c)) for v, c in _CHECKSUM.findall(self.log)]

    def series(self, key: str) -> list[float]:
        return [m[key] for m in self.metrics if key in m]


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{"step": r["step"], **r["data"]} for r in rows]


def run(spec: RunSpec, workdir: str | Path, timeout_s: float = 600, echo: bool = True) -> RunResult:
    """Build the task under ``workdir`` and run verl's trainer on it; returns the log and per-step metrics."""
    workdir = Path(workdir).resolve()
    env = {**cpu_env(workdir), **spec.env}
    first_dropped_sync(env)  # a bad negative-control value fails here, not inside a vLLM worker at the first sync
    workdir.mkdir(parents=True, exist_ok=True)
    paths = task.build_task(workdir / "task", seed=spec.seed)
    (workdir / "metrics.jsonl").unlink(missing_ok=True)
    cmd = [sys.executable, "-m", spec.entry or ENTRY[spec.algo], *overrides(spec, paths, workdir)]
    (workdir / "command.txt").write_text(" \\\n  ".join(cmd) + "\n")
    return run_command(cmd, workdir, env, timeout_s, echo)


def run_command(cmd: list[str], workdir: Path, env: dict[str, str], timeout_s: float, echo: bool = True) -> RunResult:
    """Run a trainer command in its own session under ``workdir``; stop what it started; collect log and metrics.

    The metrics are verl's file logger's (``VERL_FILE_LOGGER_PATH=<workdir>/metrics.jsonl`` in ``env``); the log goes
    to ``<workdir>/train.log``; shared-memory entries the run left and no live process holds are removed.
    """
    start = time.monotonic()
    lines: list[str] = []
    shm_before = shm_entries()
    with subprocess.Popen(
        cmd,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.append(line)
                if echo:
                    _echo(line)
                if time.monotonic() - start > timeout_s:
                    raise TimeoutError(f"verl trainer exceeded {timeout_s:.0f}s")
            proc.wait(timeout=max(1.0, timeout_s - (time.monotonic() - start)))
        finally:
            _stop(proc)
            _wait_session_gone(proc.pid)
            leaked, in_use = remove_leaked_shm(shm_before)
    log = "".join(lines)
    (workdir / "train.log").write_text(log)
    metrics = read_metrics(workdir / "metrics.jsonl")
    return RunResult(
        proc.returncode,
        time.monotonic() - start,
        log,
        metrics,
        cmd,
        session_id=proc.pid,
        leaked_shm=leaked,
        shm_in_use=in_use,
    )


# What verl's shared-memory weight sync and vLLM leave behind when a process dies before cleaning up: Python
# SharedMemory segments (`psm_*`, created by the bucketed weight transfer) and vLLM's `vllm_dist_*` files (its
# multiprocessing message queues). Even clean runs left a couple of sparse `psm_*` segments of ~200 MB apparent size.
SHM_DIRS = (Path("/dev/shm"), Path("/tmp"))
SHM_PREFIXES = ("psm_", "vllm_dist_")


def _wait_session_gone(session_id: int, timeout_s: float = 20.0) -> None:
    """Wait until the processes of the trainer's session (Ray's workers, vLLM's engine) have exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _session_of(p) == session_id]
        if not alive:
            return
        time.sleep(0.5)


def _session_of(proc: Path) -> int:
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return -1
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields after the command: state, ppid, pgrp, session, ...; a zombie is already dead
    return -1 if fields[0] == "Z" else int(fields[3])


def shm_entries() -> set[Path]:
    return {p for d in SHM_DIRS if d.is_dir() for p in d.iterdir() if p.name.startswith(SHM_PREFIXES)}


def _open_paths() -> set[str]:
    """Paths any live process has open or mapped (so a segment still in use by another run is never removed)."""
    used: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                used.add(os.readlink(fd))
            for line in (proc / "maps").read_text().splitlines():
                parts = line.split(None, 5)
                if len(parts) == 6:
                    used.add(parts[5].replace(" (deleted)", ""))
        except (OSError, PermissionError):
            continue
    return used


def remove_leaked_shm(before: set[Path]) -> tuple[list[str], list[str]]:
    """Remove the entries created since ``before`` that no live process uses; returns (removed, kept: in use)."""
    new = shm_entries() - before
    if not new:
        return [], []
    used = _open_paths()
    removed, kept = [], []
    for path in sorted(new):
        if str(path) in used:
            kept.append(str(path))
            continue
        try:
            if path.is_dir():
                import shutil

                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(str(path))
        except FileNotFoundError:
            continue
    return removed, kept


_MARKERS = re.compile(r"\[vllm_cpu\]")
_STEP_LINE = re.compile(r"(?:^|\s)(step:\d+ - .*)$")


def _echo(line: str) -> None:
    """Progress on the console: step lines condensed, errors and our own markers in full."""
    step_line = _STEP_LINE.search(line.rstrip())
    if step_line:
        fields = dict(kv.split(":", 1) for kv in step_line.group(1).split(" - ") if ":" in kv)
        # the columns (for TRAPO the unguided reward, guided share, prefix and SFT-token metrics): report.step_line
        print("  " + report.step_line(fields), flush=True)
    elif ("Error:" in line and "Warning" not in line) or "Traceback" in line or _MARKERS.search(line):
        print("  " + line.rstrip()[:300], flush=True)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the trainer and every process it started (Ray's raylet, workers), also after an error."""
    import signal

    # Also after a clean exit: anything left in the trainer's process group (a straggling Ray worker) is stopped.
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
