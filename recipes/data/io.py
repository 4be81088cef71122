# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Reading raw records (hub id or local json/jsonl/parquet) and writing verl parquet files.

Local files are read without the ``datasets`` cache; a hub id goes through ``datasets.load_dataset``. Both
give a :class:`Records`: a sized, re-iterable sequence of plain dicts, so a 1.8M-row set is never held as
Python objects all at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet")


class SourceError(ValueError):
    """A data source that cannot be read: names the source and what to pass instead."""


@dataclass
class Records:
    """Raw rows of one source. ``origin`` names it in messages (``path`` or ``hub:id[config]/split``)."""

    origin: str
    _length: int
    _iterate: Any  # () -> Iterator[dict]

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[dict]:
        return self._iterate()

    @classmethod
    def from_list(cls, rows: Sequence[dict], origin: str = "<memory>") -> Records:
        return cls(origin, len(rows), lambda: iter(rows))


def is_local(source: str) -> bool:
    return Path(source).suffix in LOCAL_SUFFIXES or Path(source).exists()


def load_records(
    source: str, *, config: str | None = None, split: str = "train", columns: Sequence[str] | None = None
) -> Records:
    """Rows of a local ``.json`` (a list, or ``{"data": [...]}``), ``.jsonl`` or ``.parquet`` file, or a hub id.

    ``columns`` limits the columns read from parquet and hub sets (OpenR1-Math-220k's ``messages`` column
    doubles its size and is never used).
    """
    if is_local(source):
        return _load_local(Path(source), columns)
    return _load_hub(source, config, split, columns)


def _load_local(path: Path, columns: Sequence[str] | None) -> Records:
    if not path.exists():
        raise SourceError(f"{path}: no such file (a local source must be an existing .json/.jsonl/.parquet file)")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
        present = set(pq.read_schema(path).names)
        cols = [c for c in columns if c in present] if columns else None

        def iterate():
            for batch in pq.ParquetFile(path).iter_batches(batch_size=1024, columns=cols):
                yield from batch.to_pylist()

        return Records(str(path), meta.num_rows, iterate)
    if path.suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise SourceError(f"{path}:{line_no}: not valid JSON ({e.msg}); fix or remove the line") from e
        return Records.from_list(rows, str(path))
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):  # rows that are not objects are reported one by one (row_not_object)
            raise SourceError(f"{path}: a .json source must hold a list of rows or {{'data': [rows]}}")
        return Records.from_list(data, str(path))
    raise SourceError(f"{path}: unsupported file type {path.suffix!r}; use one of {LOCAL_SUFFIXES}")


def _load_hub(hub_id: str, config: str | None, split: str, columns: Sequence[str] | None) -> Records:
    import datasets

    origin = f"hub:{hub_id}" + (f"[{config}]" if config else "") + f"/{split}"
    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as e:  # network, auth, offline mode, unknown config/split: all reported the same way
        raise SourceError(
            f"could not load {origin}: {type(e).__name__}: {e}. Without hub access, download the set elsewhere "
            f"and pass the local .json/.jsonl/.parquet file instead of the hub id."
        ) from e
    if columns:
        ds = ds.select_columns([c for c in columns if c in ds.column_names])
    return Records(origin, len(ds), lambda: iter(ds))


def get_path(row: dict, dotted: str):
    """``row["a"]["b"]`` for ``"a.b"``; raises KeyError naming the first missing part."""
    value = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(part)
        value = value[part]
    return value


def has_path(row: dict, dotted: str) -> bool:
    try:
        get_path(row, dotted)
    except KeyError:
        return False
    return True


def row_schema():
    """The Arrow schema of every file we write: verl's RL dataset row plus our ``extra_info`` keys (see README.md).

    One explicit schema for train and eval files alike, so verl can concatenate any of them (an inferred
    schema would type an all-empty ``expert_solutions`` column as ``list<null>``).
    """
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(message)),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            (
                "extra_info",
                pa.struct(
                    [
                        ("split", pa.string()),
                        ("index", pa.int64()),
                        ("problem_id", pa.string()),
                        ("raw_problem", pa.string()),
                        ("expert_solutions", pa.list_(pa.string())),
                    ]
                ),
            ),
        ]
    )


def write_parquet(rows: Sequence[dict], path: str | Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(list(rows), schema=row_schema()), path)
    return path
