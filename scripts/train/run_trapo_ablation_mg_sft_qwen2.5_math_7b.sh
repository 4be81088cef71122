#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# TRAPO ablation (arXiv:2512.17636 Table 2), row "+ micro-group + SFT loss" (the paper reports a collapse):
# run_trapo_qwen2.5_math_7b.sh with plain SFT instead of TrSFT on the expert prefixes. TrSFT's token weight is
# min(1, p / alpha); alpha = 1e-30 makes it 1 for every token with p >= 1e-30, i.e. the plain NLL gradient
# (alpha must lie in (0, 1]; p / alpha <= 1e30 stays finite in float32).
set -euo pipefail  # the launch command is traced by trustrl_launch (not in DRY_RUN=1)

export EXP_NAME=${EXP_NAME:-trapo_ablation_mg_sft_qwen2.5_math_7b}

exec bash "$(dirname "${BASH_SOURCE[0]}")/run_trapo_qwen2.5_math_7b.sh" \
  trapo.alpha=1e-30 \
  "$@"
