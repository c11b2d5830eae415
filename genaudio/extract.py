"""Corpus extraction: audio files -> Parquet features store, on Ray Data.

Three separate layers (as in Lhotse: manifests, a pure per-item function, a runner):

1. :func:`discover` turns INPUTs (folders, globs, text/CSV file lists) into a manifest of
   :class:`AudioFile` records (plain dataclasses: ids, paths, sizes, labels; never arrays).
2. :func:`extract_file` is a pure per-file function, no Ray: decode block by block
   (:func:`genaudio.audio.iter_segments`), compute the shared analysis per segment
   (:func:`genaudio.features.compute`), summarise it (:func:`genaudio.features.summarize`) and build
   the segment rows; any failure becomes an error record instead of an exception.
3. :func:`run_extract` runs (2) over the manifest with Ray Data: ``from_items`` over groups of
   files -> ``map_batches`` with a pool of actors (librosa/numba warm up once per actor) that return
   finished, compressed Parquet bytes -> the driver commits each group with atomic renames
   (:mod:`genaudio.store`). The driver holds one group at a time, never the whole corpus.

Every input file ends up exactly once: its segments in ``segments/`` with status ``ok`` in
``files.parquet``, or a row in ``errors.parquet`` (status ``failed``). See ``docs/extract.md``.
"""
from __future__ import annotations

import csv
import dataclasses
import glob as _glob
import hashlib
import itertools
import json
import logging
import os
import platform
import resource
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

from genaudio import store
from genaudio.config import AudioConfig, FeatureConfig, SegmentConfig, config_hash, from_dict, to_dict
from genaudio.errors import AudioTooShortError, ConfigError, GenaudioError, StoreError
from genaudio.infra import connect_ray
from genaudio.infra import progress as infra_progress

#: Text inputs with these suffixes are read as file lists (one path a line, or CSV with a header).
LIST_SUFFIXES = (".txt", ".lst", ".list", ".csv", ".tsv")

#: Folder and glob scans skip these sidecar files (notes, metadata, cover art, playlists) unless
#: ``all_files=True`` (``--all-files``); every other file is an input, so a stray or corrupt one is
#: reported in the errors table instead of silently ignored.
SIDECAR_SUFFIXES = frozenset(
    "md rst txt pdf doc docx json yaml yml csv tsv xml html htm jpg jpeg png gif bmp webp tif tiff "
    "nfo cue log m3u m3u8 pls sfv md5 sha1 sha256 db ini py sh".split())

#: Version of the feature arithmetic, part of :meth:`ExtractConfig.hash`, so that a store never
#: mixes rows of two versions (a resumed run recomputes a store of another version).
#: 2 (issue 15): spectral centroid/bandwidth as two weighted sums, the tempogram through a
#: fast-size FFT, summary moments by products instead of powers: values moved at float32
#: rounding level (the largest relative change to librosa's calls stays below 1e-6, tests
#: keep it within 1e-4).
COMPUTE_VERSION = 2

#: Segments per torch batch on the GPU path (``--gpus-per-worker``): 64 five-second segments
#: at 22.05 kHz take a few hundred MB of device memory (the float64 STFT is the largest part).
TORCH_BATCH = 64

#: Group planning: a group's files add up to about this many bytes on disk ... (a group is one
#: Parquet part, and a part of ~5,400 columns costs ~0.3 CPU s to encode whatever its rows: 32 MB
#: is ~3 min of 44.1 kHz stereo WAV or ~30 min of Ogg, so that cost stays a few % of the work)
GROUP_TARGET_BYTES = 32 << 20
#: ... and hold at most this many files (a Ray task and a Parquet part per group).
GROUP_MAX_FILES = 64
#: At least this many groups per worker, so the tail of the run keeps every worker busy.
GROUPS_PER_WORKER = 6


# ---------------------------------------------------------------------------------------------
# 1. Discovery -> manifest


@dataclass(frozen=True)
class AudioFile:
    """One input file of a corpus.

    Attributes
    ----------
    file_id : str
        Stable identity: the first 16 hex digits of sha1(resolved path, size, mtime in ns).
        The same unchanged file keeps its id across runs; a modified, moved or touched file gets
        a new one (and is recomputed on resume).
    path : str
        Absolute, resolved path.
    size : int
        Bytes on disk.
    mtime : float
        Modification time, seconds since the epoch.
    label : str
        The class label: the CSV ``label`` column if given, else the parent folder's name.
    """

    file_id: str
    path: str
    size: int
    mtime: float
    label: str


def file_id_of(path: str | os.PathLike, st: os.stat_result | None = None) -> str:
    """The stable id of a file (see :class:`AudioFile`)."""
    p = Path(path).resolve()
    st = st or p.stat()
    key = f"{p}\0{st.st_size}\0{st.st_mtime_ns}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def _audio_file(path: Path, label: str | None) -> AudioFile:
    p = path.resolve()
    st = p.stat()
    return AudioFile(file_id=file_id_of(p, st), path=str(p), size=int(st.st_size),
                     mtime=float(st.st_mtime), label=label if label is not None else p.parent.name)


def _hidden(p: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in p.relative_to(root).parts)


def _keep(p: Path, extensions: set[str] | None, all_files: bool, skipped: list | None) -> bool:
    suffix = p.suffix.lower().lstrip(".")
    if extensions:
        return suffix in extensions
    if not all_files and suffix in SIDECAR_SUFFIXES:
        if skipped is not None:
            skipped.append(str(p))
        return False
    return True


def _walk(root: Path, extensions: set[str] | None, all_files: bool = True,
          skipped: list | None = None) -> Iterable[Path]:
    for p in sorted(root.rglob("*")):
        # hidden files and folders (.DS_Store, .git, a store's own .extract) are never inputs
        if not p.is_file() or _hidden(p, root):
            continue
        if _keep(p, extensions, all_files, skipped):
            yield p


def _read_list(path: Path) -> list[tuple[Path, str | None]]:
    """A file list: CSV/TSV with a header holding ``path`` (and optionally ``label``), or plain
    text with one path a line (``#`` comments). Relative paths are relative to the list's folder."""
    text = path.read_text(errors="replace")
    base = path.parent
    rows: list[tuple[Path, str | None]] = []
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
    delim = "\t" if path.suffix.lower() == ".tsv" or "\t" in first else ","
    header = [h.strip().lower() for h in first.split(delim)]
    if "path" in header:
        reader = csv.DictReader((ln for ln in text.splitlines() if not ln.lstrip().startswith("#")),
                                delimiter=delim)
        reader.fieldnames = [h.strip().lower() for h in reader.fieldnames or []]
        for i, row in enumerate(reader, start=2):
            p = (row.get("path") or "").strip()
            if not p:
                raise ConfigError(f"{path}: line {i} has an empty path")
            label = row.get("label")
            label = label.strip() if label is not None and label.strip() else None
            rows.append((base / p if not os.path.isabs(p) else Path(p), label))
    else:
        if path.suffix.lower() in (".csv", ".tsv"):
            raise ConfigError(f"{path}: a CSV file list needs a header row with a 'path' column "
                              "(and optionally 'label')")
        for ln in text.splitlines():
            ln = ln.strip()
            if ln and not ln.startswith("#"):
                rows.append((base / ln if not os.path.isabs(ln) else Path(ln), None))
    return rows


def discover(inputs: Sequence[str | os.PathLike], *, extensions: Iterable[str] | None = None,
             all_files: bool = False, skipped: list[str] | None = None) -> list[AudioFile]:
    """Build the manifest of a corpus.

    Parameters
    ----------
    inputs : sequence of str or path-like
        Each one is a folder (searched recursively; every non-hidden file that is not a sidecar
        (:data:`SIDECAR_SUFFIXES`: README.md, cover.jpg, notes.txt...) is an input, so a stray or
        corrupt file ends up in the errors table rather than silently ignored), a glob pattern
        (``"data/**/*.wav"``), a file list (``.txt``/``.lst``: one path a line; ``.csv``/``.tsv``:
        header with ``path`` and optional ``label``), or one audio file.
    extensions : iterable of str, optional
        Keep only files with these suffixes (``"wav"``, ``"mp3"``; case-insensitive) when scanning
        folders and globs. File lists are taken as they are.
    all_files : bool
        Also take sidecar files from folders and globs (they will fail as not audio).
    skipped : list, optional
        Receives the paths of the sidecar files skipped.

    Returns
    -------
    list of AudioFile
        Sorted by path, each file once (duplicates across INPUTs are merged: first label wins).

    Raises
    ------
    ConfigError
        An INPUT that matches nothing, or a file list naming a missing file.
    """
    exts = {e.lower().lstrip(".") for e in extensions} if extensions else None
    found: dict[str, AudioFile] = {}

    def add(p: Path, label: str | None) -> None:
        af = _audio_file(p, label)
        found.setdefault(af.path, af)

    if not inputs:
        raise ConfigError("no INPUT given: name folders, globs or file lists")
    for item in inputs:
        s = str(item)
        p = Path(s).expanduser()
        if p.is_dir():
            n0 = len(found)
            for f in _walk(p, exts, all_files, skipped):
                add(f, None)
            if len(found) == n0 and not any(_walk(p, exts, all_files)):
                raise ConfigError(f"INPUT {s}: the folder holds no files"
                                  + (f" with extension {', '.join(sorted(exts))}" if exts else ""))
        elif p.is_file():
            if p.suffix.lower() in LIST_SUFFIXES and item is not None:
                rows = _read_list(p)
                missing = [str(q) for q, _ in rows if not q.is_file()]
                if missing:
                    raise ConfigError(f"file list {s} names {len(missing)} missing file(s), "
                                      f"e.g. {missing[0]}")
                for q, label in rows:
                    add(q, label)
            else:
                add(p, None)
        elif any(ch in s for ch in "*?["):
            matches = [Path(m) for m in sorted(_glob.glob(os.path.expanduser(s), recursive=True))]
            files = [m for m in matches if m.is_file() and not m.name.startswith(".")
                     and _keep(m, exts, all_files, skipped)]
            if not files:
                raise ConfigError(f"INPUT {s}: the pattern matches no file")
            for f in files:
                add(f, None)
        else:
            raise ConfigError(f"INPUT {s}: no such file, folder or pattern")
    return sorted(found.values(), key=lambda a: a.path)


# ---------------------------------------------------------------------------------------------
# Configuration of a run


@dataclass(frozen=True)
class ExtractConfig:
    """Everything that determines the rows of a features store (hashed for resume).

    Attributes
    ----------
    audio : AudioConfig
        Decoding and limits.
    segment : SegmentConfig
        Segment length and policy.
    features : FeatureConfig
        Analysis parameters, summary features and frame-level features.
    float16 : bool
        Store frame matrices as float16 instead of float32 (summary columns stay float32).
    """

    audio: AudioConfig = field(default_factory=AudioConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    float16: bool = False

    def __post_init__(self):
        if not self.audio.mono:
            raise ConfigError("extraction analyses mono audio: set audio.mono: true")
        if self.features.frame_features and self.audio.sample_rate is None:
            raise ConfigError("frame-level features need a fixed audio.sample_rate (frame matrices "
                              "have one shape for all files); set audio.sample_rate or "
                              "features.frame_features: []")

    @property
    def summary_features(self) -> tuple[str, ...]:
        """Catalog names summarised into columns (the catalog default set if none was chosen)."""
        from genaudio import features as gf

        return tuple(self.features.features) or tuple(gf.default_features(self.features))

    @property
    def frame_features(self) -> tuple[str, ...]:
        return tuple(self.features.frame_features)

    def resolved(self) -> dict:
        """The config as a dict with the feature list resolved (what :meth:`hash` covers)."""
        d = to_dict(self)
        d["features"]["features"] = list(self.summary_features)
        return d

    def hash(self) -> str:
        """Identity of the store's rows: the resolved config and :data:`COMPUTE_VERSION`."""
        return config_hash({**self.resolved(), "compute_version": COMPUTE_VERSION})


def check_features(config: ExtractConfig) -> None:
    """Refuse unknown feature names, and frame features that are not frame-level, up front."""
    from genaudio import features as gf

    catalog = gf.CATALOG
    for name in config.summary_features + config.frame_features:
        if name not in catalog:
            raise ConfigError(f"unknown feature {name!r}; `genaudio features list` shows the catalog")
    for name in config.frame_features:
        if not catalog[name].frame_level:
            raise ConfigError(f"feature {name!r} is not frame-level and cannot be a frame feature")
    # bands that must lie below the Nyquist frequency: librosa raises per file otherwise, and
    # every file of the run would fail the same way
    fc, sr = config.features, config.audio.sample_rate
    if sr is None:
        return
    cqt_top = fc.fmin * 2 ** ((fc.n_octaves * fc.bins_per_octave - 1) / fc.bins_per_octave)
    contrast_top = 200.0 * 2 ** (fc.n_bands - 1)   # librosa's spectral_contrast: fmin 200 Hz, n_bands octaves
    too_high = {}
    for name in config.summary_features + config.frame_features:
        if "cqt" in catalog[name].needs and cqt_top >= sr / 2:
            too_high[name] = f"a CQT up to {cqt_top:.0f} Hz (features.fmin, n_octaves)"
        elif name == "spectral_contrast" and contrast_top >= sr / 2:
            too_high[name] = f"bands up to {contrast_top:.0f} Hz (features.n_bands)"
    if too_high:
        needs = "; ".join(f"{name} needs {what}" for name, what in sorted(too_high.items()))
        raise ConfigError(f"audio.sample_rate {sr} Hz is too low for some features ({needs}; the Nyquist frequency "
                          f"is {sr / 2:.0f} Hz): raise the sample rate, change those options, or leave the features out")


# ---------------------------------------------------------------------------------------------
# 2. The per-file function (pure: no Ray, never raises)


def _error_record(af: AudioFile, stage: str, exc: BaseException) -> dict:
    reason = exc.reason if isinstance(exc, GenaudioError) else (
        "memory" if isinstance(exc, MemoryError) else "unexpected")
    msg = str(exc) or type(exc).__name__
    if not isinstance(exc, GenaudioError):
        # unexpected: keep where it happened, so a bug report can be written from the row alone
        tb = traceback.extract_tb(exc.__traceback__)
        if tb:
            last = tb[-1]
            msg = f"{msg} (at {Path(last.filename).name}:{last.lineno} in {last.name})"
    return {"file_id": af.file_id, "path": af.path, "label": af.label, "stage": stage,
            "error_type": type(exc).__name__, "reason": reason, "message": msg[:2000]}


_SCHEMAS: dict[str, tuple[pa.Schema, dict]] = {}


def _frames_type(dims: int, time_: int, float16: bool) -> pa.DataType:
    return pa.list_(pa.list_(pa.float16() if float16 else pa.float32(), time_), dims)


def segment_schema(config: ExtractConfig) -> tuple[pa.Schema, dict[str, tuple[int, int]]]:
    """The schema of every segment row under ``config``, and each frame feature's (dims, time).

    Found by analysing one segment of a fixed test signal (cached per config), so the columns
    and shapes are exactly what :func:`genaudio.features.compute` and ``summarize`` produce.
    This also warms up librosa and numba in the calling process.
    """
    from genaudio import features as gf

    key = config.hash()
    if key in _SCHEMAS:
        return _SCHEMAS[key]

    sr = config.audio.sample_rate or 22050
    n = max(1, int(round(config.segment.seconds * sr)))
    rng = np.random.default_rng(0)
    t = np.arange(n) / sr
    y = (0.1 * np.sin(2 * np.pi * 440.0 * t) + 0.01 * rng.standard_normal(n)).astype(np.float32)
    computed, _ = _analyse(y, sr, config)
    summary = gf.summary_columns({k: computed[k] for k in config.summary_features}, config=config.features)
    fields = [pa.field("file_id", pa.string()), pa.field("path", pa.string()),
              pa.field("label", pa.string()), pa.field("segment", pa.int32()),
              pa.field("start_s", pa.float64()), pa.field("duration_s", pa.float64())]
    fields += [pa.field(c, pa.float32()) for c in summary]
    shapes = {}
    for name in config.frame_features:
        m = np.asarray(computed[name])
        if m.ndim == 1:
            m = m[None, :]
        shapes[name] = (int(m.shape[0]), int(m.shape[1]))
        fields.append(pa.field(store.FRAME_PREFIX + name, _frames_type(*shapes[name], config.float16)))
    _SCHEMAS[key] = (pa.schema(fields), shapes)
    return _SCHEMAS[key]


def _analyse(y: np.ndarray, sr: int, config: ExtractConfig) -> tuple[dict, np.ndarray]:
    """Features of one segment and its summary values (in :func:`segment_schema`'s column order)."""
    from genaudio import features as gf

    summary_names = config.summary_features
    names = list(dict.fromkeys(summary_names + config.frame_features))
    computed = gf.compute(y, sr, config=config.features, features=names)
    summary = gf.summary_vector({k: computed[k] for k in summary_names}, config=config.features)
    return computed, summary


def _analyse_chunk(chunk: list, sr: int, config: ExtractConfig, device: str | None) -> list[tuple]:
    """``(segment, computed, summary)`` of decoded ``(segment, y)`` pairs: one by one on the numpy
    path, or runs of equal length as one torch batch on ``device``."""
    from genaudio import features as gf

    if device is None:
        return [(seg, *_analyse(y, sr, config)) for seg, y in chunk]
    from genaudio.features import torch_frames

    names = list(dict.fromkeys(config.summary_features + config.frame_features))
    out = []
    for _, run in itertools.groupby(chunk, key=lambda item: len(item[1])):
        run = list(run)
        batch = torch_frames.analyses([y for _, y in run], sr, config=config.features, features=names,
                                      device=device)
        for (seg, _), analysis in zip(run, batch):
            computed = analysis.compute(names)
            out.append((seg, computed, gf.summary_vector({k: computed[k] for k in config.summary_features},
                                                          config=config.features)))
    return out


@dataclasses.dataclass
class FileRows:
    """One file's analysed segments before they become a table: the identity and frame columns as
    lists (one entry per segment) and the summary vectors (in :func:`segment_schema`'s summary
    column order). Tables are built for many files at once (:func:`rows_table`): a table of
    5,447 columns costs ~50 ms to build whatever its rows, so the actors build one per group."""

    cols: dict[str, list]
    summaries: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.summaries)


def rows_table(files: Sequence[FileRows], config: ExtractConfig) -> pa.Table:
    """The segment rows of ``files`` (in order) as one table of :func:`segment_schema`."""
    schema, shapes = segment_schema(config)
    cols = {k: [v for f in files for v in f.cols[k]] for k in files[0].cols}
    return _rows_table(cols, [v for f in files for v in f.summaries], schema, shapes, config.float16)


def extract_file(audio_file: AudioFile, config: ExtractConfig, *, device: str | None = None
                 ) -> tuple[pa.Table | None, dict | None]:
    """Decode, segment and analyse one file into segment rows. Never raises.

    Parameters
    ----------
    audio_file : AudioFile
    config : ExtractConfig
    device : str, optional
        ``None``: the numpy/librosa path, segment by segment. A torch device (``"cuda"``,
        ``"cpu"``): the frame features of up to :data:`TORCH_BATCH` segments at a time as one
        batch on it (:mod:`genaudio.features.torch_frames`), the rest on the CPU.

    Returns
    -------
    rows : pyarrow.Table or None
        One row per segment with the schema of :func:`segment_schema` (identity columns, float32
        summary columns, ``frames_<feature>`` (dims, time) matrices), or None if the file failed.
    error : dict or None
        None on success, else ``{file_id, path, label, stage, error_type, reason, message}`` where
        ``stage`` is ``probe`` (header, limits), ``decode`` (reading samples, segmentation),
        ``features`` (analysis) or ``write`` (building the rows). Any exception counts: a
        :class:`~genaudio.errors.GenaudioError`, a librosa ``ValueError``, ``MemoryError``...

    Notes
    -----
    Memory: decoding is block by block (60 s blocks); the file's rows are held until it ends,
    about 0.16 MB per 5-s segment with the default frame features (~115 MB per audio hour).
    """
    rows, err = analyse_file(audio_file, config, device=device)
    if rows is None:
        return None, err
    try:
        return rows_table([rows], config), None
    except Exception as e:  # noqa: BLE001 - the contract: every failure becomes a row
        return None, _error_record(audio_file, "write", e)


def analyse_file(audio_file: AudioFile, config: ExtractConfig, *, device: str | None = None
                 ) -> tuple[FileRows | None, dict | None]:
    """:func:`extract_file` up to the table: the file's :class:`FileRows`, or its error record.
    Never raises."""
    from genaudio import audio as ga

    stage = "probe"
    try:
        ga.probe(audio_file.path, config=config.audio)
        schema, shapes = segment_schema(config)
        # names, not ``for f in schema``: iterating 5,447 pa.Field objects cost ~10 ms per file
        cols: dict[str, list] = {k: [] for k in (*store.IDENTITY_COLUMNS,
                                                 *(store.FRAME_PREFIX + name for name in shapes))}
        summaries: list[np.ndarray] = []
        stage = "decode"
        it = ga.iter_segments(audio_file.path, audio=config.audio, segment=config.segment)
        sr = config.audio.sample_rate
        while True:
            stage = "decode"
            chunk = list(itertools.islice(it, 1 if device is None else TORCH_BATCH))
            if not chunk:
                break
            if sr is None:
                sr = ga.probe(audio_file.path, config=config.audio).sample_rate
            stage = "features"
            analysed = _analyse_chunk(chunk, sr, config, device)
            stage = "write"
            for seg, computed, summary in analysed:
                cols["file_id"].append(audio_file.file_id)
                cols["path"].append(audio_file.path)
                cols["label"].append(audio_file.label)
                cols["segment"].append(seg.index)
                cols["start_s"].append(seg.start_s)
                cols["duration_s"].append(seg.duration_s)
                summaries.append(summary)
                for name, (dims, t) in shapes.items():
                    m = np.asarray(computed[name], dtype=np.float32)
                    if m.ndim == 1:
                        m = m[None, :]
                    if m.shape != (dims, t):
                        raise ValueError(f"frame matrix {name} has shape {m.shape}, expected {(dims, t)}")
                    cols[store.FRAME_PREFIX + name].append(m)
        stage = "decode"
        if not cols["file_id"]:
            raise AudioTooShortError(
                f"no segment: shorter than the last-segment policy keeps "
                f"(segment {config.segment.seconds:g} s, last={config.segment.last})",
                path=audio_file.path)
        return FileRows(cols, summaries), None
    except BaseException as e:  # noqa: BLE001 - the contract: every failure becomes a row
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return None, _error_record(audio_file, stage, e)


def _rows_table(cols: dict[str, list], summaries: list[np.ndarray], schema: pa.Schema, shapes: dict,
                float16: bool) -> pa.Table:
    """One file's segment rows: identity lists, summary vectors (one per segment, in the schema's
    summary-column order) and frame matrices, as a table of ``schema``."""
    n = len(cols["file_id"])
    # (columns, segments) in one contiguous float32 buffer, zero-copy to Arrow; each summary
    # column is a slice of it (~1 us each, where 5,429 pa.array calls took ~45 ms per file)
    flat = pa.array(np.ascontiguousarray(np.stack(summaries).T, dtype=np.float32).reshape(-1))
    by_column = (flat.slice(j * n, n) for j in range(len(flat) // n if n else 0))
    arrays = []
    # by name (schema.names is one call), not ``for f in schema``: a pa.Field per column costs
    # ~1 us, 5 ms per table; only the few identity and frame columns need their field
    for i, name in enumerate(schema.names):
        if name not in cols:
            arrays.append(next(by_column))
        elif name.startswith(store.FRAME_PREFIX):
            dims, t = shapes[name[len(store.FRAME_PREFIX):]]
            stacked = np.stack(cols[name]).astype(np.float16 if float16 else np.float32)
            arrays.append(pa.FixedSizeListArray.from_arrays(
                pa.FixedSizeListArray.from_arrays(pa.array(stacked.reshape(-1)), t), dims))
        else:
            arrays.append(pa.array(cols[name], type=schema.field(i).type))
    assert all(len(a) == n for a in arrays) and next(by_column, None) is None
    return pa.Table.from_arrays(arrays, schema=schema)


# ---------------------------------------------------------------------------------------------
# Groups: the unit of work and of commit


def group_id(config_hash_: str, file_ids: Iterable[str]) -> str:
    h = hashlib.sha1(config_hash_.encode())
    for fid in sorted(file_ids):
        h.update(b"\0" + fid.encode())
    return h.hexdigest()[:20]


def plan_groups(files: Sequence[AudioFile], *, n_workers: int, config_hash_: str,
                target_bytes: int = GROUP_TARGET_BYTES, max_files: int = GROUP_MAX_FILES
                ) -> list[list[AudioFile]]:
    """Pack files into groups: many small files share a task and a Parquet part (amortising the
    per-task cost), a large file is alone. Largest first, so the run ends with small groups and
    no worker waits long for the last one."""
    if not files:
        return []
    total = sum(f.size for f in files)
    target = max(1, min(target_bytes, total // max(1, GROUPS_PER_WORKER * n_workers)))
    ordered = sorted(files, key=lambda f: (-f.size, f.path))
    groups: list[list[AudioFile]] = []
    cur: list[AudioFile] = []
    cur_bytes = 0
    for f in ordered:
        if cur and (cur_bytes + f.size > target or len(cur) >= max_files):
            groups.append(cur)
            cur, cur_bytes = [], 0
        cur.append(f)
        cur_bytes += f.size
    if cur:
        groups.append(cur)
    return groups


def _status_row(af: AudioFile, *, gid: str, ok: bool, segments: int, audio_seconds: float,
                error: dict | None, node_id: str, elapsed: float) -> dict:
    e = error or {}
    return {"file_id": af.file_id, "path": af.path, "label": af.label, "size": af.size,
            "mtime": af.mtime, "status": "ok" if ok else "failed", "segments": segments,
            "audio_seconds": audio_seconds, "stage": e.get("stage"), "error_type": e.get("error_type"),
            "reason": e.get("reason"), "message": e.get("message"), "gid": gid, "node_id": node_id,
            "worker_pid": os.getpid(),
            "worker_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "elapsed_s": elapsed}


def process_group(files: Sequence[AudioFile], config: ExtractConfig, *, gid: str,
                  node_id: str = "", device: str | None = None) -> tuple[bytes | None, bytes]:
    """Run :func:`analyse_file` over a group and build ONE table of its rows; return (segments
    Parquet bytes or None, status Parquet bytes). Used by the Ray actors (``device``: see
    :func:`extract_file`)."""
    from genaudio import audio as ga

    analysed: list[tuple[AudioFile, FileRows]] = []
    status = []
    for af in files:
        t0 = time.perf_counter()
        rows, err = analyse_file(af, config, device=device)
        secs = 0.0
        if rows is not None:
            try:
                secs = float(ga.probe(af.path, config=config.audio).duration_s)
            except Exception:  # noqa: BLE001 - probing succeeded moments ago; a count is not worth failing for
                secs = float(np.sum(rows.cols["duration_s"]))
            analysed.append((af, rows))
        status.append(_status_row(af, gid=gid, ok=rows is not None,
                                  segments=0 if rows is None else len(rows), audio_seconds=secs,
                                  error=err, node_id=node_id, elapsed=time.perf_counter() - t0))
    table = _group_table(analysed, config, status) if analysed else None
    seg_bytes = store.table_to_parquet_bytes(table) if table is not None and len(table) else None
    st = pa.Table.from_pylist(status, schema=store.STATUS_SCHEMA)
    return seg_bytes, store.table_to_parquet_bytes(st)


def _group_table(analysed: list, config: ExtractConfig, status: list[dict]) -> pa.Table:
    """One table of the group's rows; should that fail, file by file, and a file whose rows
    cannot be built becomes a failed status row (stage ``write``), never a lost group."""
    try:
        return rows_table([rows for _, rows in analysed], config)
    except Exception:  # noqa: BLE001 - find the file at fault
        pass
    by_path = {r["path"]: r for r in status}
    tables = []
    for af, rows in analysed:
        try:
            tables.append(rows_table([rows], config))
        except Exception as e:  # noqa: BLE001
            err = _error_record(af, "write", e)
            by_path[af.path].update(status="failed", segments=0, audio_seconds=0.0,
                                    **{k: err[k] for k in ("stage", "error_type", "reason", "message")})
    return pa.concat_tables(tables) if tables else None


class _Worker:
    """A Ray Data actor: warms librosa/numba up once, then processes one group per call.

    The config travels as a class attribute of a per-run subclass (made in :func:`_run_groups`), not as
    constructor arguments, which Ray would keep in the object store for actor restarts."""

    CONFIG: dict = {}
    #: True on the GPU path: frame features in torch, on CUDA when the actor has a GPU.
    TORCH = False

    def __init__(self):
        import ray

        self.config = from_dict(ExtractConfig, self.CONFIG)
        self.node_id = ray.get_runtime_context().get_node_id()
        segment_schema(self.config)  # warm-up: JIT-compiles librosa's numba kernels here, once
        self.device = None
        gpus = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
        if self.TORCH:
            import torch

            # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPUs, so "cuda" is the right one; a
            # node whose GPUs torch cannot use (fake resources in tests, no CUDA build) runs the
            # same torch code on the CPU
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.where = f"{'torch:' + self.device if self.device else 'numpy'} gpus={','.join(gpus) or '-'}"

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = {"gid": [], "segments": [], "status": [], "n_files": []}
        for gid, files_json in zip(batch.column("gid").to_pylist(), batch.column("files").to_pylist()):
            files = [AudioFile(**d) for d in json.loads(files_json)]
            seg, st = process_group(files, self.config, gid=gid, node_id=self.node_id, device=self.device)
            out["gid"].append(gid)
            out["segments"].append(seg)
            out["status"].append(st)
            out["n_files"].append(len(files))
        return pa.table({"gid": pa.array(out["gid"], pa.string()),
                         "segments": pa.array(out["segments"], pa.large_binary()),
                         "status": pa.array(out["status"], pa.large_binary()),
                         "n_files": pa.array(out["n_files"], pa.int64()),
                         "where": pa.array([self.where] * len(out["gid"]), pa.string())})


# ---------------------------------------------------------------------------------------------
# 3. The runner


@dataclass
class ExtractResult:
    """What :func:`run_extract` did. Counts cover the whole store; ``processed``/``skipped`` this run."""

    out: str
    config_hash: str
    files: int
    files_ok: int
    files_failed: int
    segments: int
    audio_seconds: float
    processed: int
    skipped: int
    processed_audio_seconds: float
    wall_s: float
    startup_s: float
    nodes: list[str]
    sidecars_skipped: list[str] = dataclasses.field(default_factory=list)
    manifest: dict = dataclasses.field(repr=False, default_factory=dict)

    @property
    def realtime_factor(self) -> float:
        """Audio seconds processed this run per wall-clock second."""
        return self.processed_audio_seconds / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> str:
        return (f"files ok {self.files_ok}, failed {self.files_failed} (of {self.files}; "
                f"{self.processed} processed, {self.skipped} already done); segments {self.segments}; "
                f"audio {self.audio_seconds / 3600:.3f} h; wall {self.wall_s:.1f} s "
                f"(start-up {self.startup_s:.1f} s); real-time factor {self.realtime_factor:.1f}x "
                f"on {len(self.nodes) or 1} node(s)"
                + (f"; {len(self.sidecars_skipped)} sidecar file(s) skipped (--all-files takes them)"
                   if self.sidecars_skipped else ""))


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("genaudio", "librosa", "numpy", "pyarrow", "ray", "soundfile", "soxr", "numba"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def _worker_count(num_cpus: int | None, gpus_per_worker: float = 0.0) -> int:
    import ray

    resources = ray.cluster_resources()
    total = int(resources.get("CPU", 0))
    n = min(total, num_cpus) if num_cpus else total
    if n < 1:
        raise ConfigError("the Ray cluster has no CPU to run extraction on")
    if gpus_per_worker > 0:
        gpus = float(resources.get("GPU", 0))
        if gpus < gpus_per_worker:
            raise ConfigError(f"--gpus-per-worker {gpus_per_worker:g}: the Ray cluster has {gpus:g} GPU(s); "
                              "leave the option out to extract on CPUs")
        n = min(n, int(gpus // gpus_per_worker))
    return n


def _run_groups(groups: list[list[AudioFile]], *, out: Path, cfg: ExtractConfig, n_workers: int,
                progress, on_commit, gpus_per_worker: float = 0.0, where: set | None = None) -> None:
    import ray
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # our own bar counts files, which is what a user waits for
    ctx.max_errored_blocks = -1       # a group that keeps crashing its worker is retried file by file
    ctx.execution_options.preserve_order = False
    chash = cfg.hash()
    items = [{"gid": group_id(chash, [f.file_id for f in g]),
              "files": json.dumps([dataclasses.asdict(f) for f in g])} for g in groups]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    worker = type("ExtractWorker", (_Worker,), {"CONFIG": cfg.resolved(), "TORCH": gpus_per_worker > 0})
    gpu_args = {"num_gpus": gpus_per_worker} if gpus_per_worker > 0 else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ray_remote_args deprecation: no named max_task_retries yet
        ds = ds.map_batches(
            worker, batch_size=1, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=min(n_workers, len(items)),
                                               max_tasks_in_flight_per_actor=2),
            num_cpus=1, **gpu_args,
            # a crashed or lost worker (node removed, OOM kill) is restarted and its group
            # retried; finite task retries, so a file that kills its worker cannot loop forever
            max_restarts=-1, max_task_retries=3,
        )
    # Ray Data's INFO lines (plan, "progress bars disabled") would interleave with our file bar
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    data_log.setLevel(logging.ERROR)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1):
            for row in batch.to_pylist():
                store.commit_group(out, row["gid"], row["segments"], row["status"])
                if where is not None:
                    where.add(row["where"])
                on_commit(row["n_files"])
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - files without a committed status are redone below
        print(f"warning: Ray Data stopped early ({type(e).__name__}: {str(e)[:200]}); "
              "retrying the remaining files one by one", file=sys.stderr)
    finally:
        data_log.setLevel(level)


def run_extract(inputs: Sequence[str | os.PathLike] | Sequence[AudioFile], out: str | os.PathLike, *,
                config: ExtractConfig | None = None, address: str | None = None,
                num_cpus: int | None = None, extensions: Iterable[str] | None = None,
                all_files: bool = False, progress: bool = True, gpus_per_worker: float = 0.0) -> ExtractResult:
    """Extract a corpus into the features store ``out`` (resumable; see module docstring).

    Parameters
    ----------
    inputs : sequence of str/path, or a manifest (sequence of AudioFile)
        As :func:`discover`.
    out : path
        The store folder. Work of the same config already there is kept; a store of another
        config is cleared and recomputed; any other non-empty folder is refused.
    config : ExtractConfig
    address : str, optional
        A Ray cluster (``ray://host:10001`` or ``host:6379``); default ``RAY_ADDRESS``, else an
        embedded local Ray with ``num_cpus`` CPUs (default: all cores). If Ray is already
        initialised in this process it is used as is.
    num_cpus : int, optional
        Local Ray's CPUs, and the maximum number of workers.
    progress : bool
        Show a progress bar over files.
    gpus_per_worker : float
        0 (default): CPU actors, the numpy/librosa path. > 0: each actor takes this share of a GPU
        and computes the frame features in torch, batched over segments, on its GPU (CUDA when
        torch has it, else the CPU); the rest of the analysis stays on the actor's CPU. Values
        equal the CPU path within :data:`genaudio.features.torch_frames.TOLERANCE`; the store
        is the same store (same config hash), its manifest records the path under ``compute``.

    Returns
    -------
    ExtractResult
    """
    t_start = time.perf_counter()
    skipped: list[str] = []
    cfg = config or ExtractConfig()
    check_features(cfg)
    out = Path(out).expanduser().resolve()
    if inputs and isinstance(next(iter(inputs)), AudioFile):
        manifest = sorted(inputs, key=lambda a: a.path)  # type: ignore[arg-type]
    else:
        manifest = discover(inputs, extensions=extensions, all_files=all_files,  # type: ignore[arg-type]
                            skipped=skipped)
    if not manifest:
        raise ConfigError("no input files found")
    chash = cfg.hash()
    resolved = cfg.resolved()
    store.open_for_write(out, chash, resolved)
    by_id = {a.file_id: a for a in manifest}
    status = store.read_status(out)
    stale = set(status.column("file_id").to_pylist()) - set(by_id)
    if stale:
        store.mark_incomplete(out)
        store.drop_files(out, stale)
        status = store.read_status(out)
    # files whose worker died on every attempt (an OOM kill, lost nodes, Ray itself failing) are
    # tried again; a file that failed to decode stays failed (that does not change between runs)
    crashed = {r["file_id"] for r in status.select(["file_id", "stage"]).to_pylist() if r["stage"] == CRASH_STAGE}
    if crashed:
        store.mark_incomplete(out)
        store.drop_files(out, crashed)
        status = store.read_status(out)
    done = set(status.column("file_id").to_pylist())
    pending = [a for a in manifest if a.file_id not in done]

    if gpus_per_worker < 0:
        raise ConfigError(f"gpus_per_worker must be >= 0, got {gpus_per_worker}")
    startup_s = 0.0
    started = False
    where: set[str] = set()
    if pending:
        store.mark_incomplete(out)
        t0 = time.perf_counter()
        started = connect_ray(address, num_cpus=num_cpus or os.cpu_count() or 1)
        startup_s = time.perf_counter() - t0
        try:
            n_workers = _worker_count(num_cpus, gpus_per_worker)
            bar = infra_progress(total=len(manifest), initial=len(manifest) - len(pending), enabled=progress,
                                 unit="file", desc="extract")
            try:
                def on_commit(n):
                    bar.update(n)

                groups = plan_groups(pending, n_workers=n_workers, config_hash_=chash)
                _run_groups(groups, out=out, cfg=cfg, n_workers=n_workers, progress=bar,
                            on_commit=on_commit, gpus_per_worker=gpus_per_worker, where=where)
                # Files whose group never committed (its worker died on every retry): redo them
                # one file per group, so one poisonous file cannot take its neighbours with it.
                left = _missing(out, by_id)
                if left and any(len(g) > 1 for g in groups):
                    _run_groups([[a] for a in left], out=out, cfg=cfg,
                                n_workers=_worker_count(num_cpus, gpus_per_worker),  # nodes may have gone
                                progress=bar, on_commit=on_commit, gpus_per_worker=gpus_per_worker,
                                where=where)
                _commit_crashed(out, _missing(out, by_id), chash, bar)
            finally:
                bar.close()
        finally:
            if started:
                import ray

                ray.shutdown()
    status = store.read_status(out)
    return _finalize(out, manifest=manifest, status=status, cfg=cfg, inputs=inputs,
                     pending=pending, wall_s=time.perf_counter() - t_start, startup_s=startup_s,
                     sidecars=skipped, compute={"gpus_per_worker": gpus_per_worker, "workers": sorted(where)})


#: The stage of the error row of a file whose worker died on every attempt (retried by a rerun).
CRASH_STAGE = "worker"


def _commit_crashed(out: Path, files: list[AudioFile], chash: str, bar) -> None:
    """A :data:`CRASH_STAGE` error row for each file whose worker died on every attempt."""
    err = {"stage": CRASH_STAGE, "error_type": "WorkerCrashed", "reason": "crash",
           "message": "the worker processing this file died on every attempt "
                      "(decoder crash or out of memory)"}
    for a in files:
        gid = group_id(chash, [a.file_id])
        st = pa.Table.from_pylist([_status_row(a, gid=gid, ok=False, segments=0, audio_seconds=0.0,
                                               error=err, node_id="", elapsed=0.0)],
                                  schema=store.STATUS_SCHEMA)
        store.commit_group(out, gid, None, store.table_to_parquet_bytes(st))
        bar.update(1)


def _missing(out: Path, by_id: dict[str, AudioFile]) -> list[AudioFile]:
    done = set(store.read_status(out).column("file_id").to_pylist())
    return [a for fid, a in by_id.items() if fid not in done]


def _finalize(out: Path, *, manifest: list[AudioFile], status: pa.Table, cfg: ExtractConfig,
              inputs, pending: list[AudioFile], wall_s: float, startup_s: float,
              sidecars: list[str], compute: dict) -> ExtractResult:
    import pyarrow.compute as pc

    ids = status.column("file_id").to_pylist()
    if len(ids) != len(set(ids)) or set(ids) != {a.file_id for a in manifest}:
        # cannot happen with the commit protocol; refuse to publish a wrong store if it does
        raise StoreError(f"{out}: status rows do not match the inputs one to one "
                         f"({len(ids)} rows, {len(set(ids))} distinct, {len(manifest)} inputs); "
                         "rerun the command to repair")
    ok = status.filter(pc.equal(status.column("status"), "ok"))
    pending_ids = pa.array([a.file_id for a in pending], pa.string())
    this_run = status.filter(pc.is_in(status.column("file_id"), value_set=pending_ids))
    this_ok = this_run.filter(pc.equal(this_run.column("status"), "ok"))
    n_ok = len(ok)
    segments = int(pc.sum(ok.column("segments")).as_py() or 0)
    audio_s = float(pc.sum(ok.column("audio_seconds")).as_py() or 0.0)
    processed_audio = float(pc.sum(this_ok.column("audio_seconds")).as_py() or 0.0)
    nodes = sorted({n for n in status.column("node_id").to_pylist() if n})
    shapes = {}
    if n_ok:  # from a part's schema: the driver never runs the analysis (nor its JIT warm-up)
        for f in store.segments_schema(out):
            if f.name.startswith(store.FRAME_PREFIX):
                shapes[f.name[len(store.FRAME_PREFIX):]] = (f.type.list_size, f.type.value_type.list_size)
    from genaudio import features as gf

    feats = {}
    for name in dict.fromkeys(cfg.summary_features + cfg.frame_features):
        spec = gf.CATALOG[name]
        feats[name] = {"group": spec.group, "dims": int(spec.dims(cfg.features)),
                       "frame": name in cfg.frame_features,
                       "summary": name in cfg.summary_features}
    previous = {}
    try:
        previous = json.loads((out / store.MANIFEST).read_text()) if not pending else {}
    except (OSError, json.JSONDecodeError):
        previous = {}
    manifest_doc = {
        "kind": "features",
        "config": {k: v for k, v in cfg.resolved().items() if k != "float16"},
        "config_hash": cfg.hash(),
        "store": {"frame_dtype": "float16" if cfg.float16 else "float32", "compression": store.WIDE_COMPRESSION},
        "versions": _versions(),
        "inputs": [str(i) if not isinstance(i, AudioFile) else i.path for i in inputs][:1000],
        "counts": {"files": len(manifest), "files_ok": n_ok, "files_failed": len(status) - n_ok,
                   "segments": segments, "audio_seconds": audio_s,
                   "sidecars_skipped": len(sidecars)},
        "timings": {"wall_s": wall_s, "startup_s": startup_s, "processed_files": len(pending),
                    "skipped_files": len(manifest) - len(pending),
                    "processed_audio_seconds": processed_audio,
                    "realtime_factor": processed_audio / wall_s if wall_s > 0 else 0.0,
                    "cpu_seconds_files": float(pc.sum(status.column("elapsed_s")).as_py() or 0.0)},
        "features": feats,
        # how this run computed: numpy or torch:<device>, and the GPUs Ray gave each worker
        "compute": compute,
        "frame_shapes": {k: list(v) for k, v in shapes.items()},
        "nodes": nodes,
        "created": previous.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if not pending and previous:
        # a no-op rerun: keep the timings of the run that did the work
        manifest_doc["timings"] = previous.get("timings", manifest_doc["timings"])
        manifest_doc["compute"] = previous.get("compute", manifest_doc["compute"])
        manifest_doc["updated"] = previous.get("updated", manifest_doc["updated"])
    store.finalize(out, status, manifest_doc)
    return ExtractResult(out=str(out), config_hash=cfg.hash(), files=len(manifest), files_ok=n_ok,
                         files_failed=len(status) - n_ok, segments=segments, audio_seconds=audio_s,
                         processed=len(pending), skipped=len(manifest) - len(pending),
                         processed_audio_seconds=processed_audio, wall_s=wall_s,
                         startup_s=startup_s, nodes=nodes, sidecars_skipped=sidecars,
                         manifest=manifest_doc)
