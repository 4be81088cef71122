# shellcheck shell=bash disable=SC2154  # the lower-case constants are set by the sourcing script
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
#
# Shared infrastructure of scripts/train/*.sh, sourced after a script has set its lower-case constants.
# It holds what places and runs a job but does not define the experiment: the UPPER-CASE environment knobs (paths,
# cluster shape, logging and checkpoints, performance), `trustrl_infra_args` (the override array INFRA built from
# them) and the launch helpers: `trustrl_launch` starts the entry point, or with DRY_RUN=1 composes and validates the
# config on CPU (python -m trustrl.recipes.dry_run) without Ray or a GPU; `trustrl_sweep` and `trustrl_sweep_algo`
# run a sweep's points.
#
# Every override that defines the experiment is written in the experiment script itself, in one array right before
# its one trustrl_launch: the algorithm, the data keys (files, lengths, batch size, truncation, overlong filter), the
# model (path and flags), the actor's optimizer and mini-batches (lr, warmup, grad clip, mini-batch size, epochs),
# the rollout (name, n, temperature, top_p, val_kwargs), the reward function, total_training_steps and
# val_before_train. A script passes INFRA after them and its command-line overrides last (last one wins).
#
# Paths are the launching machine's: DATA_DIR, CKPTS_ROOT (and any path knob set) are absolute paths that
# scripts/cluster/ray_submit.sh forwards to the job, so a job never reads or writes Ray's per-job copy of the
# repository. The recipe entry points check the paths, the GPUs and (on a multi-node Ray cluster) that every node
# sees data, model and checkpoints before training (trustrl.recipes.resources); launches through stock
# verl.trainer.main_ppo get the same check from trustrl_launch.
#
# Constants a script must set before sourcing (set -u catches a missing one):
#   project_name exp_name model_id train_set (the defaults of the run name, MODEL_PATH, TRAIN_FILE, CKPTS_DIR)
# and before calling trustrl_infra_args: max_prompt_length max_response_length (the dynamic batches' token budgets).
# Variant scripts (Megatron, ablations) re-run an experiment script with EXP_NAME, ENGINE or extra overrides set.

TRUSTRL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Launch (DRY_RUN=1: compose and validate on this machine with PYTHON, no Ray, no GPU; CHECK_PATHS=0: do not
# check that data and model exist here, for composing another machine's run)
PYTHON=${PYTHON:-python3}
DRY_RUN=${DRY_RUN:-0}
export CHECK_PATHS=${CHECK_PATHS:-1}

# Paths (data written by scripts/data/prepare.py: <DATA_DIR>/train/<set>.parquet, <DATA_DIR>/eval/<bench>.parquet)
DATA_DIR=${DATA_DIR:-${TRUSTRL_ROOT}/data}
MODEL_PATH=${MODEL_PATH:-${model_id}}
TRAIN_FILE=${TRAIN_FILE:-${DATA_DIR}/train/${train_set}.parquet}
# validation set during training: the six benchmarks (recipes/eval/README.md)
VAL_BENCHMARKS=${VAL_BENCHMARKS:-aime24 aime25 amc83 math500 minerva olympiadbench}
if [[ -z "${VAL_FILE:-}" ]]; then
  VAL_FILE="["
  for bench in ${VAL_BENCHMARKS}; do VAL_FILE+="${DATA_DIR}/eval/${bench}.parquet,"; done
  VAL_FILE="${VAL_FILE%,}]"
fi
# run name (W&B run and checkpoint folder): the script's exp_name unless a variant script renames it
EXP_NAME=${EXP_NAME:-${exp_name}}
CKPTS_ROOT=${CKPTS_ROOT:-${TRUSTRL_ROOT}/ckpts}
CKPTS_DIR=${CKPTS_DIR:-${CKPTS_ROOT}/${project_name}/${EXP_NAME}}

# Cluster shape (trainer.nnodes x trainer.n_gpus_per_node is the whole pool; SLURM/Ray scripts export these)
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}

# Rollout engine: the scripts write it as actor_rollout_ref.rollout.name=${ROLLOUT_NAME}
ROLLOUT_NAME=${ROLLOUT_NAME:-vllm}

# Performance (no effect on the objective); ENGINE=megatron: verl's Megatron engine with MEGATRON_TP x MEGATRON_PP
ENGINE=${ENGINE:-fsdp}
MEGATRON_TP=${MEGATRON_TP:-2}
MEGATRON_PP=${MEGATRON_PP:-1}
ROLLOUT_TP=${ROLLOUT_TP:-2}
GPU_MEM_UTIL=${GPU_MEM_UTIL:-0.7}
SP_SIZE=${SP_SIZE:-1}
OFFLOAD=${OFFLOAD:-False}
REWARD_WORKERS=${REWARD_WORKERS:-8}

# Logging and checkpoints. LOGGER: console + verl's file logger (one JSON line per step, written next to the
# checkpoints as metrics_<UTC time>.jsonl, one file per launch; python -m trustrl.recipes.curves <CKPTS_DIR> draws
# them); W&B is opt-in: LOGGER=[console,file,wandb] with WANDB_API_KEY set where the job runs.
# MAX_CKPTS: checkpoints kept (a 7B actor + optimizer checkpoint is about 100 GB; 0 or null keeps all).
LOGGER=${LOGGER:-[console,file]}
TEST_FREQ=${TEST_FREQ:-25}
SAVE_FREQ=${SAVE_FREQ:-50}
MAX_CKPTS=${MAX_CKPTS:-2}
RESUME_MODE=${RESUME_MODE:-auto}

# Fills the global array INFRA with the overrides that place and run the job without changing the objective:
# cluster shape, logging and checkpoints, and the performance knobs (dynamic-batch token budgets, rollout tensor
# parallelism and memory, reward workers, the ENGINE block: FSDP2 or Megatron sharding, offload, sequence parallel).
trustrl_infra_args() {
  # token budgets of the dynamic batches: 2x (actor) and 4x (log-prob passes) one full sequence per GPU
  local actor_max_tokens=$(( (max_prompt_length + max_response_length) * 2 ))
  local infer_max_tokens=$(( (max_prompt_length + max_response_length) * 4 ))
  INFRA=(
    # cluster shape
    "trainer.nnodes=${NNODES}"
    "trainer.n_gpus_per_node=${GPUS_PER_NODE}"
    # logging and checkpoints
    "trainer.logger=${LOGGER}"
    "trainer.project_name=${project_name}"
    "trainer.experiment_name=${EXP_NAME}"
    "trainer.test_freq=${TEST_FREQ}"
    "trainer.save_freq=${SAVE_FREQ}"
    "trainer.resume_mode=${RESUME_MODE}"
    "trainer.max_actor_ckpt_to_keep=${MAX_CKPTS}"
    "trainer.max_critic_ckpt_to_keep=${MAX_CKPTS}"
    "trainer.default_local_dir=${CKPTS_DIR}"
    # dynamic micro-batches (actor update, rollout and reference log-prob passes)
    "actor_rollout_ref.actor.use_dynamic_bsz=True"
    "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=${actor_max_tokens}"
    "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=True"
    "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=${infer_max_tokens}"
    "actor_rollout_ref.ref.log_prob_use_dynamic_bsz=True"
    "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=${infer_max_tokens}"
    # rollout engine sharding and memory, reward workers
    "actor_rollout_ref.rollout.tensor_model_parallel_size=${ROLLOUT_TP}"
    "actor_rollout_ref.rollout.gpu_memory_utilization=${GPU_MEM_UTIL}"
    "reward.num_workers=${REWARD_WORKERS}"
  )
  case "${ENGINE}" in
    fsdp)
      INFRA+=(
        "actor_rollout_ref.actor.strategy=fsdp2"
        "actor_rollout_ref.ref.strategy=fsdp2"
        "actor_rollout_ref.actor.ulysses_sequence_parallel_size=${SP_SIZE}"
        "actor_rollout_ref.actor.fsdp_config.param_offload=${OFFLOAD}"
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload=${OFFLOAD}"
        "actor_rollout_ref.ref.fsdp_config.param_offload=${OFFLOAD}"
      )
      ;;
    megatron)
      # verl's Megatron engine (model_engine=megatron; HF weights through mbridge)
      INFRA+=(
        "model_engine=megatron"
        "actor_rollout_ref.actor.megatron.tensor_model_parallel_size=${MEGATRON_TP}"
        "actor_rollout_ref.actor.megatron.pipeline_model_parallel_size=${MEGATRON_PP}"
        "actor_rollout_ref.actor.megatron.param_offload=${OFFLOAD}"
        "actor_rollout_ref.actor.megatron.optimizer_offload=${OFFLOAD}"
        "actor_rollout_ref.ref.megatron.tensor_model_parallel_size=${MEGATRON_TP}"
        "actor_rollout_ref.ref.megatron.pipeline_model_parallel_size=${MEGATRON_PP}"
        "actor_rollout_ref.ref.megatron.param_offload=${OFFLOAD}"
      )
      ;;
    *)
      echo "ENGINE must be fsdp or megatron, got '${ENGINE}'" >&2
      return 2
      ;;
  esac
}

# trustrl_launch <entry module> <overrides...>: train, or with DRY_RUN=1 compose + validate on CPU and print.
# With TRUSTRL_DRY_RUN_RECORD=<dir> (set by `python -m trustrl.recipes.dry_run --scripts`) the dry run only records
# the argv, NUL-separated, to <dir>/launch_<n>; that one process then validates every recorded launch.
# A real launch writes verl's file log to <checkpoint folder>/metrics_<UTC time>.jsonl (the last
# trainer.default_local_dir= of the overrides) unless VERL_FILE_LOGGER_PATH is set, and traces the command (set -x).
trustrl_launch() {
  local entry=$1
  shift
  if [[ "${DRY_RUN}" == 1 ]]; then
    if [[ -n "${TRUSTRL_DRY_RUN_RECORD:-}" ]]; then
      local n
      n=$(find "${TRUSTRL_DRY_RUN_RECORD}" -maxdepth 1 -name 'launch_*' | wc -l)
      printf '%s\0' "${entry}" "$@" > "${TRUSTRL_DRY_RUN_RECORD}/launch_${n}"
    else
      "${PYTHON}" -m trustrl.recipes.dry_run --entry "${entry}" "$@"
    fi
    return
  fi
  local arg ckpt_dir=${CKPTS_DIR}
  for arg in "$@"; do
    [[ "${arg}" == trainer.default_local_dir=* ]] && ckpt_dir=${arg#trainer.default_local_dir=}
  done
  mkdir -p "${ckpt_dir}"
  local log_path=${VERL_FILE_LOGGER_PATH:-${ckpt_dir}/metrics_$(date -u +%Y%m%dT%H%M%S).jsonl}
  case "${entry}" in
    # the recipe entry points run these checks in-process (trustrl.recipes.runner.run_recipe)
    trustrl.recipes.*) ;;
    *) "${PYTHON}" -m trustrl.recipes.resources --entry "${entry}" "$@" ;;
  esac
  set -x
  VERL_FILE_LOGGER_PATH=${log_path} "${PYTHON}" -m "${entry}" "$@"
  { set +x; } 2>/dev/null
}

# trustrl_sweep <function> [hint]: run a sweep's launches (the function calls trustrl_launch once per point) after
# validating every point first, in one Python process: a bad override fails before the first run, not after hours.
trustrl_sweep() {
  local points=$1 hint=${2:-}
  if [[ "${DRY_RUN}" == 1 ]]; then
    "${points}"
    return
  fi
  local record
  record=$(mktemp -d "${TMPDIR:-/tmp}/trustrl_sweep.XXXXXX")
  if ! (DRY_RUN=1 TRUSTRL_DRY_RUN_RECORD=${record} "${points}" \
        && "${PYTHON}" -m trustrl.recipes.resources --recorded "${record}"); then
    rm -rf "${record}"
    echo "[sweep] a point failed validation: nothing launched. ${hint}" >&2
    return 1
  fi
  rm -rf "${record}"
  "${points}"
}

# trustrl_sweep_algo <quatro|gspo>: for a sweep of QUATRO against GSPO, set ENTRY (QUATRO's recipe entry point or stock
# verl), ALGO (the calling script's QUATRO or GSPO override array) and OWN (that algorithm's own override channel,
# QUATRO_OVERRIDES or GSPO_OVERRIDES, so an algorithm-specific key never reaches the other algorithm's points).
trustrl_sweep_algo() {
  # shellcheck disable=SC2034  # ENTRY, ALGO and OWN are the caller's: read by the sweep script's point loop
  case "$1" in
    quatro) ENTRY=trustrl.recipes.quatro.main; ALGO=("${QUATRO[@]}"); read -ra OWN <<< "${QUATRO_OVERRIDES:-}" ;;
    gspo) ENTRY=verl.trainer.main_ppo; ALGO=("${GSPO[@]}"); read -ra OWN <<< "${GSPO_OVERRIDES:-}" ;;
    *) echo "ALGOS takes quatro and gspo, got '$1'" >&2; exit 2 ;;
  esac
}
