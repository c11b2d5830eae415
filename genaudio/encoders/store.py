"""Encoder inputs from a features store, and the encoded store (``genaudio encode`` output).

Encoded store layout::

    ENC/
      manifest.json     kind "encoded", encoder kind/config, dim, code_rate_hz, bitrate, precision,
                        decoder ("learned" / "griffinlim" / "mulaw" / "none"), source, counts
      encoder/          the fitted encoder (config.json + arrays.npz [+ weights.pt]
                        [+ decoder/: the learned decoder, config.json + weights.pt])
      codes/part-00000.parquet
                        identity columns (file_id, path, label, segment, start_s, duration_s, split)
                        + ``codes``: list<fixed_size_list<dim>> of uint8 / float16 / float32 (as
                        the encoder's ``precision``); one row per segment
      metrics.json      rate-distortion metrics on held-out segments
      audio/            original / reconstruction WAV pairs

``read_codes(ENC)`` returns float32 codes (uint8 codes are dequantised with the encoder's stored
per-dimension bounds). ``encode_store`` does the same in memory for a features store, without
writing anything (the search uses it).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from genaudio import store as fstore
from genaudio.config import FeatureConfig, to_dict
from genaudio.encoders import framing
from genaudio.encoders.base import Encoder, EncoderConfig, encoder_class, load_encoder, make_encoder
from genaudio.errors import ConfigError, EncoderError, GenaudioError, StoreError

CODES = "codes"
ENCODER = "encoder"
METRICS = "metrics.json"
AUDIO = "audio"
ID_COLUMNS = fstore.IDENTITY_COLUMNS


# ---------------------------------------------------------------------------------------------
# In-memory codes


@dataclasses.dataclass
class CodesData:
    """Codes of a set of segments, with their identity.

    Attributes
    ----------
    codes : list of np.ndarray
        One float32 array ``(time, dim)`` per segment (same ``time`` for equal-length segments).
    ids : pandas.DataFrame
        One row per segment: ``file_id, path, label, segment, start_s, duration_s`` (+ ``split``
        when known: ``"train"`` / ``"test"``).
    encoder : Encoder or None
        The fitted encoder (``to_audio`` turns generated codes into sound).
    encoder_path : pathlib.Path or None
        Where the encoder is saved, if it is.
    """

    codes: list[np.ndarray]
    ids: pd.DataFrame
    encoder: Encoder | None = None
    encoder_path: Path | None = None

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def file_ids(self) -> np.ndarray:
        """``file_id`` of each segment: split by file, never by segment."""
        return self.ids["file_id"].to_numpy()

    @property
    def labels(self) -> np.ndarray:
        return self.ids["label"].to_numpy()

    @property
    def dim(self) -> int:
        return int(self.codes[0].shape[1]) if self.codes else 0

    def array(self) -> np.ndarray:
        """All codes as one ``(n_segments, time, dim)`` float32 array (equal-length segments)."""
        if not self.codes:
            raise EncoderError("no codes")
        shapes = {c.shape for c in self.codes}
        if len(shapes) != 1:
            t = min(s[0] for s in shapes)
            raise EncoderError(f"segments have different code lengths ({sorted(shapes)[:3]}...); "
                               f"use .codes, or crop to {t} frames with .array_cropped()")
        return np.stack(self.codes).astype(np.float32)

    def array_cropped(self, time: int | None = None) -> np.ndarray:
        """``(n_segments, time, dim)`` with every segment cut to ``time`` (default: the shortest)."""
        t = time or min(c.shape[0] for c in self.codes)
        return np.stack([c[:t] for c in self.codes]).astype(np.float32)

    def subset(self, mask) -> "CodesData":
        mask = np.asarray(mask)
        idx = np.flatnonzero(mask) if mask.dtype == bool else mask
        return CodesData([self.codes[i] for i in idx], self.ids.iloc[idx].reset_index(drop=True),
                         self.encoder, self.encoder_path)


def split_by_file(file_ids: Sequence[str], *, holdout: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean mask of held-out segments: whole files, chosen by a seeded hash of ``file_id``.

    At least one file is held out and at least one kept when there are two or more files.
    """
    file_ids = np.asarray([str(f) for f in file_ids])
    uniq = sorted(set(file_ids.tolist()))
    if not 0.0 <= holdout < 1.0:
        raise EncoderError(f"holdout must be in [0, 1), got {holdout}")
    if holdout == 0.0 or len(uniq) < 2:
        return np.zeros(len(file_ids), dtype=bool)

    def h(f):
        return int(hashlib.sha1(f"{seed}:{f}".encode()).hexdigest()[:12], 16)

    ranked = sorted(uniq, key=h)
    n_test = min(max(1, int(round(holdout * len(uniq)))), len(uniq) - 1)
    test = set(ranked[:n_test])
    return np.array([f in test for f in file_ids], dtype=bool)


# ---------------------------------------------------------------------------------------------
# Inputs from a features store


def _store_config(manifest: dict) -> tuple[dict, dict]:
    cfg = manifest.get("config") or {}
    return cfg.get("audio") or {}, cfg.get("features") or {}


def feature_options(manifest: dict) -> dict:
    """A features store's analysis options besides the core's (:data:`framing.FEATURE_OPTIONS`)
    where they differ from the defaults: an encoder's ``feature_options``, so that the frames it
    computes from audio are the ones the store holds (``{}`` for a store of default options)."""
    _, feats = _store_config(manifest)
    defaults = to_dict(FeatureConfig())
    return {k: feats[k] for k in framing.FEATURE_OPTIONS if k in feats and feats[k] != defaults[k]}


def frame_features_of(store_dir: str | os.PathLike) -> dict[str, dict]:
    """``{feature: {"group", "dims"}}`` of the frame-level features a store holds as ``frames_*``."""
    manifest = fstore.read_manifest(store_dir)
    names = {n[len(fstore.FRAME_PREFIX):] for n in fstore.segments_schema(store_dir).names
             if n.startswith(fstore.FRAME_PREFIX)}
    feats = manifest.get("features") or {}
    return {n: {"group": (feats.get(n) or {}).get("group", "?"), "dims": (feats.get(n) or {}).get("dims")}
            for n in sorted(names)}


def resolve_groups(groups: Sequence[str], available: dict[str, dict]) -> tuple[str, ...]:
    """Expand catalog group names (``"cepstral"``, ``"tonal"``) into the frame features of
    ``available`` in that group; feature names pass through. Unknown names raise
    :class:`EncoderError` listing what exists. Spectral cores are not extra groups."""
    out: list[str] = []
    cores = set(framing.CORE_FEATURES.values())
    for g in groups:
        if g in available:
            names = [g]
        else:
            names = [n for n, info in available.items() if info.get("group") == g and n not in cores]
        if not names:
            known = sorted(set(available) | {i.get("group") for i in available.values()} - {None})
            raise EncoderError(f"no frame-level feature or group {g!r} in the input; available: {', '.join(known)}")
        out.extend(n for n in names if n not in out)
    return tuple(out)


def config_for_store(store_dir: str | os.PathLike, *, kind: str = "pca", dim: int = 16,
                     groups: Sequence[str] = (), config: EncoderConfig | None = None,
                     **options: Any) -> EncoderConfig:
    """An :class:`EncoderConfig` whose analysis matches a features store's, so its stored frames
    are the encoder's input (no audio is decoded). ``groups`` may hold group or feature names."""
    manifest = fstore.read_manifest(store_dir)
    audio, feats = _store_config(manifest)
    sr = audio.get("sample_rate")
    if not sr:
        raise EncoderError(f"{store_dir}: the store keeps each file's own sample rate; encoders need a fixed "
                           "audio.sample_rate (re-extract with one)")
    available = frame_features_of(store_dir)
    resolved = resolve_groups(groups, available) if groups else ()
    base = dataclasses.asdict(config) if config is not None else {}
    base.update(kind=kind, dim=dim, groups=resolved, sample_rate=int(sr),
                n_fft=int(feats.get("n_fft", 2048)), hop_length=int(feats.get("hop_length", 512)),
                n_mels=int(feats.get("n_mels", 128)), feature_options=feature_options(manifest))
    base.update(options)
    if kind == "mel" and not resolved and "n_mels" not in options:
        # mel's size is its band count; dim == the store's n_mels reads the stored frames, any
        # other size decodes the audio again (see load_inputs)
        base["n_mels"] = dim
    try:
        return make_encoder(config=EncoderConfig(**{**base, "groups": tuple(base["groups"])})).config
    except ConfigError as e:
        raise EncoderError(str(e)) from None


def _frames_match(store_dir: Path, cfg: EncoderConfig, needed: Sequence[str]) -> bool:
    manifest = fstore.read_manifest(store_dir)
    audio, feats = _store_config(manifest)
    have = set(frame_features_of(store_dir))
    return (set(needed) <= have and audio.get("sample_rate") == cfg.sample_rate
            and feats.get("n_fft") == cfg.n_fft and feats.get("hop_length") == cfg.hop_length
            and (cfg.core != "log_mel" or feats.get("n_mels") == cfg.n_mels)
            and feature_options(manifest) == dict(cfg.feature_options))


def load_inputs(store_dir: str | os.PathLike, config: EncoderConfig, *, max_segments: int | None = None,
                file_ids: Sequence[str] | None = None, need_audio: bool = False,
                progress: bool = False, frames: bool = True) -> tuple[pd.DataFrame, list[dict[str, np.ndarray]], list[np.ndarray] | None]:
    """Encoder inputs of a features store's segments.

    The stored ``frames_*`` matrices are used when the store's analysis matches ``config``;
    otherwise (or with ``need_audio``) each segment's audio is decoded again from its ``path``.

    Returns
    -------
    ids : pandas.DataFrame
        Identity columns, one row per segment.
    parts : list of dict
        ``{feature: (dims, time)}`` per segment (empty dicts for ``mulaw``).
    audio : list of np.ndarray or None
        Segment waveforms ``(samples,)`` when they were decoded, else None.

    With ``frames=False`` (and audio decoded) the parts are left empty: only waveforms are wanted.
    """
    store_dir = Path(store_dir)
    manifest = fstore.read_manifest(store_dir)
    kind = encoder_class(config.kind)
    needed = [n for n in ([] if kind.takes_waveform else [framing.core_feature(config.core)]) if n]
    needed += list(config.groups)
    use_frames = bool(needed) and not need_audio and _frames_match(store_dir, config, needed)
    table = fstore.read_segments(store_dir, columns=list(ID_COLUMNS))
    ids = table.to_pandas()
    keep = np.ones(len(ids), dtype=bool)
    if file_ids is not None:
        keep &= ids["file_id"].isin(list(file_ids)).to_numpy()
    idx = np.flatnonzero(keep)
    if max_segments is not None and len(idx) > max_segments:
        # spread over files: every k-th segment rather than the first files only
        idx = idx[np.linspace(0, len(idx) - 1, max_segments).round().astype(int)]
    if len(idx) == 0:
        raise EncoderError(f"{store_dir}: no segments to encode")
    ids_sel = ids.iloc[idx].reset_index(drop=True)
    if use_frames:
        parts: list[dict[str, np.ndarray]] = [dict() for _ in idx]
        for name in needed:
            fids, frames = fstore.read_frames(store_dir, name)
            if len(fids) != len(ids):  # pragma: no cover - same files, same order
                raise StoreError(f"{store_dir}: frames_{name} rows do not match the segment rows")
            for j, i in enumerate(idx):
                parts[j][name] = frames[i].astype(np.float32)
        return ids_sel, parts, None
    # decode the audio of each segment again
    from genaudio.audio import load
    from genaudio.config import AudioConfig, SegmentConfig, from_dict

    audio_d, _ = _store_config(manifest)
    seg_d = (manifest.get("config") or {}).get("segment") or {}
    acfg = from_dict(AudioConfig, {**audio_d, "sample_rate": config.sample_rate})
    seg_s = from_dict(SegmentConfig, seg_d).seconds
    n_seg = int(round(seg_s * config.sample_rate))
    waves, parts = [], []
    enc = make_encoder(config=config)
    rows = ids_sel.itertuples(index=False)
    if progress:
        from tqdm.auto import tqdm
        rows = tqdm(list(rows), desc="decode segments", unit="seg")
    for r in rows:
        try:
            y, _ = load(r.path, config=acfg, offset=float(r.start_s), duration=float(r.duration_s))
        except GenaudioError as e:
            raise EncoderError(f"cannot decode segment {r.segment} of {r.path} again: {e}") from None
        y = np.pad(y[:n_seg], (0, max(0, n_seg - len(y)))).astype(np.float32)
        waves.append(y)
        parts.append({} if enc.takes_waveform or not frames else enc._frame_parts(y))
    return ids_sel, parts, waves


def fit_store(store_dir: str | os.PathLike, config: EncoderConfig, *, file_ids: Sequence[str] | None = None,
              max_segments: int | None = 2000) -> Encoder:
    """Fit a new encoder on a features store's segments (optionally only files ``file_ids``)."""
    ids, parts, waves = load_inputs(store_dir, config, file_ids=file_ids, max_segments=max_segments)
    enc = make_encoder(config=config)
    return enc.fit(enc.item_of(waves, parts))


def encode_store(store_dir: str | os.PathLike, encoder: Encoder, *, file_ids: Sequence[str] | None = None,
                 max_segments: int | None = None, progress: bool = False) -> CodesData:
    """Codes of a features store's segments, in memory (nothing is written)."""
    ids, parts, waves = load_inputs(store_dir, encoder.config, file_ids=file_ids, max_segments=max_segments,
                                    progress=progress)
    items = encoder.item_of(waves, parts)
    codes = [encoder.encode(x) for x in items]
    return CodesData(codes, ids, encoder, None)


# ---------------------------------------------------------------------------------------------
# The encoded store


def codes_table(data: CodesData, encoder: Encoder) -> pa.Table:
    """Arrow table of identity columns + ``codes`` at the encoder's stored precision."""
    if not len(data):
        raise EncoderError("no codes to write")
    dim = encoder.dim
    stored = [encoder.quantize(c) for c in data.codes]
    for c in stored:
        if c.ndim != 2 or c.shape[1] != dim:
            raise EncoderError(f"codes of shape {c.shape} do not match the encoder's dim {dim}")
    flat = np.concatenate([c.reshape(-1) for c in stored])
    offsets = np.concatenate([[0], np.cumsum([c.shape[0] for c in stored])]).astype(np.int32)
    inner = pa.FixedSizeListArray.from_arrays(pa.array(flat), dim)
    codes = pa.ListArray.from_arrays(pa.array(offsets), inner)
    cols = {}
    ids = data.ids.reset_index(drop=True)
    for name in ID_COLUMNS:
        if name in ids:
            cols[name] = pa.array(ids[name].to_numpy(), type={"segment": pa.int32()}.get(name))
    if "split" in ids:
        cols["split"] = pa.array(ids["split"].astype(str).to_numpy())
    cols["codes"] = codes
    return pa.table(cols)


def write_codes(enc_dir: str | os.PathLike, data: CodesData, encoder: Encoder, *,
                source: dict | None = None, metrics: dict | None = None,
                extra_manifest: dict | None = None) -> Path:
    """Write an encoded store (encoder, codes Parquet, metrics, manifest last).

    ``manifest.json`` is written last, so its presence means the store is complete.
    Writes into ``enc_dir`` (created if needed); callers that must not overwrite check first.
    """
    enc_dir = Path(enc_dir)
    enc_dir.mkdir(parents=True, exist_ok=True)
    (enc_dir / fstore.MANIFEST).unlink(missing_ok=True)
    table = codes_table(data, encoder)
    encoder.save(enc_dir / ENCODER)
    fstore.atomic_write_table(enc_dir / CODES / "part-00000.parquet", table)
    if metrics is not None:
        fstore.atomic_write_json(enc_dir / METRICS, metrics)
    n_time = [int(c.shape[0]) for c in data.codes]
    manifest = {
        "kind": "encoded",
        "encoder": {"kind": encoder.kind, "config": dataclasses.asdict(encoder.config),
                    "path": ENCODER},
        "dim": int(encoder.dim),
        "code_rate_hz": float(encoder.code_rate_hz),
        "precision": encoder.precision,
        "bits_per_value": int(encoder.bits_per_value),
        "bitrate": float(encoder.bitrate),
        "compression_ratio": float(16.0 * encoder.sample_rate / encoder.bitrate),
        "sample_rate": int(encoder.sample_rate),
        "has_audio_decoder": bool(encoder.has_audio_decoder),
        "decoder": encoder.decoder_name,
        "source": source or {},
        "counts": {"segments": len(data), "files": int(data.ids["file_id"].nunique()),
                   "code_frames": int(sum(n_time)), "time_min": min(n_time), "time_max": max(n_time)},
    }
    manifest.update(extra_manifest or {})
    fstore.atomic_write_json(enc_dir / fstore.MANIFEST, manifest)
    return enc_dir


def read_manifest(enc_dir: str | os.PathLike) -> dict:
    enc_dir = Path(enc_dir)
    if not enc_dir.is_dir():
        raise StoreError(f"no such folder: {enc_dir}")
    path = enc_dir / fstore.MANIFEST
    if not path.is_file():
        raise StoreError(f"{enc_dir} is not a complete encoded store (no {fstore.MANIFEST}); "
                         "create one with `genaudio encode DIR --out ENC`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise StoreError(f"{path} is corrupt: {e}") from None
    if manifest.get("kind") != "encoded":
        raise StoreError(f"{enc_dir} is a {manifest.get('kind', 'unknown')!r} store, not an encoded store")
    return manifest


def features_source(store_dir: str | os.PathLike, *, config_hash: str | None) -> dict:
    """The manifest's ``source`` of codes made from a features store (what :func:`features_store_of`
    reads back)."""
    return {"kind": "features", "store": str(Path(store_dir).resolve()), "config_hash": config_hash}


def features_store_of(enc_dir: str | os.PathLike) -> Path | None:
    """The features store an encoded store was made from, when its manifest names one that still
    exists (``source.store``; search caches written before 2026-12-01 named it ``source.dir``)."""
    source = read_manifest(enc_dir).get("source") or {}
    store = source.get("store") or source.get("dir")
    return Path(store) if store and Path(store).is_dir() else None


def read_codes(enc_dir: str | os.PathLike) -> CodesData:
    """Read an encoded store: float32 codes per segment (dequantized by its encoder), identity
    DataFrame, the encoder."""
    enc_dir = Path(enc_dir)
    read_manifest(enc_dir)
    files = sorted((enc_dir / CODES).glob("*.parquet"))
    if not files:
        raise StoreError(f"{enc_dir} has no codes ({CODES}/*.parquet)")
    encoder = load_encoder(enc_dir / ENCODER)
    try:
        table = pa.concat_tables([pq.read_table(f) for f in files])
    except (pa.ArrowInvalid, OSError) as e:
        raise StoreError(f"{enc_dir}: codes are unreadable: {e}") from None
    col = table.column("codes").combine_chunks()
    offsets = col.offsets.to_numpy()
    dim = col.type.value_type.list_size
    flat = col.values.flatten().to_numpy(zero_copy_only=False)
    stored = flat.reshape(-1, dim)
    codes = [encoder.dequantize(stored[offsets[i]:offsets[i + 1]]) for i in range(len(table))]
    ids = table.drop_columns(["codes"]).to_pandas()
    return CodesData(codes, ids, encoder, enc_dir / ENCODER)
