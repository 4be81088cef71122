#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# GRPO baseline for QUATRO: Qwen2.5-Math-7B, DAPO-Math-17k, QUATRO's batch, lengths and staleness (K = 4), stock
# verl (python -m verl.trainer.main_ppo). Token-level PPO clip 0.2, std-normalised group advantage, no KL, no entropy
# bonus (as QUATRO), token-mean aggregation (verl's default).
set -euo pipefail  # the launch command is traced by trustrl_launch (not in DRY_RUN=1)

# Experiment
project_name=trustrl
exp_name=grpo_qwen2.5_math_7b
model_id=Qwen/Qwen2.5-Math-7B
train_set=dapo17k

# Algorithm: eps = 0.2 both sides
clip_ratio_low=0.2
clip_ratio_high=0.2

# Batch and lengths: QUATRO's (run_quatro_qwen2.5_math_7b.sh), so the runs compare on the same data and budget
train_prompt_bsz=128
n_resp_per_prompt=8
train_prompt_mini_bsz=32
lr=1e-6
total_training_steps=500
max_prompt_length=1024
max_response_length=3072
temperature=1.0
val_temperature=0.6

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
trustrl_common_args

ALGO=(
  "algorithm.adv_estimator=grpo"
  "algorithm.norm_adv_by_std_in_grpo=True"
  "algorithm.use_kl_in_reward=False"
  "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla"
  "actor_rollout_ref.actor.clip_ratio_low=${clip_ratio_low}"
  "actor_rollout_ref.actor.clip_ratio_high=${clip_ratio_high}"
  "actor_rollout_ref.actor.loss_agg_mode=token-mean"
  "actor_rollout_ref.actor.use_kl_loss=False"
  "actor_rollout_ref.actor.entropy_coeff=0"
)

trustrl_launch verl.trainer.main_ppo "${COMMON[@]}" "${ALGO[@]}" "$@"
