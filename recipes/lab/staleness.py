# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Experiment 2: staleness and learning-rate stress of GRPO, GSPO and QUATRO on a synthetic many-prompt policy.

Task. P prompts; a response is L tokens over a vocabulary of V symbols (V^L responses, all enumerable). Prompt q
has a target set S_q of m symbols and a threshold k: reward 1 iff at least k of the L tokens lie in S_q. The
(m, k) pairs cycle over a fixed list, so prompts range from hard (success ≈ 0.05 under the initial policy) to easy
(≈ 0.9).

Policy. One small autoregressive network shared by all prompts: embeddings of the prompt, of every earlier token
(the full history, padded) and of the position feed Linear → tanh → Linear(V). It is evaluated once on every
prefix of every prompt, so the log-probability of each of the V^L responses, the expected reward, the entropy and
the per-prompt KL(π_new ‖ π_old) are all exact, not sampled.

Loop (one iteration). π_old ← π_θ; sample G responses per prompt from π_old; rewards; advantages from the
registered estimator (``grpo`` or ``quatro``); then K Adam steps (gradient-norm clip 1.0, verl's actor default)
on the same batch with the registered policy loss (``vanilla`` for GRPO, ``gspo``, ``quatro``), all called
through verl's registries. K > 1 is the staleness the QUATRO paper stresses. After the K steps the exact
per-prompt KL(π_new ‖ π_old) is recorded for every prompt.

Population check. Free (tabular) logits per prefix start uniform, so a "group" holding every response once is
π_old exactly, and the ``quatro`` estimator's targets and the loss's sequence mean are population quantities. Run
to convergence, QUATRO must end at KL(π‖π_old) = δ per prompt; GRPO and GSPO are shown on the same footing.

Modules: the task and the policy in :mod:`trustrl.recipes.lab.staleness_task`, training and the population check
here, figures and tables in :mod:`trustrl.recipes.lab.staleness_report`.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import trustrl.advantage.quatro  # noqa: F401  (registers the "quatro" estimator)
from trustrl.policy_loss.quatro import QuatroPolicyLossConfig
from trustrl.recipes.lab._common import Log, Section, parallel_map, silent
from trustrl.recipes.lab.staleness_task import (
    DIFFICULTY,
    POPULATION_PROMPTS,
    TASK_SEED,
    SequenceSpace,
    TinyPolicy,
    make_rewards,
)
from verl.trainer.ppo.core_algos import get_adv_estimator_fn, get_policy_loss_fn
from verl.workers.config import ActorConfig, PolicyLossConfig

# a run "collapsed" when its final reward ends this far below its best
COLLAPSE_DROP = 0.05


@dataclass(frozen=True)
class Method:
    """One algorithm: verl registry names and the actor-config options it runs with."""

    name: str
    estimator: str
    loss: str
    loss_agg_mode: str
    clip_low: float = 0.2
    clip_high: float = 0.2


METHODS = {
    "grpo": Method("GRPO", "grpo", "vanilla", "token-mean"),
    # verl's GSPO example: clip 3e-4 / 4e-4, sequence-mean aggregation
    "gspo": Method("GSPO", "grpo", "gspo", "seq-mean-token-mean", 3e-4, 4e-4),
    "quatro": Method("QUATRO", "quatro", "quatro", "seq-mean-token-mean"),
}


@dataclass(frozen=True)
class StalenessConfig:
    """Sizes of experiment 2 (defaults: the full lab run)."""

    num_prompts: int = 64
    vocab: int = 6
    length: int = 4
    group_size: int = 8
    iterations: int = 40
    ks: tuple[int, ...] = (1, 4, 16)
    lrs: tuple[float, ...] = (0.03, 0.1)
    methods: tuple[str, ...] = ("grpo", "gspo", "quatro")
    seeds: tuple[int, ...] = (0,)
    # QUATRO's radius in the main grid; δ_sweep adds QUATRO runs at the largest K
    delta: float = 0.05
    delta_sweep: tuple[float, ...] = (0.01, 0.1)
    ratio_level: str = "seq_len_norm"
    hidden: int = 48
    grad_clip: float = 1.0
    # population check
    population_deltas: tuple[float, ...] = (0.01, 0.05, 0.1)
    population_steps: int = 300
    population_lr: float = 0.05
    population_vocab: int = 6
    population_length: int = 4

    def __post_init__(self):
        if self.length < 2 or self.population_length < 2:
            raise ValueError("length must be >= 2 (the policy embeds the L-1 earlier tokens)")
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")


def actor_config(method: Method, group_size: int, ratio_level: str) -> ActorConfig:
    """verl's ActorConfig for one method (GSPO asserts a real ActorConfig instance)."""
    if method.loss == "quatro":
        policy_loss = QuatroPolicyLossConfig(ratio_level=ratio_level)
    else:
        policy_loss = PolicyLossConfig(loss_mode=method.loss)
    return ActorConfig(
        strategy="fsdp",
        rollout_n=group_size,
        ppo_micro_batch_size_per_gpu=1,
        clip_ratio_low=method.clip_low,
        clip_ratio_high=method.clip_high,
        loss_agg_mode=method.loss_agg_mode,
        policy_loss=policy_loss,
    )


def advantages(method: Method, rewards: torch.Tensor, index: np.ndarray, length: int, delta: float):
    """Token-level advantages (B, L) from the registered estimator; the outcome reward sits on the last token."""
    token_rewards = torch.zeros(len(rewards), length, dtype=torch.float32)
    token_rewards[:, -1] = rewards.float()
    mask = torch.ones(len(rewards), length)
    estimator = get_adv_estimator_fn(method.estimator)
    if method.estimator == "quatro":
        adv, _ = estimator(token_rewards, mask, index=index, config={"quatro": {"delta": delta}})
    else:
        adv, _ = estimator(token_rewards, mask, index=index, norm_adv_by_std_in_grpo=True)
    return adv, mask


def policy_loss(method: Method, config: ActorConfig, old, new, adv, mask) -> torch.Tensor:
    loss_fn = get_policy_loss_fn(method.loss)
    loss, _ = loss_fn(
        old_log_prob=old,
        log_prob=new,
        advantages=adv,
        response_mask=mask,
        loss_agg_mode=method.loss_agg_mode,
        config=config,
        rollout_is_weights=None,
    )
    return loss


# ----------------------------------------------------------------------------------------------- training


@dataclass
class RunResult:
    """One training run; exact quantities, averaged over prompts where noted."""

    method: str
    k: int
    lr: float
    delta: float
    seed: int
    reward: np.ndarray  # (iterations+1,) mean expected reward, before each iteration and at the end
    entropy: np.ndarray  # (iterations+1,) mean entropy (nats per response)
    kl: np.ndarray  # (iterations, P) KL(π_new ‖ π_old) after each iteration's K steps
    active: np.ndarray  # (iterations, P) 0 < c < G in that iteration's sampled group
    diverged: bool
    wall_s: float

    def summary(self) -> dict[str, float]:
        kl_all, kl_active = self.kl.reshape(-1), self.kl[self.active]
        kl_active = kl_active if kl_active.size else np.zeros(1)
        return {
            "reward_mid": float(self.reward[len(self.reward) // 2]),
            "reward_final": float(self.reward[-1]),
            "entropy_final": float(self.entropy[-1]),
            "kl_median": float(np.median(kl_all)),
            "kl_p90": float(np.quantile(kl_all, 0.9)),
            "kl_max": float(kl_all.max()),
            "kl_active_median": float(np.median(kl_active)),
            "kl_active_p90": float(np.quantile(kl_active, 0.9)),
            "share_active_above_2delta": float((kl_active > 2 * self.delta).mean()),
            "collapsed": float(self.reward[-1] < self.reward.max() - COLLAPSE_DROP),
            "diverged": float(self.diverged),
        }


def _exact(space: SequenceSpace, node_lp: torch.Tensor, rewards: torch.Tensor):
    seq_lp = space.sequence_log_probs(node_lp).double()
    probs = seq_lp.exp()
    return seq_lp, float((probs * rewards).sum(-1).mean()), float(-(probs * seq_lp).sum(-1).mean())


def train(cfg: StalenessConfig, method_key: str, k: int, lr: float, seed: int, delta: float | None = None):
    """One run of ``cfg.iterations`` rollout batches with K updates each; returns a :class:`RunResult`."""
    start = time.perf_counter()
    delta = cfg.delta if delta is None else delta
    method = METHODS[method_key]
    space = SequenceSpace(cfg.vocab, cfg.length)
    difficulties = [DIFFICULTY[q % len(DIFFICULTY)] for q in range(cfg.num_prompts)]
    rewards = make_rewards(space, difficulties, TASK_SEED)
    torch.manual_seed(seed)
    policy = TinyPolicy(space, cfg.num_prompts, cfg.hidden)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    sampler = torch.Generator().manual_seed(10_000 + seed)
    config = actor_config(method, cfg.group_size, cfg.ratio_level)
    index = np.repeat(np.arange(cfg.num_prompts), cfg.group_size).astype(object)

    reward_curve, entropy_curve, kls, actives = [], [], [], []
    diverged = False
    with torch.no_grad():
        seq_lp, mean_reward, entropy = _exact(space, policy.node_log_probs(), rewards)
    for _ in range(cfg.iterations):
        old_seq_lp = seq_lp
        reward_curve.append(mean_reward)
        entropy_curve.append(entropy)
        responses = torch.multinomial(old_seq_lp.exp(), cfg.group_size, replacement=True, generator=sampler)
        sampled = rewards.gather(1, responses)
        correct = sampled.sum(-1)
        actives.append(((correct > 0) & (correct < cfg.group_size)).numpy())
        adv, mask = advantages(method, sampled.reshape(-1), index, cfg.length, delta)
        with torch.no_grad():
            old = policy.token_log_probs(responses)
        for _ in range(k):
            loss = policy_loss(method, config, old, policy.token_log_probs(responses), adv, mask)
            if not torch.isfinite(loss):
                diverged = True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
            optimizer.step()
        with torch.no_grad():
            seq_lp, mean_reward, entropy = _exact(space, policy.node_log_probs(), rewards)
            kls.append((seq_lp.exp() * (seq_lp - old_seq_lp)).sum(-1).clamp(min=0).numpy())
        if diverged:
            break
    reward_curve.append(mean_reward)
    entropy_curve.append(entropy)
    return RunResult(
        method=method_key,
        k=k,
        lr=lr,
        delta=delta,
        seed=seed,
        reward=np.array(reward_curve),
        entropy=np.array(entropy_curve),
        kl=np.stack(kls),
        active=np.stack(actives),
        diverged=diverged,
        wall_s=time.perf_counter() - start,
    )


# ------------------------------------------------------------------------------------------ population check


@dataclass
class PopulationResult:
    """QUATRO (per δ) and GRPO/GSPO at the population level; one row per prompt."""

    success_old: np.ndarray  # (prompts,) exact p under π_old (uniform)
    steps: np.ndarray  # (records,) step numbers of the curves
    quatro_kl: dict[float, np.ndarray] = field(default_factory=dict)  # δ → (records, prompts)
    quatro_success: dict[float, np.ndarray] = field(default_factory=dict)  # δ → (prompts,) final success
    target_success: dict[float, np.ndarray] = field(default_factory=dict)  # δ → (prompts,) p' = p·e^{T+}
    baseline_kl: dict[str, np.ndarray] = field(default_factory=dict)  # GRPO/GSPO → (records, prompts)


def _population_run(cfg, space, rewards, method, delta, record_at):
    """Adam on free logits (prompts, nodes, V) from zero; the whole response space is one group per prompt."""
    num_prompts = rewards.shape[0]
    logits = torch.zeros(num_prompts, space.num_nodes, space.vocab, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=cfg.population_lr)
    responses = torch.arange(space.num_responses).expand(num_prompts, -1)
    index = np.repeat(np.arange(num_prompts), space.num_responses).astype(object)
    adv, mask = advantages(method, rewards.reshape(-1), index, space.length, delta)
    config = actor_config(method, space.num_responses, cfg.ratio_level)
    with torch.no_grad():
        old_node_lp = torch.log_softmax(logits, dim=-1)
        old_seq_lp = space.sequence_log_probs(old_node_lp).double()
        old = space.token_log_probs(old_node_lp, responses)
    curve = []
    for step in range(1, cfg.population_steps + 1):
        node_lp = torch.log_softmax(logits, dim=-1)
        loss = policy_loss(method, config, old, space.token_log_probs(node_lp, responses), adv, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step in record_at:
            with torch.no_grad():
                seq_lp = space.sequence_log_probs(torch.log_softmax(logits, dim=-1)).double()
                curve.append((seq_lp.exp() * (seq_lp - old_seq_lp)).sum(-1).numpy())
    with torch.no_grad():
        success = (space.sequence_log_probs(torch.log_softmax(logits, dim=-1)).double().exp() * rewards).sum(-1)
    return np.stack(curve), success.numpy(), adv


def population_check(cfg: StalenessConfig, methods: tuple[str, ...] = ("grpo", "gspo")) -> PopulationResult:
    """QUATRO at δ ∈ ``cfg.population_deltas`` (and the given baselines) run to convergence on exact expectations."""
    space = SequenceSpace(cfg.population_vocab, cfg.population_length)
    rewards = make_rewards(space, POPULATION_PROMPTS, TASK_SEED)
    steps = np.unique(np.geomspace(1, cfg.population_steps, 40).astype(int))
    result = PopulationResult(success_old=rewards.mean(-1).numpy(), steps=steps)
    record_at = set(steps.tolist())
    for delta in cfg.population_deltas:
        curve, success, adv = _population_run(cfg, space, rewards, METHODS["quatro"], delta, record_at)
        result.quatro_kl[delta], result.quatro_success[delta] = curve, success
        # T+ of each prompt: the advantage of any correct response
        first_correct = rewards.argmax(-1) + torch.arange(len(rewards)) * space.num_responses
        result.target_success[delta] = result.success_old * np.exp(adv[first_correct, 0].double().numpy())
    for key in methods:
        curve, _, _ = _population_run(cfg, space, rewards, METHODS[key], cfg.delta, record_at)
        result.baseline_kl[METHODS[key].name] = curve
    return result


def run_grid(cfg: StalenessConfig, log: Log = silent, pool: Executor | None = None) -> list[RunResult]:
    """The main grid (methods × K × lr × seeds at δ) plus QUATRO's δ sweep at the largest K.

    Runs are independent and seed themselves, so running them on ``pool`` gives the same results.
    """
    jobs = [(m, k, lr, s, cfg.delta) for lr in cfg.lrs for k in cfg.ks for m in cfg.methods for s in cfg.seeds]
    if "quatro" in cfg.methods:
        jobs += [("quatro", max(cfg.ks), lr, s, d) for lr in cfg.lrs for d in cfg.delta_sweep for s in cfg.seeds]
    finished = []

    def progress(_, result: RunResult) -> None:
        finished.append(result)
        summary = result.summary()
        log(
            f"exp2 [{len(finished)}/{len(jobs)}] {METHODS[result.method].name:6s} K={result.k:2d} lr={result.lr:g} "
            f"δ={result.delta:g} seed={result.seed}: reward {summary['reward_final']:.3f} "
            f"entropy {summary['entropy_final']:.2f} KL p90 {summary['kl_p90']:.3f} max {summary['kl_max']:.3f} "
            f"({result.wall_s:.1f}s)"
        )

    return parallel_map(partial(train, cfg), jobs, pool, progress)


def _population_and_grid(cfg: StalenessConfig, log: Log, pool: Executor | None) -> tuple[PopulationResult, list]:
    """The population check and the grid; on ``pool`` the population check runs beside the grid."""
    # the population check runs on the pool beside the grid (it is one serial job)
    pending = pool.submit(population_check, cfg) if pool is not None else None
    pop = population_check(cfg) if pending is None else None
    runs = run_grid(cfg, log, pool)
    return pop or pending.result(), runs


def _grid_numbers(runs: list[RunResult], cfg: StalenessConfig) -> dict[str, float]:
    """Seed-mean final reward, entropy and KL statistics per (lr, method) at the largest K."""
    from trustrl.recipes.lab.staleness_report import grid_runs

    numbers: dict[str, float] = {}
    for lr in cfg.lrs:
        for key in cfg.methods:
            sel = [r for r in grid_runs(runs, cfg) if r.method == key and r.k == max(cfg.ks) and r.lr == lr]
            tag = f"{key}_K{max(cfg.ks)}_lr{lr:g}"
            for name in ("reward_final", "entropy_final", "kl_max", "kl_active_p90"):
                numbers[f"{tag}_{name}"] = float(np.mean([r.summary()[name] for r in sel]))
    return numbers


def _task_text(cfg: StalenessConfig) -> str:
    """The report's first paragraph: the task, the loop's constants and the three methods' registry names."""
    space = SequenceSpace(cfg.vocab, cfg.length)
    difficulties = [DIFFICULTY[q % len(DIFFICULTY)] for q in range(cfg.num_prompts)]
    base = make_rewards(space, difficulties, TASK_SEED).mean(-1)
    return (
        f"Task: {cfg.num_prompts} prompts, responses of {cfg.length} tokens over {cfg.vocab} symbols "
        f"({space.num_responses} responses, enumerated exactly); success rate of a uniform policy "
        f"{float(base.min()):.2f}-{float(base.max()):.2f} across prompts. G = {cfg.group_size}, "
        f"{cfg.iterations} rollout batches, Adam, grad-norm clip {cfg.grad_clip:g}, seeds {list(cfg.seeds)}. "
        f"GRPO = `grpo` + `vanilla` (clip 0.2, token-mean); GSPO = `grpo` + `gspo` (clip 3e-4/4e-4); "
        f"QUATRO = `quatro` + `quatro` (ratio_level={cfg.ratio_level}, δ={cfg.delta:g}, κ=0.1)."
    )


def run(
    out_dir: Path,
    cfg: StalenessConfig | None = None,
    log: Log = silent,
    pool: Executor | None = None,
    draw: bool = True,
) -> Section:
    """Run the population check and the grid, write three figures (unless ``draw`` is off) and return the section."""
    from trustrl.recipes.lab.staleness_report import (
        figure_curves,
        figure_kl,
        figure_population,
        grid_table,
        observations,
        population_table,
    )

    cfg = cfg or StalenessConfig()
    start = time.perf_counter()
    pop, runs = _population_and_grid(cfg, log, pool)
    worst = max(float(np.max(np.abs(curve[-1] - d))) for d, curve in pop.quatro_kl.items())
    log(f"exp2 population check: max |KL − δ| after {cfg.population_steps} steps = {worst:.1e}")
    figures = []
    if draw:
        figures = [
            figure_curves(runs, cfg, out_dir / "fig2_reward_entropy.png"),
            figure_kl(runs, cfg, out_dir / "fig2_kl_distribution.png"),
            figure_population(pop, out_dir / "fig2_population_kl.png"),
        ]
    numbers = {"population_max_abs_kl_minus_delta": worst, **_grid_numbers(runs, cfg)}
    body = "\n\n".join(
        [
            _task_text(cfg),
            "**Population check** (tabular policy, exact expectations, "
            f"{cfg.population_steps} Adam steps at lr {cfg.population_lr:g}; `fig2_population_kl.png`):",
            population_table(pop),
            f"Max |KL − δ| over QUATRO's prompts and radii: {worst:.1e}.",
            "**Grid** (mean over seeds; KL statistics pooled over all prompt-iterations; "
            "'collapsed': final reward more than 0.05 below the run's best):",
            grid_table(runs, cfg),
            "**What the grid shows** (read off the table; 'active': the sampled group had 0 < c < G):",
            observations(runs, cfg),
        ]
    )
    return Section("2. Staleness and learning-rate stress", body, figures, numbers, time.perf_counter() - start)


def quick_config() -> StalenessConfig:
    """A reduced configuration for ``--quick`` and the tests (seconds, not minutes)."""
    return replace(
        StalenessConfig(),
        num_prompts=12,
        vocab=4,
        length=3,
        iterations=8,
        ks=(1, 4),
        lrs=(0.1,),
        delta_sweep=(),
        population_deltas=(0.05,),
        population_steps=300,
        population_vocab=5,
        population_length=3,
    )


__all__ = [
    "METHODS",
    "PopulationResult",
    "RunResult",
    "SequenceSpace",
    "StalenessConfig",
    "TinyPolicy",
    "population_check",
    "quick_config",
    "run",
    "run_grid",
    "train",
]
