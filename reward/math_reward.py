# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Strict math-verify reward that never hangs: the last complete ``\\boxed{}`` after ``</think>``, in worker processes.

Select it in verl (0.9.1) with::

    reward.custom_reward_function.path=pkg://trustrl.reward.math_reward
    reward.custom_reward_function.name=compute_score          # or compute_score_async (naive/dapo managers)
    +reward.custom_reward_function.reward_kwargs.timeout_s=10  # any field of MathRewardConfig, same way

Public API
----------
``compute_score(data_source, solution_str, ground_truth, extra_info=None, **config) -> MathRewardResult``
    verl's reward signature. ``data_source`` is not used: every source is scored the same way.
``async compute_score_async(data_source, solution_str, ground_truth, extra_info=None, **config)``
    Same result; awaits the worker without occupying a thread (verl detects coroutine functions).
``compute_scores(solutions, ground_truths, *, extra_infos=None, timeout_s=10.0, num_workers=None, think_mode="auto",
truncation="zero", max_box_chars=1000, max_gold_chars=2000, rel_tol=1e-4, e_notation=True) -> list[MathRewardResult]``
    Batch API for evaluation and benchmarks: one result per input, in input order. ``ground_truths[i]`` may be a
    string or a list of acceptable strings. ``timeout_s`` is per sample, in CPU seconds of that sample's own work
    from when a worker starts it, so a legitimate answer's score does not depend on how busy the node is; stuck
    inputs are moved aside and end after ``timeout_s`` of their own CPU (see ``_pool``).
``warmup(num_workers=None)`` starts the pool ahead of time (about 1 s of imports); ``shutdown()`` stops it (also
    done at interpreter exit).

Each result is a dict (``MathRewardResult``) with ``score`` (1.0 or 0.0), ``acc``, ``pred`` (the last box's
content), ``status`` (see ``STATUSES``) and the 0/1 flags ``has_box``, ``truncated``, ``timed_out`` and
``gold_unparseable``, which verl logs per data source. Nothing raises on any response or gold; a wrong config value
or mismatched batch lengths raise ``ValueError``.

Scoring: (1) the text after the last ``</think>`` (``think_mode``; a ``<think>`` opened after it scores 0); (2) the
last *complete* box, 0 without one, one sentence-final ``.``/``,`` inside it dropped; when the boxes just before
it belong to the same answer (``\\boxed{-2} and \\boxed{1}``: ``_answer.box_group``), that multi-part answer is a
second reading, tried when the last box alone does not match; (3) a cut-off response (``extra_info``
``truncated=True`` or ``finish_reason``/``stop_reason == "length"``, or a box opened after the last complete one)
scores 0 under ``truncation="zero"``; (4) math-verify with the strict prediction config against the normalized gold
(e-notation, ``$…$``, the boxes of a multi-part gold joined into one answer, never cut to its last part), gold
first; (5) a numeric match must also agree to ``rel_tol`` relatively (math-verify rounds to 6 absolute decimals,
accepting 1/2^98 for 1/2^99).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, InvalidStateError, wait
from dataclasses import dataclass, fields
from typing import Any, NamedTuple, TypedDict

from trustrl.reward import _pool
from trustrl.reward._answer import (
    box_group,
    is_risky,
    last_box,
    normalize_gold,
    split_think,
    strip_trailing_punctuation,
)

logger = logging.getLogger(__name__)

STATUSES = {
    "ok": "box and gold parsed and compared; score is 1.0 iff math-verify (and the rel_tol check) accepts",
    "no_box": "no complete, non-empty \\boxed{} in the scored text",
    "box_too_long": "the last box holds more than max_box_chars characters (degenerate output; not parsed)",
    "truncated": "the response was cut off (flagged in extra_info, or a box after the last one never closed)",
    "no_think_end": "a <think> block was never closed (or think_mode='require' and there is no </think>)",
    "gold_unparseable": "no gold alternative parses to a math object; score 0 (drop the example at data prep)",
    "timeout": "scoring used timeout_s of CPU time (worker killed, or interrupted in-worker), or hit a wall-clock "
    "cap; score 0",
    "error": "the worker crashed or the pool could not start; score 0",
}
# verl passes these to every custom reward function when a reward router is configured.
_VERL_KWARGS = frozenset({"reward_router_address", "reward_model_tokenizer"})
_MAX_GOLDS = 16
_MAX_LOGGED_GOLDS = 20


class MathRewardResult(TypedDict):
    score: float  # 1.0 when acc else 0.0
    acc: bool  # the answer is equivalent to the gold
    pred: str  # content of the last complete box ("" without one); the joined multi-part answer when that matched
    status: str  # a key of STATUSES
    has_box: bool  # a complete, non-empty box was found in the scored text
    truncated: bool  # a cut-off response was detected (whatever the truncation policy)
    timed_out: bool  # status == "timeout"
    gold_unparseable: bool  # status == "gold_unparseable"


@dataclass(frozen=True)
class MathRewardConfig:
    """Reward options; each is also a keyword of ``compute_score`` and a verl ``reward_kwargs`` key."""

    think_mode: str = "auto"
    """``auto``: after the last ``</think>``, 0 if ``<think>`` never closes, whole text without tags; ``require``:
    0 without ``</think>`` (prompt ends in ``<think>``); ``ignore``: always the whole text."""
    truncation: str = "zero"
    """``zero``: a cut-off response scores 0 (status ``truncated``); ``score``: score its last complete box."""
    timeout_s: float = 10.0
    """CPU-time budget per sample, from when a worker starts it; the worker is killed when it is spent (wall-clock
    caps: max(10 x timeout_s, 120 s) of running time, max(60 x timeout_s, 900 s) including time parked)."""
    num_workers: int | None = None
    """Worker processes of this process's pool (default ``$TRUSTRL_REWARD_NUM_WORKERS`` or min(4, cores))."""
    max_box_chars: int = 1000
    """Longer box contents score 0 without parsing (status ``box_too_long``)."""
    max_gold_chars: int = 2000
    """Longer gold alternatives are ignored; with none left the gold is ``gold_unparseable``."""
    rel_tol: float | None = 1e-4
    """Relative agreement required on top of a numeric math-verify match; ``None`` keeps math-verify's verdict."""
    e_notation: bool = True
    """Read ``4.5e33`` as ``4.5 \\times 10^{33}`` in gold and answer (Minerva golds; math-verify reads 4.5·e·33)."""

    def __post_init__(self):
        if self.think_mode not in ("auto", "require", "ignore"):
            raise ValueError(f"think_mode must be 'auto', 'require' or 'ignore', got {self.think_mode!r}")
        if self.truncation not in ("zero", "score"):
            raise ValueError(f"truncation must be 'zero' or 'score', got {self.truncation!r}")
        for name in ("timeout_s", "max_box_chars", "max_gold_chars"):
            object.__setattr__(self, name, type(getattr(MathRewardConfig, name))(getattr(self, name)))
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.num_workers is not None:
            object.__setattr__(self, "num_workers", int(self.num_workers))
            if self.num_workers < 1:
                raise ValueError(f"num_workers must be >= 1 or None, got {self.num_workers!r}")
        if self.rel_tol is not None:
            object.__setattr__(self, "rel_tol", float(self.rel_tol))
        object.__setattr__(self, "e_notation", bool(self.e_notation))


_FIELDS = frozenset(f.name for f in fields(MathRewardConfig))
_warned: set = set()
_warned_lock = threading.Lock()


def _warn_once(key, msg: str, *args) -> None:
    with _warned_lock:
        if key in _warned or len(_warned) > 1000:
            return
        _warned.add(key)
    logger.warning(msg, *args)


def _config(kwargs: Mapping[str, Any]) -> MathRewardConfig:
    known = {k: v for k, v in kwargs.items() if k in _FIELDS}
    for key in kwargs.keys() - _FIELDS - _VERL_KWARGS:
        _warn_once(("kwarg", key), "trustrl math reward: ignoring unknown option %r (known: %s)", key, sorted(_FIELDS))
    return MathRewardConfig(**known)


# ---------------------------------------------------------------------------------------------------------------
# Parent-side preparation (pure string work, linear time)
# ---------------------------------------------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _gold_list(ground_truth: Any) -> list[str]:
    if ground_truth is None:
        return []
    if isinstance(ground_truth, (str, bytes)):
        return [_as_text(ground_truth)]
    if hasattr(ground_truth, "tolist"):  # numpy arrays and scalars from verl's non_tensor_batch
        ground_truth = ground_truth.tolist()
    if isinstance(ground_truth, (list, tuple)):
        return [_as_text(g) for g in ground_truth[:_MAX_GOLDS] if g is not None]
    return [_as_text(ground_truth)]


def _flagged_truncated(extra_info: Any) -> bool:
    if not isinstance(extra_info, Mapping):
        return False
    flag = extra_info.get("truncated")
    if hasattr(flag, "item"):  # numpy bool from a parquet column
        flag = flag.item()
    reasons = (extra_info.get("finish_reason"), extra_info.get("stop_reason"))
    return (isinstance(flag, (bool, int)) and bool(flag)) or any(isinstance(r, str) and r == "length" for r in reasons)


class _Prepared(NamedTuple):
    payload: tuple | None  # arguments of _verify.score; None when the sample could not be prepared
    partial: dict  # pred, has_box, truncated
    golds: tuple[str, ...]
    risky: bool = False  # is_risky(answer): the pool runs it on its own process


def _prepare(solution: Any, ground_truth: Any, extra_info: Any, cfg: MathRewardConfig) -> _Prepared:
    text = _as_text(solution)
    normalized = (normalize_gold(g, cfg.e_notation) for g in _gold_list(ground_truth))
    golds = tuple(g for g in normalized if 0 < len(g) <= cfg.max_gold_chars)
    scored = split_think(text, cfg.think_mode)
    box = last_box(scored) if scored is not None else None
    content = strip_trailing_punctuation(box.content) if box is not None and box.content else ""
    truncated = _flagged_truncated(extra_info) or (box is not None and box.unterminated_after)
    if truncated and cfg.truncation == "zero":
        pre_status = "truncated"
    elif scored is None:
        pre_status = "no_think_end"
    elif not content:
        pre_status = "no_box"
    elif len(content) > cfg.max_box_chars:
        pre_status = "box_too_long"
    else:
        pre_status = None
    joined = None
    if pre_status is None:
        group = box_group(scored)
        if len(group) > 1:  # `\\boxed{-2} and \\boxed{1}`: the whole multi-part answer is a second reading
            joined = ", ".join(strip_trailing_punctuation(g) for g in group)
            joined = joined if len(joined) <= cfg.max_box_chars else None
    payload = (pre_status, content if pre_status is None else "", golds, cfg.rel_tol, cfg.e_notation, joined)
    partial = {
        "pred": content[: cfg.max_box_chars],
        "joined": joined or "",
        "has_box": bool(content),
        "truncated": bool(truncated),
    }
    risky = pre_status is None and (is_risky(content) or (joined is not None and is_risky(joined)))
    return _Prepared(payload, partial, golds, risky)


def _finish(partial: dict, worker_result: Mapping, golds: tuple) -> MathRewardResult:
    status = worker_result.get("status", "error")
    status = status if status in STATUSES else "error"
    acc = status == "ok" and bool(worker_result.get("acc"))
    if status == "gold_unparseable":
        _warn_once(
            ("gold", golds),
            "trustrl math reward: gold %r does not parse; such samples score 0 with status=gold_unparseable",
            golds[:3],
        )
    elif status == "error" and "error" in worker_result:
        error = worker_result["error"]
        _warn_once(("error", error[:80]), "trustrl math reward: worker error %s", error)
    return MathRewardResult(
        score=1.0 if acc else 0.0,
        acc=acc,
        pred=partial["joined"] if acc and worker_result.get("joined") else partial["pred"],
        status=status,
        has_box=partial["has_box"],
        truncated=partial["truncated"],
        timed_out=status == "timeout",
        gold_unparseable=status == "gold_unparseable",
    )


def _local_error(exc: BaseException) -> _Prepared:
    _warn_once(("prepare", type(exc).__name__), "trustrl math reward: could not prepare a sample: %r", exc)
    return _Prepared(None, {"pred": "", "joined": "", "has_box": False, "truncated": False}, ())


# ---------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------


def compute_scores(
    solutions: Sequence[Any],
    ground_truths: Sequence[Any],
    *,
    extra_infos: Sequence[Any] | None = None,
    timeout_s: float = 10.0,
    num_workers: int | None = None,
    think_mode: str = "auto",
    truncation: str = "zero",
    max_box_chars: int = 1000,
    max_gold_chars: int = 2000,
    rel_tol: float | None = 1e-4,
    e_notation: bool = True,
) -> list[MathRewardResult]:
    """Score a batch in the worker pool; results in input order (see the module docstring for the contract).

    >>> [r["score"] for r in compute_scores(["so $\\\\boxed{\\\\frac12}$", "\\\\boxed{0.4}"], ["0.5", "1/2"])]
    [1.0, 0.0]
    """
    cfg = MathRewardConfig(
        think_mode=think_mode,
        truncation=truncation,
        timeout_s=timeout_s,
        num_workers=num_workers,
        max_box_chars=max_box_chars,
        max_gold_chars=max_gold_chars,
        rel_tol=rel_tol,
        e_notation=e_notation,
    )
    solutions, ground_truths = list(solutions), list(ground_truths)
    extra_infos = [None] * len(solutions) if extra_infos is None else list(extra_infos)
    if not len(solutions) == len(ground_truths) == len(extra_infos):
        raise ValueError(
            f"solutions, ground_truths and extra_infos differ in length: "
            f"{len(solutions)}, {len(ground_truths)}, {len(extra_infos)}"
        )
    return _score_prepared([_safe_prepare(s, g, e, cfg) for s, g, e in zip(solutions, ground_truths, extra_infos)], cfg)


def compute_score(
    data_source: Any, solution_str: Any, ground_truth: Any, extra_info: Any = None, **kwargs: Any
) -> MathRewardResult:
    """verl's ``compute_score``: score one response. Blocks the calling thread (verl runs it in an executor).

    ``kwargs`` are ``MathRewardConfig`` fields (verl ``reward_kwargs``); unknown keys are logged once and ignored.
    """
    cfg = _config(kwargs)
    return _score_prepared([_safe_prepare(solution_str, ground_truth, extra_info, cfg)], cfg)[0]


async def compute_score_async(
    data_source: Any, solution_str: Any, ground_truth: Any, extra_info: Any = None, **kwargs: Any
) -> MathRewardResult:
    """Coroutine form of :func:`compute_score` for verl's naive/dapo managers (not ``remote``)."""
    cfg = _config(kwargs)
    prep = _safe_prepare(solution_str, ground_truth, extra_info, cfg)
    if prep.payload is None:
        return _finish(prep.partial, _pool.ERROR, prep.golds)
    (future,) = _pool.get_pool(cfg.num_workers).submit([prep.payload], cfg.timeout_s, [prep.risky])
    return _finish(prep.partial, await asyncio.wrap_future(future), prep.golds)


def warmup(num_workers: int | None = None) -> None:
    """Start the pool and its workers now rather than on the first call."""
    n = max(1, num_workers or _pool.default_num_workers())
    compute_scores(["\\boxed{1}"] * n, ["1"] * n, num_workers=num_workers)


def shutdown() -> None:
    """Stop this process's pool: kill the workers and the zygote (a later call starts a new pool)."""
    _pool.shutdown()


def _safe_prepare(solution, ground_truth, extra_info, cfg) -> _Prepared:
    try:
        return _prepare(solution, ground_truth, extra_info, cfg)
    except Exception as exc:  # never raise on data; the sample scores 0 with status=error
        return _local_error(exc)


def _score_prepared(prepared: list[_Prepared], cfg: MathRewardConfig) -> list[MathRewardResult]:
    pool = _pool.get_pool(cfg.num_workers)
    to_send = [i for i, p in enumerate(prepared) if p.payload is not None]
    submitted = pool.submit([prepared[i].payload for i in to_send], cfg.timeout_s, [prepared[i].risky for i in to_send])
    futures: dict[int, Future] = dict(zip(to_send, submitted))
    pending = set(futures.values())
    while pending:
        _, pending = wait(pending, timeout=1.0)
        if pending and not pool.alive:  # the dispatcher is gone: its teardown resolves these, but never wait forever
            for fut in pending:
                try:
                    fut.set_result(_pool.ERROR)
                except InvalidStateError:
                    pass
            break
    results = [futures[i].result() if i in futures else _pool.ERROR for i in range(len(prepared))]
    return [_finish(p.partial, result, p.golds) for p, result in zip(prepared, results)]
