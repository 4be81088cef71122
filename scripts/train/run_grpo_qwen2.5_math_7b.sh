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
trustrl_infra_args

RUN=(
  # algorithm: GRPO, token-level PPO clip, token-mean, no KL, no entropy bonus
  "algorithm.adv_estimator=grpo"
  "algorithm.norm_adv_by_std_in_grpo=True"
  "algorithm.use_kl_in_reward=False"
  "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla"
  "actor_rollout_ref.actor.clip_ratio_low=${clip_ratio_low}"
  "actor_rollout_ref.actor.clip_ratio_high=${clip_ratio_high}"
  "actor_rollout_ref.actor.loss_agg_mode=token-mean"
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
trustrl_launch verl.trainer.main_ppo "${RUN[@]}" "${INFRA[@]}" "$@"
