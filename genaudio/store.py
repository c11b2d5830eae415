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

Every table is plain Parquet (zstd; the wide segment parts snappy, :data:`WIDE_COMPRESSION`): pandas,
polars and duckdb read it without Ray or genaudio.
Nothing here imports Ray.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from genaudio.config import config_hash
from genaudio.errors import StoreError
from genaudio.infra import atomic_path, atomic_write_bytes, atomic_write_json, replace_dir  # noqa: F401

MANIFEST = "manifest.json"
FILES = "files.parquet"
SEGMENTS = "segments"
ERRORS = "errors.parquet"

IDENTITY_COLUMNS = ("file_id", "path", "label", "segment", "start_s", "duration_s")
FRAME_PREFIX = "frames_"
# feature names may contain underscores; the first `_<2-3 digits>_` splits feature from stat
SUMMARY_COLUMN = re.compile(r"^(?P<feature>[a-z][a-z0-9_]*?)_(?P<dim>\d{2,4})_(?P<stat>[a-z][a-z_]*)$")


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
# Atomic writes: a reader never sees a half-written file (genaudio.infra; the JSON and bytes
# writers and replace_dir are imported here too because every stage took them from here).


def atomic_write_table(path: str | Path, table: pa.Table, *, compression: str | None = None) -> None:
    """Write a Parquet file under a temporary name, then rename it into place."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **parquet_options(table.schema, compression=compression))


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


def content_key(manifest: dict) -> str:
    """Identity of a features store's content: its config hash and row counts (a store extracted
    again with other options, or with files added or dropped, gets another key). Stages that read
    a store record it, to redo their work (the pipeline) or to refuse to continue on another
    store (a resumed search)."""
    return config_hash({"config": manifest.get("config_hash"), "counts": manifest.get("counts")})


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


def read_files(store_dir: str | Path) -> pa.Table:
    """The files table: one row per input file with its ``status`` (``ok`` or ``failed``)."""
    store_dir = Path(store_dir)
    read_manifest(store_dir)
    path = store_dir / FILES
    if not path.is_file():
        raise StoreError(f"{store_dir} has no {FILES}")
    return pq.read_table(path)


def read_frames(store_dir: str | Path, feature: str, *, filters=None) -> tuple[pa.Table, "Any"]:
    """Frame matrices of one feature as a numpy array, with the identity columns.

    Returns
    -------
    ids : pyarrow.Table
        The identity columns (``file_id, path, label, segment, start_s, duration_s``), one row per
        segment, in the order of ``frames``.
    frames : np.ndarray, shape (n_segments, dims, time)
        float32 or float16 as stored.
    """
    import numpy as np

    column = FRAME_PREFIX + feature
    table = read_segments(store_dir, columns=list(IDENTITY_COLUMNS) + [column])
    col = table.column(column).combine_chunks()
    dims = col.type.list_size
    time = col.type.value_type.list_size
    flat = col.flatten().flatten().to_numpy(zero_copy_only=False)
    frames = np.asarray(flat).reshape(len(table), dims, time)
    return table.drop_columns([column]), frames


# ---------------------------------------------------------------------------------------------
# Writing a features store incrementally (used by genaudio.extract; no Ray here).
#
# Work is committed in *groups* of input files. A group commits with two atomic renames:
# first its segment rows ``segments/part-<gid>.parquet`` (absent if no file of the group produced
# segments), then its status rows ``.extract/status/<gid>.parquet`` (one row per file, ok or failed,
# with the error if failed). The status file is the commit marker: a part without one is an orphan
# of a killed run and is deleted on the next run. ``files.parquet``, ``errors.parquet`` and, last,
# ``manifest.json`` are derived from the status rows when a run ends, so ``manifest.json`` present
# means the store is complete. ``gid`` is a hash of the config hash and the group's file ids, so a
# retried group overwrites its own files with the same content instead of adding duplicates.

STATE = ".extract"
STATUS = "status"
STATE_CONFIG = "config.json"

#: Columns of a status row (files.parquet adds nothing; errors.parquet is the failed subset).
STATUS_SCHEMA = pa.schema([
    ("file_id", pa.string()), ("path", pa.string()), ("label", pa.string()),
    ("size", pa.int64()), ("mtime", pa.float64()),
    ("status", pa.string()), ("segments", pa.int32()), ("audio_seconds", pa.float64()),
    ("stage", pa.string()), ("error_type", pa.string()), ("reason", pa.string()),
    ("message", pa.string()),
    ("gid", pa.string()), ("node_id", pa.string()), ("worker_pid", pa.int64()),
    ("worker_maxrss_mb", pa.float64()), ("elapsed_s", pa.float64()),
])
ERROR_COLUMNS = ("file_id", "path", "label", "stage", "error_type", "reason", "message")


_STATS_NAMES = frozenset(IDENTITY_COLUMNS) | frozenset(STATUS_SCHEMA.names)


def _stats_columns(schema: pa.Schema) -> list[str] | bool:
    # Min/max statistics of thousands of summary columns would cost ~60 bytes each in every
    # file footer; keep them for the identity columns, which filters use.
    names = schema.names
    return [n for n in names if n in _STATS_NAMES] if len(names) > 64 else True


#: Codec of narrow tables (files, errors, status: small, compressible text).
COMPRESSION = "zstd"
#: Codec of wide tables (segment parts, ~5,400 columns). zstd sets up a context per column chunk:
#: a 3-row part took 0.28 s with zstd against 0.12 s with snappy, 120 rows 0.51 s against 0.25 s
#: (one core), for 8 % fewer bytes (float features barely compress: no compression at all is 11 %
#: larger than zstd). snappy is Parquet's own default, read by every Parquet reader.
WIDE_COMPRESSION = "snappy"


def parquet_options(schema: pa.Schema, *, compression: str | None = None) -> dict:
    """Keyword arguments of ``pq.write_table`` / ``pq.ParquetWriter`` for a table of ``schema``.

    A segments part has ~5,400 columns, and Parquet's cost per column chunk dominates its encoding
    (measured: 40 rows took 0.9 s with the defaults). Dictionary encoding is the largest avoidable
    part of it: in wide tables it is kept for the scalar non-float columns (ids, paths, labels,
    which repeat) and skipped for float values (summary columns and frame matrices, which never
    repeat), which cut the encoding time by ~40 % at the same size. The codec, unless given, is
    :data:`COMPRESSION`, or :data:`WIDE_COMPRESSION` for a wide table.
    """
    if len(schema) <= 64:
        return {"compression": compression or COMPRESSION, "write_statistics": _stats_columns(schema)}
    # the column lists of a wide schema cost ~25 ms to derive, paid per part: kept for the last
    # few schemas (an equality test is ~40 us)
    lists = next((v for k, v in _WIDE_OPTIONS if k.equals(schema)), None)
    if lists is None:
        lists = {"use_dictionary": [n for n, t in zip(schema.names, schema.types)
                                    if not pa.types.is_floating(t) and not pa.types.is_nested(t)],
                 "write_statistics": _stats_columns(schema)}
        _WIDE_OPTIONS[:] = [(schema, lists), *_WIDE_OPTIONS[:3]]
    return {"compression": compression or WIDE_COMPRESSION,
            "use_dictionary": list(lists["use_dictionary"]), "write_statistics": list(lists["write_statistics"])}


_WIDE_OPTIONS: list[tuple[pa.Schema, dict]] = []


def table_to_parquet_bytes(table: pa.Table, *, compression: str | None = None) -> bytes:
    """Serialise a table as a complete Parquet file in memory (workers compress, the writer renames)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **parquet_options(table.schema, compression=compression))
    return sink.getvalue().to_pybytes()


def _state(store_dir: Path) -> Path:
    return store_dir / STATE


def part_path(store_dir: str | Path, gid: str) -> Path:
    return Path(store_dir) / SEGMENTS / f"part-{gid}.parquet"


def status_path(store_dir: str | Path, gid: str) -> Path:
    return _state(Path(store_dir)) / STATUS / f"{gid}.parquet"


def open_for_write(store_dir: str | Path, config_hash: str, config: dict) -> bool:
    """Prepare DIR to receive work of config ``config_hash``; return True if earlier work is kept.

    A store holding work of another config is cleared (its segments, tables, manifest and state):
    a changed config recomputes everything. A folder with unrelated content is refused.
    Orphan parts (written by a killed run before their status committed) are deleted.
    """
    store_dir = Path(store_dir)
    if store_dir.exists() and not store_dir.is_dir():
        raise StoreError(f"--out {store_dir} exists and is not a folder")
    state = _state(store_dir)
    cfg_file = state / STATE_CONFIG
    kept = False
    if store_dir.is_dir() and any(store_dir.iterdir()):
        if cfg_file.is_file():
            try:
                old = json.loads(cfg_file.read_text()).get("config_hash")
            except json.JSONDecodeError:
                old = None
            if old == config_hash:
                kept = True
            else:
                clear_store(store_dir)
        elif (store_dir / MANIFEST).is_file() or (store_dir / SEGMENTS).is_dir():
            clear_store(store_dir)  # a store from an older layout: recompute
        else:
            raise StoreError(
                f"--out {store_dir} is a non-empty folder that is not a genaudio features store; "
                "choose an empty or new folder"
            )
    (store_dir / SEGMENTS).mkdir(parents=True, exist_ok=True)
    (state / STATUS).mkdir(parents=True, exist_ok=True)
    if not kept:
        atomic_write_json(cfg_file, {"config_hash": config_hash, "config": config})
    # orphans: parts whose group never committed, and temporaries of a killed writer
    committed = {p.stem for p in (state / STATUS).glob("*.parquet")}
    for p in (store_dir / SEGMENTS).glob("part-*.parquet"):
        if p.stem[len("part-"):] not in committed:
            p.unlink(missing_ok=True)
    for folder in (store_dir, store_dir / SEGMENTS, state, state / STATUS):
        for p in folder.glob(".*.tmp"):
            p.unlink(missing_ok=True)
    return kept


def clear_store(store_dir: str | Path) -> None:
    """Remove everything a features store holds: the manifest first (it reads as incomplete),
    then the run state (its config and the files' status say what is done), the segments last,
    so that an interruption never leaves status rows vouching for segments already deleted."""
    import shutil

    store_dir = Path(store_dir)
    (store_dir / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(_state(store_dir), ignore_errors=True)
    for name in (FILES, ERRORS):
        (store_dir / name).unlink(missing_ok=True)
    shutil.rmtree(store_dir / SEGMENTS, ignore_errors=True)


def mark_incomplete(store_dir: str | Path) -> None:
    """Hide the manifest while a run adds work: readers must not see a half-updated store."""
    (Path(store_dir) / MANIFEST).unlink(missing_ok=True)


def commit_group(store_dir: str | Path, gid: str, segments: bytes | None, status: bytes) -> None:
    """Commit one group: its segment part (Parquet bytes, or None if empty), then its status."""
    if segments:
        atomic_write_bytes(part_path(store_dir, gid), segments)
    atomic_write_bytes(status_path(store_dir, gid), status)


def read_status(store_dir: str | Path) -> pa.Table:
    """All committed status rows (one per processed file) of the current config."""
    files = sorted((_state(Path(store_dir)) / STATUS).glob("*.parquet"))
    if not files:
        return STATUS_SCHEMA.empty_table()
    tables = [pq.read_table(f).cast(STATUS_SCHEMA) for f in files]
    return pa.concat_tables(tables)


def drop_files(store_dir: str | Path, file_ids: Iterable[str]) -> int:
    """Remove the rows of ``file_ids`` (inputs that vanished or changed) from committed groups.

    Each affected group is rewritten: part first, then status, so a run killed in between simply
    repeats the removal next time. Returns the number of status rows removed.
    """
    import pyarrow.compute as pc

    store_dir = Path(store_dir)
    drop = pa.array(sorted(set(file_ids)), pa.string())
    removed = 0
    if not len(drop):
        return 0
    for sfile in sorted((_state(store_dir) / STATUS).glob("*.parquet")):
        st = pq.read_table(sfile)
        mask = pc.is_in(st.column("file_id"), value_set=drop)
        n = pc.sum(mask).as_py() or 0
        if not n:
            continue
        gid = sfile.stem
        part = part_path(store_dir, gid)
        if part.is_file():
            seg = pq.read_table(part)
            keep = seg.filter(pc.invert(pc.is_in(seg.column("file_id"), value_set=drop)))
            if len(keep):
                atomic_write_table(part, keep)
            else:
                part.unlink()
        rest = st.filter(pc.invert(mask))
        if len(rest):
            atomic_write_table(sfile, rest)
        else:
            sfile.unlink()
        removed += n
    return removed


def finalize(store_dir: str | Path, files: pa.Table, manifest: dict) -> None:
    """Write ``files.parquet`` and ``errors.parquet`` from the status rows, then ``manifest.json``."""
    import pyarrow.compute as pc

    store_dir = Path(store_dir)
    files = files.sort_by([("path", "ascending"), ("file_id", "ascending")])
    atomic_write_table(store_dir / FILES, files)
    failed = files.filter(pc.equal(files.column("status"), "failed"))
    atomic_write_table(store_dir / ERRORS, failed.select(list(ERROR_COLUMNS)))
    atomic_write_json(store_dir / MANIFEST, manifest)
