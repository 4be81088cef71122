# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Evaluation: vLLM sampling, grading with the training reward, avg@n / pass@k / maj@k / unique-correct, reports.

See README.md in this folder. Importing this package does not import vLLM, torch or matplotlib.
"""

from .generate import PRESETS, SamplingPreset, generate, read_prompt_rows, require_vllm
from .metrics import (
    MAJ_TIE_RULE,
    UNIQUE_CORRECT,
    ProblemResult,
    average_metrics,
    benchmark_metrics,
    canonical_answer,
    maj_at_k,
    majority_vote,
    pass_at_k,
    pass_ks,
    unique_correct,
)
from .report import format_table, plot_pass_at_k, read_json, write_csv, write_json
from .scoring import (
    Generation,
    GenerationsError,
    build_report,
    read_generations,
    score_generations,
    write_generations,
)

__all__ = [
    "MAJ_TIE_RULE",
    "PRESETS",
    "UNIQUE_CORRECT",
    "Generation",
    "GenerationsError",
    "ProblemResult",
    "SamplingPreset",
    "average_metrics",
    "benchmark_metrics",
    "build_report",
    "canonical_answer",
    "format_table",
    "generate",
    "maj_at_k",
    "majority_vote",
    "pass_at_k",
    "pass_ks",
    "plot_pass_at_k",
    "read_generations",
    "read_json",
    "read_prompt_rows",
    "require_vllm",
    "score_generations",
    "unique_correct",
    "write_csv",
    "write_generations",
    "write_json",
]
