# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Reward of the long-response end-to-end run: the share of the response's characters that are the prompt's digit.

With every response sampled to 256 tokens (vLLM's ``ignore_eos``) almost every sample of the copy-digit task scores
the same 0.5 (the digit appears somewhere, the last box is not exactly it), so GRPO would get zero advantages and the
weights would not move. This score keeps a spread within each group at any length. Loaded by verl's reward worker
through ``reward.custom_reward_function.path``.
"""


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    if not solution_str:
        return 0.0
    return solution_str.count(ground_truth) / len(solution_str)
