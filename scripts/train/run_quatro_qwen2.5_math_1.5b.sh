#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# QUATRO on Qwen2.5-Math-1.5B: the cheap variant of run_quatro_qwen2.5_math_7b.sh (same algorithm and batch, 4 GPUs).
# The paper's training setup is not public: every value below is a guess of the reconstruction
# (recipes/quatro/README.md), shared with the GRPO/GSPO/DAPO baselines so the comparison is on the same data and budget.
#   DRY_RUN=1 bash scripts/train/run_quatro_qwen2.5_math_1.5b.sh  # compose + validate on CPU, print the overrides
set -euo pipefail  # the launch command is traced by trustrl_launch (not in DRY_RUN=1)

# Experiment
project_name=trustrl
exp_name=quatro_qwen2.5_math_1.5b
model_id=Qwen/Qwen2.5-Math-1.5B
train_set=dapo17k

# Algorithm: per-prompt KL radius delta, slack guard kappa, exact dual solve (recipes/quatro/README.md)
delta=0.05
kappa=0.1
ratio_level=seq_len_norm

# Batch: B prompts x G responses; K = B / mini = 4 optimizer steps per rollout batch (the trust region binds only for K > 1)
train_prompt_bsz=128
n_resp_per_prompt=8
train_prompt_mini_bsz=32
lr=1e-6
total_training_steps=500

# Lengths: Qwen2.5-Math-1.5B has a 4096-token context
max_prompt_length=1024
max_response_length=3072
temperature=1.0
val_temperature=0.6

# Cluster shape (env knobs; this model's defaults)
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
ROLLOUT_TP=${ROLLOUT_TP:-1}

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
trustrl_common_args

ALGO=(
  "algorithm.adv_estimator=quatro"
  "algorithm.quatro.delta=${delta}"
  "algorithm.quatro.kappa=${kappa}"
  "algorithm.quatro.solver=exact"
  "algorithm.use_kl_in_reward=False"
  "actor_rollout_ref.actor.policy_loss.loss_mode=quatro"
  "actor_rollout_ref.actor.policy_loss.ratio_level=${ratio_level}"
  "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean"
  "actor_rollout_ref.actor.use_kl_loss=False"
  "actor_rollout_ref.actor.entropy_coeff=0"
)

trustrl_launch trustrl.recipes.quatro.main "${COMMON[@]}" "${ALGO[@]}" "$@"
