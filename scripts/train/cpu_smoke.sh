#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# The launch scripts' overrides, run for real on CPU: the experiment block of run_<algo>_*.sh (here with the tiny
# task's sizes), an algorithm block as in those scripts, common.sh's infrastructure array, then the CPU tier's deltas
# (trustrl.recipes.cpu: CPU platform, verl's vLLM rollout on vLLM's CPU build, one trainer rank), which come last and
# win over the GPU values they replace, on a tiny random model and the copy-digit task (trustrl.recipes.cpu.task),
# for two steps of verl's live trainer.
#   bash scripts/train/cpu_smoke.sh                 # QUATRO through its recipe entry point, about a minute or two
#   ALGO=trapo bash scripts/train/cpu_smoke.sh      # or grpo, trapo (unguided + guided rollout worker off)
# Metrics: one JSON line per step in ${WORK_DIR}/metrics.jsonl (verl's file logger).
set -xeuo pipefail

# Experiment
algo=${ALGO:-quatro}
project_name=trustrl_cpu
exp_name=cpu_smoke_${algo}
model_id=unused
train_set=unused
train_prompt_bsz=8
n_resp_per_prompt=4
# K = 2 optimizer steps per rollout batch, so QUATRO's trust region binds
train_prompt_mini_bsz=4
lr=2e-3
total_training_steps=2
max_prompt_length=16
max_response_length=16
temperature=1.0
val_temperature=1.0

# Paths: the tiny task is built under WORK_DIR (skipped by DRY_RUN=1, which only composes)
PYTHON=${PYTHON:-python3}
WORK_DIR=$(realpath -m "${WORK_DIR:-${TMPDIR:-/tmp}/trustrl_cpu_smoke}")
# absolute, without resolving symlinks (a venv python is a symlink to the base interpreter)
[[ "${PYTHON}" == */* ]] && PYTHON=$(realpath -s "${PYTHON}")
MODEL_PATH=${WORK_DIR}/task/model
TRAIN_FILE=${WORK_DIR}/task/data/train.parquet
VAL_FILE=${WORK_DIR}/task/data/val.parquet
CKPTS_DIR=${WORK_DIR}/checkpoints
LOGGER="[console,file]"
GPUS_PER_NODE=1

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
trustrl_infra_args

# the experiment block of the GPU scripts (run_quatro_qwen2.5_math_7b.sh), with the task's sizes
RUN=(
  # data: the task's parquet files (built below), in the layout of scripts/data/prepare.py
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

case "${algo}" in
  quatro)
    entry=trustrl.recipes.quatro.main
    ALGO_ARGS=(
      "algorithm.adv_estimator=quatro"
      "algorithm.quatro.delta=0.05"
      "actor_rollout_ref.actor.policy_loss.loss_mode=quatro"
      "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean"
    )
    ;;
  trapo)
    entry=trustrl.recipes.trapo.main
    ALGO_ARGS=("algorithm.adv_estimator=trapo" "trapo.alpha=0.1")
    ;;
  grpo)
    entry=verl.trainer.main_ppo
    ALGO_ARGS=("algorithm.adv_estimator=grpo" "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla")
    ;;
  *)
    echo "ALGO must be quatro, trapo or grpo, got '${algo}'" >&2
    exit 2
    ;;
esac

# CPU tier deltas (as trustrl.recipes.cpu.launch.overrides): static micro-batches, vLLM's CPU build, fake GPU for Ray
micro=$((train_prompt_mini_bsz * n_resp_per_prompt))  # one micro-batch = one mini-batch of rows
CPU=(
  "algorithm.use_kl_in_reward=False"
  "actor_rollout_ref.actor.use_kl_loss=False"
  "actor_rollout_ref.actor.entropy_coeff=0"
  "data.dataloader_num_workers=0"
  "+actor_rollout_ref.model.override_config.attn_implementation=sdpa"
  "actor_rollout_ref.model.use_remove_padding=False"
  "actor_rollout_ref.model.enable_gradient_checkpointing=False"
  "actor_rollout_ref.actor.use_torch_compile=False"
  "actor_rollout_ref.actor.use_dynamic_bsz=False"
  "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=${micro}"
  "actor_rollout_ref.rollout.name=vllm"
  "+actor_rollout_ref.rollout.enable_sleep_mode=False"
  "actor_rollout_ref.rollout.free_cache_engine=False"
  "actor_rollout_ref.rollout.dtype=float32"
  "actor_rollout_ref.rollout.enforce_eager=True"
  "actor_rollout_ref.rollout.max_model_len=$((max_prompt_length + max_response_length))"
  "actor_rollout_ref.rollout.max_num_batched_tokens=1024"
  "actor_rollout_ref.rollout.max_num_seqs=32"
  "actor_rollout_ref.rollout.enable_prefix_caching=False"
  "actor_rollout_ref.rollout.checkpoint_engine.update_weights_bucket_megabytes=16"
  "actor_rollout_ref.rollout.tensor_model_parallel_size=1"
  "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=False"
  "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=${micro}"
  "actor_rollout_ref.rollout.agent.num_workers=1"
  "actor_rollout_ref.ref.log_prob_use_dynamic_bsz=False"
  "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=${micro}"
  "reward.custom_reward_function.path=pkg://trustrl.recipes.cpu.task"
  "reward.custom_reward_function.name=compute_score"
  "reward.num_workers=1"
  "trainer.device=cpu"
  "trainer.val_before_train=False"
  "trainer.test_freq=-1"
  "trainer.save_freq=-1"
  "ray_kwargs.ray_init.num_cpus=32"
  "+ray_kwargs.ray_init.num_gpus=1"
  "+ray_kwargs.ray_init.include_dashboard=False"
  "transfer_queue.backend.SimpleStorage.num_data_storage_units=1"
)

# CPU platform and the vLLM CPU subclasses (registered by trustrl's verl plugin), offline, metrics to a JSON-lines file
export VERL_PLATFORM=cpu HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled
export RAY_DISABLE_USAGE_STATS=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
export VERL_FILE_LOGGER_PATH=${WORK_DIR}/metrics.jsonl

if [[ "${DRY_RUN}" != 1 ]]; then
  mkdir -p "${WORK_DIR}"
  rm -f "${VERL_FILE_LOGGER_PATH}"
  "${PYTHON}" -c "import sys; from trustrl.recipes.cpu.task import build_task; build_task(sys.argv[1])" "${WORK_DIR}/task"
  # hydra writes its outputs/<date>/<time>/ folder into the working directory: keep it under WORK_DIR
  cd "${WORK_DIR}"
fi

# RUN, the algorithm, INFRA (common.sh), then the CPU deltas and the command line (last wins)
trustrl_launch "${entry}" "${RUN[@]}" "${ALGO_ARGS[@]}" "${INFRA[@]}" "${CPU[@]}" "$@"
