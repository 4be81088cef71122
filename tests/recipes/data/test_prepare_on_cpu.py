# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Preparation pipeline on the hub-schema fixtures in tests/fixtures/data (the hub itself is not reachable here)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from trustrl.recipes.data import (
    DataValidationError,
    PrepareOptions,
    Records,
    SchemaError,
    SourceError,
    build_problems,
    get_spec,
    get_template,
    load_records,
    prepare,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "data"
REPO = Path(__file__).resolve().parents[3]
FILES = {
    "aime24": "aime_2024.jsonl",
    "aime25": "aime_2025.jsonl",
    "amc83": "aimo_validation_amc.jsonl",
    "amc23": "amc23.jsonl",
    "math500": "math_500.jsonl",
    "minerva": "minervamath.jsonl",
    "olympiadbench": "olympiadbench.jsonl",
    "dapo17k": "dapo_math_17k.jsonl",
    "openr1_46k": "openr1_math_46k_8192.jsonl",
    "math_train": "math_lighteval_train.jsonl",
    "openr1_220k": "openr1_math_220k.jsonl",
}
SECOND = str(FIXTURES / "openr1_math_220k.jsonl")
TOKENIZER = None  # a character tokenizer (tiny_tokenizer.py) for the expert-trace length filter


@pytest.fixture(scope="module", autouse=True)
def _tiny_tokenizer(tmp_path_factory):
    from tests.recipes.data.tiny_tokenizer import build_tiny_tokenizer

    global TOKENIZER
    TOKENIZER = str(build_tiny_tokenizer(tmp_path_factory.mktemp("tok")))


def _opts(name, **kw):
    if get_spec(name).expert_traces:
        kw.setdefault("tokenizer", TOKENIZER)  # the default (the TRAPO policy's) needs the hub
    return PrepareOptions(source=str(FIXTURES / FILES[name]), progress=False, **kw)


def _rows(path):
    return pq.read_table(path).to_pylist()


@pytest.mark.parametrize(
    "name, ids, golds",
    [
        ("aime24", ["aime24/60", "aime24/61", "aime24/62"], ["204", "113", "25"]),
        ("aime25", ["aime25/I-1", "aime25/I-2"], ["70", "588"]),
        ("amc83", ["amc83/0", "amc83/1", "amc83/2"], ["142", "27", "1.5"]),  # floats in the source
        ("amc23", ["amc23/0", "amc23/1"], ["27", "36"]),  # `question` field
        (
            "math500",
            [
                "math500/test/precalculus/807.json",
                "math500/test/algebra/1349.json",
                "math500/test/intermediate_algebra/1994.json",
            ],
            [r"\left( 3, \frac{\pi}{2} \right)", r"\text{Evelyn}", "p - q"],
        ),
        ("minerva", ["minerva/0", "minerva/1", "minerva/2"], [r"4.5 \times 10^{33}", r"3 \times 10^{6}", "0.3"]),
        (
            "olympiadbench",
            ["olympiadbench/1606", "olympiadbench/1607", "olympiadbench/1608"],
            [r"\frac{1}{2 n+2}", "2^{1009}", r"(-\infty, 0) \cup\{1\}"],
        ),
    ],
)
def test_benchmarks(tmp_path, name, ids, golds):
    summary = prepare(name, tmp_path / f"{name}.parquet", _opts(name))
    rows = _rows(tmp_path / f"{name}.parquet")
    assert summary.n_written == len(rows) == len(ids)
    assert [r["extra_info"]["problem_id"] for r in rows] == ids
    assert [r["reward_model"] for r in rows] == [{"style": "rule", "ground_truth": g} for g in golds]
    assert {r["data_source"] for r in rows} == {name}
    for i, r in enumerate(rows):
        assert r["extra_info"]["split"] == "test" and r["extra_info"]["index"] == i
        assert r["extra_info"]["expert_solutions"] == []
        assert r["prompt"] == get_template().render(r["extra_info"]["raw_problem"])
    assert summary.validation.failures == [] and summary.failures_path is None


def test_dapo_dedup_and_validation_by_id(tmp_path):
    out = tmp_path / "dapo17k.parquet"
    # two invalid rows: nothing is written, the error names both ids and the counts
    with pytest.raises(DataValidationError) as err:
        prepare("dapo17k", out, _opts("dapo17k"))
    text = str(err.value)
    assert "2 of 5 rows failed validation" in text
    assert "prompt_not_dapo_template 1" in text and "missing_gold 1" in text
    assert "dapo17k/c1: prompt_not_dapo_template" in text and "dapo17k/d1: missing_gold" in text
    assert "--drop-invalid" in text and not out.exists()
    failures = json.loads((tmp_path / "dapo17k.failures.json").read_text())
    assert failures["counts"] == {"prompt_not_dapo_template": 1, "missing_gold": 1}
    assert sorted(f["problem_id"] for f in failures["failures"]) == ["dapo17k/c1", "dapo17k/d1"]

    summary = prepare("dapo17k", out, _opts("dapo17k", drop_invalid=True))
    # 8 rows -> 5 distinct problems (a1 x3, b1/b2) -> 3 valid
    assert (summary.dedup.n_in, summary.dedup.n_out) == (8, 5)
    assert summary.dedup.conflicts == [("dapo17k/b1", ["dapo17k/b2"], ["12", "13"])]
    rows = _rows(out)
    assert [r["extra_info"]["problem_id"] for r in rows] == ["dapo17k/a1", "dapo17k/b1", "dapo17k/e1"]
    # the raw problem is cut out of the DAPO "Answer:" template and re-templated with \boxed
    assert rows[0]["extra_info"]["raw_problem"] == "What is $1+1$?"
    assert rows[0]["prompt"][-1]["content"].startswith("What is $1+1$?\nPlease reason step by step")
    assert "Remember to put your answer" not in rows[0]["prompt"][-1]["content"]
    assert "2 of 5 rows failed" in summary.format() and "wrote 3 rows" in summary.format()


def test_dapo_without_dedup_reports_duplicate_ids(tmp_path):
    summary = prepare("dapo17k", tmp_path / "d.parquet", _opts("dapo17k", dedup=False, drop_invalid=True))
    assert summary.dedup is None and summary.n_duplicates_kept == 3
    assert summary.n_written == 6  # 8 rows minus c1 and d1


T0 = "Subtract 3 from both sides: 2x = 8, so x = 4."
G0B = "Move 3 over: 2x = 11 - 3 = 8. Divide by 2: x = 4."
G1_OK = "Pairs (1,12), (2,6), (3,4) give 6 divisors."
G1_LLAMA = "List them: 1, 2, 3, 4, 6, 12: six."


def test_openr1_expert_traces_and_second_trace_join(tmp_path):
    out = tmp_path / "openr1.parquet"
    summary = prepare("openr1_46k", out, _opts("openr1_46k", second_traces=SECOND, drop_invalid=True))
    join = summary.join
    assert join.join_on == "problem"  # the LUFFY copy has no uuid column
    assert (join.n_matched, join.n_attached) == (3, 2)
    assert join.unmatched == ["openr1_46k/3"] and join.no_acceptable == ["openr1_46k/2"]
    rows = {r["extra_info"]["problem_id"]: r for r in _rows(out)}
    assert sorted(rows) == ["openr1_46k/0", "openr1_46k/1", "openr1_46k/3"]  # /2: trace without </think>
    # 220k's first generation repeats the 46k trace, so the second distinct one is taken
    assert rows["openr1_46k/0"]["extra_info"]["expert_solutions"] == [T0, G0B]
    # wrong, judge-only and cut-off generations are skipped; whitespace differences in the problem do not matter
    assert rows["openr1_46k/1"]["extra_info"]["expert_solutions"][1] == G1_OK
    assert rows["openr1_46k/3"]["extra_info"]["expert_solutions"] == ["5! = 120."]
    assert all(
        "<think>" not in t and "</think>" not in t for r in rows.values() for t in r["extra_info"]["expert_solutions"]
    )
    assert rows["openr1_46k/0"]["extra_info"]["split"] == "train"
    assert summary.n_with_traces == {1: 1, 2: 2}
    codes = {(f.problem_id, f.code) for f in summary.validation.failures}
    assert codes == {("openr1_46k/2", "expert_trace_incomplete"), ("openr1_46k/2", "missing_expert_trace")}


def test_openr1_trace_options(tmp_path):
    # correctness='any' also accepts a generation only the Llama judge marked correct (it comes first)
    s = prepare(
        "openr1_46k",
        tmp_path / "a.parquet",
        _opts("openr1_46k", second_traces=SECOND, trace_correctness="any", drop_invalid=True),
    )
    assert _rows(tmp_path / "a.parquet")[1]["extra_info"]["expert_solutions"][1] == G1_LLAMA
    # requiring two traces also fails the problem the 220k source does not have
    s = prepare(
        "openr1_46k",
        tmp_path / "b.parquet",
        _opts("openr1_46k", second_traces=SECOND, min_traces=2, drop_invalid=True),
    )
    assert [r["extra_info"]["problem_id"] for r in _rows(tmp_path / "b.parquet")] == ["openr1_46k/0", "openr1_46k/1"]
    assert ("openr1_46k/3", "missing_expert_trace") in {(f.problem_id, f.code) for f in s.validation.failures}
    # joining on uuid needs uuids on the 46k side
    with pytest.raises(ValueError, match="use join_on='problem'"):
        prepare("openr1_46k", tmp_path / "c.parquet", _opts("openr1_46k", second_traces=SECOND, join_on="uuid"))


def test_openr1_220k_keeps_every_acceptable_trace(tmp_path):
    s = prepare("openr1_220k", tmp_path / "r.parquet", _opts("openr1_220k", drop_invalid=True))
    rows = {r["extra_info"]["problem_id"]: r for r in _rows(tmp_path / "r.parquet")}
    assert rows["openr1_220k/u0"]["extra_info"]["expert_solutions"] == [T0, G0B]
    # wrong (math-verify False), judge-only and cut-off generations are not expert traces
    assert rows["openr1_220k/u1"]["extra_info"]["expert_solutions"] == [G1_OK]
    assert rows["openr1_220k/u9"]["reward_model"]["ground_truth"] == "81"
    assert [(f.problem_id, f.code) for f in s.validation.failures] == [("openr1_220k/u2", "missing_expert_trace")]


def test_math_train_levels_and_decontamination(tmp_path):
    s = prepare("math_train", tmp_path / "m.parquet", _opts("math_train", levels=(3, 4, 5), drop_invalid=True))
    assert s.n_level_filtered == 2  # Level 1 and "Level ?"
    assert [r["reward_model"]["ground_truth"] for r in _rows(tmp_path / "m.parquet")] == ["3", r"\frac{1}{2}"]
    assert [(f.problem_id, f.code) for f in s.validation.failures] == [("math_train/4", "missing_gold")]
    # a benchmark file holding one of the problems removes it from the training set
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"problem": "solve  $x^2 = 9$ for $x > 0$.", "answer": "3"}) + "\n")
    s = prepare("math_train", tmp_path / "m2.parquet", _opts("math_train", exclude=(str(bench),), drop_invalid=True))
    assert s.decontaminated == ["math_train/1"]
    assert "math_train/1" not in [r["extra_info"]["problem_id"] for r in _rows(tmp_path / "m2.parquet")]
    # prepared parquet files work as exclusion lists too (extra_info.raw_problem)
    prepare("math500", tmp_path / "math500.parquet", _opts("math500"))
    s = prepare(
        "math_train",
        tmp_path / "m3.parquet",
        _opts("math_train", exclude=(str(tmp_path / "math500.parquet"),), drop_invalid=True),
    )
    assert s.decontaminated == []


def test_gold_that_the_reward_cannot_grade_is_reported(tmp_path):
    src = tmp_path / "mine.jsonl"
    rows = [
        {"problem": "p1", "answer": "12"},
        {"problem": "p2", "answer": "np.arcsin(10/13)"},
        {"problem": "", "answer": "3"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataValidationError) as err:
        prepare("aime24", tmp_path / "x.parquet", PrepareOptions(source=str(src), progress=False))
    assert "aime24/1: gold_unparseable" in str(err.value) and "aime24/2: empty_problem" in str(err.value)
    s = prepare("aime24", tmp_path / "x.parquet", PrepareOptions(source=str(src), progress=False, drop_invalid=True))
    assert s.validation.counts() == {"gold_unparseable": 1, "empty_problem": 1} and s.n_written == 1


def test_schema_errors_name_field_and_fix(tmp_path):
    src = tmp_path / "odd.jsonl"
    src.write_text(json.dumps({"statement": "What is 1+1?", "answer": "2"}) + "\n")
    with pytest.raises(SchemaError, match=r"no 'problem' field .*'statement'.*--field problem=<key>"):
        prepare("aime24", tmp_path / "o.parquet", PrepareOptions(source=str(src), progress=False))
    s = prepare(
        "aime24",
        tmp_path / "o.parquet",
        PrepareOptions(source=str(src), fields={"problem": "statement"}, progress=False),
    )
    assert s.n_written == 1
    # a later row that lacks a field the first row had is a failure of that row, named by position
    recs = Records.from_list([{"problem": "a", "answer": "1"}, {"answer": "2"}], "mem")
    bad = build_problems(get_spec("aime24"), recs, progress=False)[1]
    assert bad.problem_id == "aime24/1" and bad.issues[0][0] == "missing_field"
    assert "row 1 of mem has no ['problem'] field although the first row has it" in bad.issues[0][1]
    with pytest.raises(SchemaError, match="unknown field override"):
        build_problems(get_spec("aime24"), recs, {"bogus": "x"}, progress=False)


def test_dapo_template_with_other_whitespace_and_plain_prompts():
    content = (
        "Solve the following math problem step by step.  The last line of your response should be of the form "
        "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\r\n\r\nWhat is $2^5$?\n\n"
        'Remember to put your answer on its own line after "Answer:".\n'
    )
    templated = Records.from_list(
        [{"prompt": [{"role": "user", "content": content}], "reward_model": {"ground_truth": "32"}}]
    )
    (p,) = build_problems(get_spec("dapo17k"), templated, progress=False)
    assert (p.problem, p.gold, p.issues) == ("What is $2^5$?", "32", [])
    # open-r1/DAPO-Math-17k-Processed: `prompt` is already the raw problem and `solution` the answer
    processed = Records.from_list([{"prompt": "What is $3^2$?", "solution": "9"}])
    (p,) = build_problems(get_spec("dapo17k"), processed, progress=False)
    assert (p.problem_id, p.problem, p.gold, p.issues) == ("dapo17k/0", "What is $3^2$?", "9", [])


def test_minerva_gold_from_solution_box():
    recs = Records.from_list([{"problem": "q", "solution": r"... so $\boxed{4.4e7}$ Hz.", "type": "x", "idx": 5}])
    (p,) = build_problems(get_spec("minerva"), recs, progress=False)
    assert (p.problem_id, p.gold) == ("minerva/5", r"4.4 \times 10^{7}")


def test_sources_local_and_errors(tmp_path):
    # parquet and json layouts read the same rows as jsonl
    rows = [json.loads(x) for x in (FIXTURES / FILES["aime24"]).read_text().splitlines()]
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    (tmp_path / "a.json").write_text(json.dumps({"data": rows}))
    assert list(load_records(str(tmp_path / "a.parquet"))) == rows
    assert list(load_records(str(tmp_path / "a.json"))) == rows
    assert (
        prepare(
            "aime24", tmp_path / "o.parquet", PrepareOptions(source=str(tmp_path / "a.parquet"), progress=False)
        ).n_written
        == 3
    )
    with pytest.raises(SourceError, match="no such file"):
        load_records(str(tmp_path / "missing.parquet"))
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{oops\n')
    with pytest.raises(SourceError, match=r"bad.jsonl:2: not valid JSON"):
        load_records(str(tmp_path / "bad.jsonl"))
    # offline hub: the error says to pass a local file
    with pytest.raises(SourceError, match="pass the local .json/.jsonl/.parquet file"):
        load_records("trustrl-test/definitely-not-a-dataset")


def test_option_errors(tmp_path):
    with pytest.raises(ValueError, match="--levels applies to math_train only"):
        prepare("aime24", tmp_path / "x.parquet", _opts("aime24", levels=(1,)))
    with pytest.raises(ValueError, match="--second-traces applies"):
        prepare("dapo17k", tmp_path / "x.parquet", _opts("dapo17k", second_traces=SECOND))
    with pytest.raises(ValueError, match="decontaminates training sets"):
        prepare("aime24", tmp_path / "x.parquet", _opts("aime24", exclude=("x",)))


def test_rows_load_through_verls_rlhf_dataset(tmp_path):
    """Train and eval files (one schema) concatenate and tokenize in verl's own dataset class."""
    from omegaconf import OmegaConf
    from verl.utils import hf_tokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    from tests.recipes.data.tiny_tokenizer import build_tiny_tokenizer

    files = []
    for name, kw in [("openr1_46k", {"second_traces": SECOND}), ("dapo17k", {}), ("aime24", {}), ("minerva", {})]:
        files.append(str(tmp_path / f"{name}.parquet"))
        prepare(name, files[-1], _opts(name, drop_invalid=True, **kw))
    tokenizer = hf_tokenizer(str(build_tiny_tokenizer(tmp_path / "tok")))
    config = OmegaConf.create(
        {
            "prompt_key": "prompt",
            "max_prompt_length": 2048,
            "filter_overlong_prompts": True,
            "cache_dir": str(tmp_path / "cache"),
            "filter_overlong_prompts_workers": 1,
            "return_raw_chat": True,
        }
    )
    ds = RLHFDataset(files, tokenizer, config)
    assert len(ds) == 3 + 3 + 3 + 3  # nothing filtered as overlong or unreadable
    item = ds[0]
    assert item["data_source"] == "openr1_46k"
    assert item["raw_prompt"] == get_template().render(item["extra_info"]["raw_problem"])
    assert item["extra_info"]["expert_solutions"] == [T0, G0B]
    assert item["index"] == 0 and item["reward_model"]["ground_truth"] == "4"
    assert ds[9]["data_source"] == "minerva" and ds[9]["reward_model"]["ground_truth"] == r"4.5 \times 10^{33}"
    batch = collate_fn([ds[i] for i in range(len(ds))])
    assert [e["problem_id"] for e in batch["extra_info"]][:4] == [
        "openr1_46k/0",
        "openr1_46k/1",
        "openr1_46k/3",
        "dapo17k/a1",
    ]
    prompt_ids = tokenizer.apply_chat_template(item["raw_prompt"], add_generation_prompt=True, tokenize=False)
    assert prompt_ids.endswith("<|im_start|>assistant\n")


def _cli():
    spec = importlib.util.spec_from_file_location("prepare_cli", REPO / "scripts" / "data" / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_help_runs_without_heavy_imports():
    script = str(REPO / "scripts" / "data" / "prepare.py")
    code = "\n".join(
        [
            "import runpy, sys",
            f"sys.argv = [{script!r}, '--help']",
            "try:",
            f"    runpy.run_path({script!r}, run_name='__main__')",
            "except SystemExit as e:",
            "    assert e.code == 0, e.code",
            "heavy = [m for m in ('datasets', 'torch', 'math_verify', 'vllm') if m in sys.modules]",
            "assert not heavy, heavy",
        ]
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--drop-invalid" in out.stdout and "--second-traces" in out.stdout


def test_cli_eval_and_train(tmp_path, capsys):
    cli = _cli()
    inputs = [
        f"--input={n}={FIXTURES / FILES[n]}"
        for n in ("aime24", "aime25", "amc83", "math500", "minerva", "olympiadbench")
    ]
    assert cli.main(["eval", "--out-dir", str(tmp_path), "--no-progress", *inputs]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == [
        "aime24.parquet",
        "aime25.parquet",
        "amc83.parquet",
        "math500.parquet",
        "minerva.parquet",
        "olympiadbench.parquet",
    ]
    # a validation failure: exit 1, ids on stderr, other datasets still written
    rc = cli.main(
        [
            "dapo17k",
            "math_train",
            "--out-dir",
            str(tmp_path),
            "--no-progress",
            "--template",
            "verl_math",
            f"--input=dapo17k={FIXTURES / FILES['dapo17k']}",
            f"--input=math_train={FIXTURES / FILES['math_train']}",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "dapo17k/c1" in err and "math_train/4: missing_gold" in err
    rc = cli.main(
        [
            "dapo17k",
            "--out-dir",
            str(tmp_path),
            "--no-progress",
            "--drop-invalid",
            "--template",
            "verl_math",
            f"--input=dapo17k={FIXTURES / FILES['dapo17k']}",
        ]
    )
    assert rc == 0
    row = _rows(tmp_path / "dapo17k.parquet")[0]
    assert row["prompt"] == [
        {
            "role": "user",
            "content": "What is $1+1$? Let's think step by step and output the final answer within \\boxed{}.",
        }
    ]
    assert cli.main(["--list"]) == 0 and "OE_TO_maths_en_COMP" in capsys.readouterr().out
