# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The copy-digit reward, plus one JSON line per scored response naming its prompt (the resume test's probe).

Each call appends ``{"index": <train row>}`` to the file named by ``TRUSTRL_RESUME_PROBE_LOG``; a training step scores
``prompts x n`` responses before the next step starts, so the file, cut into blocks of that size, lists the prompts
each step trained on. The score itself is ``trustrl.recipes.cpu.task.compute_score``'s.
"""

from __future__ import annotations

import json
import os

from trustrl.recipes.cpu.task import compute_score as task_score

LOG_ENV = "TRUSTRL_RESUME_PROBE_LOG"


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    # KeyError when the variable did not reach the reward worker: the test then fails instead of passing blind
    with open(os.environ[LOG_ENV], "a") as fh:
        fh.write(json.dumps({"index": int(extra_info["index"]), "split": extra_info["split"]}) + "\n")
    return task_score(data_source, solution_str, ground_truth, extra_info, **kwargs)
