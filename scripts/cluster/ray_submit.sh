#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# Submit one experiment script to a running Ray cluster (ray job submit), carrying this package in the runtime env.
#   RAY_ADDRESS=http://<head>:8265 NNODES=2 DATA_DIR=/shared/data CKPTS_ROOT=/shared/ckpts \
#     bash scripts/cluster/ray_submit.sh scripts/train/run_quatro_qwen2.5_math_7b.sh [overrides]
#   DRY_RUN=1 bash scripts/cluster/ray_submit.sh scripts/train/run_trapo_qwen2.5_math_7b.sh   # print, and dry-run the script
# Paths. The job runs `bash <script>` in Ray's unpacked copy of the repository (deleted with the job; data/, ckpts/
# and *.parquet are not uploaded), so every path is the submitting machine's, made absolute here and forwarded in
# env_vars: DATA_DIR and CKPTS_ROOT always (default <repo>/data and <repo>/ckpts), and MODEL_PATH, TRAIN_FILE,
# VAL_FILE, CKPTS_DIR and the other knobs of scripts/train/common.sh when set. They must be on storage that every
# node mounts at the same path: before training, the job's entry point checks on every node that the data, the
# model folder and the checkpoint folder are there (trustrl.recipes.resources) and stops naming what is missing.
# Runtime env: py_modules = a staged copy of the package as `trustrl/` (advantage, policy_loss, reward, recipes;
# removed when this script exits, after ray uploaded it), VERL_USE_EXTERNAL_MODULES=trustrl.recipes.plugin so
# `import verl` registers our estimators and losses in every Ray process even where trustrl is not pip-installed.
# The cluster needs verl 0.9.1 and its GPU extras on every node; nothing else is shipped. Secrets are not forwarded:
# with LOGGER=[console,file,wandb], set WANDB_API_KEY in the nodes' environment.
set -euo pipefail

script=${1:?usage: ray_submit.sh scripts/train/<experiment>.sh [hydra overrides]}
shift

# Environment knobs
RAY_ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265}
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
PYTHON=${PYTHON:-python3}
DRY_RUN=${DRY_RUN:-0}
NO_WAIT=${NO_WAIT:-1}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[[ -f "${root}/${script#"${root}/"}" ]] || { echo "no such script: ${script}" >&2; exit 2; }
script=${script#"${root}/"}
DATA_DIR=${DATA_DIR:-${root}/data}
CKPTS_ROOT=${CKPTS_ROOT:-${root}/ckpts}
export DATA_DIR CKPTS_ROOT NNODES GPUS_PER_NODE
# absolute here, so the dry run below shows the paths the job gets (a URL such as hdfs://... stays as it is)
for knob in DATA_DIR CKPTS_ROOT CKPTS_DIR TRAIN_FILE; do
  if [[ -n "${!knob:-}" && "${!knob}" != *://* ]]; then
    export "${knob}=$(realpath -m "${!knob}")"
  fi
done

# the staged package: a fresh temp folder removed on exit, unless STAGE_DIR names one to keep
if [[ -n "${STAGE_DIR:-}" ]]; then
  mkdir -p "${STAGE_DIR}"
else
  STAGE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/trustrl_stage.XXXXXX")
  trap 'rm -rf "${STAGE_DIR}"' EXIT
fi
mkdir -p "${STAGE_DIR}/trustrl"
for folder in advantage policy_loss reward recipes; do
  cp -r "${root}/${folder}" "${STAGE_DIR}/trustrl/"
done
find "${STAGE_DIR}/trustrl" -name __pycache__ -prune -exec rm -rf {} +

# env_vars: the path and launch knobs of common.sh that are set here (paths made absolute), and ours
forwarded="DATA_DIR CKPTS_ROOT NNODES GPUS_PER_NODE MODEL_PATH TRAIN_FILE VAL_FILE VAL_BENCHMARKS CKPTS_DIR EXP_NAME
  ENGINE MEGATRON_TP MEGATRON_PP ROLLOUT_NAME ROLLOUT_TP GPU_MEM_UTIL SP_SIZE OFFLOAD REWARD_WORKERS LOGGER TEST_FREQ
  SAVE_FREQ MAX_CKPTS RESUME_MODE CHECK_PATHS MICRO_GROUP_PRESET ALGOS SWEEP_VALUES QUATRO_OVERRIDES GSPO_OVERRIDES
  VERL_FILE_LOGGER_PATH"
# shellcheck disable=SC2086  # word splitting of the name list is intended
FORWARDED="${forwarded}" ROOT="${root}" STAGE="${STAGE_DIR}" "${PYTHON}" - ${forwarded} > "${STAGE_DIR}/runtime_env.json" <<'PY'
import json, os, sys

# knobs that hold paths: absolute on the submitting machine (a hub id such as Qwen/Qwen2.5-Math-7B stays as it is)
PATHS = {"DATA_DIR", "CKPTS_ROOT", "CKPTS_DIR", "TRAIN_FILE", "VERL_FILE_LOGGER_PATH"}

def absolute(value):
    return value if "://" in value else os.path.abspath(os.path.expanduser(value))

env = {}
for name in sys.argv[1:]:
    if name not in os.environ:
        continue
    value = os.environ[name]
    if name in PATHS:
        value = absolute(value)
    elif name == "MODEL_PATH" and (value.startswith(("/", ".", "~")) or os.path.exists(value)):
        value = absolute(value)
    elif name == "VAL_FILE":
        items = value.strip("[]").split(",")
        value = "[" + ",".join(absolute(v) for v in items if v) + "]" if value.startswith("[") else absolute(value)
    env[name] = value
env.update(VERL_USE_EXTERNAL_MODULES="trustrl.recipes.plugin", TORCH_NCCL_AVOID_RECORD_STREAMS="1", PYTHON="python3")
runtime_env = {
    "working_dir": os.environ["ROOT"],
    "excludes": ["/.git/", "/.venv/", "/data/", "/ckpts/", "/outputs/", "*.parquet", "__pycache__"],
    "py_modules": [os.path.join(os.environ["STAGE"], "trustrl")],
    "env_vars": env,
}
print(json.dumps(runtime_env, indent=2))
PY

submit=(ray job submit --address="${RAY_ADDRESS}" --runtime-env="${STAGE_DIR}/runtime_env.json")
[[ "${NO_WAIT}" == 1 ]] && submit+=(--no-wait)
submit+=(-- bash "${script}" "$@")

echo "[ray_submit] runtime env (paths as the job sees them; on storage every node mounts):"
cat "${STAGE_DIR}/runtime_env.json"
if [[ "${DRY_RUN}" == 1 ]]; then
  echo "[ray_submit] would run: ${submit[*]}"
  # the experiment's own dry run, with the forwarded knobs and the cluster shape the job will see
  DRY_RUN=1 PYTHON=${PYTHON} bash "${root}/${script}" "$@"
else
  set -x
  "${submit[@]}"
  { set +x; } 2>/dev/null
  echo "[ray_submit] follow with: ray job logs --address=${RAY_ADDRESS} --follow <submission id>"
fi
