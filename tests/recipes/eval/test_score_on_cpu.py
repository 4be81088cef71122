# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Generations files -> grading with the training reward -> metrics JSON / CSV / PNG, and the generate path."""

import csv
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
from trustrl.recipes.data import PrepareOptions, prepare
from trustrl.recipes.eval import (
    Generation,
    GenerationsError,
    build_report,
    generate,
    read_generations,
    read_prompt_rows,
    score_generations,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
REPO = Path(__file__).resolve().parents[3]


def _cli():
    spec = importlib.util.spec_from_file_location("evaluate_cli", REPO / "scripts" / "eval" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_read_generations_both_layouts():
    a, b = read_generations(FIXTURES / "eval" / "run_a.jsonl"), read_generations(FIXTURES / "eval" / "run_b.jsonl")
    assert [g.problem_id for g in a] == [g.problem_id for g in b] == ["aime24/1", "aime24/2", "math500/a", "math500/b"]
    assert [len(g.responses) for g in b] == [4, 4, 1, 1]  # one-sample lines grouped by problem_id
    assert a[1].finish_reasons == ["stop", "stop", "stop", "length"]


@pytest.mark.parametrize(
    "lines, match",
    [
        ([{"problem_id": "p", "data_source": "d", "responses": ["x"]}], r":1: missing key\(s\) \['ground_truth'\]"),
        ([{"problem_id": "p", "data_source": "d", "ground_truth": "1"}], "responses"),
        ([{"problem_id": "p", "data_source": "d", "ground_truth": "1", "responses": ["x"]}] * 2, "already on line 1"),
        (
            [
                {"problem_id": "p", "data_source": "d", "ground_truth": "1", "responses": ["x"]},
                {"problem_id": "q", "data_source": "d", "ground_truth": "1", "response": "x"},
            ],
            "mixes one-problem and one-sample lines",
        ),
        (
            [
                {"problem_id": "p", "data_source": "d", "ground_truth": "1", "response": "x"},
                {"problem_id": "p", "data_source": "d", "ground_truth": "2", "response": "y"},
            ],
            ":2: problem_id 'p' has data_source/ground_truth",
        ),
        ([{"problem_id": "p", "data_source": "d", "ground_truth": "1", "responses": []}], "problems without responses"),
        ([], "no generations"),
        (
            [{"problem_id": "p", "data_source": "d", "ground_truth": "1", "responses": ["x"], "finish_reasons": []}],
            None,
        ),
        (
            [
                {
                    "problem_id": "p",
                    "data_source": "d",
                    "ground_truth": "1",
                    "responses": ["x"],
                    "finish_reasons": ["a", "b"],
                }
            ],
            "1 responses but 2 finish_reasons",
        ),
    ],
)
def test_read_generations_errors(tmp_path, lines, match):
    path = tmp_path / "g.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    if match is None:
        assert read_generations(path)[0].finish_reasons == [None]
        return
    with pytest.raises(GenerationsError, match=match):
        read_generations(path)


def test_score_round_trip_writes_json_csv_png(tmp_path, capsys):
    out = tmp_path / "report"
    rc = _cli().main(
        [
            "score",
            str(FIXTURES / "eval" / "run_a.jsonl"),
            str(FIXTURES / "eval" / "run_b.jsonl"),
            "--names",
            "a",
            "b",
            "--out-dir",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0 and "pass@1" in capsys.readouterr().out
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    a = runs["a"]["benchmarks"]["aime24"]
    # run a, aime24 (n = 4):
    #   aime24/1: 204 ok, 205 wrong, 204 ok, no box        -> c = 2
    #   aime24/2: 7, 7, 113 ok, 113 in a cut-off response  -> c = 1 (finish_reason "length" scores 0)
    assert a["avg@n"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    # pass@2: 1 - C(2,2)/C(4,2) = 5/6 and 1 - C(3,2)/C(4,2) = 1/2
    assert a["pass@k"] == pytest.approx({"1": 0.375, "2": (5 / 6 + 1 / 2) / 2, "4": 1.0})
    # maj@4: 204 (2 votes) wins / 7 (2) beats 113 (1; the cut-off sample does not vote) -> 1/2
    # maj@2: [204 205] tie -> 204 first, [204 -] -> 204 | [7 7] -> 7, [113 -] -> 113  -> (1 + 1/2) / 2
    # maj@1: per voting sample: (2/4 + 1/4) / 2
    assert a["maj@k"] == pytest.approx({"1": 0.375, "2": 0.75, "4": 0.5})
    assert a["unique_correct"] == 2
    assert a["status_counts"] == {"ok": 6, "no_box": 1, "truncated": 1}
    m = runs["a"]["benchmarks"]["math500"]  # \dfrac{1}{2} after </think> correct, 4 vs 3 wrong
    assert (m["avg@n"], m["pass@k"], m["unique_correct"]) == (0.5, {"1": 0.5}, 1)
    assert runs["a"]["average"]["avg@n"] == pytest.approx((0.375 + 0.5) / 2)
    assert runs["a"]["average"]["unique_correct"] == 3
    b = runs["b"]["benchmarks"]
    # run b: aime24/1 4 of 4, aime24/2 0 of 4; math500 0.5 vs 1/2 and 3 vs 3 both correct
    assert b["aime24"]["pass@k"] == pytest.approx({"1": 0.5, "2": 0.5, "4": 0.5})
    assert b["math500"]["avg@n"] == 1.0 and b["aime24"]["unique_correct"] == 1
    assert "coverage" in runs["a"]["definitions"]["unique_correct"]
    assert "earliest first vote" in runs["a"]["definitions"]["maj@k"]
    assert [p["c"] for p in runs["a"]["problems"]] == [2, 1, 1, 0]

    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["run"], r["benchmark"]) for r in rows] == [
        ("a", "aime24"), ("a", "math500"), ("a", "average"), ("b", "aime24"), ("b", "math500"), ("b", "average")
    ]  # fmt: skip
    assert float(rows[0]["pass@2"]) == pytest.approx(2 / 3, abs=1e-6) and rows[1]["pass@2"] == ""
    assert rows[0]["maj@4"] == "0.500000" and rows[2]["unique_correct"] == "3"

    png = (out / "pass_at_k.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    # re-plot from the JSON
    assert _cli().main(["plot", str(out / "metrics.json"), "--out", str(tmp_path / "re.png")]) == 0
    assert (tmp_path / "re.png").read_bytes()[:4] == b"\x89PNG"


def test_equivalence_clustering_merges_notational_variants():
    # gold 1; wrong answers 0.5 and \frac{1}{2} are one answer written twice
    gen = Generation("p", "b", "1", ["\\boxed{1}", "\\boxed{0.5}", "\\boxed{\\frac{1}{2}}"])
    by_string = score_generations([gen], clustering="string", progress=False)
    by_grader = score_generations([gen], clustering="equivalence", progress=False)
    # string votes: 1 | 0.5 | \frac{1}{2}, a three-way tie won by the first (correct) answer
    assert build_report(by_string, run="s")["benchmarks"]["b"]["maj@k"]["3"] == 1.0
    # grader votes: {0.5, 1/2} has 2 votes against 1 -> wrong
    assert build_report(by_grader, run="e")["benchmarks"]["b"]["maj@k"]["3"] == 0.0
    assert by_grader[0].vote_keys[1] == by_grader[0].vote_keys[2] != by_grader[0].vote_keys[0]


def test_score_rejects_bad_names_and_files(tmp_path, capsys):
    cli = _cli()
    run_a = str(FIXTURES / "eval" / "run_a.jsonl")
    assert cli.main(["score", run_a, run_a, "--out-dir", str(tmp_path)]) == 2  # both named "eval"
    assert "one distinct name per generations file" in capsys.readouterr().err
    assert cli.main(["score", str(tmp_path / "none.jsonl"), "--out-dir", str(tmp_path)]) == 2
    assert "no such generations file" in capsys.readouterr().err


class _FakeOutput:
    def __init__(self, text, finish_reason):
        self.text, self.finish_reason = text, finish_reason


def _fake_vllm(tokenizer, calls):
    """A stand-in for the vllm module: LLM(...).generate answers \\boxed{j} for sample j."""

    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    class LLM:
        def __init__(self, model, **kw):
            calls.append(("init", model, kw))

        def get_tokenizer(self):
            return tokenizer

        def generate(self, prompts, params):
            calls.append(("generate", list(prompts), dict(params.__dict__)))
            outs = [_FakeOutput(f"\\boxed{{{j}}}", "length" if j == 3 else "stop") for j in range(params.n)]
            return [types.SimpleNamespace(outputs=outs) for _ in prompts]

    return types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams)


def test_generate_with_a_fake_vllm_then_score(tmp_path, monkeypatch):
    from verl.utils import hf_tokenizer

    from tests.recipes.data.tiny_tokenizer import build_tiny_tokenizer

    data = FIXTURES / "data"
    files = []
    for name, src in (("aime24", "aime_2024.jsonl"), ("math500", "math_500.jsonl")):
        files.append(tmp_path / f"{name}.parquet")
        prepare(name, files[-1], PrepareOptions(source=str(data / src), progress=False))
    tokenizer = hf_tokenizer(str(build_tiny_tokenizer(tmp_path / "tok")))
    calls = []
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(tokenizer, calls))
    # a GPU platform: an earlier test in this process may have imported the real vLLM CPU build's platform module
    gpu = types.SimpleNamespace(current_platform=types.SimpleNamespace(is_cpu=lambda: False))
    monkeypatch.setitem(sys.modules, "vllm.platforms", gpu)
    out = generate("fake-model", files, tmp_path / "gens.jsonl", preset="luffy", seed=3, max_model_len=4096)

    assert calls[0] == (
        "init",
        "fake-model",
        {"tensor_parallel_size": 1, "seed": 3, "gpu_memory_utilization": 0.9, "max_model_len": 4096},
    )
    sampling = {c[2]["n"]: c[2] for c in calls[1:]}
    # LUFFY protocol: avg@32 on AIME, one sample on MATH-500; T = 0.6, top_p = 1, 8192 tokens
    assert sorted(sampling) == [1, 32]
    assert sampling[32] == {"n": 32, "temperature": 0.6, "top_p": 1.0, "max_tokens": 8192, "seed": 3}
    gens = read_generations(out)
    assert [(g.problem_id, len(g.responses)) for g in gens] == [
        ("aime24/60", 32), ("aime24/61", 32), ("aime24/62", 32),
        ("math500/test/precalculus/807.json", 1), ("math500/test/algebra/1349.json", 1),
        ("math500/test/intermediate_algebra/1994.json", 1),
    ]  # fmt: skip
    rows = read_prompt_rows(files)
    assert gens[0].prompt == tokenizer.apply_chat_template(rows[0].messages, tokenize=False, add_generation_prompt=True)
    assert gens[0].prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert gens[0].finish_reasons[3] == "length"

    report = build_report(score_generations(gens, clustering="string", progress=False), run="fake")
    # aime24/62 has gold 25 (stored "025"): sample 25 answers \boxed{25} -> exactly one correct sample of 32
    assert report["benchmarks"]["aime24"]["unique_correct"] == 1
    assert report["benchmarks"]["aime24"]["avg@n"] == pytest.approx(1 / 32 / 3)
    assert report["benchmarks"]["math500"]["avg@n"] == 0.0


def test_generate_without_vllm_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    prepare(
        "aime24",
        tmp_path / "a.parquet",
        PrepareOptions(source=str(FIXTURES / "data" / "aime_2024.jsonl"), progress=False),
    )
    with pytest.raises(ImportError, match=r"pip install -e '.\[gpu\]'.*evaluate.py score"):
        generate("m", [tmp_path / "a.parquet"], tmp_path / "g.jsonl")
    rc = _cli().main(
        ["generate", "--model", "m", "--data", str(tmp_path / "a.parquet"), "--out", str(tmp_path / "g.jsonl")]
    )
    assert rc == 2 and "vLLM is not installed" in capsys.readouterr().err
    assert not (tmp_path / "g.jsonl").exists()


def test_cli_help_works_on_cpu():
    import subprocess

    for args in ([], ["generate"], ["score"], ["plot"]):
        out = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "eval" / "evaluate.py"), *args, "--help"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "usage: evaluate.py" in out.stdout
