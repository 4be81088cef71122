# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The user's loop on CPU: train -> checkpoint -> resume, and checkpoint -> HF weights -> evaluation.

One training run is shared by both halves. QUATRO through its recipe entry point on the CPU tier (verl's vLLM
rollout on vLLM's CPU build), ``trainer.save_freq=2``:

* run 1: 2 steps, stops after the checkpoint ``global_step_2``;
* run 2: the same command with ``trainer.total_training_steps=4`` and ``trainer.resume_mode=auto`` resumes from
  it: steps 3 and 4, the dataloader where run 1 left it (checked prompt by prompt against verl's own sampler),
  the algorithm's metrics on every step, and the generator serving the checkpointed weights from its first sync;
* then ``scripts/eval/evaluate.py generate --model <global_step_2>`` merges the checkpoint with verl's merger into
  a cache folder and samples with vLLM's CPU build on a fixture benchmark (the task's validation rows), and
  ``evaluate.py score`` writes the pass@k JSON, CSV and plot.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from trustrl.recipes.cpu.launch import RunSpec, run

from tests.e2e.conftest import TRAINER_RUN, assert_finite, assert_no_leaked_shm, assert_no_leftover
from tests.e2e.resume_probe_reward import LOG_ENV

pytestmark = TRAINER_RUN

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("resume_probe_reward.py")
FIRST, TOTAL = 2, 4
PROMPTS, N = 4, 4
# train rows of the copy-digit task (trustrl.recipes.cpu.task.build_task) and the data seed (RunSpec.seed)
N_TRAIN, SEED = 64, 0


def _spec(steps: int) -> RunSpec:
    return RunSpec(
        algo="quatro",
        steps=steps,
        prompts_per_step=PROMPTS,
        n=N,
        updates_per_step=2,
        entry="trustrl.recipes.quatro.main",
        extra=[
            f"reward.custom_reward_function.path={PROBE}",
            "trainer.save_freq=2",
            "trainer.resume_mode=auto",
        ],
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("checkpoint_loop")
    probe = work / "reward_calls.jsonl"
    saved = os.environ.get(LOG_ENV)
    os.environ[LOG_ENV] = str(probe)
    try:
        start = time.monotonic()
        first = run(_spec(FIRST), work, timeout_s=600)
        first_calls = len(probe.read_text().splitlines()) if probe.exists() else 0
        latest = work / "checkpoints" / "latest_checkpointed_iteration.txt"
        first_latest = latest.read_text().strip() if latest.exists() else None
        # the same command again, asking for more steps: verl's resume_mode=auto finds global_step_2
        second = run(_spec(TOTAL), work, timeout_s=600) if first.returncode == 0 else None
        train_s = time.monotonic() - start
    finally:
        if saved is None:
            os.environ.pop(LOG_ENV, None)
        else:
            os.environ[LOG_ENV] = saved
    calls = [json.loads(line) for line in probe.read_text().splitlines()] if probe.exists() else []
    second_s = second.wall_s if second else 0
    print(f"[loop] training: run 1 {first.wall_s:.0f} s, run 2 {second_s:.0f} s ({train_s:.0f} s)")
    return SimpleNamespace(
        work=work, first=first, second=second, calls=calls, first_calls=first_calls, first_latest=first_latest
    )


def test_first_run_stops_after_its_checkpoint(runs):
    first = runs.first
    assert_no_leftover(first)
    assert first.returncode == 0, first.log[-4000:]
    assert [m["step"] for m in first.metrics] == [1, 2]
    ckpt = runs.work / "checkpoints"
    assert runs.first_latest == "2"
    assert (ckpt / "global_step_2" / "actor" / "model_world_size_1_rank_0.pt").is_file()
    # the dataloader state verl resumes from
    assert (ckpt / "global_step_2" / "data.pt").is_file()
    assert_no_leaked_shm(first)


def test_resume_continues_the_step_counter_and_the_algorithm_metrics(runs):
    second = runs.second
    assert second is not None and second.returncode == 0, (second.log if second else runs.first.log)[-4000:]
    assert_no_leftover(second)
    # nothing trained twice, nothing lost: run 2 starts at step 3 and ends at the asked total
    assert [m["step"] for m in second.metrics] == [3, 4]
    assert (runs.work / "checkpoints" / "latest_checkpointed_iteration.txt").read_text().strip() == "4"
    for run_result in (runs.first, second):
        # the estimator's per-prompt statistics (QuatroTrainer) and the loss's metrics on every step of both runs
        for key in ("quatro/lambda_mean", "quatro/share_active", "actor/quatro/seq_kl", "actor/quatro/target_gap"):
            values = run_result.series(key)
            assert len(values) == len(run_result.metrics), f"{key} missing on some step: {values}"
            assert_finite(values, key)
    epochs = [m.get("training/epoch") for m in runs.first.metrics + second.metrics]
    assert epochs == [0, 0, 0, 0], epochs
    assert_no_leaked_shm(second)


def test_resume_continues_the_dataloader_where_it_stopped(runs):
    """The prompts of steps 3-4 are the ones an uninterrupted run would take next, by verl's own sampler."""
    import torch
    from torchdata.stateful_dataloader.sampler import RandomSampler

    assert runs.second is not None and runs.second.returncode == 0
    per_step = PROMPTS * N
    assert runs.first_calls == FIRST * per_step
    assert len(runs.calls) == TOTAL * per_step, len(runs.calls)
    trained = [sorted({c["index"] for c in runs.calls[i : i + per_step]}) for i in range(0, len(runs.calls), per_step)]
    # verl's sampler (verl.trainer.ppo.utils.create_rl_sampler: data.shuffle, generator seeded with data.seed)
    order = list(RandomSampler(data_source=range(N_TRAIN), generator=torch.Generator().manual_seed(SEED)))
    expected = [sorted(order[i : i + PROMPTS]) for i in range(0, TOTAL * PROMPTS, PROMPTS)]
    assert trained == expected
    # and so no prompt of run 1 is trained again before the epoch ends
    assert not set(sum(trained[:FIRST], [])) & set(sum(trained[FIRST:], []))


def test_resumed_generator_serves_the_checkpointed_weights(runs):
    """Run 2's first weight sync puts the step-2 weights in the vLLM server, not the initial model's."""
    second = runs.second
    assert second is not None and second.returncode == 0
    first_syncs, second_syncs = runs.first.weight_syncs, second.weight_syncs
    assert first_syncs and second_syncs, "no weight sync reported by the rollout server"
    initial, after_step_2 = first_syncs[0][1], first_syncs[-1][1]
    resumed = second_syncs[0][1]
    assert math.isclose(resumed, after_step_2, rel_tol=1e-6), (first_syncs, second_syncs)
    assert not math.isclose(resumed, initial, rel_tol=1e-6)
    # and its rollouts match the actor's log-probs (the server generates with the resumed weights)
    assert max(second.series("training/rollout_probs_diff_max")) < 5e-3


def _tool(*args: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts/eval/evaluate.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        start_new_session=True,
    )
    return proc, time.monotonic() - start


def test_checkpoint_to_evaluation(runs):
    """global_step_2 -> verl's merger -> HF folder -> vLLM (CPU) samples -> pass@k JSON, CSV and plot."""
    import torch
    from safetensors.torch import load_file

    assert runs.first.returncode == 0
    step_dir = runs.work / "checkpoints" / "global_step_2"
    bench = runs.work / "task" / "data" / "val.parquet"
    cache, out = runs.work / "merged", runs.work / "eval"
    gens = out / "loop" / "generations.jsonl"

    proc, dry_s = _tool("generate", "--dry-run", "--model", str(step_dir), "--data", str(bench), "--out", str(gens),
                        "--merge-cache", str(cache))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "verl fsdp checkpoint" in proc.stdout and "to merge into" in proc.stdout
    assert not cache.exists(), "the dry run merged"

    args = ["--data", str(bench), "--out", str(gens), "--merge-cache", str(cache), "--n", "4", "--max-tokens", "16"]
    proc, gen_s = _tool("generate", "--model", str(step_dir), *args, "--max-model-len", "64", "--temperature", "1.0")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "merging" in proc.stdout and "verl.model_merger merge --backend fsdp" in proc.stdout
    (merged,) = [p for p in cache.iterdir() if p.is_dir()]
    # the HF weights are the trained step-2 weights: equal to the checkpoint's shard, not to the initial model
    shard = torch.load(step_dir / "actor" / "model_world_size_1_rank_0.pt", map_location="cpu", weights_only=False)
    shard = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v) for k, v in shard.items()}
    weights = load_file(merged / "model.safetensors")
    initial = load_file(next((runs.work / "task" / "model").glob("*.safetensors")))
    common = sorted(set(weights) & set(shard))
    assert common, (sorted(weights)[:5], sorted(shard)[:5])
    assert all(torch.equal(weights[k], shard[k].to(weights[k].dtype)) for k in common)
    assert any(not torch.equal(weights[k], initial[k]) for k in common if k in initial)
    rows = [json.loads(line) for line in gens.read_text().splitlines()]
    assert len(rows) == 10 and all(len(r["responses"]) == 4 for r in rows), rows[:1]

    # a second generate, from the actor/ folder, reuses the merged folder (its plan, without another vLLM start)
    proc, regen_s = _tool("generate", "--dry-run", "--model", str(step_dir / "actor"), *args)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "(merged into " in proc.stdout and merged.name in proc.stdout and "to merge" not in proc.stdout, proc.stdout

    proc, score_s = _tool("score", str(gens), "--names", "loop", "--out-dir", str(out), "--no-progress")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    report = json.loads((out / "metrics.json").read_text())["runs"]["loop"]
    (bench_report,) = report["benchmarks"].values()
    assert bench_report["n_problems"] == 10 and bench_report["n_samples"] == 4
    assert sorted(bench_report["pass@k"]) == ["1", "2", "4"]
    assert all(0.0 <= v <= 1.0 for v in bench_report["pass@k"].values())
    csv_rows = (out / "metrics.csv").read_text().splitlines()
    assert csv_rows[0].startswith("run,benchmark,") and "pass@4" in csv_rows[0] and len(csv_rows) == 3
    assert (out / "pass_at_k.png").stat().st_size > 10_000
    print(
        f"[loop] evaluate.py: dry run {dry_s:.0f} s, merge + generate {gen_s:.0f} s, dry run again (cached merge) "
        f"{regen_s:.0f} s, score {score_s:.0f} s; outputs in {out}"
    )
    print(proc.stdout[-1500:])
