# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Dataset specs: where each training set and benchmark lives, its fields, and how a raw row becomes a Problem.

Every spec names its fields by *candidates* (first one present in the data wins), so the same builder reads
the hub set and the common mirrors (Qwen2.5-Math ``evaluation/data/*.jsonl``, ``math-ai/*``). A field the
data names differently is passed as an override: ``problem=question`` (``--field`` on the command line).

Builders never raise on bad *content* (empty problem, unparseable gold, unfinished trace) or on one bad *row*
(a JSON line that is not an object, a later row without a required field): they record an issue on the Problem
and validation reports it by id, so ``--drop-invalid`` writes the rest. They raise :class:`SchemaError` when the
first row lacks a required field (the source's structure is not what the spec expects), naming the field, the
candidates tried, the keys the row has and the fix.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .answers import extract_think, normalize_gold, solution_gold
from .io import Records, get_path, has_path
from .openr1 import acceptable_traces
from .templates import PLACEHOLDER, TEMPLATES


class SchemaError(ValueError):
    """A required field is missing: names the row, the field and the fix."""


@dataclass
class Problem:
    """One problem on its way to a verl row.

    ``expert_solutions`` holds think contents only (see :func:`~trustrl.recipes.data.answers.extract_think`);
    ``issues`` are ``(code, detail)`` pairs found while building, reported by validation.
    """

    problem_id: str
    problem: str
    gold: str | None
    expert_solutions: list[str] = field(default_factory=list)
    issues: list[tuple[str, str]] = field(default_factory=list)
    level: int | None = None
    uuid: str | None = None
    gold_parts: int = 1  # boxes joined into the gold of a worked solution (a multi-part answer when > 1)


Builder = Callable[[str, Mapping[str, Any], int], Problem]


@dataclass(frozen=True)
class DatasetSpec:
    """A training set or benchmark.

    ``fields`` maps each logical field to candidate (dotted) paths; ``optional`` fields may be absent from the
    data, and ``any_of`` groups need at least one member present. ``eval_n`` is the number of samples per
    problem in the LUFFY/TRAPO protocol (recipes/eval/README.md, presets): 32 for AIME/AMC (avg@32), 1 otherwise.
    """

    name: str
    kind: str
    hub_id: str
    hub_split: str
    build: Builder
    fields: Mapping[str, tuple[str, ...]]
    hub_config: str | None = None
    optional: frozenset[str] = frozenset()
    any_of: tuple[tuple[str, ...], ...] = ()
    expert_traces: bool = False
    dedup: bool = False
    eval_n: int = 1
    notes: str = ""


# ----------------------------------------------------------------------------------------------- field access


def resolve_fields(spec: DatasetSpec, row: Mapping[str, Any], overrides: Mapping[str, str] | None = None):
    """Logical field -> path present in ``row`` (None for an absent optional field); raises SchemaError."""
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(spec.fields)
    if unknown:
        raise SchemaError(f"{spec.name}: unknown field override(s) {sorted(unknown)}; fields are {sorted(spec.fields)}")
    resolved = {}
    for name, candidates in spec.fields.items():
        tried = (overrides[name],) if name in overrides else candidates
        resolved[name] = next((c for c in tried if has_path(row, c)), None)
        if resolved[name] is None and name not in spec.optional:
            raise SchemaError(
                f"{spec.name}: the first row has no {name!r} field (tried {list(tried)}; the row has keys "
                f"{sorted(row)}). Pass --field {name}=<key> (dotted for nested keys) to name it."
            )
    for group in spec.any_of:
        if all(resolved[g] is None for g in group):
            raise SchemaError(
                f"{spec.name}: the first row has none of the fields {list(group)} (tried "
                f"{[c for g in group for c in spec.fields[g]]}; the row has keys {sorted(row)}). "
                f"Pass --field {group[0]}=<key> to name one."
            )
    return resolved


# issues that make the rest of a row meaningless: validation reports only them for that row
ROW_ISSUES = frozenset({"row_not_object", "missing_field"})


def _bad_row(spec: DatasetSpec, position: int, code: str, detail: str) -> Problem:
    return Problem(f"{spec.name}/{position}", "", None, issues=[(code, detail)])


def iter_problems(
    spec: DatasetSpec,
    records: Records,
    overrides: Mapping[str, str] | None = None,
    *,
    limit: int | None = None,
    progress: bool = True,
) -> Iterator[Problem]:
    """Yield a Problem for every row of ``records`` (the first ``limit`` rows when given), with a progress bar.

    Fields are resolved on the first row that is an object. A row that is not an object (a JSONL line ``null`` or
    ``5``) or lacks a required field the first row has becomes a Problem with the issue ``row_not_object`` /
    ``missing_field`` (id ``<dataset>/<position>``); a later row without an optional field gets None for it.
    """
    from tqdm.auto import tqdm

    total = len(records) if limit is None else min(limit, len(records))
    resolved = None
    rows = tqdm(itertools.islice(records, total), total=total, desc=f"{spec.name}: reading", disable=not progress)
    for position, row in enumerate(rows):
        if not isinstance(row, Mapping):
            detail = f"row {position} of {records.origin} is {repr(row)[:60]}, not an object"
            yield _bad_row(spec, position, "row_not_object", detail)
            continue
        resolved = resolved or resolve_fields(spec, row, overrides)
        values, missing = {}, []
        for name, path in resolved.items():
            values[name] = None
            if path is not None:
                try:
                    values[name] = get_path(row, path)
                except KeyError:
                    if name not in spec.optional:
                        missing.append(path)
        if missing:
            yield _bad_row(
                spec,
                position,
                "missing_field",
                f"row {position} of {records.origin} has no {missing} field although the first row has it "
                f"(row keys: {sorted(map(str, row))}); fix the row or drop it (--drop-invalid)",
            )
            continue
        yield spec.build(spec.name, values, position)


def build_problems(spec: DatasetSpec, records: Records, overrides=None, *, limit=None, progress=True) -> list[Problem]:
    """All problems of ``records`` as a list (see :func:`iter_problems`)."""
    return list(iter_problems(spec, records, overrides, limit=limit, progress=progress))


# ------------------------------------------------------------------------------------------------- builders


def gold_value(value) -> tuple[str | None, tuple[str, str] | None]:
    """The normalized gold of an answer field, or None with the issue that keeps it from being one.

    Strings and numbers are normalized (:func:`~.answers.normalize_gold`). A one-element list (OlympiadBench
    ``final_answer``) is its element; a longer list is accepted only when every element normalizes to the same
    gold, else it is ``gold_list`` (nothing is picked silently). An object or a boolean is ``gold_not_scalar``.
    """
    if hasattr(value, "tolist"):  # numpy arrays and scalars from parquet
        value = value.tolist()
    if isinstance(value, list | tuple):
        golds = []
        for item in value:
            gold, issue = gold_value(item)
            if issue is not None:
                return None, issue
            golds.append(gold)
        distinct = list(dict.fromkeys(g for g in golds if g is not None))
        if len(distinct) > 1:
            return None, (
                "gold_list",
                f"the answer is a list of {len(distinct)} different values {distinct[:4]}; the row's gold must be "
                "one answer: fix the row, or drop it (--drop-invalid)",
            )
        return (distinct[0] if distinct else None), None
    if isinstance(value, Mapping) or isinstance(value, bool):
        return None, (
            "gold_not_scalar",
            f"the answer is {type(value).__name__} {repr(value)[:60]}, not a string or number; name the key that "
            "holds it (--field answer=<key>, dotted for nested keys) or drop the row (--drop-invalid)",
        )
    return normalize_gold(value), None


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _problem_id(name: str, raw_id, position: int) -> str:
    raw = _text(raw_id)
    return f"{name}/{raw if raw else position}"


def _problem(name, values, position, gold, *, gold_from="the answer field", issue=None, **kw) -> Problem:
    p = Problem(_problem_id(name, values.get("id"), position), _text(values["problem"]), gold, **kw)
    if issue is not None:
        p.issues.append(issue)
    elif gold is None:
        p.issues.append(("missing_gold", f"no gold answer in {gold_from}"))
    return p


def _answer_problem(name, values, position, **kw) -> Problem:
    gold, issue = gold_value(values["answer"])
    return _problem(name, values, position, gold, issue=issue, **kw)


def _solution_problem(name, values, position, solution) -> Problem:
    """Gold = the final boxed answer of a worked solution, the boxes of a multi-part answer joined
    (:func:`~.answers.solution_gold`); how many boxes were joined is kept in ``gold_parts`` for the report."""
    gold, parts = solution_gold(_text(solution))
    p = _problem(name, values, position, gold, gold_from="the last \\boxed{} of the solution")
    p.gold_parts = parts
    return p


def build_answer_row(name, values, position) -> Problem:
    """Benchmarks with a problem and a final-answer field (AIME, AMC, MATH-500, OlympiadBench)."""
    return _answer_problem(name, values, position)


def build_minerva(name, values, position) -> Problem:
    """Minerva Math: an ``answer`` field (math-ai/minervamath), else the final box of ``solution`` (Qwen jsonl)."""
    if values.get("answer") is not None:
        return _answer_problem(name, values, position)
    return _solution_problem(name, values, position, values.get("solution"))


def build_math_train(name, values, position) -> Problem:
    r"""MATH (lighteval): gold = final boxed answer of the worked solution; ``level`` parsed from ``Level 3``."""
    p = _solution_problem(name, values, position, values["solution"])
    match = re.search(r"\d+", _text(values.get("level")))
    p.level = int(match.group()) if match else None
    return p


_DAPO_PREFIX, _DAPO_SUFFIX = TEMPLATES["dapo"].user.split(PLACEHOLDER)
# the same template with any whitespace run matching any whitespace run
_DAPO_RE = re.compile(
    r"\s*".join(map(re.escape, _DAPO_PREFIX.split()))
    + r"\s*(?P<problem>.*?)\s*"
    + r"\s*".join(map(re.escape, _DAPO_SUFFIX.split()))
    + r"\s*",
    re.DOTALL,
)


def _last_user_turn(prompt) -> str | None:
    if isinstance(prompt, str):
        return prompt
    if hasattr(prompt, "tolist"):
        prompt = prompt.tolist()
    users = [m.get("content") for m in prompt or [] if isinstance(m, Mapping) and m.get("role") == "user"]
    return users[-1] if users else None


def build_dapo(name, values, position) -> Problem:
    """DAPO-Math-17k: the raw problem is cut out of the DAPO ``Answer:`` template of the user turn.

    A plain-string ``prompt`` (open-r1/DAPO-Math-17k-Processed) is taken as the raw problem.
    """
    content = _last_user_turn(values["problem"]) or ""  # no user turn: validation reports empty_problem
    issues = []
    if content and not isinstance(values["problem"], str):
        if content.startswith(_DAPO_PREFIX) and content.endswith(_DAPO_SUFFIX):  # the hub rows: exact template
            content = content[len(_DAPO_PREFIX) : len(content) - len(_DAPO_SUFFIX)].strip()
        elif match := _DAPO_RE.fullmatch(content):  # the template with other whitespace
            content = match.group("problem")
        else:
            issues.append(("prompt_not_dapo_template", "user turn does not follow the DAPO template"))
    values = {**values, "problem": content}
    p = _answer_problem(name, values, position)
    p.issues += issues
    return p


def traces_from_target(target) -> tuple[list[str], list[tuple[str, str]]]:
    """Think contents of the assistant turns of a LUFFY-style ``target`` (list of messages, or one string)."""
    if target is None:
        return [], []
    if hasattr(target, "tolist"):
        target = target.tolist()
    if isinstance(target, str):
        contents = [target]
    else:
        contents = [m.get("content") or "" for m in target if isinstance(m, Mapping) and m.get("role") == "assistant"]
    traces, issues = [], []
    for i, content in enumerate(contents):
        think = extract_think(content)
        if think is None:
            issues.append(("expert_trace_incomplete", f"target[{i}] has no </think> or an empty reasoning"))
        else:
            traces.append(think)
    return traces, issues


def build_openr1_46k(name, values, position) -> Problem:
    """OpenR1-Math-46k-8192 (LUFFY format): problem = last user turn, expert = think content of ``target``."""
    values = {**values, "problem": _last_user_turn(values["problem"])}
    traces, issues = traces_from_target(values["target"])
    p = _answer_problem(name, values, position, expert_solutions=traces)
    p.issues += issues
    p.uuid = _text(values.get("uuid")) or None
    return p


def build_openr1_220k(name, values, position) -> Problem:
    """OpenR1-Math-220k: every acceptable R1 generation (:mod:`.openr1`) becomes an expert trace."""
    traces = list(acceptable_traces(values))
    p = _answer_problem(name, values, position, expert_solutions=traces)
    p.uuid = _text(values.get("uuid")) or None
    return p


# ------------------------------------------------------------------------------------------------- registry

_ID = ("id", "ID", "unique_id", "idx", "problem_idx", "uuid")
_PROBLEM = ("problem", "question", "Problem", "Question")
_ANSWER = ("answer", "Answer", "final_answer", "gt", "ground_truth")
_EVAL_OPTIONAL = frozenset({"id"})


def _eval_spec(name, hub_id, split, *, build=build_answer_row, fields=None, optional=_EVAL_OPTIONAL, **kw):
    fields = fields or {"id": _ID, "problem": _PROBLEM, "answer": _ANSWER}
    return DatasetSpec(name, "eval", hub_id, split, build, fields, optional=optional, **kw)


SPECS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        # ---------------- training sets
        DatasetSpec(
            "dapo17k",
            "train",
            "BytedTsinghua-SIA/DAPO-Math-17k",
            "train",
            build_dapo,
            {
                "id": ("extra_info.index", "index", "id"),
                "problem": ("prompt",),
                "answer": ("reward_model.ground_truth", "solution", "answer"),
            },
            hub_config="default",
            optional=frozenset({"id"}),
            dedup=True,
            notes="~17.9k unique prompts, each duplicated ~100x in the hub file; deduplicated on the problem text",
        ),
        DatasetSpec(
            "openr1_46k",
            "train",
            "Elliott/Openr1-Math-46k-8192",
            "train",
            build_openr1_46k,
            {
                "id": ("extra_info.index", "index", "id"),
                "uuid": ("extra_info.uuid", "uuid"),
                "problem": ("prompt",),
                "answer": ("reward_model.ground_truth", "answer"),
                "target": ("target",),
            },
            optional=frozenset({"id", "uuid"}),
            expert_traces=True,
            dedup=True,
            notes="LUFFY/TRAPO set; the DeepSeek-R1 trace in `target` becomes expert_solutions[0]",
        ),
        DatasetSpec(
            "openr1_220k",
            "train",
            "open-r1/OpenR1-Math-220k",
            "train",
            build_openr1_220k,
            {
                "id": ("uuid",),
                "uuid": ("uuid",),
                "problem": ("problem",),
                "answer": ("answer",),
                "generations": ("generations",),
                "correctness_math_verify": ("correctness_math_verify",),
                "correctness_llama": ("correctness_llama",),
                "is_reasoning_complete": ("is_reasoning_complete",),
                "finish_reasons": ("finish_reasons",),
            },
            hub_config="default",
            optional=frozenset({"id", "uuid", "correctness_llama", "is_reasoning_complete", "finish_reasons"}),
            expert_traces=True,
            dedup=True,
            notes="the 46k set's source (2-4 R1 traces per problem); the --second-traces source of openr1_46k",
        ),
        DatasetSpec(
            "math_train",
            "train",
            "DigitalLearningGmbH/MATH-lighteval",
            "train",
            build_math_train,
            {"id": ("unique_id", "id", "idx"), "problem": ("problem",), "level": ("level",), "solution": ("solution",)},
            hub_config="default",
            optional=frozenset({"id", "level"}),
            dedup=True,
            notes="MATH train (7.5k); MATH-500 is a subset of the *test* split, so it stays held out",
        ),
        # ---------------- benchmarks
        _eval_spec("aime24", "HuggingFaceH4/aime_2024", "train", eval_n=32, notes="30 problems, AIME I+II 2024"),
        _eval_spec("aime25", "yentinglin/aime_2025", "train", eval_n=32, notes="30 problems, AIME I+II 2025"),
        _eval_spec(
            "amc83",
            "AI-MO/aimo-validation-amc",
            "train",
            eval_n=32,
            notes="the 83-problem AMC 2022+2023 set LUFFY/TRAPO/OAT report as 'AMC'",
        ),
        _eval_spec("amc23", "math-ai/amc23", "test", eval_n=32, notes="the 40-problem AMC23 of SimpleRL-Zoo and Qwen"),
        _eval_spec("math500", "HuggingFaceH4/MATH-500", "test", notes="500 problems of the MATH test split"),
        _eval_spec(
            "minerva",
            "math-ai/minervamath",
            "test",
            build=build_minerva,
            fields={"id": _ID, "problem": _PROBLEM, "answer": ("answer",), "solution": ("solution",)},
            optional=frozenset({"id", "answer", "solution"}),
            any_of=(("answer", "solution"),),
            notes="272 problems; e-notation golds rewritten as \\times 10^{k}",
        ),
        _eval_spec(
            "olympiadbench",
            "Hothan/OlympiadBench",
            "train",
            hub_config="OE_TO_maths_en_COMP",
            notes="open-ended text-only English competition maths; gold = final_answer[0] without $",
        ),
    )
}
EVAL_SIX = {"83": ("aime24", "aime25", "amc83", "math500", "minerva", "olympiadbench")}
EVAL_SIX["40"] = tuple("amc23" if b == "amc83" else b for b in EVAL_SIX["83"])


def get_spec(name: str) -> DatasetSpec:
    if name not in SPECS:
        raise KeyError(f"unknown dataset {name!r}; choose one of {sorted(SPECS)}")
    return SPECS[name]


def specs_of_kind(kind: str) -> Iterable[DatasetSpec]:
    return (s for s in SPECS.values() if s.kind == kind)
