# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""What the CPU demo prints: the step line and the summary read the unguided reward for TRAPO, all rows otherwise."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trustrl.recipes.cpu import report


@dataclass
class _Result:
    metrics: list[dict] = field(default_factory=list)
    wall_s: float = 12.0

    def series(self, key):
        return [m[key] for m in self.metrics if key in m]


def _trapo_step(step: int) -> dict:
    return {
        "step": step,
        "critic/score/mean": 0.6,  # guided rows included: must not be shown as the reward
        "actor/entropy": 2.0,
        "actor/grad_norm": 0.5,
        "rollout/trapo/unguided/reward_mean": 0.1 * step,
        "rollout/trapo/guided/reward_mean": 0.9,
        "rollout/trapo/unguided/response_length_mean": 9.0,
        "rollout/trapo/guided_share/g2": 1.0 if step < 4 else 0.25,
        "rollout/trapo/guided_share/g3": 1.0,
        "rollout/trapo/guided_share/g10": 0.5,  # sorted by group number, not as text
        "rollout/trapo/prefix_len/mean": 6.5,
        "actor/trapo/sft_nll": 3.0 / step,
        "actor/trapo/sft_p_lt_alpha_share": 0.5,
        "actor/trapo/rl_loss": 0.01,
    }


def test_trapo_step_line_shows_the_unguided_reward_and_the_guided_apart():
    fields = {k: str(v) for k, v in _trapo_step(2).items()}
    line = report.step_line(fields)
    assert "reward=0.2 " in line  # the unguided reward, not critic/score/mean's 0.6
    assert "0.6" not in line
    assert "guided_r=0.9" in line
    assert "guided_g2=1 " in line and "guided_g3=1 " in line
    for label in ("len=9", "prefix=6.5", "sft_nll=1.5", "p<alpha=0.5"):
        assert label in line, (label, line)
    assert "rl_loss" not in line  # the loss internals stay in the log


def test_grpo_and_quatro_step_lines_show_all_rows():
    fields = {"step": "3", "critic/score/mean": "0.25", "actor/entropy": "3.1", "quatro/lambda_mean": "0.61"}
    line = report.step_line(fields)
    assert line.startswith("step=3  reward=0.25  entropy=3.1")
    assert "lambda_mean=0.61" in line


def test_trapo_summary_reports_unguided_reward_and_guided_share_means():
    result = _Result([_trapo_step(s) for s in range(1, 13)])
    text = report.summarize(result, Path("curves.png"))
    lines = text.splitlines()
    # first 6 steps 0.1..0.6 -> mean 0.35; last 6 0.7..1.2 -> 0.95
    assert "[trustrl] reward of the model's own (unguided) rollouts: first 6 steps 0.350 -> last 0.950" in lines
    assert "[trustrl] reward of all rows, guided included: first 6 steps 0.600 -> last 0.600" in lines
    # g2 guided 1, 1, 1, then 0.25: first 6 mean (3 + 0.75) / 6
    assert "[trustrl] guided share, micro-group 2: first 6 steps 0.625 -> last 0.250" in lines
    groups = [line.split("micro-group ")[1].split(":")[0] for line in lines if "micro-group" in line]
    assert groups == ["2", "3", "10"]
    assert any(line.startswith("[trustrl] NLL of the expert (SFT) tokens") for line in lines)
    assert lines[-1] == "[trustrl] curves: curves.png"


def test_summary_of_a_short_run_averages_what_there_is():
    result = _Result([{"step": 1, "critic/score/mean": 0.2}, {"step": 2, "critic/score/mean": 0.4}])
    assert "[trustrl] mean reward: first 1 steps 0.200 -> last 0.400" in report.summarize(result, Path("c.png"))
    assert report.window(30) == 6 and report.window(5) == 2 and report.window(1) == 1
