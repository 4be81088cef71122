#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# run_trapo_qwen2.5_math_7b.sh on verl's Megatron engine (model_engine=megatron, HF weights through mbridge):
# same experiment, actor and reference sharded MEGATRON_TP x MEGATRON_PP (default 2 x 1) instead of FSDP2.
# Needs verl's Megatron extra (pip install -e '.[megatron]').
set -euo pipefail  # the launch command is traced by trustrl_launch (not in DRY_RUN=1)

export EXP_NAME=${EXP_NAME:-trapo_qwen2.5_math_7b_megatron}
export ENGINE=megatron
export MEGATRON_TP=${MEGATRON_TP:-2}
export MEGATRON_PP=${MEGATRON_PP:-1}

exec bash "$(dirname "${BASH_SOURCE[0]}")/run_trapo_qwen2.5_math_7b.sh" "$@"
