# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""verl's diagnostics on TRAPO batches: entropy and rollout-mismatch metrics over the model's own tokens only, and the
start-up refusal of rollout-correction settings that would act on expert tokens."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from trustrl.recipes.trapo.config import validate_trapo_run_config
from trustrl.recipes.trapo.diagnostics import PROBS_DIFF_KEYS, model_token_diagnostics, trapo_token_diagnostics
from trustrl.recipes.trapo.trainer import TrapoTrainer
from verl.protocol import DataProto
from verl.trainer.ppo.rollout_corr_helper import compute_offpolicy_metrics
from verl.trainer.ppo.v1 import PPOTrainerSync
from verl.utils.debug.metrics import calculate_debug_metrics
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

from tests.recipes.trapo.rollout_fakes import compose_trapo_config, with_overrides


def trapo_batch(seed: int = 0):
    """Eight rows of a guided prompt at real shape: mixed response lengths up to 3k tokens, expert prefixes of 25%,
    50% and 100% (the full trace has no model token), rollout log-probs = actor's + noise on sampled tokens and the
    agent loop's 0.0 placeholder on expert tokens. Returns per-row 1-d tensors."""
    g = torch.Generator().manual_seed(seed)
    lengths = [3000, 1200, 2600, 700, 2900, 2900, 1800, 2400]
    prefixes = [0, 0, 0, 0, 600, 600, 900, 2400]
    rows = []
    for n, k in zip(lengths, prefixes, strict=True):
        old = -torch.rand(n, generator=g, dtype=torch.float64) * 3
        rollout = old + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)
        prefix = torch.zeros(n, dtype=torch.int64)
        prefix[:k] = 1
        rollout[:k] = 0.0  # the placeholder of an expert token
        entropy = torch.rand(n, generator=g, dtype=torch.float64) * 2
        entropy[:k] += 5.0  # expert tokens: far from the policy's own distribution
        rows.append(
            {
                "old_log_probs": old,
                "rollout_log_probs": rollout,
                "entropy": entropy,
                "prefix_mask": prefix,
                "response_mask": torch.ones(n, dtype=torch.int64),
            }
        )
    return rows


def padded(rows, key, keep=None):
    """(bs, L) right-padded; ``keep(row)`` selects each row's tokens first (slicing, the reference of masking)."""
    values = [r[key] if keep is None else r[key][keep(r)] for r in rows]
    width = max(v.numel() for v in values)
    return torch.stack([torch.nn.functional.pad(v, (0, width - v.numel())) for v in values])


def sliced_reference(rows):
    """verl's own functions on batches that contain only the model's tokens (prefix tokens cut out)."""
    model = [r for r in rows if (r["prefix_mask"] == 0).any()]

    def own(r):
        return r["prefix_mask"] == 0

    old, rollout = padded(model, "old_log_probs", own), padded(model, "rollout_log_probs", own)
    mask = padded(model, "response_mask", own)
    batch = {"old_log_probs": old, "rollout_log_probs": rollout, "response_mask": mask, "responses": mask}
    ref = calculate_debug_metrics(DataProto.from_dict(tensors=batch))
    ref.update({f"rollout_corr/{k}": v for k, v in compute_offpolicy_metrics(old, rollout, mask).items()})
    entropy = torch.cat([r["entropy"][own(r)] for r in rows])
    ref["actor/entropy"] = float(entropy.mean())
    ref["actor/trapo/expert_entropy"] = float(torch.cat([r["entropy"][r["prefix_mask"] == 1] for r in rows]).mean())
    return ref


def verl_values(rows):
    """What verl 0.9.1 reports for the same batch: its functions over every response token."""
    old, rollout, mask = (padded(rows, k) for k in ("old_log_probs", "rollout_log_probs", "response_mask"))
    batch = {"old_log_probs": old, "rollout_log_probs": rollout, "response_mask": mask, "responses": mask}
    out = calculate_debug_metrics(DataProto.from_dict(tensors=batch))
    out.update({f"rollout_corr/{k}": v for k, v in compute_offpolicy_metrics(old, rollout, mask).items()})
    out["actor/entropy"] = 123.0  # a scaled sum under seq-mean-token-sum-norm: any value, it must be replaced
    return out


def test_masking_the_prefix_equals_cutting_it_out():
    rows = trapo_batch()
    got = model_token_diagnostics(
        *(padded(rows, k) for k in ("old_log_probs", "entropy", "response_mask", "prefix_mask", "rollout_log_probs"))
    )
    ref = sliced_reference(rows)
    assert got.keys() == ref.keys()
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    # the model's own tokens: a small mismatch (noise 0.05); verl over all tokens sees the placeholders
    naive = verl_values(rows)
    assert got["rollout_corr/k3_kl"] < 2e-3 < naive["rollout_corr/k3_kl"]
    assert got["training/rollout_probs_diff_max"] < 0.2 < naive["training/rollout_probs_diff_max"]
    assert got["actor/entropy"] < 1.1 and got["actor/trapo/expert_entropy"] > 5.0


def test_an_unguided_batch_keeps_verl_mismatch_values():
    rows = [dict(r, prefix_mask=torch.zeros_like(r["prefix_mask"])) for r in trapo_batch(1)]
    rows = [dict(r, rollout_log_probs=r["old_log_probs"] + 0.01) for r in rows]
    keys = ("old_log_probs", "entropy", "response_mask", "prefix_mask", "rollout_log_probs")
    got = model_token_diagnostics(*(padded(rows, k) for k in keys))
    naive = verl_values(rows)
    for key in [*PROBS_DIFF_KEYS, "rollout_corr/kl", "rollout_corr/chi2_seq"]:
        assert got[key] == pytest.approx(naive[key], rel=1e-9), key
    assert "actor/trapo/expert_entropy" not in got
    assert got["actor/entropy"] == pytest.approx(float(torch.cat([r["entropy"] for r in rows]).mean()))


def test_full_trace_rows_only_give_entropy_and_no_mismatch():
    (row,) = trapo_batch()[-1:]
    prefix, rollout = padded([row], "prefix_mask"), padded([row], "rollout_log_probs")
    keys = ("old_log_probs", "entropy", "response_mask")
    got = model_token_diagnostics(*(padded([row], k) for k in keys), prefix, rollout)
    # no model token: the entropy says so (NaN), the mismatch keys are absent; the expert tokens' entropy is there
    assert math.isnan(got["actor/entropy"]) and got.keys() == {"actor/entropy", "actor/trapo/expert_entropy"}
    got = model_token_diagnostics(padded([row], "old_log_probs"), None, padded([row], "response_mask"), prefix, rollout)
    assert got == {}


class _Batch:
    """verl's KVBatchMeta: keys, tags (the last row is a balance-padding copy), partition, common fields."""

    def __init__(self, keys, fields):
        self.keys = [*keys, "pad"]
        self.tags = [{} for _ in keys] + [{"is_padding": True}]
        self.partition_id = "train"
        self.fields = fields


def _install_tq(monkeypatch, rows_by_key):
    import transfer_queue

    def kv_batch_get(keys, partition_id, select_fields):
        assert "pad" not in keys  # padding rows are skipped
        return list_of_dict_to_tensordict([{f: rows_by_key[k][f] for f in select_fields} for k in keys])

    monkeypatch.setattr(transfer_queue, "kv_batch_get", kv_batch_get)


def test_the_trainer_replaces_verl_diagnostics_after_the_advantage_step(monkeypatch):
    rows = trapo_batch(2)
    by_key = {f"u_{i}_0": r for i, r in enumerate(rows)}
    _install_tq(monkeypatch, by_key)

    def verl_step(self, batch, metrics):  # verl's _compute_advantage: writes its values over all tokens
        metrics.update(verl_values(rows))
        return batch

    monkeypatch.setattr(PPOTrainerSync, "_compute_advantage", verl_step)
    trainer = object.__new__(TrapoTrainer)
    trainer.config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"calculate_log_probs": True}}})
    metrics = {"training/global_step": 3}
    batch = _Batch(list(by_key), fields=[*rows[0], "responses"])
    assert trainer._compute_advantage(batch, metrics) is batch
    ref = sliced_reference(rows)
    assert metrics.keys() == {*ref, "training/global_step"}
    for key, value in ref.items():
        assert metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_the_trainer_leaves_mismatch_keys_verl_did_not_write(monkeypatch):
    rows = trapo_batch(3)
    by_key = {f"u_{i}_0": r for i, r in enumerate(rows)}
    _install_tq(monkeypatch, by_key)
    fields = [f for f in rows[0] if f != "rollout_log_probs"]  # rollout.calculate_log_probs=False
    metrics = {"actor/entropy": 123.0}
    trapo_token_diagnostics(_Batch(list(by_key), fields), metrics, calculate_log_probs=False)
    assert metrics.keys() == {"actor/entropy", "actor/trapo/expert_entropy"}
    assert metrics["actor/entropy"] == pytest.approx(sliced_reference(rows)["actor/entropy"])
    # bypass mode: verl wrote no entropy and no old log-probs -> nothing to replace
    metrics = {}
    trapo_token_diagnostics(_Batch(list(by_key), ["response_mask", "prefix_mask"]), metrics, True)
    assert metrics == {}
    # nothing but padding
    assert trapo_token_diagnostics(SimpleNamespace(keys=["p"], tags=[{"is_padding": True}]), {}, True) == {}


@pytest.fixture(scope="module")
def guided_config():
    return compose_trapo_config()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "algorithm.rollout_correction.rollout_is=sequence",
            "algorithm.rollout_correction.rollout_is='sequence': verl's rollout correction would apply importance "
            "weights",
        ),
        (
            "algorithm.rollout_correction.rollout_is=token",
            "set algorithm.rollout_correction.rollout_is=null for guided TRAPO runs (trapo.micro_group.enable=True)",
        ),
        (
            "algorithm.rollout_correction.rollout_rs=seq_sum_k1",
            "algorithm.rollout_correction.rollout_rs='seq_sum_k1': verl's rollout correction would apply rejection",
        ),
        ("algorithm.rollout_correction.bypass_mode=true", "algorithm.rollout_correction.bypass_mode=True"),
    ],
    ids=["seq_is", "token_is", "seq_rs", "bypass"],
)
def test_rollout_correction_acting_on_expert_tokens_is_refused_at_start_up(guided_config, override, message):
    with pytest.raises(ValueError) as e:
        validate_trapo_run_config(with_overrides(guided_config, override))
    assert message in str(e.value)
    # unguided runs have no expert tokens: verl's correction is theirs to use
    validate_trapo_run_config(with_overrides(guided_config, override, "trapo.micro_group.enable=false"))


def test_the_recipe_defaults_pass(guided_config):
    assert validate_trapo_run_config(guided_config).micro_group.enable
