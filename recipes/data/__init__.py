# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Data preparation: training sets and math benchmarks to verl parquet (see README.md in this folder).

Importing this package is cheap: ``datasets``, ``math_verify`` and ``transformers`` load only when used.
"""

from .answers import e_notation_to_latex, extract_think, last_boxed, normalize_gold, problem_key, solution_gold
from .dedup import DedupReport, decontaminate, dedup, exclusion_keys
from .io import Records, SourceError, load_records, row_schema, write_parquet
from .openr1 import acceptable_traces, pick_trace
from .prepare import (
    DEFAULT_MAX_TRACE_TOKENS,
    DEFAULT_TRACE_TOKENIZER,
    PrepareOptions,
    PrepareSummary,
    TraceFilterReport,
    prepare,
    to_verl_row,
)
from .specs import (
    EVAL_SIX,
    SPECS,
    DatasetSpec,
    Problem,
    SchemaError,
    build_problems,
    get_spec,
    gold_value,
    iter_problems,
)
from .templates import DEFAULT_TEMPLATE, TEMPLATES, PromptTemplate, get_template
from .traces import OPENR1_220K, JoinReport, attach_second_traces
from .validate import DataValidationError, Failure, ValidationReport, reward_gold_check, validate

__all__ = [
    "DEFAULT_MAX_TRACE_TOKENS",
    "DEFAULT_TRACE_TOKENIZER",
    "TraceFilterReport",
    "acceptable_traces",
    "DEFAULT_TEMPLATE",
    "EVAL_SIX",
    "OPENR1_220K",
    "SPECS",
    "TEMPLATES",
    "DataValidationError",
    "DatasetSpec",
    "DedupReport",
    "Failure",
    "JoinReport",
    "PrepareOptions",
    "PrepareSummary",
    "Problem",
    "PromptTemplate",
    "Records",
    "SchemaError",
    "SourceError",
    "ValidationReport",
    "attach_second_traces",
    "build_problems",
    "decontaminate",
    "dedup",
    "e_notation_to_latex",
    "exclusion_keys",
    "extract_think",
    "get_spec",
    "get_template",
    "gold_value",
    "iter_problems",
    "last_boxed",
    "load_records",
    "reward_gold_check",
    "normalize_gold",
    "pick_trace",
    "prepare",
    "problem_key",
    "row_schema",
    "solution_gold",
    "to_verl_row",
    "validate",
    "write_parquet",
]
