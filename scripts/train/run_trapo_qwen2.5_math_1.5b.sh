#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# TRAPO on Qwen2.5-Math-1.5B: the cheap variant of run_trapo_qwen2.5_math_7b.sh (same algorithm, data and batch, 4 GPUs).
# The paper's main run (arXiv:2512.17636 Table 1) = the "+ TrSFT" row of the ablation (run_trapo_ablation_*.sh).
# TRAPO_PRESET as in run_trapo_qwen2.5_math_7b.sh (recipes/trapo/README.md, "Paper or official code"):
#   official_code (default): https://github.com/Su-my/TRAPO exp_scripts/train_trapo.sh: 8 prompts per step
#     (data.train_batch_size=8, the official DataLoader's batch), one optimizer step per step, lr 1e-6, micro-groups
#     official_code (ratios 0, 0.25, 0.5, 1.0; thresholds 2/4, 4/6, 7/7); the official code ran the 7B model only
#   paper: arXiv:2512.17636 as its setup is quoted: 128 prompts, lr 5e-6, micro-groups paper (0, 0.2, 0.5, 1.0;
#     0.5, 0.7, 0.9); one optimizer step per step assumed (not stated)
#   both: alpha 0.1, entropy bonus 0.001, no KL. MICRO_GROUP_PRESET overrides the micro-group rule alone.
# MODEL_PATH must hold a 16k-context copy of the model (config.json: max_position_embeddings=16384, rope_theta=40000,
# the 1.5B counterpart of LUFFY/TRAPO's 7B "16k-think" copy): 1024 + 8192 tokens do not fit the stock 4096 context
# (the launch and DRY_RUN=1 refuse such a model, trustrl.recipes.preflight).
# Data: python scripts/data/prepare.py openr1_46k --out-dir data/train --second-traces --drop-invalid
#   --max-trace-tokens 8191 --tokenizer "${MODEL_PATH}"
# (expert traces must fit the response budget: 8192 tokens = 8191 + EOS; any that reach training are cut and
# counted in rollout/trapo/trace_cut_share)
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

# Batch and optimizer: B prompts x G = 8 = 4 + 2 + 1 + 1 trajectories, one optimizer step per rollout batch
TRAPO_PRESET=${TRAPO_PRESET:-official_code}
case "${TRAPO_PRESET}" in
  official_code) train_prompt_bsz=8 train_prompt_mini_bsz=8 lr=1e-6 micro_group_preset=official_code ;;
  paper) train_prompt_bsz=128 train_prompt_mini_bsz=128 lr=5e-6 micro_group_preset=paper ;;
  *) echo "TRAPO_PRESET must be official_code or paper, got '${TRAPO_PRESET}'" >&2; exit 2 ;;
esac
micro_group_preset=${MICRO_GROUP_PRESET:-${micro_group_preset}}
n_resp_per_prompt=8
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
trustrl_infra_args

RUN=(
  # algorithm: TRAPO advantage (no std), TrSFT on expert prefixes, guided micro-groups (TRAPO's agent loop), no KL
  "algorithm.adv_estimator=trapo"
  "algorithm.trapo.norm_adv_by_std=False"
  "algorithm.use_kl_in_reward=False"
  "trapo.alpha=${alpha}"
  "trapo.sft_coef=${sft_coef}"
  "actor_rollout_ref.actor.policy_loss.loss_mode=${rl_loss_mode}"
  "actor_rollout_ref.actor.loss_agg_mode=${loss_agg_mode}"
  "trapo.micro_group.enable=True"
  "trapo.micro_group.preset=${micro_group_preset}"
  "trapo.micro_group.sft_copies=one_per_prefix"
  "++actor_rollout_ref.rollout.agent.agent_loop_manager_class=trustrl.recipes.trapo.rollout.TrapoAgentLoopManager"
  "actor_rollout_ref.actor.entropy_coeff=${entropy_coeff}"
  "actor_rollout_ref.actor.use_kl_loss=False"
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
trustrl_launch trustrl.recipes.trapo.main "${RUN[@]}" "${INFRA[@]}" "$@"
