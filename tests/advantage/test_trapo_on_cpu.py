# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The ``trapo`` advantage estimator against a slow reference written from the equation.

Reference: Â_j = R_j − mean_{k ∈ G(q)} R_k, optionally / (std_{k ∈ G(q)} R_k + ε) (unbiased std), R_j = Σ_t r_{j,t},
broadcast over the response mask (advantage/trapo.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from trustrl.advantage.trapo import compute_trapo_outcome_advantage, trapo_norm_adv_by_std
from verl import DataProto
from verl.trainer.ppo.core_algos import get_adv_estimator_fn
from verl.trainer.ppo.ray_trainer import compute_advantage


def reference_advantage(rewards, mask, uids, norm_by_std, eps=1e-6):
    """Loops over rows and groups (Python floats)."""
    scores = [float(sum(row)) for row in rewards.tolist()]
    out = torch.zeros_like(rewards, dtype=torch.float64)
    for j, uid in enumerate(uids):
        group = [scores[k] for k in range(len(uids)) if uids[k] == uid]
        mean = sum(group) / len(group)
        adv = scores[j] - mean
        if norm_by_std and len(group) > 1:
            std = math.sqrt(sum((s - mean) ** 2 for s in group) / (len(group) - 1))
            adv = adv / (std + eps)
        for t in range(rewards.shape[1]):
            out[j, t] = adv * float(mask[j, t])
    return out


def make_batch(seed, bs=24, length=7, n_groups=5):
    g = torch.Generator().manual_seed(seed)
    uids = np.array([f"q{int(i)}" for i in torch.randint(0, n_groups, (bs,), generator=g)], dtype=object)
    lengths = torch.randint(1, length + 1, (bs,), generator=g)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).to(torch.int64)
    rewards = torch.zeros(bs, length, dtype=torch.float64)
    # outcome reward on the last valid token: 0/1 as the math reward, some fractional
    rewards[torch.arange(bs), lengths - 1] = torch.randint(0, 2, (bs,), generator=g).double()
    rewards[::5, 0] += 0.25
    return rewards, mask, uids


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("norm_by_std", [False, True])
def test_matches_reference(seed, norm_by_std):
    rewards, mask, uids = make_batch(seed)
    config = OmegaConf.create({"trapo": {"norm_adv_by_std": norm_by_std}})
    adv, ret = compute_trapo_outcome_advantage(rewards, mask, uids, config=config)
    torch.testing.assert_close(adv, reference_advantage(rewards, mask, uids, norm_by_std), rtol=1e-5, atol=1e-6)
    assert torch.equal(adv, ret)


def test_hand_computed_group_of_eight():
    # one prompt, micro-groups 4+2+1+1; rewards 0,0,0,1 | 1,1 | 1 | 1 (guided rows later): mean 5/8
    rewards = torch.tensor([[0.0], [0.0], [0.0], [1.0], [1.0], [1.0], [1.0], [1.0]])
    adv, _ = compute_trapo_outcome_advantage(rewards, torch.ones(8, 1), np.array(["u"] * 8, dtype=object))
    # wrong: 0 − 5/8 = −0.625; right: 1 − 5/8 = 0.375 (same baseline for guided and unguided rows)
    torch.testing.assert_close(adv[:, 0], torch.tensor([-0.625] * 3 + [0.375] * 5))


def test_singleton_and_all_equal_groups_get_zero():
    rewards = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.0]])
    uids = np.array(["a", "b", "b", "c"], dtype=object)
    for norm in (False, True):
        adv, _ = compute_trapo_outcome_advantage(
            rewards, torch.ones(4, 2), uids, config={"trapo": {"norm_adv_by_std": norm}}
        )
        assert torch.count_nonzero(adv) == 0 and torch.isfinite(adv).all()


def test_masked_positions_are_zero_and_rewards_there_are_summed():
    rewards = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    adv, _ = compute_trapo_outcome_advantage(rewards, mask, np.array(["u", "u"], dtype=object))
    torch.testing.assert_close(adv, torch.tensor([[0.5, 0.5, 0.0], [-0.5, 0.0, 0.0]]))


def test_no_index_means_one_group_and_kwargs_are_accepted():
    rewards = torch.tensor([[1.0], [0.0], [0.0], [0.0]])
    adv, _ = compute_trapo_outcome_advantage(rewards, torch.ones(4, 1), None, reward_baselines=torch.zeros(4))
    torch.testing.assert_close(adv[:, 0], torch.tensor([0.75, -0.25, -0.25, -0.25]))


def test_std_option_reads_the_algorithm_section():
    assert trapo_norm_adv_by_std(None) is False
    assert trapo_norm_adv_by_std(OmegaConf.create({"norm_adv_by_std_in_grpo": True})) is False  # not ours
    assert trapo_norm_adv_by_std(OmegaConf.create({"trapo": {"norm_adv_by_std": True}})) is True
    with pytest.raises(ValueError, match=r"algorithm\.trapo\.norm_adv_by_std must be true or false"):
        trapo_norm_adv_by_std({"trapo": {"norm_adv_by_std": "yes"}})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['algorithm\.trapo\.norm_adv_by_sdt'\]"):
        trapo_norm_adv_by_std(OmegaConf.create({"trapo": {"norm_adv_by_sdt": True}}))


def test_registered_and_reached_through_verl_compute_advantage():
    assert get_adv_estimator_fn("trapo") is compute_trapo_outcome_advantage
    rewards, mask, uids = make_batch(7, bs=8)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards.float(), "response_mask": mask},
        non_tensors={"uid": uids},
    )
    algorithm = OmegaConf.create({"adv_estimator": "trapo", "trapo": {"norm_adv_by_std": False}})
    out = compute_advantage(data, adv_estimator="trapo", config=algorithm)
    expected = reference_advantage(rewards, mask, uids, norm_by_std=False).float()
    torch.testing.assert_close(out.batch["advantages"], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.batch["returns"], expected, rtol=1e-5, atol=1e-6)
