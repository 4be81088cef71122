#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# TRAPO ablation (arXiv:2512.17636 Table 2), row "GRPO": run_trapo_qwen2.5_math_7b.sh without micro-groups, so every
# trajectory is the model's own (no expert prefix, no SFT term). With TRAPO's loss this is Dr.GRPO with the TRAPO
# baseline (no std, seq-mean-token-sum-norm, entropy 0.001), the official exp_scripts/train_on_policy.sh setting, on
# the same data and budget as the TRAPO run.
set -euo pipefail  # the launch command is traced by trustrl_launch (not in DRY_RUN=1)

export EXP_NAME=${EXP_NAME:-trapo_ablation_grpo_qwen2.5_math_7b}

exec bash "$(dirname "${BASH_SOURCE[0]}")/run_trapo_qwen2.5_math_7b.sh" \
  trapo.micro_group.enable=False \
  "++actor_rollout_ref.rollout.agent.agent_loop_manager_class=null" \
  "$@"
