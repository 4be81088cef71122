#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# Submit one experiment script to a running Ray cluster (ray job submit), carrying this package in the runtime env.
#   RAY_ADDRESS=http://<head>:8265 NNODES=2 bash scripts/cluster/ray_submit.sh scripts/train/run_quatro_qwen2.5_math_7b.sh [overrides]
#   DRY_RUN=1 bash scripts/cluster/ray_submit.sh scripts/train/run_trapo_qwen2.5_math_7b.sh   # print, and dry-run the script
# Runtime env: working_dir = the repository (the job runs `bash <script>` there; data/, ckpts/, .venv, .git excluded),
# py_modules = a staged copy of the package as `trustrl/` (advantage, policy_loss, reward, recipes), and
# VERL_USE_EXTERNAL_MODULES=trustrl.recipes.plugin so `import verl` registers our estimators and losses in every Ray
# process even on nodes where trustrl is not pip-installed (verl's plugin entry point needs an install). The cluster
# needs verl 0.9.1 and its GPU extras installed on every node; nothing else is shipped.
set -xeuo pipefail

script=${1:?usage: ray_submit.sh scripts/train/<experiment>.sh [hydra overrides]}
shift

# Environment knobs
RAY_ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265}
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
PYTHON=${PYTHON:-python3}
DRY_RUN=${DRY_RUN:-0}
NO_WAIT=${NO_WAIT:-1}
STAGE_DIR=${STAGE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/trustrl_stage.XXXXXX")}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[[ -f "${root}/${script#"${root}/"}" ]] || { echo "no such script: ${script}" >&2; exit 2; }
script=${script#"${root}/"}

# the package as the import namespace `trustrl` (setup.py maps the four folders the same way)
mkdir -p "${STAGE_DIR}/trustrl"
for folder in advantage policy_loss reward recipes; do
  cp -r "${root}/${folder}" "${STAGE_DIR}/trustrl/"
done
find "${STAGE_DIR}/trustrl" -name __pycache__ -prune -exec rm -rf {} +

runtime_env=$(cat <<JSON
{
  "working_dir": "${root}",
  "excludes": ["/.git/", "/.venv/", "/data/", "/ckpts/", "/outputs/", "*.parquet", "__pycache__"],
  "py_modules": ["${STAGE_DIR}/trustrl"],
  "env_vars": {
    "VERL_USE_EXTERNAL_MODULES": "trustrl.recipes.plugin",
    "TORCH_NCCL_AVOID_RECORD_STREAMS": "1",
    "NNODES": "${NNODES}",
    "GPUS_PER_NODE": "${GPUS_PER_NODE}",
    "PYTHON": "python3"
  }
}
JSON
)
echo "${runtime_env}" > "${STAGE_DIR}/runtime_env.json"

submit=(ray job submit --address="${RAY_ADDRESS}" --runtime-env="${STAGE_DIR}/runtime_env.json")
[[ "${NO_WAIT}" == 1 ]] && submit+=(--no-wait)
submit+=(-- bash "${script}" "$@")

if [[ "${DRY_RUN}" == 1 ]]; then
  echo "[ray_submit] would run: ${submit[*]}"
  # the experiment's own dry run, with the cluster shape the job will see
  NNODES=${NNODES} GPUS_PER_NODE=${GPUS_PER_NODE} DRY_RUN=1 PYTHON=${PYTHON} bash "${root}/${script}" "$@"
else
  "${submit[@]}"
  echo "[ray_submit] follow with: ray job logs --address=${RAY_ADDRESS} --follow <submission id>"
fi
