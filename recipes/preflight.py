# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Checks of a composed run config against the model it names, before Ray or a device starts.

One check lives here, :func:`check_model_context`: the actor model's context window must hold a whole sequence,
``data.max_prompt_length + data.max_response_length`` tokens.

Why. verl 0.9.1 sizes the rollout server from the model's ``config.json``: with ``actor_rollout_ref.rollout.
max_model_len`` null, vLLM's ``max_model_len`` becomes ``max_position_embeddings``
(``verl/workers/rollout/vllm_rollout/vllm_async_server.py``, ``_validate_configs``). A stock Qwen2.5-Math model has
``max_position_embeddings=4096``; with 1024 + 8192 tokens configured, every unguided response is then capped at
4096 minus its prompt without any error, and a request whose prompt (plus an expert prefix, under TRAPO) leaves no
room raises in the middle of the run. The check refuses such a run at launch, naming the keys and the fix.

What is read. The model config verl reads: ``actor_rollout_ref.model.hf_config_path`` (default: ``model.path``), a
local folder's ``config.json``, and ``max_position_embeddings`` there (or in its ``text_config``, as verl's
``get_max_position_embeddings``), after ``actor_rollout_ref.model.override_config`` (verl applies it to the config
it loads). ``rope_scaling`` is reported but does not raise the limit: verl caps ``max_model_len`` at
``max_position_embeddings`` whatever the scaling, so a long-context model must state its context there.

Model paths that are not a local folder. A hub id (``Qwen/Qwen2.5-Math-7B``) is resolved from the local Hugging Face
cache only (``huggingface_hub.try_to_load_from_cache``: no network, nothing downloaded). When no ``config.json``
can be found (a hub id not in the cache, an ``hdfs://`` path, a folder that does not exist yet) the check is
skipped and says so (:attr:`ContextCheck.note`, printed by :func:`preflight`): a dry run on a laptop must not need
the checkpoint. Whether the path exists at all is a separate check (``trustrl.recipes.resources``).

Called by ``trustrl.recipes.trapo.main``, ``trustrl.recipes.quatro.main`` and ``python -m trustrl.recipes.dry_run``
(``DRY_RUN=1`` of the launch scripts).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from omegaconf import DictConfig, OmegaConf

__all__ = [
    "ContextCheck",
    "ModelContext",
    "check_model_context",
    "find_model_config",
    "preflight",
    "read_model_context",
]

MODEL = "actor_rollout_ref.model"
MAX_MODEL_LEN = "actor_rollout_ref.rollout.max_model_len"
# how to get a longer context: what the launch scripts' headers describe for Qwen2.5-Math
CONTEXT_FIX = (
    "point actor_rollout_ref.model.path (MODEL_PATH of the launch scripts) at a copy of the model whose config.json "
    "holds the context, e.g. the 16k-context copy of Qwen2.5-Math that LUFFY and TRAPO train "
    "(config.json: max_position_embeddings=16384, rope_theta=40000) or a 32k one"
)


@dataclass(frozen=True)
class ModelContext:
    """The context-window fields of a model config."""

    # the config.json read (or "<hub id> (HF cache: <file>)")
    source: str
    # max_position_embeddings after actor_rollout_ref.model.override_config
    max_position_embeddings: int
    # rope_scaling as written in the config (None: absent)
    rope_scaling: dict | None = None


@dataclass(frozen=True)
class ContextCheck:
    """Outcome of :func:`check_model_context` that did not refuse the run."""

    # tokens a sequence needs: data.max_prompt_length + data.max_response_length
    required: int
    # the server's max_model_len (rollout.max_model_len, else max_position_embeddings); None when skipped
    context: int | None
    # what was read, or why nothing could be
    model: ModelContext | None
    # a line for the user when the check was skipped (empty when it ran)
    note: str = ""

    @property
    def skipped(self) -> bool:
        return self.model is None


def select(config: DictConfig | Mapping, key: str, default=None):
    """``config.a.b.c`` of a DictConfig or nested mapping, ``default`` when absent."""
    if isinstance(config, DictConfig):
        return OmegaConf.select(config, key, default=default)
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _looks_like_hub_id(path: str) -> bool:
    """``org/name`` with no scheme and no leading ``/``, ``.`` or ``~`` (how transformers tells a repo id)."""
    return "://" not in path and not path.startswith(("/", ".", "~")) and path.count("/") == 1


def find_model_config(path: str) -> tuple[Path | None, str]:
    """The ``config.json`` of a model path, and a description of where it came from (or why there is none).

    A local folder's file; for a hub id, the file in the local Hugging Face cache (nothing is downloaded).

    >>> find_model_config("hdfs://models/q7b")[0] is None
    True
    """
    local = Path(os.path.expanduser(path))
    if local.is_dir():
        file = local / "config.json"
        return (file, str(file)) if file.is_file() else (None, f"the folder {path} has no config.json")
    if "://" in path:
        return None, f"{path} is a remote path (verl copies it at start-up)"
    if _looks_like_hub_id(path):
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
            return None, f"{path} is a hub id and huggingface_hub is not installed"
        cached = try_to_load_from_cache(path, "config.json")
        if isinstance(cached, str):
            return Path(cached), f"{path} (Hugging Face cache: {cached})"
        return None, f"{path} is a hub id that is not in the local Hugging Face cache"
    return None, f"no folder {path} on this machine"


def read_model_context(file: Path, source: str, override_config: Mapping | None = None) -> ModelContext:
    """The context fields of one ``config.json``, after verl's ``model.override_config``.

    Raises ``ValueError`` when the file is not JSON or states no ``max_position_embeddings`` (verl would fail too).
    """
    try:
        hf = json.loads(Path(file).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{MODEL}.path: cannot read the model config {source}: {e}") from e
    text = hf.get("text_config") or {}
    overrides = dict(override_config or {})
    overrides = dict(overrides.get("model_config", overrides))
    value = overrides.get("max_position_embeddings", hf.get("max_position_embeddings"))
    if value is None:
        value = text.get("max_position_embeddings")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{MODEL}.path: the model config {source} states no usable max_position_embeddings (got {value!r}); "
            "verl sizes the rollout server with it: add it to config.json"
        )
    rope = overrides.get("rope_scaling", hf.get("rope_scaling", text.get("rope_scaling")))
    return ModelContext(source, value, dict(rope) if isinstance(rope, Mapping) else None)


def _required(config) -> tuple[int, str]:
    """Tokens a sequence needs and the keys that say so (the rollout's own lengths when they are larger)."""
    best = (0, "")
    for prompt_key, response_key in (
        ("data.max_prompt_length", "data.max_response_length"),
        ("actor_rollout_ref.rollout.prompt_length", "actor_rollout_ref.rollout.response_length"),
    ):
        prompt, response = select(config, prompt_key), select(config, response_key)
        if isinstance(prompt, int) and isinstance(response, int) and prompt + response > best[0]:
            best = (prompt + response, f"{prompt_key} + {response_key} = {prompt} + {response} = {prompt + response}")
    if not best[1]:
        raise ValueError("data.max_prompt_length and data.max_response_length must be integers (the context check)")
    return best


def _rope_note(model: ModelContext) -> str:
    if not model.rope_scaling:
        return ""
    return (
        f" (its rope_scaling {model.rope_scaling} does not count: verl caps max_model_len at "
        "max_position_embeddings; a model extended by rope scaling must state the longer context there)"
    )


def check_model_context(config: DictConfig | Mapping) -> ContextCheck:
    """Refuse a run whose model context cannot hold ``max_prompt_length + max_response_length``.

    Raises ``ValueError`` naming the keys and the fix when the model config says ``max_position_embeddings`` is too
    small, when ``actor_rollout_ref.rollout.max_model_len`` is set below the need, or above
    ``max_position_embeddings`` (verl refuses that in every rollout server). Returns a :class:`ContextCheck`,
    with a :attr:`~ContextCheck.note` when no model config could be read (the check is skipped).
    """
    required, need = _required(config)
    max_model_len = select(config, MAX_MODEL_LEN)
    if max_model_len is not None and max_model_len < required:
        raise ValueError(
            f"{MAX_MODEL_LEN}={max_model_len} cannot hold {need} tokens: vLLM would cap responses and refuse "
            f"longer requests mid-run; set {MAX_MODEL_LEN}={required} or larger, or null (the model's "
            "max_position_embeddings), or lower data.max_response_length"
        )
    path = select(config, f"{MODEL}.hf_config_path") or select(config, f"{MODEL}.path")
    if not path:
        return ContextCheck(required, None, None, f"context check skipped: {MODEL}.path is not set")
    file, source = find_model_config(str(path))
    if file is None:
        note = (
            f"context check skipped: {source}; verl will read max_position_embeddings from the model's config.json "
            f"at start-up and needs at least {required} ({need})"
        )
        return ContextCheck(required, None, None, note)
    override = select(config, f"{MODEL}.override_config") or {}
    if isinstance(override, DictConfig):
        override = OmegaConf.to_container(override, resolve=True)
    model = read_model_context(file, source, override)
    limit = model.max_position_embeddings
    if max_model_len is not None and max_model_len > limit:
        raise ValueError(
            f"{MAX_MODEL_LEN}={max_model_len} exceeds the model's max_position_embeddings={limit} ({model.source}); "
            f"verl's rollout servers refuse that at start-up; {CONTEXT_FIX}"
        )
    if limit < required:
        shortest = limit - select(config, "data.max_prompt_length", 0)
        raise ValueError(
            f"the model's context is too short: {model.source} has max_position_embeddings={limit}"
            f"{_rope_note(model)}, but {need} tokens are configured. verl would set vLLM's max_model_len to {limit}: "
            f"responses would be cut at {limit} tokens minus the prompt and longer requests would fail mid-run. "
            f"Fix: {CONTEXT_FIX}; or lower data.max_response_length to at most {max(shortest, 0)}"
        )
    return ContextCheck(required, max_model_len or limit, model)


def preflight(config: DictConfig | Mapping, out: TextIO | None = None) -> ContextCheck:
    """:func:`check_model_context`, printing its note (a skipped check) to ``out`` (default stderr)."""
    result = check_model_context(config)
    if result.note:
        print(f"[trustrl preflight] {result.note}", file=out or sys.stderr)
    return result
