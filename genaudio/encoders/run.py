"""``genaudio encode`` as library calls: collect segments, fit, encode, measure, write.

The CLI (``genaudio.cli.encode``) and the Ray job entry point are thin wrappers over
:func:`run_encode` and :func:`run_sweep`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from genaudio import store as fstore
from genaudio.encoders import sweep as sw
from genaudio.encoders.base import EncoderConfig, encoder_class, make_encoder
from genaudio.encoders.metrics import evaluate
from genaudio.encoders.store import (AUDIO, CodesData, config_for_store, features_source, load_inputs, split_by_file,
                                     write_codes)
from genaudio.errors import AudioError, EncoderError, StoreError
from genaudio.infra import temp_dir_beside

Log = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


def is_features_store(path: str | os.PathLike) -> bool:
    p = Path(path)
    if not (p / fstore.MANIFEST).is_file():
        return False
    try:
        return json.loads((p / fstore.MANIFEST).read_text()).get("kind") == "features"
    except (OSError, json.JSONDecodeError):
        return False


@dataclasses.dataclass
class Segments:
    """Segments to encode: identity rows, and their waveforms and/or stored frames."""

    ids: pd.DataFrame
    waves: list[np.ndarray] | None
    parts: list[dict] | None
    source: dict
    errors: list[dict]


def collect_audio(inputs: Sequence[str | os.PathLike], config: EncoderConfig, *, segment_seconds: float = 5.0,
                  max_segments: int | None = None, progress: bool = False, log: Log = _quiet) -> Segments:
    """Decode audio files/folders (as ``genaudio extract`` finds them) into fixed-length segments.

    Files that cannot be decoded are skipped and listed in ``errors``; none usable is an error.
    """
    from genaudio.audio import iter_segments
    from genaudio.config import AudioConfig, SegmentConfig
    from genaudio.extract import discover

    files = discover(list(inputs))
    if not files:
        raise EncoderError(f"no audio files in {', '.join(map(str, inputs))}")
    acfg = AudioConfig(sample_rate=config.sample_rate)
    scfg = SegmentConfig(seconds=segment_seconds)
    rows, waves, errors = [], [], []
    it = files
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(files, desc="decode", unit="file")
    for af in it:
        try:
            for seg, y in iter_segments(af.path, audio=acfg, segment=scfg):
                rows.append({"file_id": af.file_id, "path": af.path, "label": af.label, "segment": seg.index,
                             "start_s": seg.start_s, "duration_s": seg.duration_s})
                waves.append(np.asarray(y, dtype=np.float32))
        except AudioError as e:
            errors.append({"path": af.path, "error": type(e).__name__, "message": str(e)})
            log(f"skipped {af.path}: {e}")
    if not rows:
        raise EncoderError(f"none of the {len(files)} input file(s) holds usable audio"
                           + (f" (first error: {errors[0]['message']})" if errors else ""))
    ids = pd.DataFrame(rows)
    if max_segments is not None and len(ids) > max_segments:
        keep = np.linspace(0, len(ids) - 1, max_segments).round().astype(int)
        ids = ids.iloc[keep].reset_index(drop=True)
        waves = [waves[i] for i in keep]
    return Segments(ids, waves, None, {"kind": "audio", "inputs": [str(i) for i in inputs],
                                       "segment_seconds": segment_seconds}, errors)


def _prepare_out(out: Path, overwrite: bool) -> Path:
    """A fresh temporary folder next to ``out``; refuses a non-empty ``out`` without ``overwrite``."""
    if out.exists():
        if not out.is_dir():
            raise EncoderError(f"--out {out} exists and is not a folder; not overwriting it")
        if any(out.iterdir()) and not overwrite:
            raise EncoderError(f"--out {out} is not empty; choose a new folder or pass --overwrite")
        if overwrite and any(out.iterdir()) and not ((out / fstore.MANIFEST).is_file()
                                                      or (out / "rate_distortion.csv").is_file()):
            raise EncoderError(f"--out {out} holds something other than genaudio encode output; not "
                               "overwriting it")
    return temp_dir_beside(out)


def _publish(tmp: Path, out: Path) -> None:
    fstore.replace_dir(tmp, out)


def _write_wav_pairs(folder: Path, encoder, ids: pd.DataFrame, waves: Sequence[np.ndarray], n: int) -> list[str]:
    import soundfile as sf

    written = []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(min(n, len(waves))):
        y = waves[i]
        y_hat = encoder.reconstruct(y)
        peak = max(float(np.max(np.abs(y_hat))), 1e-9)
        if peak > 1.0:  # Griffin-Lim can overshoot; never write a clipped file
            y_hat = y_hat / peak * 0.99
        r = ids.iloc[i]
        stem = f"{i:02d}_{str(r.label)[:24]}_{str(r.file_id)[:8]}_s{int(r.segment)}"
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)
        sf.write(folder / f"{stem}_original.wav", y, encoder.sample_rate, subtype="PCM_16")
        sf.write(folder / f"{stem}_{encoder.kind}.wav", y_hat, encoder.sample_rate, subtype="PCM_16")
        written += [f"{stem}_original.wav", f"{stem}_{encoder.kind}.wav"]
    return written


def _load(inputs, config: EncoderConfig, *, need_audio: bool, max_segments: int | None, progress: bool,
          log: Log, segment_seconds: float) -> tuple[Segments, EncoderConfig]:
    inputs = [Path(i) for i in inputs]
    if not inputs:
        raise EncoderError("no input: give a features store (genaudio extract output) or audio files/folders")
    if len(inputs) == 1 and is_features_store(inputs[0]):
        store_dir = inputs[0]
        base = dataclasses.replace(config, groups=())
        cfg = config_for_store(store_dir, kind=config.kind, dim=config.dim, groups=config.groups, config=base)
        ids, parts, waves = load_inputs(store_dir, cfg, need_audio=need_audio, max_segments=max_segments,
                                        progress=progress, frames=not need_audio)
        source = features_source(store_dir, config_hash=fstore.read_manifest(store_dir).get("config_hash"))
        keep_parts = not encoder_class(cfg.kind).takes_waveform and not need_audio
        return Segments(ids, waves, parts if keep_parts else None, source, []), cfg
    for i in inputs:
        if (i / fstore.MANIFEST).is_file() and not is_features_store(i):
            raise StoreError(f"{i} is a genaudio folder but not a features store")
    segs = collect_audio(inputs, config, segment_seconds=segment_seconds, max_segments=max_segments,
                         progress=progress, log=log)
    return segs, config


def _held_out_waves(segs: Segments, test: np.ndarray, inputs, cfg: EncoderConfig, max_eval: int
                    ) -> tuple[pd.DataFrame, list[np.ndarray]]:
    idx = np.flatnonzero(test)[:max_eval] if test.any() else np.arange(min(max_eval, len(segs.ids)))
    ids = segs.ids.iloc[idx].reset_index(drop=True)
    if segs.waves is not None:
        return ids, [segs.waves[i] for i in idx]
    # a features store: decode those segments again from their paths
    store_dir = Path(inputs[0])
    want = set(zip(ids.file_id, ids.segment))
    ids2, _, waves = load_inputs(store_dir, cfg, need_audio=True, file_ids=sorted(set(ids.file_id)),
                                 frames=False)
    keep = [j for j, r in enumerate(ids2.itertuples()) if (r.file_id, r.segment) in want][:max_eval]
    return ids2.iloc[keep].reset_index(drop=True), [waves[j] for j in keep]


def run_encode(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, config: EncoderConfig, *,
               holdout: float = 0.2, max_segments: int | None = None, max_eval: int = 16, wav_pairs: int = 3,
               segment_seconds: float = 5.0, overwrite: bool = False, progress: bool = True,
               decoder_from: str | os.PathLike | None = None, log: Log = _quiet) -> dict:
    """Fit an encoder on the training files, encode every segment, measure held-out files, write ENC.

    With ``config.decoder == "learned"`` a spectral encoder gets a vocoder trained on the training
    segments' audio (:meth:`~genaudio.encoders.base.Encoder.fit_decoder`); ``decoder_from`` (a vocoder, encoder or
    encoded-store folder, see :func:`~genaudio.encoders.vocoder.load_decoder`) reuses a trained one
    instead. Otherwise the encoder decodes with Griffin-Lim.

    The split is by file (:func:`split_by_file`). Output is built in a temporary folder and moved
    into place at the end: a failed run leaves ``out`` as it was.

    Returns
    -------
    dict
        The manifest written to ``out/manifest.json`` (with ``metrics``).
    """
    out = Path(out)
    t0 = time.perf_counter()
    tmp = _prepare_out(out, overwrite)
    try:
        # a learned decoder trains on audio: a features store's segments are decoded again. Only a
        # spectral core has one to learn (mu-law and core-less encoders keep their own decoder)
        learned = (config.decoder == "learned" and decoder_from is None
                   and make_encoder(config=config).can_learn_decoder)
        segs, cfg = _load(inputs, config, need_audio=learned, max_segments=max_segments, progress=progress,
                          log=log, segment_seconds=segment_seconds)
        test = split_by_file(segs.ids["file_id"], holdout=holdout, seed=cfg.seed)
        train_idx = np.flatnonzero(~test)
        items = segs.parts if segs.parts is not None else segs.waves
        log(f"{len(segs.ids)} segments from {segs.ids.file_id.nunique()} files; fitting {cfg.kind} "
            f"(dim {cfg.dim}) on {len(train_idx)} training segments")
        enc = make_encoder(config=cfg)
        t1 = time.perf_counter()
        if cfg.kind == "autoencoder":
            enc.fit([items[i] for i in train_idx], checkpoint=tmp / "checkpoint.pt", progress=progress)
            (tmp / "checkpoint.pt").unlink(missing_ok=True)
        else:
            enc.fit([items[i] for i in train_idx])
        fit_s = time.perf_counter() - t1
        decoder_s = None
        if decoder_from is not None:
            from genaudio.encoders.vocoder import load_decoder

            enc.set_decoder(load_decoder(decoder_from))
        elif learned:
            t1 = time.perf_counter()
            noise = f", code noise {cfg.decoder_code_noise:g} std" if cfg.decoder_code_noise else ""
            log(f"training the learned decoder ({cfg.decoder_epochs} epochs, {cfg.decoder_phase} phase{noise}) "
                f"on {len(train_idx)} segments")
            enc.fit_decoder([segs.waves[i] for i in train_idx], checkpoint=tmp / "decoder_checkpoint.pt",
                            progress=progress)
            (tmp / "decoder_checkpoint.pt").unlink(missing_ok=True)
            decoder_s = time.perf_counter() - t1
        codes = [enc.encode(x) for x in items]
        ids = segs.ids.copy()
        ids["split"] = np.where(test, "test", "train")
        data = CodesData(codes, ids, enc)
        metrics: dict = {"split": {"train_segments": int((~test).sum()), "test_segments": int(test.sum()),
                                   "test_files": int(ids.file_id[test].nunique())}, "fit_s": fit_s,
                            "decoder": enc.decoder_name}
        if decoder_s is not None:
            metrics["decoder_fit_s"] = decoder_s
            metrics["decoder_history"] = enc.learned_decoder.history
        wavs: list[str] = []
        if enc.has_audio_decoder:
            eval_ids, eval_waves = _held_out_waves(segs, test, inputs, cfg, max_eval)
            if not test.any():
                metrics["note"] = "a single input file: metrics are measured on training segments"
            m = evaluate(enc, eval_waves, progress=progress)
            metrics.update(m)
            wavs = _write_wav_pairs(tmp / AUDIO, enc, eval_ids, eval_waves, wav_pairs)
        else:
            metrics.update({"encoder": enc.kind, "dim": enc.dim, "bitrate": enc.bitrate,
                            "compression_ratio": enc.compression_ratio,
                            "note": "no spectral core: no audio decoder, audio metrics do not apply"})
        test_items = [items[i] for i in np.flatnonzero(test)[:max_eval]] or [items[i] for i in train_idx[:max_eval]]
        if not enc.takes_waveform:
            errs = []
            for x in test_items:
                f = enc.input_frames(x)
                f_hat = enc.decode(enc.encode(f))[:, :f.shape[1]]
                errs.append(float(np.sqrt(np.mean(((f_hat - f) / enc.standardizer.scale[:, None]) ** 2))))
            # reconstruction error of the input frames in standardised units (works without audio)
            metrics["frame_rmse"] = float(np.mean(errs))
        write_codes(tmp, data, enc, source=segs.source, metrics=metrics,
                    extra_manifest={"split": {"holdout": holdout, "by": "file_id", "seed": cfg.seed},
                                    "audio": wavs, "errors": segs.errors,
                                    "timings": {"wall_s": time.perf_counter() - t0, "fit_s": fit_s,
                                                "decoder_fit_s": decoder_s}})
        manifest = json.loads((tmp / fstore.MANIFEST).read_text())
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest["metrics"] = metrics
    return manifest


def run_sweep(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, config: EncoderConfig, *,
              encoders: Sequence[str], sweep: dict, holdout: float = 0.2, max_segments: int | None = 400,
              max_eval: int = 16, segment_seconds: float = 5.0, overwrite: bool = False, progress: bool = True,
              log: Log = _quiet) -> pd.DataFrame:
    """Rate-distortion sweep: writes ``rate_distortion.csv``, ``rate_distortion.png`` and
    ``rate_distortion.json`` (per-encoder LSD at 16x/32x) into ``out``."""
    out = Path(out)
    tmp = _prepare_out(out, overwrite)
    try:
        segs, cfg = _load(inputs, config, need_audio=True, max_segments=max_segments, progress=progress,
                          log=log, segment_seconds=segment_seconds)
        if segs.waves is None:  # pragma: no cover - need_audio guarantees it
            raise EncoderError("the sweep needs audio")
        test = split_by_file(segs.ids["file_id"], holdout=holdout, seed=cfg.seed)
        if not test.any():
            raise EncoderError("the sweep needs at least two input files (it measures held-out files)")
        train = [segs.waves[i] for i in np.flatnonzero(~test)]
        held = [segs.waves[i] for i in np.flatnonzero(test)[:max_eval]]
        configs = sw.sweep_configs(cfg, encoders=encoders, dims=sweep.get("dims", [cfg.dim]),
                                   precisions=sweep.get("precisions"), downsample=sweep.get("downsample"))
        log(f"sweep: {len(configs)} encoders, {len(train)} training / {len(held)} held-out segments")
        decoders = {}
        if cfg.decoder == "learned":
            # one vocoder per spectral core, trained on clean frames, serves every encoder on it
            # (one per encoder, on its decoded codes, would multiply the sweep's time)
            for c in configs:
                probe = make_encoder(config=c)
                if c.core not in decoders and probe.can_learn_decoder:
                    log(f"training the learned decoder of the {c.core} core")
                    decoders[c.core] = probe.fit_decoder(train, from_codes=False,
                                                         progress=progress).learned_decoder
        df = sw.rate_distortion(train, held, configs, progress=progress, decoders=decoders)
        df.to_csv(tmp / "rate_distortion.csv", index=False)
        if df.lsd_db.notna().any():
            sw.plot_rate_distortion(df, tmp / "rate_distortion.png")
        summ = sw.summary(df)
        summ.update({"kind": "rate_distortion", "source": segs.source, "train_segments": len(train),
                     "test_segments": len(held), "config": dataclasses.asdict(cfg)})
        fstore.atomic_write_json(tmp / "rate_distortion.json", summ)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return df
