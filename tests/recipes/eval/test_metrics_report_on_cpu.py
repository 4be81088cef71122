# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The evaluation table and figure on a LUFFY-protocol run: benchmarks with n = 32 and n = 1 side by side."""

import pytest
from trustrl.recipes.eval.metrics import ProblemResult, average_metrics, benchmark_metrics
from trustrl.recipes.eval.report import format_table, pass_at_k_figure, plot_notes

# the luffy preset: 32 samples on AIME/AMC, 1 on the rest; and one benchmark with n = 10 (k = 10 is not a power of 2)
N = {"aime24": 32, "aime25": 32, "amc83": 32, "math500": 1, "minerva": 1, "olympiadbench": 1, "extra": 10}


def _results(bench: str, n: int, problems: int = 8) -> list[ProblemResult]:
    out = []
    for i in range(problems):
        correct = [(i + j) % 3 == 0 for j in range(n)] if n > 1 else [i % 2 == 0]
        out.append(ProblemResult(f"{bench}/{i}", bench, "1", correct, ["1"] * n, ["ok"] * n, ["1"] * n))
    return out


@pytest.fixture(scope="module")
def report():
    benchmarks = {b: benchmark_metrics(_results(b, n)) for b, n in N.items()}
    return {"run": "r", "benchmarks": benchmarks, "average": average_metrics(benchmarks)}


def test_average_names_its_k(report):
    avg = report["average"]
    assert avg["k_max"] == 1 and avg["k_limited_by"] == ["math500", "minerva", "olympiadbench"]
    assert list(avg["pass@k"]) == ["1"]


def test_table_labels_the_average_by_its_k(report):
    table = format_table({"r": report}).splitlines()
    header = table[0].split()
    assert header[-3:] == ["k", "pass@k", "uniq"] and "pass@n" not in header
    rows = {line.split()[1]: line.split() for line in table[1:] if line.startswith("r ")}
    k_col, pass_col = header.index("k"), header.index("pass@k")
    assert rows["aime24"][k_col] == "32" and rows["extra"][k_col] == "10" and rows["math500"][k_col] == "1"
    # the average's pass@k was pass@1 (52.15 shown as "pass@n" beside per-benchmark pass@32): now k = 1, no pass@k
    assert rows["average"][k_col] == "1" and rows["average"][pass_col] == "-"
    assert table[-1] == (
        "r: the average row has k <= 1, the largest k every benchmark has (limited by math500, minerva, "
        "olympiadbench); pass@k of the others is in their rows"
    )


def test_figure_draws_every_benchmark_on_one_scale_with_true_ticks(report):
    import matplotlib.pyplot as plt

    fig, notes = pass_at_k_figure({"r": report})
    try:
        axes = [ax for ax in fig.axes if ax.get_visible()]
        titles = [ax.get_title() for ax in axes]
        # n = 1 benchmarks and the average used to be left out silently with the luffy preset
        assert titles == [*N, "average of aime24, aime25, amc83, extra"]
        assert {ax.get_ylim() for ax in axes} == {(0.0, 100.0)}  # one y range for every panel
        ticks = {t: [lab.get_text() for lab in ax.get_xticklabels()] for t, ax in zip(titles, axes)}
        assert ticks["extra"] == ["1", "2", "4", "8", "10"]  # k = 10 tagged, no 2^0..2^3 labels
        assert ticks["aime24"] == ["1", "2", "4", "8", "16", "32"] and ticks["math500"] == ["1"]
        assert len(axes[titles.index("math500")].lines[0].get_xdata()) == 1  # a single point
    finally:
        plt.close(fig)
    assert notes == [
        "n = 1, a single point at k = 1: math500, minerva, olympiadbench",
        "average curve of r: mean of aime24, aime25, amc83, extra only (math500, minerva, olympiadbench have n = 1; "
        "the average over all 7 benchmarks has pass@1 only)",
    ]


def test_notes_name_what_was_not_asked_for(report):
    notes = plot_notes({"r": report}, ["aime24"])
    assert notes == ["not drawn (not asked for): aime25, amc83, math500, minerva, olympiadbench, extra"]
