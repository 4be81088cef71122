# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Sampling n responses per benchmark problem with vLLM (GPU), written as a generations file.

vLLM is imported only inside :func:`generate`, so this module, ``--help`` and every CPU code path work
without it. Prompts are the prepared parquet rows' ``prompt`` chat lists rendered with the checkpoint's own
chat template (``add_generation_prompt=True``).

Sampling presets (MATH_EVAL.md section 2.1):

* ``luffy``: T = 0.6, top_p = 1.0, max_tokens = 8192; n = 32 for AIME24/25 and AMC (avg@32), 1 otherwise.
  The LUFFY/TRAPO protocol; their x32-duplicated rows become one row sampled n = 32 times.
* ``r1``: T = 0.6, top_p = 0.95, max_tokens = 32768; n = 64 for AIME, 4 otherwise (DeepSeek-R1 / open-r1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .scoring import Generation, write_generations


@dataclass(frozen=True)
class SamplingPreset:
    temperature: float
    top_p: float
    max_tokens: int
    default_n: int
    n_by_benchmark: Mapping[str, int] = field(default_factory=dict)

    def n_for(self, benchmark: str) -> int:
        return self.n_by_benchmark.get(benchmark, self.default_n)


_AVG32 = {"aime24": 32, "aime25": 32, "amc83": 32, "amc23": 32}
PRESETS = {
    "luffy": SamplingPreset(0.6, 1.0, 8192, 1, _AVG32),
    "r1": SamplingPreset(0.6, 0.95, 32768, 4, {"aime24": 64, "aime25": 64}),
}


@dataclass
class PromptRow:
    problem_id: str
    data_source: str
    ground_truth: str
    messages: list[dict]


def read_prompt_rows(files: Sequence[str | Path], limit: int | None = None) -> list[PromptRow]:
    """Rows of prepared parquet files (``scripts/data/prepare.py``); ``limit`` rows per file."""
    import pyarrow.parquet as pq

    rows = []
    for path in files:
        table = pq.read_table(path, columns=["data_source", "prompt", "reward_model", "extra_info"])
        for i, r in enumerate(table.to_pylist()[:limit]):
            extra = r.get("extra_info") or {}
            pid = extra.get("problem_id") or f"{r['data_source']}/{extra.get('index', i)}"
            rows.append(PromptRow(pid, r["data_source"], r["reward_model"]["ground_truth"], r["prompt"]))
    if not rows:
        raise ValueError(f"no rows in {list(map(str, files))}")
    return rows


def require_vllm():
    """The ``vllm`` module, or an ImportError that says how to install it or what to run instead."""
    try:
        import vllm
    except ImportError as e:
        raise ImportError(
            "evaluate.py generate needs vLLM and a GPU, and vLLM is not installed here. Install the GPU extra "
            "(pip install -e '.[gpu]', which pins verl[vllm]==0.9.1), or generate elsewhere and run "
            "`evaluate.py score` on the generations file (CPU only)."
        ) from e
    return vllm


def generate(
    model: str,
    data_files: Sequence[str | Path],
    output: str | Path,
    *,
    preset: str = "luffy",
    n: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    seed: int = 0,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    limit: int | None = None,
    llm_kwargs: Mapping | None = None,
) -> Path:
    """Sample every prepared row ``n`` times (preset's n per benchmark unless ``n`` is given); returns the file."""
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    p = PRESETS[preset]
    rows = read_prompt_rows(data_files, limit)
    vllm = require_vllm()
    llm = vllm.LLM(
        model=model,
        tensor_parallel_size=tensor_parallel_size,
        seed=seed,
        gpu_memory_utilization=gpu_memory_utilization,
        max_model_len=max_model_len,
        **dict(llm_kwargs or {}),
    )
    tokenizer = llm.get_tokenizer()
    texts = [tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True) for r in rows]
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(n or p.n_for(r.data_source), []).append(i)
    generations: list[Generation | None] = [None] * len(rows)
    for n_samples, idx in groups.items():
        params = vllm.SamplingParams(
            n=n_samples,
            temperature=p.temperature if temperature is None else temperature,
            top_p=p.top_p if top_p is None else top_p,
            max_tokens=p.max_tokens if max_tokens is None else max_tokens,
            seed=seed,
        )
        for i, out in zip(idx, llm.generate([texts[i] for i in idx], params)):
            r = rows[i]
            generations[i] = Generation(
                r.problem_id,
                r.data_source,
                r.ground_truth,
                [o.text for o in out.outputs],
                [o.finish_reason for o in out.outputs],
                texts[i],
            )
    return write_generations(generations, output)
