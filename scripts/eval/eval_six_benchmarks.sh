#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# The six math benchmarks (AIME24, AIME25, AMC, MATH-500, Minerva, OlympiadBench) for one or more checkpoints,
# through the evaluation tool (scripts/eval/evaluate.py): sample with vLLM (its CPU build without a GPU), then grade
# all runs side by side. A checkpoint is a verl checkpoint folder (global_step_N or its actor/, FSDP or Megatron),
# merged once with verl's model merger into MERGE_CACHE when it holds no Hugging Face weights, or a HF folder/hub id.
#   bash scripts/eval/eval_six_benchmarks.sh ckpts/trustrl/quatro_qwen2.5_math_7b/global_step_500 \
#                                            ckpts/trustrl/gspo_qwen2.5_math_7b/global_step_500
#   NAMES="quatro gspo" PRESET=r1 bash scripts/eval/eval_six_benchmarks.sh <ckpt> <ckpt>
#   DRY_RUN=1 bash scripts/eval/eval_six_benchmarks.sh <ckpt>   # check checkpoints, data files and arguments, print
# Outputs: <OUT_DIR>/<name>/generations.jsonl per run, <OUT_DIR>/metrics.{json,csv} and pass_at_k.png for all.
# Data: python scripts/data/prepare.py eval --out-dir data/eval
set -euo pipefail

(( $# >= 1 )) || { echo "usage: eval_six_benchmarks.sh <checkpoint> [<checkpoint> ...]" >&2; exit 2; }

# Protocol: the LUFFY/TRAPO preset (avg@32 on AIME/AMC, one sample elsewhere, T = 0.6, 8192 tokens) by default
benchmarks="aime24 aime25 amc83 math500 minerva olympiadbench"

# Environment knobs
PYTHON=${PYTHON:-python3}
DRY_RUN=${DRY_RUN:-0}
PRESET=${PRESET:-luffy}
DATA_DIR=${DATA_DIR:-data/eval}
OUT_DIR=${OUT_DIR:-runs/eval}
TP=${TP:-1}
GPU_MEM_UTIL=${GPU_MEM_UTIL:-0.9}
SEED=${SEED:-0}
NAMES=${NAMES:-}
MERGE_CACHE=${MERGE_CACHE:-${HOME}/.cache/trustrl/merged}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
evaluate=("${PYTHON}" "${root}/scripts/eval/evaluate.py")

data=()
for bench in ${benchmarks}; do data+=("${DATA_DIR}/${bench}.parquet"); done

read -r -a names <<< "${NAMES}"
(( ${#names[@]} == 0 || ${#names[@]} == $# )) || { echo "NAMES needs one name per checkpoint" >&2; exit 2; }
generations=()
run_names=()
missing=0
i=0
for ckpt in "$@"; do
  # default run name: the experiment folder above global_step_N (ckpts/<project>/<exp>/global_step_N[/actor[/...]])
  name=${names[i]:-}
  if [[ -z "${name}" ]]; then
    step_dir=${ckpt%/}
    while [[ "${step_dir}" == */* && "${step_dir}" != / && "$(basename "${step_dir}")" != global_step_* ]]; do
      step_dir=$(dirname "${step_dir}")
    done
    if [[ "$(basename "${step_dir}")" == global_step_* ]]; then
      name=$(basename "$(dirname "${step_dir}")")
    else
      name=$(basename "${ckpt%/}")
    fi
  fi
  run_names+=("${name}")
  generations+=("${OUT_DIR}/${name}/generations.jsonl")
  generate=("${evaluate[@]}" generate --model "${ckpt}" --data "${data[@]}" --out "${OUT_DIR}/${name}/generations.jsonl"
            --preset "${PRESET}" --tensor-parallel-size "${TP}" --gpu-memory-utilization "${GPU_MEM_UTIL}" --seed "${SEED}"
            --merge-cache "${MERGE_CACHE}")
  if [[ "${DRY_RUN}" == 1 ]]; then
    echo "[eval] would run: ${generate[*]}"
    # the checkpoint folder (what would be merged, or used as is) and the data files, without vLLM
    "${generate[@]}" --dry-run || missing=1
  else
    echo "[eval] ${generate[*]}"
    "${generate[@]}"
  fi
  i=$((i + 1))
done

score=("${evaluate[@]}" score "${generations[@]}" --names "${run_names[@]}" --out-dir "${OUT_DIR}")
if [[ "${DRY_RUN}" == 1 ]]; then
  echo "[eval] would run: ${score[*]}"
  for f in "${data[@]}"; do [[ -f "${f}" ]] || { echo "[eval] missing benchmark file ${f}" >&2; missing=1; }; done
  # the tool's own argument parser accepts both command lines (no model, no GPU)
  "${PYTHON}" -c 'import runpy, sys
p = runpy.run_path(sys.argv[1])["build_parser"]()
n = sys.argv.index("--score")
p.parse_args(sys.argv[2:n]); p.parse_args(sys.argv[n + 1:])
print("[eval] evaluate.py accepts both command lines")' "${root}/scripts/eval/evaluate.py" "${generate[@]:2}" --score "${score[@]:2}"
  exit "${missing}"
fi
echo "[eval] ${score[*]}"
"${score[@]}"
