# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""``trustrl.recipes.curves``: reading verl's file logger, choosing panels, drawing a readable grid."""

from __future__ import annotations

import json
import math

import pytest
from trustrl.recipes import curves


def _write_log(path, rows):
    # verl's FileLogger format: {"step": s, "data": {...}} per line
    path.write_text("".join(json.dumps({"step": s, "data": d}) + "\n" for s, d in rows))
    return path


def _trapo_rows(n=6):
    rows = []
    for s in range(1, n + 1):
        rows.append(
            (
                s,
                {
                    "critic/score/mean": 0.1 * s,
                    "actor/entropy": 3.0 - 0.1 * s,
                    "response_length/mean": 12.0 + s,
                    "actor/grad_norm": 1.5,
                    "rollout/trapo/unguided/reward_mean": 0.05 * s,
                    "rollout/trapo/unguided/response_length_mean": 10.0,
                    "rollout/trapo/guided_share/g2": 1.0,
                    "rollout/trapo/guided_share/g3": 0.5,
                    "rollout/trapo/guided_share/any": 1.0,
                    "rollout/trapo/prefix_len/mean": 7.0,
                    "rollout/trapo/prefix_len/g2": 4.0,
                    "actor/trapo/sft_nll": 3.0 / s,
                    "actor/trapo/sft_p_lt_alpha_share": 0.9 / s,
                    "actor/trapo/sft_p_mean": 0.1 * s,
                },
            )
        )
    return rows


def test_read_file_log_flattens_and_counts_partial_lines(tmp_path, capsys):
    log = _write_log(tmp_path / "metrics.jsonl", [(1, {"a": 1.0}), (2, {"a": 2.0})])
    # a run killed mid-write leaves a partial last line
    log.write_text(log.read_text() + '{"step": 3, "da')
    rows = curves.read_file_log(tmp_path)  # the folder resolves to metrics.jsonl
    assert rows == [{"step": 1, "a": 1.0}, {"step": 2, "a": 2.0}]
    assert "skipped 1 line(s)" in capsys.readouterr().err


def test_resolve_log_folder_rules(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        curves.resolve_log(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="trainer.logger"):
        curves.resolve_log(tmp_path)
    # verl's default layout without VERL_FILE_LOGGER_PATH: <project>/<experiment>.jsonl
    (tmp_path / "proj").mkdir()
    one = _write_log(tmp_path / "proj" / "exp1.jsonl", [(1, {"a": 1})])
    assert curves.resolve_log(tmp_path) == one
    _write_log(tmp_path / "proj" / "exp2.jsonl", [(1, {"a": 1})])
    with pytest.raises(ValueError, match="2 \\*.jsonl files"):
        curves.resolve_log(tmp_path)


def test_detect_algo_and_panels():
    trapo = [{"step": s, **d} for s, d in _trapo_rows()]
    assert curves.detect_algo(trapo) == "trapo"
    assert curves.detect_algo([{"step": 1, "quatro/lambda_mean": 0.5}]) == "quatro"
    assert curves.detect_algo([{"step": 1, "critic/score/mean": 0.5}]) is None
    titles = [p.title for p in curves.panels_for(trapo)]
    assert titles[:4] == ["Reward", "Policy entropy", "Response length", "Gradient norm"]
    assert "TRAPO guided share per micro-group" in titles and "TRAPO SFT-token NLL" in titles
    # panels without any logged key are left out (no QUATRO panel in a TRAPO run, even if forced)
    assert not any(t.startswith("QUATRO") for t in titles)
    assert [p.title for p in curves.panels_for(trapo, algo="quatro")][:4] == titles[:4]
    guided = next(p for p in curves.panels_for(trapo) if p.title.startswith("TRAPO guided"))
    assert [label for _, label in guided.keys({k for m in trapo for k in m})] == ["any group", "group 2", "group 3"]
    with pytest.raises(ValueError, match="algo must be one of"):
        curves.panels_for(trapo, algo="ppo")


def test_series_skips_non_numeric_and_keeps_last_of_a_repeated_step():
    rows = [{"step": 1, "a": 1.0}, {"step": 2, "a": "n/a"}, {"step": 3, "a": math.nan}, {"step": 1, "a": 5.0}]
    assert curves._series(rows, "a") == ([1], [5.0])


def test_plot_run_draws_a_grid(tmp_path):
    import matplotlib.image as mpimg

    trapo = [{"step": s, **d} for s, d in _trapo_rows()]
    png = curves.plot_run(trapo, tmp_path / "c.png", title="t")
    h, w = mpimg.imread(png).shape[:2]
    # 8 panels on 3 columns: 3 rows, not one strip of 8
    assert h > 0.6 * w


def test_plot_run_without_plottable_keys_raises(tmp_path):
    with pytest.raises(ValueError, match="no step records"):
        curves.plot_run([], tmp_path / "c.png")
    with pytest.raises(ValueError, match="none of the plotted metrics"):
        curves.plot_run([{"step": 1, "timing_s/step": 1.0}], tmp_path / "c.png")


def test_cli_two_runs_and_errors(tmp_path, capsys):
    a = _write_log(tmp_path / "a.jsonl", _trapo_rows())
    b = _write_log(tmp_path / "b.jsonl", _trapo_rows(4))
    out = tmp_path / "fig" / "curves.png"
    assert curves.main([str(a), str(b), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert "a: 6 steps, b: 4 steps" in capsys.readouterr().out
    assert curves.main([str(tmp_path / "nope.jsonl"), "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_resumed_run_is_read_across_its_launch_files(tmp_path):
    """scripts/train writes one metrics_<time>.jsonl per launch; a resume re-logs from its checkpoint step."""
    _write_log(tmp_path / "metrics_20260101T000000.jsonl", [(1, {"a": 1.0}), (2, {"a": 2.0}), (3, {"a": 9.0})])
    # the run was killed after step 3 and resumed from the step-2 checkpoint: step 3 is trained again
    _write_log(tmp_path / "metrics_20260101T010000.jsonl", [(3, {"a": 3.0}), (4, {"a": 4.0})])
    assert curves.resolve_log(tmp_path) == tmp_path
    rows = curves.read_file_log(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3, 3, 4]
    assert curves._series(rows, "a") == ([1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0])
