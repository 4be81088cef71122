#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# TRAPO on Qwen2.5-Math-1.5B: the cheap variant of run_trapo_qwen2.5_math_7b.sh (same algorithm, data and batch, 4 GPUs).
# The paper's main run (arXiv:2512.17636 Table 1) = the "+ TrSFT" row of the ablation (run_trapo_ablation_*.sh).
# Official code (Su-my/TRAPO exp_scripts/train_trapo.sh) where paper and code differ (recipes/trapo/README.md):
#   micro-group preset official_code (ratios 0, 0.25, 0.5, 1.0; thresholds 2/4, 4/6, 7/7), lr 1e-6, alpha 0.1,
#   one mini-batch per step, entropy bonus 0.001, no KL; the paper's batch of 128 prompts (the code's 8 is per-GPU
#   bookkeeping); MICRO_GROUP_PRESET=paper switches to the paper's (0, 0.2, 0.5, 1.0; 0.5, 0.7, 0.9).
# MODEL_PATH must hold a 16k-context copy of the model (config.json: max_position_embeddings=16384, rope_theta=40000,
# the 1.5B counterpart of LUFFY/TRAPO's 7B "16k-think" copy): 1024 + 8192 tokens do not fit the stock 4096 context.
# Data: python scripts/data/prepare.py openr1_46k --out-dir data/train --second-traces --drop-invalid
set -euo pipefail  # the launch command is traced by trustrl_launch (not in DRY_RUN=1)

# Experiment
project_name=trustrl
exp_name=trapo_qwen2.5_math_1.5b
model_id=${HOME}/models/Qwen2.5-Math-1.5B-16k
train_set=openr1_46k

# Algorithm: TrSFT boundary alpha and weight on expert tokens, vanilla RL on the model's own tokens
alpha=0.1
sft_coef=1.0
rl_loss_mode=vanilla
loss_agg_mode=seq-mean-token-sum-norm
entropy_coeff=0.001
micro_group_preset=${MICRO_GROUP_PRESET:-official_code}

# Batch: B prompts x G = 8 = 4 + 2 + 1 + 1 trajectories, one optimizer step per rollout batch (official)
train_prompt_bsz=128
n_resp_per_prompt=8
train_prompt_mini_bsz=128
lr=1e-6
total_training_steps=500

# Lengths (official: 1024 / 8192)
max_prompt_length=1024
max_response_length=8192
temperature=1.0
val_temperature=0.6

# Cluster shape (env knobs; this model's defaults)
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
ROLLOUT_TP=${ROLLOUT_TP:-1}

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
trustrl_common_args

ALGO=(
  "algorithm.adv_estimator=trapo"
  "algorithm.trapo.norm_adv_by_std=False"
  "algorithm.use_kl_in_reward=False"
  "trapo.alpha=${alpha}"
  "trapo.sft_coef=${sft_coef}"
  "trapo.rl_loss_mode=${rl_loss_mode}"
  "trapo.loss_agg_mode=${loss_agg_mode}"
  "trapo.micro_group.enable=True"
  "trapo.micro_group.preset=${micro_group_preset}"
  "trapo.micro_group.sft_copies=one_per_prefix"
  "++actor_rollout_ref.rollout.agent.agent_loop_manager_class=trustrl.recipes.trapo.rollout.TrapoAgentLoopManager"
  "actor_rollout_ref.actor.entropy_coeff=${entropy_coeff}"
  "actor_rollout_ref.actor.use_kl_loss=False"
)

trustrl_launch trustrl.recipes.trapo.main "${COMMON[@]}" "${ALGO[@]}" "$@"
