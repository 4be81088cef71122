#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# QUATRO robustness study, policy staleness: K = 1, 2, 4, 8 optimizer steps (mini-batches) per rollout batch, QUATRO
# against GSPO, on Qwen2.5-Math-1.5B and DAPO-Math-17k (run_quatro_qwen2.5_math_1.5b.sh otherwise). K = B / mini-batch;
# larger K = later mini-batches further off-policy. The points run one after another (8 runs by default);
# ALGOS and SWEEP_VALUES pick a subset, e.g. one point per cluster job:
#   ALGOS=quatro SWEEP_VALUES=8 bash scripts/train/run_quatro_staleness_sweep_qwen2.5_math_1.5b.sh
# Extra hydra overrides on the command line go to every point; QUATRO_OVERRIDES and GSPO_OVERRIDES (space-separated)
# go to that algorithm's points only. Every point is validated before the first one starts:
#   QUATRO_OVERRIDES="algorithm.quatro.delta=0.1" bash scripts/train/run_quatro_staleness_sweep_qwen2.5_math_1.5b.sh
set -euo pipefail  # the launch command is traced by trustrl_launch (not in DRY_RUN=1)

# Experiment
project_name=trustrl
exp_name=quatro_staleness_sweep_qwen2.5_math_1.5b
model_id=Qwen/Qwen2.5-Math-1.5B
train_set=dapo17k
mini_batches_per_rollout="1 2 4 8"

# Algorithms: QUATRO's recipe defaults; GSPO's sequence-ratio clip (run_gspo_qwen2.5_math_7b.sh)
delta=0.05
kappa=0.1
gspo_clip_ratio_low=3e-4
gspo_clip_ratio_high=4e-4

# Batch (the mini-batch is set per point)
train_prompt_bsz=128
n_resp_per_prompt=8
train_prompt_mini_bsz=${train_prompt_bsz}
lr=1e-6
total_training_steps=500
max_prompt_length=1024
max_response_length=3072
temperature=1.0
val_temperature=0.6

# Sweep selection and cluster shape (env knobs)
ALGOS=${ALGOS:-quatro gspo}
QUATRO_OVERRIDES=${QUATRO_OVERRIDES:-}
GSPO_OVERRIDES=${GSPO_OVERRIDES:-}
SWEEP_VALUES=${SWEEP_VALUES:-${mini_batches_per_rollout}}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
ROLLOUT_TP=${ROLLOUT_TP:-1}

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
trustrl_infra_args

# Every point's experiment (the algorithm's block, QUATRO or GSPO, follows); the point sets its mini-batch (B / K)
# and run name in its launch, after these (last one wins)
RUN=(
  # both algorithms: no reference KL, no entropy bonus
  "algorithm.use_kl_in_reward=False"
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
  # actor: one epoch; the mini-batch, B / K prompts per optimizer step, set per point
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
QUATRO=(
  "algorithm.adv_estimator=quatro"
  "algorithm.quatro.delta=${delta}"
  "algorithm.quatro.kappa=${kappa}"
  "actor_rollout_ref.actor.policy_loss.loss_mode=quatro"
  "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean"
)
GSPO=(
  "algorithm.adv_estimator=grpo"
  "actor_rollout_ref.actor.policy_loss.loss_mode=gspo"
  "actor_rollout_ref.actor.clip_ratio_low=${gspo_clip_ratio_low}"
  "actor_rollout_ref.actor.clip_ratio_high=${gspo_clip_ratio_high}"
  "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean"
)

# one launch per point; the extra overrides ("$@") reach every point
sweep_points() {
  for algo in ${ALGOS}; do
    trustrl_sweep_algo "${algo}"
    for k in ${SWEEP_VALUES}; do
      mini_bsz=$((train_prompt_bsz / k))  # B / K prompts per optimizer step
      point=${EXP_NAME}_${algo}_k${k}
      trustrl_launch "${ENTRY}" "${RUN[@]}" "${ALGO[@]}" "${INFRA[@]}" \
        "actor_rollout_ref.actor.ppo_mini_batch_size=${mini_bsz}" \
        "trainer.experiment_name=${point}" \
        "trainer.default_local_dir=${CKPTS_DIR}/${point}" \
        "${OWN[@]}" "${EXTRA[@]}"
    done
  done
}

EXTRA=("$@")
trustrl_sweep sweep_points "Overrides for one algorithm go in QUATRO_OVERRIDES or GSPO_OVERRIDES."
