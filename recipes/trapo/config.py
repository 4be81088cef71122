# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The ``trapo:`` section of the recipe config, as typed dataclasses, and the start-up validation of a TRAPO run.

``validate_trapo_run_config(config)`` runs in the launcher before any Ray or GPU work (``trustrl.recipes.trapo.main``)
and again in the trainer; every error names the key and the fix. Section layout (recipes/trapo/README.md):

    trapo.alpha, trapo.sft_coef, trapo.entropy_agg       the loss (TrapoLossConfig)
    trapo.micro_group.*                                   the guided rollout (MicroGroupConfig)

The RL loss on the model's tokens and the normaliser of both terms are verl's own actor keys,
``actor_rollout_ref.actor.policy_loss.loss_mode`` and ``actor_rollout_ref.actor.loss_agg_mode``
(:data:`~trustrl.policy_loss.trapo.VERL_KEYS`): :func:`trapo_config_from` reads them there, so one key sets both
verl's actor and the TRAPO loss.

Micro-group schedule (recipes/trapo/README.md, "Micro-group sampling"; :mod:`trustrl.recipes.trapo.micro_groups`):
the group of ``rollout.n`` trajectories of a prompt is sampled as micro-groups g_1..g_N of sizes n_i; before g_i
(i > 1) the mean reward of all earlier trajectories of the prompt is compared with t_i and g_i is guided by an expert
prefix of ratio L_i iff ``mean < t_i``; g_1 is never guided (t_1 = −1, L_1 = 0). Presets:

    official_code  n = (4, 2, 1, 1)  t = (−1, 2/4, 4/6, 7/7)   L = (0, 0.25, 0.5, 1.0)
                   (https://github.com/Su-my/TRAPO, luffy/verl/verl/trapo_src/mix_trainer.py, ``fit``)
    paper          n = (4, 2, 1, 1)  t = (−1, 0.5, 0.7, 0.9)   L = (0, 0.2, 0.5, 1.0)    (arXiv:2512.17636, Sec. 3.2)

Each of ``sizes``, ``thresholds``, ``prefix_ratios`` left ``null`` takes the preset's value; a list replaces it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf
from trustrl.advantage.trapo import trapo_norm_adv_by_std
from trustrl.policy_loss.trapo import VERL_KEYS, TrapoLossConfig
from trustrl.recipes.preflight import select
from trustrl.recipes.trapo.micro_groups import MICRO_GROUP_PRESETS, MicroGroupSchedule

__all__ = [
    "MICRO_GROUP_PRESETS",
    "SFT_COPY_POLICIES",
    "TRACE_CHOICES",
    "TRAPO_MANAGER",
    "MicroGroupConfig",
    "MicroGroupSchedule",
    "TrapoConfig",
    "check_sizes_sum",
    "trapo_config_from",
    "validate_trapo_run_config",
]

TRACE_CHOICES = ("fixed", "random")
# the rollout manager of the recipe yaml (actor_rollout_ref.rollout.agent.agent_loop_manager_class)
TRAPO_MANAGER = "trustrl.recipes.trapo.rollout.TrapoAgentLoopManager"
SFT_COPY_POLICIES = ("one_per_prefix", "all", "none")


def _err(key: str, message: str) -> ValueError:
    return ValueError(f"trapo.micro_group.{key} {message}")


def _number_list(key: str, values: Any) -> tuple[float, ...]:
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise _err(key, f"must be a list, got {values!r}; write e.g. {key}=[...] or null for the preset")
    out = tuple(values)
    if not out or any(isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) for v in out):
        raise _err(key, f"must be a non-empty list of finite numbers, got {list(out)!r}")
    return out


def _check_schedule(s: MicroGroupSchedule) -> None:
    if any(not isinstance(n, int) or n < 1 for n in s.sizes):
        raise _err("sizes", f"must be positive integers, got {list(s.sizes)}")
    if not len(s.sizes) == len(s.thresholds) == len(s.prefix_ratios):
        raise _err(
            "sizes/thresholds/prefix_ratios",
            f"must have one entry per micro-group, got lengths {len(s.sizes)}, {len(s.thresholds)}, "
            f"{len(s.prefix_ratios)}; give all three lists (or null for the preset's)",
        )
    if s.thresholds[0] != -1:
        raise _err("thresholds[0]", f"must be -1 (the first micro-group is never guided), got {s.thresholds[0]}")
    if any(b <= a for a, b in zip(s.thresholds, s.thresholds[1:])):
        raise _err("thresholds", f"must be strictly increasing, got {list(s.thresholds)}")
    if any(not 0.0 <= r <= 1.0 for r in s.prefix_ratios):
        raise _err("prefix_ratios", f"must lie in [0, 1], got {list(s.prefix_ratios)}")
    if s.prefix_ratios[0] != 0:
        raise _err("prefix_ratios[0]", f"must be 0 (the first micro-group is unguided), got {s.prefix_ratios[0]}")
    if any(b < a for a, b in zip(s.prefix_ratios, s.prefix_ratios[1:])):
        raise _err("prefix_ratios", f"must be non-decreasing, got {list(s.prefix_ratios)}")


def _check_reward_bounds(value: Any) -> None:
    if isinstance(value, str | bytes) or not hasattr(value, "__len__") or len(value) != 2:
        raise _err("reward_bounds", f"must be [lo, hi] or null (decide only on complete rewards), got {value!r}")
    if any(isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) for v in value):
        raise _err("reward_bounds", f"must hold two finite numbers, got {list(value)!r}")
    if not value[0] < value[1]:
        raise _err("reward_bounds", f"must satisfy lo < hi, got {list(value)!r}")


@dataclass
class MicroGroupConfig:
    """``trapo.micro_group``: the adaptive expert-prefix rollout (read by ``trustrl.recipes.trapo.rollout``)."""

    enable: bool = field(
        default=False, metadata={"help": "use the micro-group rollout worker; False = unguided run (masks all zeros)"}
    )
    preset: str = field(default="official_code", metadata={"help": f"one of {tuple(MICRO_GROUP_PRESETS)}"})
    sizes: Any = field(default=None, metadata={"help": "n_i per micro-group, summing to rollout.n; null = preset"})
    thresholds: Any = field(
        default=None, metadata={"help": "t_i, strictly increasing, t_1 = -1; guided iff running mean < t_i"}
    )
    prefix_ratios: Any = field(
        default=None, metadata={"help": "L_i in [0, 1], non-decreasing, L_1 = 0; 1.0 = full trace, no generation"}
    )
    trace_choice: str = field(
        default="fixed",
        metadata={"help": "fixed: trace 0 for partial prefixes, trace 1 for the full one (0 if absent); random"},
    )
    trace_seed: int = field(default=0, metadata={"help": "seed of trace_choice=random"})
    paragraph_window: float = field(
        default=0.3,
        metadata={"help": "move the cut forward to the next paragraph break within ratio+window of the trace; 0=off"},
    )
    sft_copies: str = field(
        default="one_per_prefix",
        metadata={"help": "one_per_prefix: one sft_mask copy per distinct prefix; all: every guided row; none"},
    )
    expert_field: str = field(
        default="expert_solutions", metadata={"help": "extra_info key of the expert traces (list[str])"}
    )
    prefetch_unguided: bool = field(
        default=True,
        metadata={"help": "draw later groups' unguided samples with g_1, kept iff the rule says unguided (exact)"},
    )
    reward_bounds: Any = field(
        default_factory=lambda: [0.0, 1.0],
        metadata={"help": "[lo, hi] of the reward, to decide a group before pending rewards arrive; null = wait"},
    )

    def __post_init__(self):
        if self.preset not in MICRO_GROUP_PRESETS:
            raise _err("preset", f"must be one of {tuple(MICRO_GROUP_PRESETS)}, got {self.preset!r}")
        if self.trace_choice not in TRACE_CHOICES:
            raise _err("trace_choice", f"must be one of {TRACE_CHOICES}, got {self.trace_choice!r}")
        if self.sft_copies not in SFT_COPY_POLICIES:
            raise _err("sft_copies", f"must be one of {SFT_COPY_POLICIES}, got {self.sft_copies!r}")
        if not isinstance(self.enable, bool):
            raise _err("enable", f"must be true or false, got {self.enable!r}")
        if isinstance(self.trace_seed, bool) or not isinstance(self.trace_seed, int):
            raise _err("trace_seed", f"must be an integer, got {self.trace_seed!r}")
        window = self.paragraph_window
        if isinstance(window, bool) or not isinstance(window, int | float) or not 0.0 <= window <= 1.0:
            raise _err("paragraph_window", f"must be in [0, 1] (official 0.3, 0 disables), got {window!r}")
        if not isinstance(self.expert_field, str) or not self.expert_field:
            raise _err("expert_field", f"must be a non-empty extra_info key, got {self.expert_field!r}")
        if not isinstance(self.prefetch_unguided, bool):
            raise _err("prefetch_unguided", f"must be true or false, got {self.prefetch_unguided!r}")
        if self.reward_bounds is not None:
            _check_reward_bounds(self.reward_bounds)
        _check_schedule(self.schedule)

    @property
    def schedule(self) -> MicroGroupSchedule:
        """The preset with every non-null list substituted (validated in ``__post_init__``)."""
        preset = MICRO_GROUP_PRESETS[self.preset]
        sizes = preset.sizes if self.sizes is None else _number_list("sizes", self.sizes)
        thresholds = preset.thresholds if self.thresholds is None else _number_list("thresholds", self.thresholds)
        ratios = (
            preset.prefix_ratios if self.prefix_ratios is None else _number_list("prefix_ratios", self.prefix_ratios)
        )
        return MicroGroupSchedule(tuple(sizes), tuple(float(t) for t in thresholds), tuple(float(r) for r in ratios))


@dataclass
class TrapoConfig(TrapoLossConfig):
    """The whole ``trapo:`` section: the loss keys, declared once as :class:`TrapoLossConfig`'s fields (and validated
    there), plus ``micro_group``."""

    micro_group: MicroGroupConfig = field(default_factory=MicroGroupConfig)

    def __post_init__(self):
        if isinstance(self.micro_group, Mapping):
            self.micro_group = _build(MicroGroupConfig, self.micro_group, "trapo.micro_group")
        super().__post_init__()

    @property
    def loss(self) -> TrapoLossConfig:
        """The loss knobs bound into :func:`trustrl.policy_loss.trapo.trapo_loss`, copied field by field by name."""
        return TrapoLossConfig(**{f.name: getattr(self, f.name) for f in fields(TrapoLossConfig)})


def _build(cls, values: Mapping, section: str, not_keys: Collection[str] = ()):
    """``cls(**values)`` after checking the keys; ``not_keys`` are fields filled from elsewhere (not section keys)."""
    known = [f.name for f in fields(cls) if f.name not in not_keys]
    unknown = sorted(set(values) - set(known) - set(not_keys))
    if unknown:
        raise ValueError(f"unknown key(s) {[f'{section}.{k}' for k in unknown]}; known keys: {known}")
    return cls(**values)


def trapo_config_from(config: DictConfig | Mapping) -> TrapoConfig:
    """The validated ``trapo`` section of a full run config, with the RL loss and normaliser read from verl's actor
    keys (``ValueError`` naming the key on any problem). Without an actor section the loss defaults apply."""
    section = config.get("trapo", None)
    if section is None:
        raise ValueError(
            "the config has no `trapo` section; launch with `python -m trustrl.recipes.trapo.main` "
            "(config trapo_trainer.yaml) or add the section"
        )
    if isinstance(section, DictConfig):
        section = OmegaConf.to_container(section, resolve=True)
    values = dict(section)
    for name, key in VERL_KEYS.items():
        if name in values:
            raise ValueError(f"trapo.{name} is not a TRAPO key: the TRAPO loss reads verl's {key}; set that instead")
        actual = select(config, key)
        if actual is not None:
            values[name] = actual
    return _build(TrapoConfig, values, "trapo", not_keys=VERL_KEYS)


def validate_trapo_run_config(config: DictConfig) -> TrapoConfig:
    """Checks the ``trapo`` section and its agreement with the rest of a verl run config; returns the section.

    Raises ``ValueError`` naming the offending key and the fix. Touches neither Ray nor any device.
    """
    trapo = trapo_config_from(config)
    # the estimator's own option (algorithm.trapo), read in the workers: checked here too, before Ray starts
    trapo_norm_adv_by_std(select(config, "algorithm"))
    actor = "actor_rollout_ref.actor"
    if not select(config, "trainer.use_v1", True) or select(config, "trainer.v1.trainer_mode", "sync") != "sync":
        raise ValueError("TRAPO runs on verl's V1 sync trainer; set trainer.use_v1=True trainer.v1.trainer_mode=sync")
    if trapo.loss_agg_mode == "seq-mean-token-sum-norm" and select(config, f"{actor}.loss_scale_factor") is None:
        raise ValueError(
            f"{actor}.loss_scale_factor is null: seq-mean-token-sum-norm would divide by each micro-batch's padded "
            f"width; set {actor}.loss_scale_factor to the max response length (the recipe yaml does)"
        )
    if select(config, "distillation.enabled", False):
        raise ValueError(
            "TRAPO replaces the actor loss and cannot run with distillation; set distillation.enabled=False"
        )
    if trapo.rl_loss_mode == "quatro":
        # the quatro recipe's own check: its loss knobs, and the quatro estimator (the loss reads targets T_i)
        from trustrl.recipes.quatro.config import check_quatro_config

        check_quatro_config(config)
    if trapo.micro_group.enable:
        _validate_guided_rollout(config, trapo)
    return trapo


def check_sizes_sum(sizes, n: int, key: str = "actor_rollout_ref.rollout.n") -> None:
    """Every prompt keeps exactly ``rollout.n`` rows: the micro-group sizes must sum to it (``key`` names the source
    of ``n``: the config, or a data row's ``__rollout_n__``)."""
    if sum(sizes) != n:
        raise ValueError(
            f"trapo.micro_group.sizes={list(sizes)} sum to {sum(sizes)} but {key}={n}; "
            "make them agree (every group keeps exactly rollout.n rows)"
        )


def _validate_guided_rollout(config: DictConfig, trapo: TrapoConfig) -> None:
    n = select(config, "actor_rollout_ref.rollout.n")
    if n is not None:
        check_sizes_sum(trapo.micro_group.schedule.sizes, n)
    _check_manager(select(config, "actor_rollout_ref.rollout.agent.agent_loop_manager_class"))
    _check_rollout_correction(config)


def _check_rollout_correction(config: DictConfig) -> None:
    """verl's rollout correction reads the rollout's log-probs; an expert-prefix token has none (the agent loop
    writes a 0.0 placeholder), so every setting that acts on them is refused on guided runs."""
    section = "algorithm.rollout_correction"
    if select(config, f"{section}.bypass_mode", False):
        raise ValueError(
            f"{section}.bypass_mode=True would use the placeholder rollout log-probs of expert "
            "prefix tokens as old log-probs; set it to False for guided TRAPO runs"
        )
    for key, acts in (
        (
            "rollout_is",
            "importance weights over the response (sequence level: the expert prefix's placeholders enter "
            "every continuation token's weight; batch normalisation averages over expert tokens)",
        ),
        (
            "rollout_rs",
            "rejection of tokens or whole rows by their rollout/actor ratio (sequence level: a guided row "
            "would be rejected for its expert prefix, TrSFT tokens included)",
        ),
    ):
        value = select(config, f"{section}.{key}")
        if value is not None:
            raise ValueError(
                f"{section}.{key}={value!r}: verl's rollout correction would apply {acts}, computed from rollout "
                f"log-probs that expert-prefix tokens do not have (placeholders 0.0); set {section}.{key}=null for "
                "guided TRAPO runs (trapo.micro_group.enable=True). The diagnostics rollout_corr/* and "
                "training/rollout_probs_diff_* stay on and are computed over the model's own tokens"
            )


def _check_manager(fqn: str | None) -> None:
    """A guided run needs TRAPO's agent-loop manager (or a subclass): verl's would sample every row unguided."""
    fix = f"set actor_rollout_ref.rollout.agent.agent_loop_manager_class={TRAPO_MANAGER} (the recipe yaml's default)"
    if not fqn:
        raise ValueError(f"trapo.micro_group.enable=True but verl's own agent-loop manager is selected; {fix}")
    if fqn == TRAPO_MANAGER:
        return
    import importlib

    from trustrl.recipes.trapo.rollout import TrapoAgentLoopManager

    module, _, name = fqn.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(
            f"actor_rollout_ref.rollout.agent.agent_loop_manager_class={fqn!r} cannot be loaded ({e})"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, TrapoAgentLoopManager)):
        raise ValueError(
            f"trapo.micro_group.enable=True needs TRAPO's rollout, but agent_loop_manager_class={fqn!r} is not a "
            f"subclass of TrapoAgentLoopManager; {fix}"
        )
