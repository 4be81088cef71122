# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Start-up checks of what a run needs from the machine: its files, its GPUs, storage every node sees.

verl finds a missing parquet only when the dataset loads inside a Ray actor, and a config that asks for more GPUs
than the cluster has makes Ray wait for resources without a word. These checks run on the composed config before
Ray starts and fail at once, naming the key and the path or count:

* :func:`check_local_paths`: ``data.train_files`` and ``data.val_files`` exist; ``actor_rollout_ref.model.path``
  (and ``tokenizer_path``) is a model folder when it is a local path (a hub id such as ``Qwen/Qwen2.5-Math-7B`` is
  left to the hub); for guided TRAPO (``trapo.micro_group.enable``) every train file has the expert-trace field
  (``extra_info.<trapo.micro_group.expert_field>``), rows without traces are counted. Remote URLs
  (``hdfs://``, ``s3://``, ...) are not checked and are listed as such.
* :func:`check_gpus`: ``trainer.nnodes`` x ``trainer.n_gpus_per_node`` against what the run can get: with
  ``RAY_ADDRESS`` set, the attached cluster's alive nodes (each needs ``n_gpus_per_node`` GPUs); otherwise the
  local Ray cluster verl starts (``ray_kwargs.ray_init.num_gpus``, else the GPUs torch sees).
* :func:`check_shared_storage`: on an attached cluster with several nodes, a Ray task on every node checks the
  data files and the model folder, and reads a token written into the checkpoint folder
  (``trainer.default_local_dir``) from this process, so a path that only the head sees, or a checkpoint folder inside
  Ray's per-job copy of the working directory, fails before training instead of at the first save or resume.
* :func:`did_you_mean`: the "did you mean" hint for a mistyped key, for validators of keys hydra lets through
  (a ``+key=`` addition, or a section that is an open dict).

:func:`preflight_resources` runs the first three (``trustrl.recipes.runner.run_recipe``, i.e. both recipe entry
points); :func:`dry_run_checks` runs the path check in ``DRY_RUN=1`` (``python -m trustrl.recipes.dry_run``).
``CHECK_PATHS=0`` in the environment skips the path checks (composing a cluster's config on a laptop without its
data); the skip is printed.
"""

from __future__ import annotations

import difflib
import functools
import io
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = [
    "CHECK_PATHS_ENV",
    "PathReport",
    "ResourceError",
    "check_gpus",
    "check_local_paths",
    "check_shared_storage",
    "did_you_mean",
    "dry_run_checks",
    "override_hint",
    "preflight_resources",
    "validate_recorded",
    "unknown_keys_message",
]

CHECK_PATHS_ENV = "CHECK_PATHS"
# the folder Ray unpacks a job's working_dir into (ray/_private/runtime_env/working_dir.py): deleted with the job
RAY_WORKING_DIR_MARK = f"{os.sep}runtime_resources{os.sep}"
TOKEN_FILE = ".trustrl_storage_check"


class ResourceError(ValueError):
    """The run cannot start on this machine or cluster; the message names the key, the path and the fix."""


def did_you_mean(key: str, known: Iterable[str], n: int = 3) -> str:
    """`` (did you mean 'x'?)`` for the closest known names of a mistyped ``key``, or ``""`` when none is close.

    Matches the last dotted component too, so ``algorithm.quatro.dleta`` finds ``delta``.

    >>> did_you_mean("dleta", ["delta", "kappa"])
    " (did you mean 'delta'?)"
    """
    known = [str(k) for k in known]
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, known, n=n, cutoff=0.6) or difflib.get_close_matches(
        leaf, known, n=n, cutoff=0.6
    )
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def unknown_keys_message(section: str, unknown: Iterable[str], known: Iterable[str]) -> str:
    """``<section>.<key>`` for each unknown key with its "did you mean", and the known keys."""
    known = sorted(str(k) for k in known)
    parts = [f"{section}.{k}{did_you_mean(k, known)}" for k in unknown]
    return f"unknown key(s) {', '.join(parts)}; known keys of {section}: {known}"


# keys of trustrl.policy_loss.quatro.QuatroPolicyLossConfig that verl's PolicyLossConfig does not have
QUATRO_LOSS_KEYS = ("ratio_level", "log_ratio_clamp", "zero_target")
QUATRO_LOSS_TARGET = "trustrl.policy_loss.quatro.QuatroPolicyLossConfig"
_COULD_NOT_OVERRIDE = re.compile(r"Could not override '([^']+)'")
_UNEXPECTED_KWARG = re.compile(r"unexpected keyword argument '(\w+)'.*?full_key: ([\w.]+)")


def override_hint(message: str, config: DictConfig | Callable[[], DictConfig] | None = None) -> str:
    """A hint for an unknown-key error of hydra or verl, where hydra's own (``+key=``) is the wrong fix; or ``""``.

    ``ratio_level``, ``log_ratio_clamp`` and ``zero_target`` under ``actor_rollout_ref.actor.policy_loss`` need
    QUATRO's loss config (``policy_loss._target_``); any other key gets the closest keys of its section in
    ``config`` (the composed config, or a function returning it, e.g. the entry's base config).
    """
    match = _COULD_NOT_OVERRIDE.search(message)
    if match:
        key = match.group(1).lstrip("+~")
    else:
        match = _UNEXPECTED_KWARG.search(message)
        if not match:
            return ""
        key = f"{match.group(2)}.{match.group(1)}"
    parent, _, leaf = key.rpartition(".")
    if leaf in QUATRO_LOSS_KEYS and parent.endswith("policy_loss"):
        return (
            f" Hint: {leaf} is a key of QUATRO's policy-loss config, not of verl's PolicyLossConfig: set "
            f"{parent}._target_={QUATRO_LOSS_TARGET} together with +{key}=<value> (the '+' adds the key to verl's "
            "yaml, the _target_ makes verl build the config class that has it), or use the QUATRO entry point "
            "python -m trustrl.recipes.quatro.main, whose config has both."
        )
    if config is None or not parent:
        return ""
    try:
        node = OmegaConf.select(config() if callable(config) else config, parent)
    except Exception:  # the hint is best effort; the original error stands
        return ""
    if not isinstance(node, DictConfig):
        return ""
    close = did_you_mean(leaf, node.keys())
    if not close:
        return ""
    return f" Hint: {parent} has no key {leaf!r}{close}; a '+' would add a key verl rejects or never reads."


# ---------------------------------------------------------------------------------------------- local paths


@dataclass
class PathReport:
    """What :func:`check_local_paths` looked at: ``(key, path, state)`` rows and the problems found."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def format(self) -> str:
        width = max((len(k) for k, _, _ in self.rows), default=0)
        return "\n".join(f"  {k:<{width}}  {p}  ({s})" for k, p, s in self.rows)


def _is_remote(path: str) -> bool:
    return "://" in path


def _files(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, ListConfig | list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _looks_local(path: str) -> bool:
    # a hub id is "name" or "org/name" (no leading ./, / or ~); anything else that names a folder is local
    if path.startswith(("/", "./", "../", "~")) or os.path.exists(os.path.expanduser(path)):
        return True
    return path.count("/") > 1


def _check_model_path(key: str, path: str | None, report: PathReport) -> None:
    if not path:
        return
    if _is_remote(path):
        report.rows.append((key, path, "remote, not checked"))
        return
    local = Path(os.path.expanduser(path))
    if not _looks_local(path):
        report.rows.append((key, path, "hub id, downloaded by each node"))
        return
    if not local.is_dir():
        report.problems.append(f"{key}={path}: no such model folder (a local path; a hub id is 'org/name')")
        report.rows.append((key, path, "MISSING"))
    elif not (local / "config.json").is_file():
        report.problems.append(f"{key}={path}: the folder has no config.json, so it is not a Hugging Face model folder")
        report.rows.append((key, path, "no config.json"))
    else:
        report.rows.append((key, str(local.resolve()), "ok"))


def _expert_field_problem(path: Path, expert_field: str) -> tuple[str | None, str]:
    """(problem or None, state) of a guided-TRAPO train file: the field exists; rows without traces counted."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    if "extra_info" not in schema.names:
        return (
            f"data.train_files {path}: no extra_info column, so no extra_info.{expert_field} expert traces for "
            "guided TRAPO (trapo.micro_group.enable=True); prepare the data with scripts/data/prepare.py "
            "openr1_46k (or set trapo.micro_group.expert_field)",
            "no extra_info",
        )
    extra = schema.field("extra_info").type
    names = [extra.field(i).name for i in range(extra.num_fields)] if hasattr(extra, "num_fields") else None
    if names is not None and expert_field not in names:
        return (
            f"data.train_files {path}: extra_info has no field {expert_field!r}{did_you_mean(expert_field, names)} "
            f"(fields: {names}); guided TRAPO reads its expert traces there (trapo.micro_group.expert_field)",
            f"no extra_info.{expert_field}",
        )
    if path.stat().st_size > 200 * 2**20:
        return None, f"extra_info.{expert_field} present; rows not counted (> 200 MB), see rollout/trapo/no_trace_share"
    from trustrl.recipes.trapo.prefix import expert_traces_of

    rows = pq.read_table(path, columns=["extra_info"]).column("extra_info").to_pylist()
    without = sum(not expert_traces_of(r, expert_field) for r in rows)
    if without == len(rows):
        return (
            f"data.train_files {path}: none of its {len(rows)} rows has an expert trace in extra_info.{expert_field}",
            "no traces",
        )
    return None, f"{len(rows) - without} of {len(rows)} rows with expert traces, {without} run unguided"


def check_local_paths(config: DictConfig, raise_error: bool = True) -> PathReport:
    """Data files, model folder and (guided TRAPO) expert traces of ``config``; raises :class:`ResourceError`."""
    report = PathReport()
    data = config.get("data", {})
    guided = bool(OmegaConf.select(config, "trapo.micro_group.enable", default=False))
    expert_field = str(OmegaConf.select(config, "trapo.micro_group.expert_field", default="expert_solutions"))
    for key in ("train_files", "val_files"):
        for path in _files(data.get(key)):
            full = f"data.{key}"
            if _is_remote(path):
                report.rows.append((full, path, "remote, not checked"))
                continue
            local = Path(os.path.expanduser(path))
            if not local.is_file():
                report.problems.append(f"{full}: {path} does not exist")
                report.rows.append((full, path, "MISSING"))
                continue
            state = "ok"
            if key == "train_files" and guided and local.suffix == ".parquet":
                problem, state = _expert_field_problem(local, expert_field)
                if problem:
                    report.problems.append(problem)
            report.rows.append((full, str(local.resolve()), state))
    model = config.actor_rollout_ref.model
    _check_model_path("actor_rollout_ref.model.path", model.get("path"), report)
    if model.get("tokenizer_path") and model.get("tokenizer_path") != model.get("path"):
        _check_model_path("actor_rollout_ref.model.tokenizer_path", model.get("tokenizer_path"), report)
    if raise_error and report.problems:
        raise ResourceError(
            "the run's files are missing:\n  "
            + "\n  ".join(report.problems)
            + "\n(data: python scripts/data/prepare.py <dataset> --out-dir data/train; "
            f"{CHECK_PATHS_ENV}=0 skips this check when composing a config for another machine)"
        )
    return report


def _paths_enabled() -> bool:
    return os.environ.get(CHECK_PATHS_ENV, "1") not in ("0", "false", "False")


# ---------------------------------------------------------------------------------------------- GPUs


def _ray_address() -> str | None:
    return os.environ.get("RAY_ADDRESS") or None


def _requested(config: DictConfig) -> tuple[int, int]:
    return int(config.trainer.nnodes), int(config.trainer.n_gpus_per_node)


def check_gpus(config: DictConfig, node_gpus: Sequence[float] | None = None) -> str:
    """``trainer.nnodes`` x ``trainer.n_gpus_per_node`` against the GPUs the run can get; a line saying what was seen.

    Args:
        config: the composed run config.
        node_gpus: GPUs of each alive node of the attached Ray cluster (``None``: not attached, use the local count).

    Raises :class:`ResourceError` naming both keys and what was found. ``trainer.device=cpu`` (the CPU tier) is not
    checked.
    """
    nnodes, per_node = _requested(config)
    device = str(OmegaConf.select(config, "trainer.device", default="cuda") or "cuda")
    if device == "cpu":
        return "trainer.device=cpu: no GPU needed"
    want = f"trainer.nnodes={nnodes} x trainer.n_gpus_per_node={per_node} = {nnodes * per_node} GPUs"
    fix = "lower trainer.n_gpus_per_node / trainer.nnodes (NNODES, GPUS_PER_NODE in scripts/train)"
    if node_gpus is not None:
        fitting = sum(g >= per_node for g in node_gpus)
        if fitting < nnodes:
            raise ResourceError(
                f"{want} asked, the Ray cluster at {_ray_address()} has {len(node_gpus)} alive node(s) with "
                f"{[int(g) for g in node_gpus]} GPUs, {fitting} of them with >= {per_node}: Ray would wait for "
                f"resources that never come; {fix}, or add nodes"
            )
        return f"{want}; Ray cluster: {len(node_gpus)} node(s) with {[int(g) for g in node_gpus]} GPUs"
    if nnodes > 1:
        raise ResourceError(
            f"{want} asked across {nnodes} nodes, but RAY_ADDRESS is not set, so verl would start a one-node Ray "
            "cluster on this machine; start the cluster (scripts/cluster/ray_cluster.sh or the SLURM template) and "
            "set RAY_ADDRESS, or set trainer.nnodes=1"
        )
    fake = OmegaConf.select(config, "ray_kwargs.ray_init.num_gpus", default=None)
    if fake is not None:
        have, source = float(fake), "ray_kwargs.ray_init.num_gpus"
    else:
        have, source = _local_gpus(device)
    if have < per_node:
        raise ResourceError(
            f"{want} asked, this machine has {int(have)} ({source}): Ray would wait for GPUs that never come; {fix}. "
            "Without GPUs, the CPU tier runs verl's trainer on a tiny model: python -m trustrl.recipes.cpu"
        )
    return f"{want}; this machine: {int(have)} ({source})"


def _local_gpus(device: str) -> tuple[float, str]:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a verl dependency
        return 0.0, "torch not importable"
    if device == "npu" and hasattr(torch, "npu"):
        return float(torch.npu.device_count()), "torch.npu.device_count()"
    return float(torch.cuda.device_count() if torch.cuda.is_available() else 0), "torch.cuda.device_count()"


# ---------------------------------------------------------------------------------------------- shared storage


def _node_probe(paths: list[str], model_dir: str | None, token_path: str, token: str) -> dict[str, Any]:
    """Runs on one node (stdlib only, so Ray ships it by value): which paths it sees, and the token it reads."""
    import os as _os
    import socket

    missing = [p for p in paths if not _os.path.exists(p)]
    if model_dir and not _os.path.isfile(_os.path.join(model_dir, "config.json")):
        missing.append(_os.path.join(model_dir, "config.json"))
    try:
        with open(token_path) as fh:
            seen = fh.read().strip() == token
    except OSError:
        seen = False
    return {"host": socket.gethostname(), "missing": missing, "token_seen": seen}


def check_shared_storage(config: DictConfig, nodes: Sequence[Mapping[str, Any]] | None = None) -> str:
    """Checkpoint folder writable and outside Ray's per-job copy; on several nodes, every node sees the paths.

    Args:
        config: the composed run config.
        nodes: alive nodes of the attached Ray cluster (``ray.nodes()`` entries); ``None`` or one node: local only.
    """
    ckpt = Path(os.path.expanduser(str(config.trainer.default_local_dir))).absolute()
    if RAY_WORKING_DIR_MARK in str(ckpt):
        raise ResourceError(
            f"trainer.default_local_dir={ckpt} is inside Ray's per-job copy of the working directory (deleted with "
            "the job; resume_mode=auto would find nothing): set CKPTS_DIR (or CKPTS_ROOT) to shared storage on the "
            "submitting machine; scripts/cluster/ray_submit.sh forwards it"
        )
    try:
        ckpt.mkdir(parents=True, exist_ok=True)
        token_path = ckpt / TOKEN_FILE
        token = uuid.uuid4().hex
        token_path.write_text(token)
    except OSError as e:
        raise ResourceError(f"trainer.default_local_dir={ckpt}: not writable ({e})") from e
    if not nodes or len(nodes) < 2:
        token_path.unlink(missing_ok=True)
        return f"trainer.default_local_dir={ckpt}: writable (one node)"
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    report = check_local_paths(config, raise_error=False)
    paths = [p for k, p, s in report.rows if k.startswith("data.") and s != "remote, not checked"]
    model = [p for k, p, s in report.rows if k == "actor_rollout_ref.model.path" and s == "ok"]
    probe = ray.remote(num_cpus=0)(_node_probe)
    refs = [
        probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            paths, model[0] if model else None, str(token_path), token
        )
        for n in nodes
    ]
    try:
        results = ray.get(refs, timeout=120)
    finally:
        token_path.unlink(missing_ok=True)
    bad = [r for r in results if r["missing"] or not r["token_seen"]]
    if bad:
        lines = [
            f"{r['host']}: "
            + ", ".join(
                [f"missing {p}" for p in r["missing"]] + ([] if r["token_seen"] else [f"does not see {token_path}"])
            )
            for r in bad
        ]
        raise ResourceError(
            f"{len(bad)} of {len(results)} nodes do not see the run's storage (data, model and "
            "trainer.default_local_dir must be on a filesystem every node mounts at the same path):\n  "
            + "\n  ".join(lines)
        )
    return f"trainer.default_local_dir={ckpt}: writable, data/model/checkpoints seen by all {len(results)} nodes"


# ---------------------------------------------------------------------------------------------- entry points


def _attached_nodes() -> list[dict[str, Any]] | None:
    """Alive nodes of the Ray cluster at RAY_ADDRESS (connects, reads, disconnects); None when not attached."""
    if not _ray_address():
        return None
    import ray

    if not ray.is_initialized():
        ray.init(address=_ray_address(), logging_level="ERROR", log_to_driver=False)
    return [n for n in ray.nodes() if n.get("Alive")]


def preflight_resources(config: DictConfig, out: TextIO = sys.stdout) -> None:
    """Paths, GPUs and shared storage of a run about to start (before ``run_ppo``); prints what it checked."""
    if _paths_enabled():
        report = check_local_paths(config)
        print("[trustrl] run paths (every node must see the local ones):\n" + report.format(), file=out)
    else:
        print(f"[trustrl] {CHECK_PATHS_ENV}=0: data and model paths not checked", file=out)
    nodes = _attached_nodes()
    try:
        node_gpus = None if nodes is None else [float(n.get("Resources", {}).get("GPU", 0)) for n in nodes]
        print(f"[trustrl] GPUs: {check_gpus(config, node_gpus)}", file=out)
        print(f"[trustrl] checkpoints: {check_shared_storage(config, nodes)}", file=out)
    finally:
        if nodes is not None:
            import ray

            # verl's run_ppo starts its own connection with the run's runtime env
            ray.shutdown()
    out.flush()


def dry_run_checks(config: DictConfig) -> list[str]:
    """The checks of ``DRY_RUN=1``: local paths (unless ``CHECK_PATHS=0``); returns the names of those that ran."""
    if not _paths_enabled():
        print(f"[dry_run] {CHECK_PATHS_ENV}=0: data and model paths not checked", file=sys.stderr)
        return []
    try:
        check_local_paths(config)
    except ResourceError as e:
        from trustrl.recipes.dry_run import DryRunError

        raise DryRunError(str(e)) from e
    return ["local paths"]


def validate_recorded(record_dir: str | Path, out: TextIO = sys.stdout) -> int:
    """Dry-run every launch recorded in ``record_dir`` (``launch_<n>`` files of ``trustrl_launch``); 0 if all pass.

    Used by ``trustrl_sweep`` (``scripts/train/common.sh``) to validate every point of a sweep before the first one
    starts: hydra composition, verl's dataclasses, our validators and the local paths of each point.
    """
    from trustrl.recipes.dry_run import DryRunError, Launch, check_launch, compose

    files = sorted(Path(record_dir).glob("launch_*"), key=lambda p: int(p.name.split("_")[1]))
    if not files:
        print(f"[trustrl] {record_dir}: no recorded launch", file=sys.stderr)
        return 1
    failures = []
    for path in files:
        argv = path.read_bytes().decode().split("\0")[:-1]
        launch = Launch(argv[0], argv[1:], source=f"point {path.name.split('_')[1]}")
        try:
            config = check_launch(launch, out=io.StringIO())
            if _paths_enabled():
                check_local_paths(config)
        except (DryRunError, ResourceError) as e:
            failures.append(f"{launch.label}: {e}{override_hint(str(e), functools.partial(compose, launch.entry, []))}")
    for failure in failures:
        print(f"[trustrl] FAILED {failure}", file=sys.stderr)
    print(f"[trustrl] {len(files) - len(failures)} of {len(files)} points passed validation", file=out)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m trustrl.recipes.resources", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--entry", help="check the run `python -m <entry> <overrides>` would start (compose first)")
    mode.add_argument("--recorded", type=Path, help="dry-run every launch recorded by trustrl_launch in this folder")
    parser.add_argument("overrides", nargs="*", help="hydra overrides (with --entry)")
    args = parser.parse_args(argv)
    if args.recorded:
        return validate_recorded(args.recorded)
    from trustrl.recipes.dry_run import DryRunError, compose

    try:
        preflight_resources(compose(args.entry, args.overrides))
    except (DryRunError, ResourceError) as e:
        print(f"[trustrl] {e}{override_hint(str(e), functools.partial(compose, args.entry, []))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
