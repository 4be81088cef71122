#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# QUATRO on Qwen2.5-Math-7B, DAPO-Math-17k, one node of 8 GPUs (FSDP2 + vLLM).
# The paper's training setup is not public: every value below is a guess of the reconstruction
# (recipes/quatro/README.md), shared with the GRPO/GSPO/DAPO baselines so the comparison is on the same data and budget.
#   DRY_RUN=1 bash scripts/train/run_quatro_qwen2.5_math_7b.sh    # compose + validate on CPU, print the overrides
set -euo pipefail  # the launch command is traced by trustrl_launch (not in DRY_RUN=1)

# Experiment
project_name=trustrl
exp_name=quatro_qwen2.5_math_7b
model_id=Qwen/Qwen2.5-Math-7B
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

# Lengths: Qwen2.5-Math-7B has a 4096-token context
max_prompt_length=1024
max_response_length=3072
temperature=1.0
val_temperature=0.6

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
trustrl_infra_args

RUN=(
  # algorithm: per-prompt KL trust region (exact dual), no reference KL, no entropy bonus
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
  # data: verl parquet from scripts/data/prepare.py (prompts as chat lists); over-long prompts are dropped
  "data.train_files=${TRAIN_FILE}"
  "data.val_files=${VAL_FILE}"
  "data.max_prompt_length=${max_prompt_length}"
  "data.max_response_length=${max_response_length}"
  "data.train_batch_size=${train_prompt_bsz}"
  "data.filter_overlong_prompts=True"
  "data.truncation=error"
  # model
  "actor_rollout_ref.model.path=${MODEL_PATH}"
  "actor_rollout_ref.model.use_remove_padding=True"
  "actor_rollout_ref.model.enable_gradient_checkpointing=True"
  # actor: K = train_prompt_bsz / train_prompt_mini_bsz optimizer steps per rollout batch, one epoch
  "actor_rollout_ref.actor.optim.lr=${lr}"
  "actor_rollout_ref.actor.optim.lr_warmup_steps=0"
  "actor_rollout_ref.actor.optim.clip_grad=1.0"
  "actor_rollout_ref.actor.ppo_mini_batch_size=${train_prompt_mini_bsz}"
  "actor_rollout_ref.actor.ppo_epochs=1"
  # rollout: G samples per prompt; validation: one sample per problem at val_temperature
  "actor_rollout_ref.rollout.name=${ROLLOUT_NAME}"
  "actor_rollout_ref.rollout.n=${n_resp_per_prompt}"
  "actor_rollout_ref.rollout.temperature=${temperature}"
  "actor_rollout_ref.rollout.top_p=1.0"
  "actor_rollout_ref.rollout.val_kwargs.do_sample=True"
  "actor_rollout_ref.rollout.val_kwargs.temperature=${val_temperature}"
  "actor_rollout_ref.rollout.val_kwargs.top_p=1.0"
  "actor_rollout_ref.rollout.val_kwargs.n=1"
  # reward: strict math-verify on the last \boxed{} (trustrl.reward.math_reward)
  "reward.custom_reward_function.path=pkg://trustrl.reward.math_reward"
  "reward.custom_reward_function.name=compute_score"
  # trainer: training length, one validation pass before the first step
  "trainer.total_training_steps=${total_training_steps}"
  "trainer.val_before_train=True"
)

# RUN, then INFRA (common.sh: cluster shape, logging, checkpoints, performance), then the command line (last wins)
trustrl_launch trustrl.recipes.quatro.main "${RUN[@]}" "${INFRA[@]}" "$@"
