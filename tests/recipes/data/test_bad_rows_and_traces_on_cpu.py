# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Data preparation on hand-made bad rows (each gets a named failure code and the rest is written), multi-part
golds of worked solutions, and the expert-trace length filter that is on by default."""

import importlib.util
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from trustrl.recipes.data import (
    DEFAULT_MAX_TRACE_TOKENS,
    DataValidationError,
    PrepareOptions,
    SourceError,
    gold_value,
    prepare,
)

from tests.recipes.data.tiny_tokenizer import build_tiny_tokenizer

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "data"
# aime24 rows as the hub writes them, and the bad rows of the report: JSON values that are not objects, an answer
# that is an object or a list of two values, a later row without the optional id, duplicates with two golds
BAD_AIME = [
    {"id": 60, "problem": "What is 2+2?", "answer": "4"},
    None,
    5,
    {"id": 62, "problem": "What is 1+2?", "answer": {"value": 3}},
    {"id": 63, "problem": "Name two numbers.", "answer": ["7", "8"]},
    {"id": 64, "problem": "What is 3+3?", "answer": ["6"]},  # a one-element list is its element
    {"problem": "What is 3+4?", "answer": "7"},  # no id: the optional id falls back to the row position
    {"id": 66, "problem": "What is 5+5?", "answer": "10"},
    {"id": 67, "problem": "What is  5+5?", "answer": "11"},  # the same problem, another gold
    {"id": 68, "problem": "What is 1+1?", "answer": True},
]


def _jsonl(path: Path, rows) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _rows(path):
    return pq.read_table(path).to_pylist()


def test_bad_rows_get_named_codes_and_the_rest_is_written(tmp_path):
    src = _jsonl(tmp_path / "aime.jsonl", BAD_AIME)
    opts = PrepareOptions(source=str(src), progress=False, drop_invalid=True)
    summary = prepare("aime24", tmp_path / "aime24.parquet", opts)  # raised TypeError on the `null` line
    codes = {(f.problem_id, f.code) for f in summary.validation.failures}
    assert codes == {
        ("aime24/1", "row_not_object"),
        ("aime24/2", "row_not_object"),
        ("aime24/62", "gold_not_scalar"),  # was written as the gold "{'value': 3}"
        ("aime24/63", "gold_list"),  # was silently 7
        ("aime24/66", "conflicting_duplicate"),  # were counted, not named
        ("aime24/67", "conflicting_duplicate"),
        ("aime24/68", "gold_not_scalar"),
    }
    rows = {
        r["extra_info"]["problem_id"]: r["reward_model"]["ground_truth"] for r in _rows(tmp_path / "aime24.parquet")
    }
    assert rows == {"aime24/60": "4", "aime24/64": "6", "aime24/6": "7"}  # the id-less row kept (was: abort)
    failures = json.loads((tmp_path / "aime24.failures.json").read_text())
    assert failures["counts"] == {"row_not_object": 2, "gold_not_scalar": 2, "conflicting_duplicate": 2, "gold_list": 1}
    detail = {f["problem_id"]: f["detail"] for f in failures["failures"]}
    assert "aime24/67 (gold '11')" in detail["aime24/66"] and "--field answer=<key>" in detail["aime24/62"]
    # without --drop-invalid nothing is written and every bad row is named
    with pytest.raises(DataValidationError, match=r"aime24/1: row_not_object") as err:
        prepare("aime24", tmp_path / "strict.parquet", PrepareOptions(source=str(src), progress=False))
    assert "aime24/63: gold_list" in str(err.value) and not (tmp_path / "strict.parquet").exists()


def test_same_golds_in_duplicates_are_named_but_kept(tmp_path):
    rows = [{"id": 1, "problem": "What is 5+5?", "answer": "10"}, {"id": 2, "problem": "what is 5+5?", "answer": "10"}]
    summary = prepare("aime24", tmp_path / "a.parquet", PrepareOptions(source=str(_jsonl(tmp_path / "a.jsonl", rows))))
    assert summary.n_written == 2 and summary.duplicates_kept == [["aime24/1", "aime24/2"]]
    assert "rows repeat an earlier problem text (kept): aime24/1 = aime24/2" in summary.format()


def test_json_list_with_bad_entries(tmp_path):
    src = tmp_path / "a.json"
    src.write_text(json.dumps([{"id": 1, "problem": "What is 2+2?", "answer": "4"}, "oops"]))
    summary = prepare(
        "aime24", tmp_path / "a.parquet", PrepareOptions(source=str(src), progress=False, drop_invalid=True)
    )
    assert summary.n_written == 1 and [f.code for f in summary.validation.failures] == ["row_not_object"]


@pytest.mark.parametrize(
    "value, gold, code",
    [
        ("025", "25", None),
        (142.0, "142", None),
        (["$\\frac{1}{2}$"], "\\frac{1}{2}", None),
        (["4.4e7", "$4.4e7$"], "4.4 \\times 10^{7}", None),  # alternatives that normalize alike
        (["7", "8"], None, "gold_list"),
        ({"value": 3}, None, "gold_not_scalar"),
        (False, None, "gold_not_scalar"),
        (None, None, None),  # missing: reported as missing_gold by the builder
    ],
)
def test_gold_value(value, gold, code):
    got, issue = gold_value(value)
    assert got == gold and (issue[0] if issue else None) == code


def test_cli_goes_on_after_a_dataset_that_fails(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("prepare_cli", REPO / "scripts" / "data" / "prepare.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    bad = _jsonl(tmp_path / "bad.jsonl", BAD_AIME)
    rc = cli.main(
        [
            "aime24",
            "aime25",
            "--out-dir",
            str(tmp_path),
            "--no-progress",
            f"--input=aime24={bad}",
            f"--input=aime25={FIXTURES / 'aime_2025.jsonl'}",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "aime24/2: row_not_object" in err and "failed: aime24" in err
    assert (tmp_path / "aime25.parquet").exists()  # the dataset after the failing one is written


def test_math_solution_with_several_boxes_is_one_multi_part_gold(tmp_path):
    rows = [
        {
            "unique_id": "a",
            "problem": "Solve x^2 + x - 2 = 0.",
            "level": "Level 2",
            "solution": "So $x = \\boxed{1}$ and $x = \\boxed{-2}$.",
        },
        {
            "unique_id": "b",
            "problem": "List the primes below 14 that are not 11.",
            "level": "Level 1",
            "solution": "$$\\boxed{2}, \\boxed{3}, \\boxed{5}, \\boxed{7}, \\boxed{13}$$",
        },
        {
            "unique_id": "c",
            "problem": "What is 2+3?",
            "level": "Level 1",
            "solution": "First \\boxed{6} but recounting the cases gives \\boxed{5}",
        },
    ]
    src = _jsonl(tmp_path / "m.jsonl", rows)
    summary = prepare("math_train", tmp_path / "m.parquet", PrepareOptions(source=str(src), progress=False))
    golds = {r["extra_info"]["problem_id"]: r["reward_model"]["ground_truth"] for r in _rows(tmp_path / "m.parquet")}
    assert golds == {"math_train/a": "1, -2", "math_train/b": "2, 3, 5, 7, 13", "math_train/c": "5"}  # was -2, 13
    assert summary.multi_part_golds == [("math_train/a", 2), ("math_train/b", 5)]
    assert "2 golds are multi-part answers joined from several boxes: math_train/a (2 boxes)" in summary.format()


def _openr1(tmp_path, traces):
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Problem {i}: what is {i}+{i}?"}],
            "target": [{"role": "assistant", "content": f"<think>\n{t}\n</think>\n\nSo \\boxed{{{2 * i}}}."}],
            "reward_model": {"ground_truth": str(2 * i), "style": "rule"},
            "extra_info": {"index": i},
        }
        for i, t in enumerate(traces)
    ]
    return _jsonl(tmp_path / "openr1.jsonl", rows)


def test_traces_over_the_response_budget_are_filtered_by_default(tmp_path):
    assert DEFAULT_MAX_TRACE_TOKENS == 8191  # the TRAPO launch scripts' 8192-token responses, minus the EOS
    tok = str(build_tiny_tokenizer(tmp_path / "tok"))  # one token per character
    src = _openr1(tmp_path, ["x" * 100, "y" * 8191, "z" * 8192, "w" * 20000])
    opts = PrepareOptions(source=str(src), tokenizer=tok, progress=False, drop_invalid=True)
    summary = prepare("openr1_46k", tmp_path / "o.parquet", opts)  # no length option given: the default applies
    assert summary.traces.removed == [("openr1_46k/2", 0, 8192), ("openr1_46k/3", 0, 20000)]
    assert summary.traces.n_checked == 4
    rows = _rows(tmp_path / "o.parquet")
    assert [r["extra_info"]["problem_id"] for r in rows] == ["openr1_46k/0", "openr1_46k/1"]
    assert max(len(t) for r in rows for t in r["extra_info"]["expert_solutions"]) == 8191
    assert {(f.problem_id, f.code) for f in summary.validation.failures} == {
        ("openr1_46k/2", "missing_expert_trace"),
        ("openr1_46k/3", "missing_expert_trace"),
    }
    report = json.loads((tmp_path / "o.trace_filter.json").read_text())
    assert report["removed"][0] == {"problem_id": "openr1_46k/2", "trace": 0, "tokens": 8192}
    assert "2 removed" in summary.format() and "openr1_46k/3[0] (20000 tokens)" in summary.format()
    # the filter off: every trace kept, nothing reported
    off = prepare(
        "openr1_46k", tmp_path / "off.parquet", PrepareOptions(source=str(src), max_trace_tokens=None, progress=False)
    )
    assert off.traces is None and off.n_written == 4 and not (tmp_path / "off.trace_filter.json").exists()


def test_second_trace_candidates_over_the_budget_are_skipped_and_counted(tmp_path):
    tok = str(build_tiny_tokenizer(tmp_path / "tok"))
    opts = PrepareOptions(
        source=str(FIXTURES / "openr1_math_46k_8192.jsonl"),
        second_traces=str(FIXTURES / "openr1_math_220k.jsonl"),
        tokenizer=tok,
        max_trace_tokens=12,  # shorter than some fixture traces
        progress=False,
        drop_invalid=True,
    )
    summary = prepare("openr1_46k", tmp_path / "o.parquet", opts)
    assert summary.traces.n_candidates_skipped > 0
    assert all(len(t) <= 12 for r in _rows(tmp_path / "o.parquet") for t in r["extra_info"]["expert_solutions"])


def test_a_missing_tokenizer_fails_before_any_work(tmp_path):
    src = _openr1(tmp_path, ["x"])
    opts = PrepareOptions(source=str(src), tokenizer=str(tmp_path / "no-such-tokenizer"), progress=False)
    with pytest.raises(SourceError, match=r"--tokenizer PATH .* or --max-trace-tokens 0"):
        prepare("openr1_46k", tmp_path / "o.parquet", opts)
    assert not (tmp_path / "o.parquet").exists()
