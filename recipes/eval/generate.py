# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Sampling n responses per benchmark problem with vLLM (GPU), written as a generations file.

vLLM is imported only inside :func:`generate`, so this module, ``--help`` and every CPU code path work
without it. Prompts are the prepared parquet rows' ``prompt`` chat lists rendered with the checkpoint's own
chat template (``add_generation_prompt=True``).

``--model`` takes a hub id, a Hugging Face model folder, or a verl checkpoint: ``global_step_N`` or its ``actor/``,
FSDP or Megatron. A checkpoint without Hugging Face weights (verl's default ``checkpoint.save_contents`` writes
only the sharded model, optimizer and the ``huggingface/`` config and tokenizer) is merged once with verl's own
merger, ``python -m verl.model_merger merge --backend fsdp|megatron --local_dir <actor> --target_dir <cache>``,
into a cache folder (:func:`prepare_model`; default ``~/.cache/trustrl/merged``, ``TRUSTRL_MERGE_CACHE``), and
reused while the checkpoint is unchanged. Without a GPU, vLLM's CPU build generates (the CPU tier's vLLM).

Sampling presets (recipes/eval/README.md):

* ``luffy``: T = 0.6, top_p = 1.0, max_tokens = 8192; n = 32 for AIME24/25 and AMC (avg@32), 1 otherwise.
  The LUFFY/TRAPO protocol; their x32-duplicated rows become one row sampled n = 32 times.
* ``r1``: T = 0.6, top_p = 0.95, max_tokens = 32768; n = 64 for AIME, 4 otherwise (DeepSeek-R1 / open-r1).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
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


# ------------------------------------------------------------------------------------ verl checkpoints

MERGE_CACHE_ENV = "TRUSTRL_MERGE_CACHE"
CPU_VLLM_ENV = {"VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
_MARKER = "trustrl_merged.json"
_HF_WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "model*.safetensors.index.json")


class CheckpointError(ValueError):
    """``--model`` names neither a model nor a verl checkpoint; the message says what was expected."""


@dataclass(frozen=True)
class ModelSource:
    """What ``--model`` resolves to.

    ``kind``: ``hub`` (a hub id), ``hf`` (a folder with Hugging Face weights, maybe a checkpoint's
    ``actor/huggingface``), ``merged`` (a checkpoint already merged into ``model``), ``to_merge`` (a checkpoint
    that :func:`prepare_model` merges into ``model``).
    """

    model: str
    kind: str
    checkpoint: Path | None = None
    backend: str | None = None

    def describe(self) -> str:
        if self.kind == "hub":
            return f"hub id {self.model}"
        if self.kind == "hf":
            return f"Hugging Face folder {self.model}"
        verb = "merged" if self.kind == "merged" else "to merge"
        return f"verl {self.backend} checkpoint {self.checkpoint} ({verb} into {self.model})"


def _has_hf_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(any(folder.glob(g)) for g in _HF_WEIGHTS)


def _backend(actor: Path) -> str | None:
    if any(actor.glob("model_world_size_*_rank_*.pt")):
        return "fsdp"
    if (actor / "model" / "dist_ckpt").is_dir() or (actor / "dist_ckpt").is_dir():
        return "megatron"
    return None


def _hf_config_dir(actor: Path, backend: str) -> Path:
    # where verl's merger reads the config and tokenizer (verl/model_merger/base_model_merger.py)
    return actor / "model" / "huggingface" if backend == "megatron" else actor / "huggingface"


def _fingerprint(actor: Path) -> dict:
    shards = sorted(p for p in actor.rglob("*") if p.is_file())
    return {"source": str(actor), "files": len(shards), "mtime": max((p.stat().st_mtime for p in shards), default=0)}


def merge_cache_dir(actor: Path, cache_dir: str | Path | None = None) -> Path:
    """The merged folder of a checkpoint's ``actor/``: ``<cache>/<experiment>_<global_step_N>_<hash>``."""
    root = Path(cache_dir or os.environ.get(MERGE_CACHE_ENV) or Path.home() / ".cache" / "trustrl" / "merged")
    actor = actor.resolve()
    step = actor.parent.name
    digest = hashlib.sha1(str(actor).encode()).hexdigest()[:10]
    return root.expanduser() / f"{actor.parent.parent.name}_{step}_{digest}"


def resolve_model(model: str, cache_dir: str | Path | None = None) -> ModelSource:
    """What ``model`` is (no side effect); raises :class:`CheckpointError` naming what a checkpoint needs."""
    path = Path(model).expanduser()
    if not path.exists():
        # a hub id is "name" or "org/name"; a path that does not exist is an error, not a download
        if not model.startswith(("/", ".", "~")) and model.count("/") <= 1:
            return ModelSource(model, "hub")
        raise CheckpointError(f"--model {model}: no such folder (and not a hub id 'org/name')")
    if not path.is_dir():
        raise CheckpointError(f"--model {model}: a file; give a model folder or a verl checkpoint folder")
    if _has_hf_weights(path):
        return ModelSource(str(path), "hf")
    actor = path / "actor" if (path / "actor").is_dir() else path
    if _has_hf_weights(actor / "huggingface"):
        # checkpoint.save_contents included hf_model: verl wrote the weights itself
        return ModelSource(str(actor / "huggingface"), "hf", actor, "fsdp")
    backend = _backend(actor)
    if backend is None:
        raise CheckpointError(
            f"--model {model}: neither a Hugging Face folder (config.json + *.safetensors) nor a verl checkpoint "
            "(global_step_N/ or its actor/, holding model_world_size_*_rank_*.pt (FSDP) or model/dist_ckpt/ "
            f"(Megatron)); found: {sorted(p.name for p in actor.iterdir())[:12]}"
        )
    hf_dir = _hf_config_dir(actor, backend)
    if not (hf_dir / "config.json").is_file():
        raise CheckpointError(
            f"--model {model}: {backend} checkpoint without {hf_dir}/config.json, which verl's merger needs "
            "(the model config and tokenizer verl saves next to the shards)"
        )
    target = merge_cache_dir(actor, cache_dir)
    marker = target / _MARKER
    if marker.is_file() and json.loads(marker.read_text()) == _fingerprint(actor) and _has_hf_weights(target):
        return ModelSource(str(target), "merged", actor.resolve(), backend)
    return ModelSource(str(target), "to_merge", actor.resolve(), backend)


def prepare_model(model: str, cache_dir: str | Path | None = None, python: str = sys.executable) -> ModelSource:
    """:func:`resolve_model`, then merge a checkpoint without HF weights with verl's merger into its cache folder.

    The merge writes to a temporary sibling and renames it when verl's merger exits 0, so an interrupted merge
    is never taken for a finished one; a fingerprint of the checkpoint's files decides whether a cached merge is
    still current. Raises ``RuntimeError`` with the merger's output tail when it fails.
    """
    source = resolve_model(model, cache_dir)
    if source.kind != "to_merge":
        return source
    target = Path(source.model)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "verl.model_merger", "merge", "--backend", source.backend]
    cmd += ["--local_dir", str(source.checkpoint), "--target_dir", str(partial)]
    print(f"[generate] merging {source.checkpoint} with verl's merger: {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not _has_hf_weights(partial):
        shutil.rmtree(partial, ignore_errors=True)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise RuntimeError(f"verl's model merger failed (exit {proc.returncode}) on {source.checkpoint}:\n{tail}")
    (partial / _MARKER).write_text(json.dumps(_fingerprint(source.checkpoint)))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return ModelSource(str(target), "merged", source.checkpoint, source.backend)


def _is_cpu_build(vllm) -> bool:
    """Whether the imported vLLM runs on its CPU platform."""
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return bool(getattr(current_platform, "is_cpu", lambda: False)())


def _on_cpu() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch comes with verl
        return True
    return not torch.cuda.is_available()


def require_vllm():
    """The ``vllm`` module, or an ImportError that says how to install it or what to run instead."""
    try:
        import vllm
    except ImportError as e:
        raise ImportError(
            "evaluate.py generate needs vLLM, and vLLM is not installed here. On a GPU machine install the GPU "
            "extra (pip install -e '.[gpu]', which pins verl[vllm]==0.9.1); on a CPU machine the CPU tier's install "
            "(bash scripts/dev.sh) adds vLLM's CPU build. Or generate elsewhere and run `evaluate.py score` on "
            "the generations file."
        ) from e
    return vllm


def _set_cpu_vllm_env() -> None:
    """On a machine without a GPU, default the environment for vLLM's CPU build (values already set win).

    The CPU platform, a 1 GiB KV cache (its default is sized for real models), and no OpenMP pinning on cores
    other processes share: :data:`CPU_VLLM_ENV`.
    """
    if _on_cpu():
        for key, value in CPU_VLLM_ENV.items():
            os.environ.setdefault(key, value)


def _load_llm(vllm, model: str, llm_kwargs: Mapping | None, **engine_kwargs):
    """``vllm.LLM(model, **engine_kwargs)``; on vLLM's CPU build eager and float32 unless ``llm_kwargs`` says otherwise.

    Float32 as the CPU trainer: bfloat16 kernels need AVX512. ``llm_kwargs`` override everything else.
    """
    device_kwargs = {"enforce_eager": True, "dtype": "float32"} if _is_cpu_build(vllm) else {}
    return vllm.LLM(model=model, **engine_kwargs, **{**device_kwargs, **dict(llm_kwargs or {})})


def _groups_by_n(rows: Sequence[PromptRow], n: int | None, preset: SamplingPreset) -> dict[int, list[int]]:
    """Row indices grouped by their number of samples: ``n`` when given, else the preset's n for the benchmark.

    >>> rows = [PromptRow(str(i), src, "1", []) for i, src in enumerate(["aime24", "math500", "aime24"])]
    >>> _groups_by_n(rows, None, PRESETS["luffy"]), _groups_by_n(rows, 2, PRESETS["luffy"])
    ({32: [0, 2], 1: [1]}, {2: [0, 1, 2]})
    """
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(n or preset.n_for(r.data_source), []).append(i)
    return groups


def _to_generation(row: PromptRow, prompt: str, out) -> Generation:
    """One vLLM request output as a :class:`Generation` of ``row``: the texts and finish reasons of its samples."""
    return Generation(
        row.problem_id,
        row.data_source,
        row.ground_truth,
        [o.text for o in out.outputs],
        [o.finish_reason for o in out.outputs],
        prompt,
    )


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
    merge_cache: str | Path | None = None,
) -> Path:
    """Sample every prepared row ``n`` times (preset's n per benchmark unless ``n`` is given); returns the file.

    ``model`` is a hub id, a Hugging Face folder or a verl checkpoint folder (merged first, see
    :func:`prepare_model`; ``merge_cache`` is the cache folder). Without a GPU, vLLM's CPU build runs eagerly in
    float32 (``llm_kwargs`` overrides both).
    """
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    p = PRESETS[preset]
    rows = read_prompt_rows(data_files, limit)
    _set_cpu_vllm_env()
    vllm = require_vllm()
    source = prepare_model(model, merge_cache)
    print(f"[generate] model: {source.describe()}", flush=True)
    llm = _load_llm(
        vllm,
        source.model,
        llm_kwargs,
        tensor_parallel_size=tensor_parallel_size,
        seed=seed,
        gpu_memory_utilization=gpu_memory_utilization,
        max_model_len=max_model_len,
    )
    tokenizer = llm.get_tokenizer()
    texts = [tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True) for r in rows]
    generations: list[Generation | None] = [None] * len(rows)
    for n_samples, idx in _groups_by_n(rows, n, p).items():
        params = vllm.SamplingParams(
            n=n_samples,
            temperature=p.temperature if temperature is None else temperature,
            top_p=p.top_p if top_p is None else top_p,
            max_tokens=p.max_tokens if max_tokens is None else max_tokens,
            seed=seed,
        )
        for i, out in zip(idx, llm.generate([texts[i] for i in idx], params)):
            generations[i] = _to_generation(rows[i], texts[i], out)
    return write_generations(generations, output)
