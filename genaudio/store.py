"""Manifests and the Parquet features store: layout, atomic writes, readers.

A features store is a folder::

    DIR/
      manifest.json          config, config hash, library versions, counts, timings, feature table
      files.parquet          one row per input file: file_id, path, size, mtime, label, status
      segments/*.parquet     one row per segment (identity, summary and frame-matrix columns)
      errors.parquet         one row per failed file: file_id, path, stage, error_type, message

Identity columns of a segment row: ``file_id`` (str), ``path`` (str), ``label`` (str),
``segment`` (int32, 0-based index within the file), ``start_s`` and ``duration_s`` (float64,
seconds; ``duration_s`` is the real audio in the segment, shorter than the segment length for a
padded last segment). Summary columns are float32 and named ``<feature>_<dim:02d>_<stat>``, e.g.
``mfcc_03_mean``. Frame matrices are ``frames_<feature>`` columns holding a (dims, time)
matrix as a fixed-size list of fixed-size lists of float32 (or float16).

Every table is plain Parquet (zstd): pandas, polars and duckdb read it without Ray or genaudio.
Nothing here imports Ray.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from genaudio.errors import StoreError

MANIFEST = "manifest.json"
FILES = "files.parquet"
SEGMENTS = "segments"
ERRORS = "errors.parquet"

IDENTITY_COLUMNS = ("file_id", "path", "label", "segment", "start_s", "duration_s")
FRAME_PREFIX = "frames_"
# feature names may contain underscores; the first `_<2-3 digits>_` splits feature from stat
SUMMARY_COLUMN = re.compile(r"^(?P<feature>[a-z][a-z0-9_]*?)_(?P<dim>\d{2,3})_(?P<stat>[a-z][a-z_]*)$")


def summary_column(feature: str, dim: int, stat: str) -> str:
    """The column name of statistic ``stat`` of dimension ``dim`` of ``feature``."""
    return f"{feature}_{dim:02d}_{stat}"


def parse_summary_column(name: str) -> tuple[str, int, str] | None:
    """``"mfcc_03_mean" -> ("mfcc", 3, "mean")``; ``None`` for a non-summary column."""
    m = SUMMARY_COLUMN.match(name)
    if not m or name.startswith(FRAME_PREFIX):
        return None
    return m["feature"], int(m["dim"]), m["stat"]


# ---------------------------------------------------------------------------------------------
# Atomic writes: a reader never sees a half-written file.


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


def atomic_write_table(path: str | Path, table: pa.Table, *, compression: str = "zstd") -> None:
    """Write a Parquet file under a temporary name, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression=compression)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# Readers


def read_manifest(store_dir: str | Path) -> dict:
    """The manifest of a features store; :class:`StoreError` if DIR is not one."""
    store_dir = Path(store_dir)
    path = store_dir / MANIFEST
    if not store_dir.is_dir():
        raise StoreError(f"no such folder: {store_dir}")
    if not path.is_file():
        raise StoreError(
            f"{store_dir} is not a genaudio features store (no {MANIFEST}); "
            "create one with `genaudio extract INPUT... --out DIR`"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise StoreError(f"{path} is corrupt: {e}") from None


def _segment_files(store_dir: Path) -> list[str]:
    return sorted(str(p) for p in (store_dir / SEGMENTS).glob("*.parquet"))


def segments_schema(store_dir: str | Path) -> pa.Schema:
    files = _segment_files(Path(store_dir))
    if not files:
        raise StoreError(f"{store_dir} has no segment rows ({SEGMENTS}/*.parquet)")
    return pq.read_schema(files[0])


def read_segments(store_dir: str | Path, columns: Iterable[str] | None = None,
                  *, summary_only: bool = False) -> pa.Table:
    """Segment rows of a features store as one Arrow table.

    Parameters
    ----------
    columns : iterable of str, optional
        Columns to read; default all. Frame matrices are large: ask only for what you need.
    summary_only : bool
        Read identity and summary columns only (no ``frames_*``), the cheap path for analysis.
    """
    store_dir = Path(store_dir)
    read_manifest(store_dir)
    files = _segment_files(store_dir)
    if not files:
        raise StoreError(f"{store_dir} has no segment rows ({SEGMENTS}/*.parquet)")
    dataset = pads.dataset(files, format="parquet")
    names = dataset.schema.names
    if summary_only:
        columns = [c for c in names if not c.startswith(FRAME_PREFIX)]
    if columns is not None:
        columns = list(columns)
        missing = [c for c in columns if c not in names]
        if missing:
            raise StoreError(f"{store_dir}: no column(s) {', '.join(missing[:5])} in the segments table")
    return dataset.to_table(columns=columns)


def read_errors(store_dir: str | Path) -> pa.Table:
    path = Path(store_dir) / ERRORS
    if not path.is_file():
        return pa.table({k: pa.array([], pa.string()) for k in ("file_id", "path", "stage", "error_type", "message")})
    return pq.read_table(path)
