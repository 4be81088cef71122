# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The preparation pipeline: load -> build -> filter -> dedup -> decontaminate -> second traces -> validate -> write.

One verl row per problem (schema: recipes/data/README.md)::

    data_source   the dataset name (``aime24``, ``openr1_46k``, ...)
    prompt        the chat list of the prompt template
    ability       "math"
    reward_model  {"style": "rule", "ground_truth": <normalized gold>}
    extra_info    {"split": "train"|"test", "index": <row number>, "problem_id": "<dataset>/<source id>",
                   "raw_problem": <problem without template>, "expert_solutions": [<think content>, ...]}

``extra_info.expert_solutions`` is the field the TRAPO rollout reads: the DeepSeek-R1 reasoning only (text
between ``<think>`` and ``</think>``, tags excluded), one entry per trace, ``[]`` for sets without traces.
Benchmark rows are written once each (no x32 copies): sample ``n`` per row at generation time and group the
samples by ``problem_id`` for pass@k (recipes/eval/README.md).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

from .dedup import DedupReport, decontaminate, dedup, exclusion_keys
from .io import is_local, load_records, write_parquet
from .specs import DatasetSpec, Problem, get_spec, iter_problems
from .templates import DEFAULT_TEMPLATE, TEMPLATES, PromptTemplate
from .traces import OPENR1_220K, JoinReport, attach_second_traces
from .validate import (
    DataValidationError,
    GoldCheck,
    ValidationReport,
    apply_validation,
    duplicate_groups,
    reward_gold_check,
    validate,
)

# The response budget of the TRAPO launch scripts (scripts/train/run_trapo_*.sh: max_response_length=8192). The
# rollout feeds a full expert trace as a response of at most that many tokens, EOS included, so a trace may have
# 8191 tokens; a longer one would be cut mid-reasoning. The official runs used a set pre-filtered to 8,192 tokens.
DEFAULT_MAX_TRACE_TOKENS = 8191
# The policy tokenizer of those scripts (Qwen2.5-Math-1.5B and -7B share it); pass the model you train.
DEFAULT_TRACE_TOKENIZER = "Qwen/Qwen2.5-Math-7B"


@dataclass
class PrepareOptions:
    """Knobs of :func:`prepare`; every field has a command-line flag of the same name in scripts/data/prepare.py."""

    source: str | None = None
    """Hub id or local .json/.jsonl/.parquet file; default: the spec's hub id."""
    hub_config: str | None = None
    """Hub config name; default: the spec's."""
    hub_split: str | None = None
    """Hub split; default: the spec's."""
    template: PromptTemplate = TEMPLATES[DEFAULT_TEMPLATE]
    """Prompt template applied to every problem."""
    fields: dict[str, str] = field(default_factory=dict)
    """Field-name overrides, logical name -> (dotted) key in the source."""
    drop_invalid: bool = False
    """Drop rows that fail validation; otherwise any failure aborts without writing."""
    dedup: bool | None = None
    """Deduplicate on the problem text; default: yes for training sets, no for benchmarks."""
    levels: tuple[int, ...] | None = None
    """MATH levels to keep (math_train only); rows without a level are dropped when set."""
    exclude: tuple[str, ...] = ()
    """Files whose problems are removed from a training set (decontamination)."""
    second_traces: str | None = None
    """OpenR1-Math-220k hub id or file to take a second expert trace from (openr1_46k only)."""
    join_on: str = "auto"
    """How second traces are joined: 'uuid', 'problem' (normalized text) or 'auto'."""
    trace_correctness: str = "math_verify"
    """Which 220k correctness flag accepts a trace: 'math_verify' or 'any' (math-verify or the Llama judge)."""
    min_traces: int | None = None
    """Expert traces a row needs to be valid; default 1 for sets with traces, else 0."""
    max_trace_tokens: int | None = DEFAULT_MAX_TRACE_TOKENS
    """Expert traces (of every set with traces, and second-trace candidates) longer than this many tokens of
    ``tokenizer`` are removed and reported by id; None (``--max-trace-tokens 0``) turns the filter off."""
    tokenizer: str | None = None
    """Tokenizer for ``max_trace_tokens`` (path or hub id; default ``DEFAULT_TRACE_TOKENIZER``): the policy's."""
    limit: int | None = None
    """Read only the first ``limit`` source rows (smoke runs)."""
    gold_check: GoldCheck | None = reward_gold_check
    """Gold round trip through the reward (None skips it); see :func:`~.validate.reward_gold_check`."""
    progress: bool = True
    """Show tqdm progress bars."""


@dataclass
class PrepareSummary:
    dataset: str
    origin: str
    output: Path
    n_loaded: int
    n_written: int
    n_level_filtered: int = 0
    dedup: DedupReport | None = None
    n_duplicates_kept: int = 0
    duplicates_kept: list[list[str]] = field(default_factory=list)  # ids of each group of rows with one problem text
    traces: TraceFilterReport | None = None
    multi_part_golds: list[tuple[str, int]] = field(default_factory=list)  # (id, boxes joined) of solution golds
    decontaminated: list[str] = field(default_factory=list)
    join: JoinReport | None = None
    validation: ValidationReport | None = None
    failures_path: Path | None = None
    n_with_traces: dict[int, int] = field(default_factory=dict)

    def format(self) -> str:
        lines = [f"== {self.dataset} ({self.origin})", f"  loaded {self.n_loaded} rows"]
        if self.n_level_filtered:
            lines.append(f"  level filter dropped {self.n_level_filtered}")
        if self.dedup is not None:
            lines.append("  " + self.dedup.format().replace("\n", "\n  "))
        if self.n_duplicates_kept:
            groups = "; ".join(" = ".join(g) for g in self.duplicates_kept[:5])
            more = " ..." if len(self.duplicates_kept) > 5 else ""
            lines.append(
                f"  WARNING: {self.n_duplicates_kept} rows repeat an earlier problem text (kept): {groups}{more}"
            )
        if self.multi_part_golds:
            shown = ", ".join(f"{pid} ({n} boxes)" for pid, n in self.multi_part_golds[:5])
            more = " ..." if len(self.multi_part_golds) > 5 else ""
            lines.append(
                f"  {len(self.multi_part_golds)} golds are multi-part answers joined from several boxes: {shown}{more}"
            )
        if self.traces is not None:
            lines.append("  " + self.traces.format().replace("\n", "\n  "))
        if self.decontaminated:
            lines.append(f"  decontamination dropped {len(self.decontaminated)}: {', '.join(self.decontaminated[:5])}")
        if self.join is not None:
            lines.append("  " + self.join.format().replace("\n", "\n  "))
        if self.validation is not None:
            lines.append("  " + self.validation.format(limit=10).replace("\n", "\n  "))
        if self.n_with_traces:
            lines.append(f"  rows by number of expert traces: {dict(sorted(self.n_with_traces.items()))}")
        if self.failures_path:
            lines.append(f"  failures: {self.failures_path}")
        lines.append(f"  wrote {self.n_written} rows -> {self.output}")
        return "\n".join(lines)


def to_verl_row(p: Problem, spec: DatasetSpec, index: int, template: PromptTemplate) -> dict:
    """verl's parquet row for one validated problem (schema in the module docstring)."""
    return {
        "data_source": spec.name,
        "prompt": template.render(p.problem),
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": p.gold},
        "extra_info": {
            "split": "train" if spec.kind == "train" else "test",
            "index": index,
            "problem_id": p.problem_id,
            "raw_problem": p.problem,
            "expert_solutions": list(p.expert_solutions),
        },
    }


def _counted(problems, counts: dict, key: str):
    for p in problems:
        counts[key] += 1
        yield p


def _check_options(spec: DatasetSpec, opts: PrepareOptions):
    if opts.levels is not None and spec.name != "math_train":
        raise ValueError(f"--levels applies to math_train only, not {spec.name}")
    if opts.second_traces is not None and spec.name != "openr1_46k":
        raise ValueError(
            f"--second-traces applies to openr1_46k (its traces come from OpenR1-Math-220k), not {spec.name}"
        )
    if opts.exclude and spec.kind != "train":
        raise ValueError(f"--exclude decontaminates training sets; {spec.name} is a benchmark")
    if opts.max_trace_tokens is not None and opts.max_trace_tokens < 1:
        raise ValueError(f"max_trace_tokens must be >= 1 or None (no filter), got {opts.max_trace_tokens}")


@dataclass
class TraceFilterReport:
    """Expert traces removed for being longer than the response budget, by problem id."""

    max_tokens: int
    tokenizer: str
    n_checked: int = 0
    removed: list[tuple[str, int, int]] = field(default_factory=list)  # (problem id, trace index, tokens)
    n_candidates_skipped: int = 0  # second-trace candidates over the budget (never attached)

    def format(self, limit: int = 10) -> str:
        text = (
            f"trace length filter (<= {self.max_tokens} tokens of {self.tokenizer}): {self.n_checked} traces checked, "
            f"{len(self.removed)} removed"
        )
        if self.n_candidates_skipped:
            text += f", {self.n_candidates_skipped} second-trace candidates skipped"
        if self.removed:
            shown = ", ".join(f"{pid}[{i}] ({n} tokens)" for pid, i, n in self.removed[:limit])
            text += f"\n  removed: {shown}" + (" ..." if len(self.removed) > limit else "")
        return text

    def to_dict(self) -> dict:
        return {
            "max_tokens": self.max_tokens,
            "tokenizer": self.tokenizer,
            "n_checked": self.n_checked,
            "n_candidates_skipped": self.n_candidates_skipped,
            "removed": [{"problem_id": pid, "trace": i, "tokens": n} for pid, i, n in self.removed],
        }


def _trace_counter(opts: PrepareOptions):
    """(name, texts -> token counts) of the policy tokenizer, or a SourceError naming the fix."""
    from .io import SourceError

    name = opts.tokenizer or DEFAULT_TRACE_TOKENIZER
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(name)
    except Exception as e:  # offline, a wrong path, a missing tokenizer file
        raise SourceError(
            f"the expert-trace length filter needs the policy tokenizer, and {name!r} could not be loaded "
            f"({type(e).__name__}: {str(e)[:200]}). Pass --tokenizer PATH (the model you train), or "
            "--max-trace-tokens 0 to keep traces of any length (longer ones are then cut by the rollout)."
        ) from e
    return name, lambda texts: [len(ids) for ids in tok(list(texts), add_special_tokens=False)["input_ids"]]


def _filter_traces(problems: list[Problem], count, report: TraceFilterReport, chunk: int = 256) -> None:
    """Remove every expert trace longer than the budget, in place, recording (id, index, tokens)."""
    refs = [(p, i) for p in problems for i in range(len(p.expert_solutions))]
    lengths: list[int] = []
    for lo in range(0, len(refs), chunk):
        lengths += count([p.expert_solutions[i] for p, i in refs[lo : lo + chunk]])
    report.n_checked += len(refs)
    too_long: dict[int, set[int]] = {}
    for (p, i), n in zip(refs, lengths):
        if n > report.max_tokens:
            report.removed.append((p.problem_id, i, n))
            too_long.setdefault(id(p), set()).add(i)
    for p in problems:
        if id(p) in too_long:
            p.expert_solutions = [t for i, t in enumerate(p.expert_solutions) if i not in too_long[id(p)]]


def prepare(name: str, output: str | Path, opts: PrepareOptions | None = None) -> PrepareSummary:
    """Prepare dataset ``name`` into the verl parquet ``output``; raises DataValidationError on invalid rows.

    The per-row failure list is written to ``<output stem>.failures.json`` whenever a row fails validation.
    """
    spec, opts, output = get_spec(name), opts or PrepareOptions(), Path(output)
    _check_options(spec, opts)
    source = opts.source or spec.hub_id
    hub = (
        {}
        if is_local(source)
        else {"config": opts.hub_config or spec.hub_config, "split": opts.hub_split or spec.hub_split}
    )
    count = None
    if spec.expert_traces and opts.max_trace_tokens is not None:
        tokenizer, count = _trace_counter(opts)  # before any work: a missing tokenizer fails at once
    records = load_records(source, **hub)
    summary = PrepareSummary(spec.name, records.origin, output, n_loaded=0, n_written=0)
    problems = _load_problems(spec, records, opts, summary)
    if opts.exclude:
        problems, summary.decontaminated = decontaminate(problems, exclusion_keys(opts.exclude))
    if count is not None:
        summary.traces = TraceFilterReport(opts.max_trace_tokens, tokenizer)
        _filter_traces(problems, count, summary.traces)
    if opts.second_traces is not None:
        summary.join = _attach_traces(problems, opts, count, summary.traces)
    summary.multi_part_golds = [(p.problem_id, p.gold_parts) for p in problems if p.gold_parts > 1]
    problems = _validate(spec, problems, opts, summary)
    _write_trace_report(summary.traces, output)
    write_parquet([to_verl_row(p, spec, i, opts.template) for i, p in enumerate(problems)], output)
    summary.n_written = len(problems)
    for p in problems:
        summary.n_with_traces[len(p.expert_solutions)] = summary.n_with_traces.get(len(p.expert_solutions), 0) + 1
    return summary


def _load_problems(spec: DatasetSpec, records, opts: PrepareOptions, summary: PrepareSummary) -> list[Problem]:
    """Build, level-filter and deduplicate in one stream (DAPO's 1.8M rows are never all Problem objects)."""
    counts = {"loaded": 0, "level": 0}
    stream = iter_problems(spec, records, opts.fields, limit=opts.limit, progress=opts.progress)
    stream = _counted(stream, counts, "loaded")
    if opts.levels is not None:
        stream = _counted((p for p in stream if p.level in opts.levels), counts, "level")
    if opts.dedup if opts.dedup is not None else spec.dedup:
        problems, summary.dedup = dedup(stream)
    else:
        problems = list(stream)
        groups = duplicate_groups(problems)
        summary.n_duplicates_kept = sum(len(g) - 1 for g in groups)
        summary.duplicates_kept = [[problems[r].problem_id for r in g] for g in groups]
    summary.n_loaded = counts["loaded"]
    summary.n_level_filtered = counts["loaded"] - counts["level"] if opts.levels is not None else 0
    return problems


def _attach_traces(problems: list[Problem], opts: PrepareOptions, count, traces: TraceFilterReport | None):
    hub = {} if is_local(opts.second_traces) else {"config": OPENR1_220K.hub_config, "split": OPENR1_220K.hub_split}
    columns = [c for candidates in OPENR1_220K.fields.values() for c in candidates]
    records = load_records(opts.second_traces, columns=columns, **hub)
    fits = None
    if count is not None:

        def fits(text: str) -> bool:
            ok = count([text])[0] <= traces.max_tokens
            traces.n_candidates_skipped += not ok
            return ok

    return attach_second_traces(
        problems,
        records,
        join_on=opts.join_on,
        correctness=opts.trace_correctness,
        fits=fits,
        progress=opts.progress,
    )


def _validate(spec: DatasetSpec, problems: list[Problem], opts: PrepareOptions, summary: PrepareSummary):
    min_traces = opts.min_traces if opts.min_traces is not None else int(spec.expert_traces)
    gold_check = opts.gold_check
    if gold_check is reward_gold_check and not opts.progress:
        gold_check = functools.partial(reward_gold_check, progress=False)
    deduplicated = opts.dedup if opts.dedup is not None else spec.dedup
    summary.validation = validate(
        spec.name,
        problems,
        min_traces=min_traces,
        gold_check=gold_check,
        check_duplicate_golds=spec.kind == "eval" and not deduplicated,  # a benchmark row's gold must be unambiguous
    )
    summary.failures_path = _write_failures(summary.validation, summary.output)
    try:
        return apply_validation(problems, summary.validation, drop_invalid=opts.drop_invalid)
    except DataValidationError as e:
        raise DataValidationError(f"{e}\nFull failure list: {summary.failures_path}") from None


def _write_trace_report(report: TraceFilterReport | None, output: Path) -> Path | None:
    """``<output stem>.trace_filter.json``: every removed trace by id (written whenever the filter ran)."""
    path = output.with_name(output.stem + ".trace_filter.json")
    if report is None:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=1))
    return path


def _write_failures(report: ValidationReport, output: Path) -> Path | None:
    path = output.with_name(output.stem + ".failures.json")
    if not report.failures:
        path.unlink(missing_ok=True)  # a stale list from an earlier run would mislead
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=1, ensure_ascii=False))
    return path
