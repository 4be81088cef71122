# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The guided rollout's ``rollout/trapo/*`` metrics of a training batch, from the rows' ``extra_fields["trapo"]``.

Each row written by :class:`~trustrl.recipes.trapo.rollout.TrapoAgentLoopWorker` carries a small record (micro-group,
guided, prefix and SFT lengths, expert trace used and how much of it was cut, generation rounds of its prompt).
:func:`compute_trapo_rollout_metrics` turns a batch of them into per-step statistics; :func:`trapo_rollout_metrics`
reads them from TransferQueue and :class:`TrapoRolloutMetricsMixin` adds them to the trainer's step metrics.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import transfer_queue as tq

__all__ = ["METRIC_PREFIX", "TrapoRolloutMetricsMixin", "compute_trapo_rollout_metrics", "trapo_rollout_metrics"]

METRIC_PREFIX = "rollout/trapo/"


def compute_trapo_rollout_metrics(
    uids: Sequence[str], infos: Sequence[dict | None], rewards: Sequence[float], lengths: Sequence[int]
) -> dict[str, float]:
    """``rollout/trapo/*`` metrics of one training batch, from the per-row ``extra_fields["trapo"]`` records.

    Args:
        uids: prompt uid of each row.
        infos: ``extra_fields["trapo"]`` of each row (``None`` for rows not produced by the micro-group path).
        rewards: sequence reward of each row (sum of ``rm_scores``).
        lengths: response length of each row (tokens, prefix included).

    Returns:
        ``{}`` without TRAPO rows, else:
        ``guided_share/g{i}`` share of prompts whose micro-group i was guided, ``guided_share/any``;
        ``no_trace_share`` share of prompts the rule wanted guided but that had no expert trace;
        ``prefix_len/mean`` (and ``/g{i}``) mean expert prefix tokens of rows with a prefix;
        ``unguided/reward_mean``, ``unguided/response_length_mean`` over rows without a prefix (the paper reports
        these separately), ``guided/reward_mean`` over rows with one; ``rounds/mean``, ``rounds/max`` generation
        rounds per prompt; ``prefetch_discarded/mean`` dropped prefetched samples per prompt;
        ``rows_per_prompt/min`` and ``/max`` rows of each prompt in the batch (both ``rollout.n`` when every group
        kept its n rows); ``sft_rows/mean`` rows per prompt that carry TrSFT tokens;
        ``trace_cut_share`` share of prompts with a guided row whose expert trace was cut to the response budget
        (0 when the data holds only traces that fit), ``trace_cut/full_rows`` full-trace rows built from a cut
        trace (they end mid-reasoning and get TrSFT), ``trace_cut/tokens_max`` the most trace tokens cut off.
    """
    rows = [(u, i, float(r), int(n)) for u, i, r, n in zip(uids, infos, rewards, lengths, strict=True) if i]
    if not rows:
        return {}
    by_prompt: dict[str, list[dict]] = defaultdict(list)
    for uid, info, _, _ in rows:
        by_prompt[uid].append(info)
    n_prompts = len(by_prompt)
    levels = sorted({info["micro_group"] for _, info, _, _ in rows if info["micro_group"] > 1})
    out: dict[str, float] = {}
    for level in levels:
        hit = sum(any(i["guided"] and i["micro_group"] == level for i in infos_) for infos_ in by_prompt.values())
        out[f"guided_share/g{level}"] = hit / n_prompts
        lens = [i["prefix_len"] for _, i, _, _ in rows if i["micro_group"] == level and i["prefix_len"] > 0]
        if lens:
            out[f"prefix_len/g{level}"] = float(np.mean(lens))
    out["guided_share/any"] = sum(any(i["guided"] for i in v) for v in by_prompt.values()) / n_prompts
    out["no_trace_share"] = sum(any(i["no_trace"] for i in v) for v in by_prompt.values()) / n_prompts
    prefixed = [(i["prefix_len"], r) for _, i, r, _ in rows if i["prefix_len"] > 0]
    unguided = [(r, n) for _, i, r, n in rows if i["prefix_len"] == 0]
    out["prefix_len/mean"] = float(np.mean([p for p, _ in prefixed])) if prefixed else 0.0
    if prefixed:
        out["guided/reward_mean"] = float(np.mean([r for _, r in prefixed]))
    if unguided:
        out["unguided/reward_mean"] = float(np.mean([r for r, _ in unguided]))
        out["unguided/response_length_mean"] = float(np.mean([n for _, n in unguided]))
    rounds = [v[0]["prompt_rounds"] for v in by_prompt.values()]
    out["rounds/mean"], out["rounds/max"] = float(np.mean(rounds)), float(max(rounds))
    out["prefetch_discarded/mean"] = float(np.mean([v[0]["prompt_discarded"] for v in by_prompt.values()]))
    counts = [len(v) for v in by_prompt.values()]
    out["rows_per_prompt/min"], out["rows_per_prompt/max"] = float(min(counts)), float(max(counts))
    out["sft_rows/mean"] = float(np.mean([sum(i["sft_len"] > 0 for i in v) for v in by_prompt.values()]))

    out.update(_trace_cut_metrics(by_prompt))
    return {METRIC_PREFIX + k: v for k, v in out.items()}


def _was_cut(info: dict) -> bool:
    """A guided row whose expert trace did not fit the response budget."""
    return bool(info["guided"]) and info.get("trace_cut", 0) > 0


def _trace_cut_metrics(by_prompt: dict[str, list[dict]]) -> dict[str, float]:
    """``trace_cut_share`` (prompts), ``trace_cut/full_rows`` (full-trace rows), ``trace_cut/tokens_max``."""
    cut = [i for infos in by_prompt.values() for i in infos if _was_cut(i)]
    return {
        "trace_cut_share": sum(any(_was_cut(i) for i in v) for v in by_prompt.values()) / len(by_prompt),
        "trace_cut/full_rows": float(sum(not i["generated"] for i in cut)),
        "trace_cut/tokens_max": float(max((i["trace_cut"] for i in cut), default=0)),
    }


def trapo_rollout_metrics(batch) -> dict[str, float]:
    """:func:`compute_trapo_rollout_metrics` of a trainer batch (``KVBatchMeta``) read from TransferQueue.

    Call it in the trainer's ``_compute_metrics`` (before the step clears TransferQueue), or mix
    :class:`TrapoRolloutMetricsMixin` into the trainer. Padding rows are skipped.
    """
    real = [i for i, tag in enumerate(batch.tags) if not tag.get("is_padding", False)]
    if not real:
        return {}
    keys = [batch.keys[i] for i in real]
    fields_ = ["extra_fields", "rm_scores", "responses"]
    data = tq.kv_batch_get(keys=keys, partition_id=batch.partition_id, select_fields=fields_)
    if "extra_fields" not in data.keys():
        return {}
    # .get keeps the NonTensorStack (item access would unwrap it); as the trainer reads extra_fields
    infos = [e.get("trapo") if isinstance(e, dict) else None for e in data.get("extra_fields").tolist()]
    rm_scores, responses = data.get("rm_scores"), data.get("responses")
    rewards = (rm_scores.to_padded_tensor(0.0) if rm_scores.is_nested else rm_scores).sum(-1).tolist()
    if responses.is_nested:
        lengths = responses.offsets().diff().tolist()
    else:
        lengths = [responses.shape[-1]] * len(keys)
    return compute_trapo_rollout_metrics([k.split("_")[0] for k in keys], infos, rewards, lengths)


class TrapoRolloutMetricsMixin:
    """Trainer mixin: adds :func:`trapo_rollout_metrics` to each step's metrics (``class T(Mixin, PPOTrainerSync)``)."""

    def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        super()._compute_metrics(batch, metrics, timing_raw, global_steps, epoch)
        metrics.update(trapo_rollout_metrics(batch))
