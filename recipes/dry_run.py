# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Dry run of a launch: compose the full hydra config on CPU, validate it, print the resolved overrides.

Three ways in::

    # one launch, exactly as a scripts/train/*.sh script would start it (what DRY_RUN=1 runs)
    python -m trustrl.recipes.dry_run --entry trustrl.recipes.quatro.main data.train_batch_size=128 ...
    # every launch of several scripts in one process (the scripts run with DRY_RUN=1 and record their launches)
    python -m trustrl.recipes.dry_run --scripts scripts/train/run_*.sh
    # print the whole composed config as well
    python -m trustrl.recipes.dry_run --print-config --entry verl.trainer.main_ppo ...

Nothing starts Ray or touches a device. The checks, in order (the first failure stops the run with a message
that names the key):

1. hydra composition with the entry's own ``@hydra.main`` config (read from its source, not imported): an unknown
   key, a bad override or a missing config group fails here (hydra: "Could not override '<key>'");
2. every interpolation resolves;
3. verl's config dataclasses: ``verl.utils.config.validate_config`` (batch-size arithmetic, the actor section
   through its dataclass), and ``omega_conf_to_dataclass`` on the rollout, the reference (renamed as verl's engine
   workers do), the critic (when verl would build one), the algorithm (minus the recipes' own ``quatro``/``trapo``
   sub-sections, checked in 5.) and the reward; the model section's keys against ``HFModelConfig``'s fields
   (instantiating it would load the checkpoint);
4. the advantage estimator and the policy loss are registered in verl (through the ``verl.plugins`` entry point),
   the custom reward function and the agent-loop manager class import;
5. trustrl's validators: TRAPO's ``validate_trapo_run_config`` (when the config has a ``trapo`` section), QUATRO's
   ``check_quatro_config`` (when the estimator or the loss is ``quatro``), and the TRAPO rollout's
   ``check_trapo_rollout_config`` when its agent-loop manager is selected;
6. the model's context window (``trustrl.recipes.preflight.check_model_context``): the model's ``config.json``
   must hold ``data.max_prompt_length + data.max_response_length``. A model path with no readable ``config.json``
   here (a hub id not in the local Hugging Face cache, a remote path, a folder of another machine) skips this
   check with a printed note.

``--scripts`` runs each script with ``DRY_RUN=1`` and ``TRUSTRL_DRY_RUN_RECORD=<dir>``: the scripts' launch helper
(``scripts/train/common.sh``) then writes each launch's argv there instead of starting a second Python, and this
process validates them all, paying verl's import time once.
"""

from __future__ import annotations

import argparse
import ast
import copy
import functools
import importlib.util
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, fields
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict
from trustrl.recipes import resources

__all__ = ["DryRunError", "Launch", "check_launch", "compose", "entry_config", "main", "record_script_launches"]

# sections the recipes add under `algorithm`; they have their own validators (step 5)
RECIPE_ALGORITHM_SECTIONS = ("quatro", "trapo")
RECORD_ENV = "TRUSTRL_DRY_RUN_RECORD"


class DryRunError(ValueError):
    """A launch that would fail: the message names the entry, the step and the key."""


@dataclass
class Launch:
    """One ``python -m <entry> <overrides>`` call."""

    entry: str
    overrides: list[str]
    source: str = ""

    @property
    def label(self) -> str:
        return f"{self.source}: {self.entry}" if self.source else self.entry


def entry_config(entry: str) -> tuple[Path, str]:
    """The config directory and name of an entry module's ``@hydra.main`` (read from its source, not imported)."""
    spec = importlib.util.find_spec(entry)
    if spec is None or not spec.origin:
        raise DryRunError(f"entry module {entry!r} not found; is the package installed (pip install -e .)?")
    tree = ast.parse(Path(spec.origin).read_text())
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and ast.unparse(deco.func) in ("hydra.main", "main"):
                kwargs = {k.arg: ast.literal_eval(k.value) for k in deco.keywords if k.arg}
                if kwargs.get("config_name"):
                    config_dir = Path(spec.origin).parent / (kwargs.get("config_path") or ".")
                    return config_dir.resolve(), kwargs["config_name"]
    raise DryRunError(f"entry module {entry!r} has no @hydra.main(config_path=..., config_name=...) function")


_BASE_CACHE: dict[tuple, DictConfig] = {}
_GROUPS: dict[tuple, set[str]] = {}


def compose(entry: str, overrides: list[str]) -> DictConfig:
    """The config ``python -m <entry> <overrides>`` would run with (hydra's compose API, same search path).

    Hydra builds the defaults tree (config groups such as ``model_engine=megatron``) and then applies the value
    overrides to the struct-mode result (``ConfigLoaderImpl._apply_overrides_to_config``). Both steps are hydra's;
    the tree, the slow part (every yaml parsed again), is cached per entry and group overrides, so a batch of
    launches composes each base config once.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    config_dir, config_name = entry_config(entry)
    try:
        with initialize_config_dir(str(config_dir), version_base=None):
            parsed = OverridesParser.create().parse_overrides(list(overrides))
            group_names = _GROUPS.get((str(config_dir), config_name))
            if group_names is None:
                # the config groups of this config's defaults tree (its search path is only known after composing)
                choices = hydra_compose(config_name, return_hydra_config=True).hydra.runtime.choices
                group_names = _GROUPS[(str(config_dir), config_name)] = {k.split("@")[0] for k in choices}
            groups = [o for o in parsed if o.is_hydra_override() or o.package or o.key_or_group in group_names]
            values = [o for o in parsed if o not in groups]
            key = (str(config_dir), config_name, tuple(o.input_line for o in groups))
            if key not in _BASE_CACHE:
                _BASE_CACHE[key] = hydra_compose(config_name, overrides=[o.input_line for o in groups])
            config = copy.deepcopy(_BASE_CACHE[key])
            ConfigLoaderImpl._apply_overrides_to_config(values, config)
            return config
    except (HydraException, OmegaConfBaseException) as e:
        raise DryRunError(f"hydra could not compose the config of {entry}: {_one_line(e)}") from e


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    cause = e.__cause__ or e.__context__
    if cause is not None and str(cause) and str(cause) not in str(e):
        text += f" ({type(cause).__name__}: {' '.join(str(cause).split())})"
    return text


def _to_dataclass(section: str, node) -> object:
    from verl.utils.config import omega_conf_to_dataclass

    try:
        return omega_conf_to_dataclass(node)
    except Exception as e:  # hydra wraps TypeError/ValueError of the dataclass; report them with the section
        raise DryRunError(f"{section}: {_one_line(e)}") from e


def _check_model_keys(config: DictConfig) -> None:
    """Keys of ``actor_rollout_ref.model`` against HFModelConfig (structure only: no checkpoint is read)."""
    from verl.workers.config import HFModelConfig

    known = {f.name for f in fields(HFModelConfig)} | {"_target_"}
    unknown = sorted(set(config.actor_rollout_ref.model) - known)
    if unknown:
        raise DryRunError(
            f"actor_rollout_ref.model: unknown key(s) {[f'actor_rollout_ref.model.{k}' for k in unknown]} "
            f"(not fields of verl.workers.config.HFModelConfig)"
        )


def _check_reward(config: DictConfig) -> None:
    """The reward section's keys against verl's, and the reward manager's name against verl's registry.

    Structure only: verl 0.9.1's ``RewardManagerConfig.__post_init__`` calls a parent hook that does not exist, so
    verl never instantiates that dataclass and neither can we. verl reads ``custom_reward_function`` from the raw
    config, so the known keys are RewardConfig's fields plus those of verl's ``reward/reward.yaml``.
    """
    import verl.trainer.config as verl_config
    from verl.workers.config import RewardConfig

    yaml_keys = OmegaConf.load(Path(verl_config.__file__).parent / "reward" / "reward.yaml").keys()
    known = {f.name for f in fields(RewardConfig)} | set(yaml_keys) | {"_target_"}
    unknown = sorted(set(config.reward) - known)
    if unknown:
        raise DryRunError(f"reward: unknown key(s) {[f'reward.{k}' for k in unknown]}; known: {sorted(known)}")
    manager = config.reward.reward_manager
    if manager.get("source", "register") == "register":
        from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER

        if manager.name not in REWARD_MANAGER:
            raise DryRunError(
                f"reward.reward_manager.name={manager.name!r} is not a registered reward manager; "
                f"known: {sorted(REWARD_MANAGER)}"
            )


def _check_verl_dataclasses(config: DictConfig) -> None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # need_critic warns that the critic is off for non-GAE estimators
        use_ref, use_critic = need_reference_policy(config), need_critic(config)
    try:
        validate_config(config=config, use_reference_policy=use_ref, use_critic=use_critic)
    except DryRunError:
        raise
    except Exception as e:
        raise DryRunError(f"verl.utils.config.validate_config: {_one_line(e)}") from e
    _check_model_keys(config)
    _to_dataclass("actor_rollout_ref.rollout", config.actor_rollout_ref.rollout)
    if use_ref:
        # verl's engine workers rename the ref's log_prob_* keys to the actor's names before building ActorConfig
        ref = copy.deepcopy(config.actor_rollout_ref.ref)
        with open_dict(ref):
            ref.ppo_mini_batch_size = config.actor_rollout_ref.actor.ppo_mini_batch_size
            ref.ppo_micro_batch_size = ref.pop("log_prob_micro_batch_size", None)
            ref.ppo_micro_batch_size_per_gpu = ref.pop("log_prob_micro_batch_size_per_gpu", None)
            ref.use_dynamic_bsz = ref.pop("log_prob_use_dynamic_bsz", False)
            ref.ppo_max_token_len_per_gpu = ref.pop("log_prob_max_token_len_per_gpu", None)
        _to_dataclass("actor_rollout_ref.ref", ref)
    if use_critic:
        _to_dataclass("critic", config.critic)
    algorithm = copy.deepcopy(config.algorithm)
    with open_dict(algorithm):
        for name in RECIPE_ALGORITHM_SECTIONS:
            algorithm.pop(name, None)
    _to_dataclass("algorithm", algorithm)
    _check_reward(config)


def _check_registries(config: DictConfig) -> None:
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY, AdvantageEstimator

    estimator = str(config.algorithm.adv_estimator)
    builtin = {e.value for e in AdvantageEstimator}
    if estimator not in ADV_ESTIMATOR_REGISTRY and estimator not in builtin:
        raise DryRunError(
            f"algorithm.adv_estimator={estimator!r} is not registered in verl; known: {sorted(ADV_ESTIMATOR_REGISTRY)}"
        )
    loss_mode = str(config.actor_rollout_ref.actor.policy_loss.get("loss_mode", "vanilla"))
    if loss_mode not in POLICY_LOSS_REGISTRY:
        raise DryRunError(
            f"actor_rollout_ref.actor.policy_loss.loss_mode={loss_mode!r} is not registered in verl; "
            f"known: {sorted(POLICY_LOSS_REGISTRY)}"
        )


def _check_imports(config: DictConfig) -> type | None:
    """The custom reward function and the agent-loop manager class load; returns the manager class (or None)."""
    from verl.utils.import_utils import load_class_from_fqn, load_extern_object

    reward_fn = config.reward.get("custom_reward_function") or {}
    if reward_fn.get("path"):
        try:
            load_extern_object(reward_fn.path, reward_fn.get("name") or "compute_score")
        except Exception as e:
            raise DryRunError(
                f"reward.custom_reward_function.path={reward_fn.path!r} name={reward_fn.get('name')!r}: {_one_line(e)}"
            ) from e
    fqn = config.actor_rollout_ref.rollout.get("agent", {}).get("agent_loop_manager_class")
    if not fqn:
        return None
    try:
        return load_class_from_fqn(fqn, "AgentLoopManager")
    except Exception as e:
        raise DryRunError(f"actor_rollout_ref.rollout.agent.agent_loop_manager_class={fqn!r}: {_one_line(e)}") from e


def _check_trustrl(config: DictConfig, manager_cls: type | None) -> list[str]:
    """trustrl's own validators; returns the names of those that ran."""
    ran = []
    try:
        if "trapo" in config:
            from trustrl.recipes.trapo.config import validate_trapo_run_config

            validate_trapo_run_config(config)
            ran.append("validate_trapo_run_config")
        if "trapo" in config.algorithm:
            from trustrl.advantage.trapo import trapo_norm_adv_by_std

            trapo_norm_adv_by_std(config.algorithm)
            ran.append("trapo_norm_adv_by_std")
        loss_mode = config.actor_rollout_ref.actor.policy_loss.get("loss_mode", "vanilla")
        if "quatro" in (config.algorithm.adv_estimator, loss_mode) or "quatro" in config.algorithm:
            from trustrl.recipes.quatro.config import check_quatro_config

            check_quatro_config(config)
            ran.append("check_quatro_config")
        if manager_cls is not None:
            from trustrl.recipes.trapo.rollout import TrapoAgentLoopManager, check_trapo_rollout_config

            if issubclass(manager_cls, TrapoAgentLoopManager):
                # verl hands the manager reward-loop workers unless a colocated reward model scores after rollout
                colocated_rm = config.reward.reward_model.enable and not config.reward.reward_model.enable_resource_pool
                check_trapo_rollout_config(config, reward_loop_worker_handles=None if colocated_rm else [])
                ran.append("check_trapo_rollout_config")
    except ValueError as e:
        raise DryRunError(str(e)) from e
    return ran


def _check_model_context(config: DictConfig, out) -> list[str]:
    """The model's context window (:mod:`trustrl.recipes.preflight`); a skipped check prints its note."""
    from trustrl.recipes.preflight import check_model_context

    try:
        result = check_model_context(config)
    except ValueError as e:
        raise DryRunError(str(e)) from e
    if result.skipped:
        print(f"[dry_run] note: {result.note}", file=out)
        return []
    return [f"model context {result.context} >= {result.required}"]


def _override_key(override: str) -> str | None:
    key, sep, _ = override.lstrip("+~").partition("=")
    return key if sep and not key.startswith("hydra.") else None


def check_launch(launch: Launch, print_config: bool = False, out=sys.stdout) -> DictConfig:
    """Compose and validate one launch; print its resolved overrides. Raises :class:`DryRunError`."""
    config = compose(launch.entry, launch.overrides)
    try:
        resolved = OmegaConf.create(OmegaConf.to_container(config, resolve=True))
    except Exception as e:
        raise DryRunError(f"interpolation failed: {_one_line(e)}") from e
    _check_verl_dataclasses(config)
    _check_registries(config)
    manager_cls = _check_imports(config)
    ran = _check_trustrl(config, manager_cls)
    ran += _check_model_context(config, out)
    ran += resources.dry_run_checks(config)  # data files, model folder, expert traces (CHECK_PATHS=0 skips)
    print(f"[dry_run] {launch.label}: {len(launch.overrides)} overrides, resolved:", file=out)
    for override in launch.overrides:
        key = _override_key(override)
        value = OmegaConf.select(resolved, key, default=None) if key else None
        shown = override if key is None or value is None else f"{override.split('=', 1)[0]}={_show(value)}"
        print(f"    {shown}", file=out)
    if print_config:
        print(OmegaConf.to_yaml(resolved), file=out)
    checks = ["compose", "resolve", "verl dataclasses", "validate_config", "registries", *ran]
    print(f"[dry_run] OK {launch.label} ({', '.join(checks)})", file=out)
    return config


def _show(value) -> str:
    if isinstance(value, DictConfig) or OmegaConf.is_list(value):
        return str(OmegaConf.to_container(value)).replace(" ", "")
    return str(value)


def record_script_launches(
    script: str | Path, args: list[str] | tuple[str, ...] = (), extra_env: dict[str, str] | None = None
) -> list[Launch]:
    """Run ``bash <script> <args>`` with ``DRY_RUN=1`` and collect the launches its helper records (no Python)."""
    script = Path(script)
    with tempfile.TemporaryDirectory(prefix="trustrl_dry_run_") as record_dir:
        env = {**os.environ, **(extra_env or {}), "DRY_RUN": "1", RECORD_ENV: record_dir}
        proc = subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise DryRunError(f"{script}: bash exited with {proc.returncode} before launching:\n{tail}")
        launches = []
        for path in sorted(Path(record_dir).glob("launch_*"), key=lambda p: int(p.name.split("_")[1])):
            argv = path.read_bytes().decode().split("\0")[:-1]
            launches.append(Launch(argv[0], argv[1:], source=f"{script.name}#{path.name.split('_')[1]}"))
    if not launches:
        raise DryRunError(f"{script}: DRY_RUN=1 recorded no launch (does it call trustrl_launch from common.sh?)")
    return launches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trustrl.recipes.dry_run", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--entry", help="entry module, e.g. trustrl.recipes.quatro.main or verl.trainer.main_ppo")
    mode.add_argument("--scripts", nargs="+", type=Path, help="launch scripts to dry-run in this one process")
    parser.add_argument("--print-config", action="store_true", help="also print the whole composed config")
    parser.add_argument("overrides", nargs="*", help="hydra overrides (with --entry)")
    args = parser.parse_args(argv)
    if args.scripts and args.overrides:
        parser.error("overrides go with --entry; with --scripts set them inside the scripts or as env knobs")

    script_failures, launch_failures = [], []
    if args.entry:
        jobs = [Launch(args.entry, args.overrides)]
    else:
        jobs = []
        for script in args.scripts:
            try:
                jobs += record_script_launches(script)
            except DryRunError as e:
                script_failures.append(str(e))
    for launch in jobs:
        try:
            check_launch(launch, print_config=args.print_config)
        except DryRunError as e:
            launch_failures.append(
                f"{launch.label}: {e}{resources.override_hint(str(e), functools.partial(compose, launch.entry, []))}"
            )
    for failure in script_failures + launch_failures:
        print(f"[dry_run] FAILED {failure}", file=sys.stderr)
    if args.scripts:
        # a script that failed before launching recorded no launch: it is counted apart from the launches
        print(
            f"[dry_run] {len(jobs) - len(launch_failures)} of {len(jobs)} launches passed; "
            f"{len(script_failures)} of {len(args.scripts)} scripts failed before launching",
            file=sys.stderr,
        )
    return 1 if script_failures or launch_failures else 0


if __name__ == "__main__":
    sys.exit(main())
