#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# TRAPO ablation (arXiv:2512.17636 Table 2), row "+ micro-group sampling": run_trapo_qwen2.5_math_7b.sh with the
# expert prefixes placed in the guided trajectories but never learned: no row gets the SFT term (sft_mask = 0), the
# prefix tokens are excluded from RL as always, and RL trains the continuations.
set -euo pipefail  # the launch command is traced by trustrl_launch (not in DRY_RUN=1)

export EXP_NAME=${EXP_NAME:-trapo_ablation_mg_only_qwen2.5_math_7b}

exec bash "$(dirname "${BASH_SOURCE[0]}")/run_trapo_qwen2.5_math_7b.sh" \
  trapo.micro_group.sft_copies=none \
  "$@"
