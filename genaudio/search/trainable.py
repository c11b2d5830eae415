"""The real trial: fit (or reuse) an encoder on the chosen feature groups, train an LSTM or a GAN.

Per trial:

1. the feature groups switched on + the spectral core -> :class:`EncoderConfig` (kind, dim);
2. the encoder and its codes come from the run's cache ``RUN/cache/encoders/<hash>/`` keyed by
   (features store, encoder config); the first trial needing them fits and writes them (under a
   file lock, atomically: written to a temporary folder and renamed), later trials read them;
3. :func:`genaudio.models.train` trains the model; after every epoch its callback reports to
   Tune with the epoch's checkpoint; a restarted trial resumes from ``tune.get_checkpoint()``;
4. at the first epoch, every ASHA rung and the last epoch (:func:`~genaudio.search.tuner.judged_epochs`)
   the judge scores the model: clips generated from the epoch's checkpoint, decoded by the
   encoder and compared with the search's real reference (:mod:`genaudio.quality`, built once by
   the driver). That ``quality`` is the metric ASHA compares at rungs and Optuna learns from
   (``score``), the same scale for every encoder kind, code size and model family; between judged
   epochs the last judged value is reported again. The code-space value (``code_score``) stays
   as a training diagnostic. The encoder's ceiling (its reconstructions of the reference, judged
   the same way) is computed once per cached encoder and reported as ``decoder_quality``.

Decoders: a trial's encoder decodes with what its config says (``encoder.decoder``, by default a
learned magnitude decoder trained on the encoder's own codes with ``encoder.decoder_code_noise``
of noise, so that it decodes a model's generated codes towards the music). It is trained by the
trial that fits the encoder, on audio of the training files (not the judge's held-out files) that
the driver decodes once (:func:`decoder_data`, at most ``decoder_minutes``), and is saved in the
cache entry with the encoder: the ceiling, the judged clips and the review all hear it. When that
audio cannot be read (the store's audio moved), trials decode with Griffin-Lim.

The features table and the decoders' audio arrive through the object store (``tune.with_parameters``):
read once by the driver, shared by every trial on a node without copies.

Cluster caveat: the cache lives under RUN on the node that runs the trial. On one machine (or a
cluster whose RUN is on a shared filesystem) all trials share it; otherwise each node fills its
own copy (correct, only some encoders are fitted more than once).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from genaudio.config import config_hash, from_dict, load, merge, nest, to_dict
from genaudio.errors import ConfigError, GenaudioError
from genaudio.infra import atomic_dir, file_lock
from genaudio.search.layout import CEILING_FILE, REFERENCE_FILE, TRIAL_MODEL_DIR, cache_dir
from genaudio.search.session import METRIC, report_epoch
from genaudio.search.space import selected_groups
from genaudio.infra import atomic_write_json
from genaudio.store import FRAME_PREFIX, IDENTITY_COLUMNS, read_segments

# A trial's ``train.*`` parameters are TrainConfig's top-level options, except those the search
# sets itself: the family (from ``model.family``), epochs and seed (the search's), the device
# (Tune's), the validation split (the judge's reference is drawn from the default split's held-out
# files: another fraction would train on them) and patience (ASHA and the time budget stop trials
# at judged epochs; a patience stop would end one at an epoch the judge never scored).
_SEARCH_OWNED = ("model", "epochs", "seed", "device", "val_fraction", "patience")


# ---------------------------------------------------------------------------------------------
# flat trial config -> library configs


def train_config(flat: dict):
    """The :class:`~genaudio.models.config.TrainConfig` of a flat trial config
    (``model.family``, ``<family>.*``, ``train.*``, ``score.*``, ``epochs``, ``seed``)."""
    from genaudio.models.config import TrainConfig

    fam = flat.get("model.family", "lstm")
    d: dict[str, Any] = {"model": fam, "epochs": int(flat.get("epochs", 10)), "seed": int(flat.get("seed", 0))}
    for k, v in flat.items():
        section, _, name = k.partition(".")
        if name and section in (fam, "score"):
            d[k] = v
        elif name and section == "train":
            if name in _SEARCH_OWNED or "." in name:
                raise ConfigError(f"{k}: the search sets {name} itself; it is not a training option to search")
            d[name] = v
    d["score.at_end"] = False  # the search scores the last epoch itself (inside the trial's last report)
    return load(TrainConfig, d)


def trial_encoder_config(flat: dict, store: dict) -> dict:
    """The encoder config of a trial on ``store`` (:func:`store_data`'s ``store``): its
    :func:`encoder_options`, decoding with Griffin-Lim when the driver has no decoder audio."""
    enc_cfg = encoder_options(flat, store["analysis"], store["group_features"])
    if enc_cfg["decoder"] == "learned" and store.get("decoder_audio") is None:
        enc_cfg["decoder"] = "griffinlim"
    return enc_cfg


def encoder_options(flat: dict, analysis: dict | None = None, group_features: dict | None = None) -> dict:
    """:class:`~genaudio.encoders.EncoderConfig` fields of a trial (checked).

    ``analysis`` holds the store's ``sample_rate``, ``n_fft``, ``hop_length``, ``n_mels`` so the
    encoder matches the frames it reads; ``group_features`` maps groups to their frame features.
    """
    from genaudio.encoders.base import KIND_SECTIONS, EncoderConfig, upgrade_config

    feats: list[str] = []
    for g in selected_groups(flat):
        feats += list((group_features or {}).get(g, ()))
    # encoder.* are EncoderConfig's own fields (kind options there: a search of an older genaudio);
    # <kind>.* (e.g. autoencoder.epochs) its kind sections
    d = upgrade_config({k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith("encoder.")})
    d = merge(d, nest({k: v for k, v in flat.items() if k.split(".", 1)[0] in KIND_SECTIONS}))
    d.update(core=flat.get("features.core", "log_mel"), groups=tuple(feats), seed=int(flat.get("seed", 0)))
    d.update(analysis or {})
    return to_dict(from_dict(EncoderConfig, d))


def best_config(params: dict) -> dict:
    """The TrainConfig (as a dict) of a trial's parameters, for ``RUN/best.yaml``."""
    cfg = train_config(params)
    d = to_dict(cfg)
    d["score"]["at_end"] = True
    return d


def analysis_of(manifest: dict) -> dict:
    """The store's analysis as :class:`~genaudio.encoders.EncoderConfig` fields (the trial
    encoders' frames are the store's)."""
    from genaudio.encoders.store import feature_options

    conf = manifest.get("config") or {}
    audio, feats = conf.get("audio") or {}, conf.get("features") or {}
    out = {"sample_rate": audio.get("sample_rate") or 22050}
    for k in ("n_fft", "hop_length", "n_mels"):
        if feats.get(k):
            out[k] = int(feats[k])
    out["feature_options"] = feature_options(manifest)
    return out


# ---------------------------------------------------------------------------------------------
# data: read once by the driver


def store_data(store: Path, manifest: dict, features: list[str], frame_groups: dict[str, str], run_dir: Path) -> dict:
    """What every trial receives through the object store: the frames table and store facts."""
    table = read_segments(store, columns=list(IDENTITY_COLUMNS) + [FRAME_PREFIX + f for f in features])
    groups: dict[str, list[str]] = {}
    for f, g in frame_groups.items():
        groups.setdefault(g, []).append(f)
    info = {"dir": str(store), "config_hash": manifest.get("config_hash") or config_hash(manifest.get("config", {})),
            "analysis": analysis_of(manifest), "group_features": {g: sorted(v) for g, v in groups.items()},
            "cache_dir": str(cache_dir(run_dir))}
    return {"frames": table, "store": info}


def held_out_files(table: pa.Table, seed: int) -> list[str]:
    """File ids the trials validate on (their split: same seed, default fraction); the judge's
    reference is drawn from them and the decoders never train on them."""
    from genaudio.models.config import TrainConfig
    from genaudio.models.data import split_by_file

    file_ids = table.column("file_id").to_numpy(zero_copy_only=False)
    _, val_idx = split_by_file(file_ids, val_fraction=TrainConfig().val_fraction, seed=seed)
    return sorted(set(file_ids[val_idx]))


def wants_learned_decoder(space) -> bool:
    """Whether a trial of ``space`` can ask for a learned decoder (``encoder.decoder``, default
    :class:`~genaudio.encoders.EncoderConfig`'s) on a spectral core."""
    from genaudio.encoders.base import EncoderConfig
    from genaudio.encoders.framing import CORE_FEATURES
    from genaudio.search.space import Choice

    try:
        d = space.domain("encoder.decoder")
        values = d.values if isinstance(d, Choice) else (d.value,)
    except KeyError:
        values = (EncoderConfig().decoder,)
    return "learned" in values and space.core in CORE_FEATURES


def decoder_data(table: pa.Table, store: Path, manifest: dict, cfg, space, log=print) -> np.ndarray | None:
    """The audio every trial's learned decoder trains on: ``(segments, samples)`` float32 at the
    store's sample rate, at most ``cfg.decoder_minutes`` of segments spread evenly over the
    training files (never the held-out ones). ``None`` (trials decode with Griffin-Lim) when the
    space asks for no learned decoder or the store's audio cannot be read again (with a warning)."""
    from genaudio.encoders.base import EncoderConfig
    from genaudio.encoders.store import load_inputs

    if not wants_learned_decoder(space):
        return None
    held_out = set(held_out_files(table, cfg.seed))
    ids = table.select(["file_id", "duration_s"]).to_pandas()
    train_files = sorted(set(ids["file_id"]) - held_out)
    seg_s = float(np.median(ids["duration_s"])) if len(ids) else 5.0
    n = max(1, int(math.ceil(cfg.decoder_minutes * 60 / max(seg_s, 1e-3))))
    enc_cfg = EncoderConfig(kind="pca", dim=1, core=space.core, **analysis_of(manifest))
    try:
        _, _, waves = load_inputs(store, enc_cfg, need_audio=True, file_ids=train_files, max_segments=n,
                                  frames=False, progress=log is not None)
    except GenaudioError as e:
        if log is not None:
            log(f"warning: trials decode with Griffin-Lim: the learned decoders' audio cannot be read ({e})")
        return None
    if log is not None:
        log(f"learned decoders: each trial's trains on {len(waves)} segments "
            f"({len(waves) * seg_s / 60:.1f} min) of {len(train_files)} training files")
    return np.stack(waves).astype(np.float32)


def decoder_audio_key(audio: np.ndarray | None, cfg) -> dict | None:
    """What ``store["decoder_audio"]`` records of :func:`decoder_data`'s audio: the learned
    decoders' training data in their cache key (:func:`cache_key`); ``None`` without audio, which
    makes trials decode with Griffin-Lim (:func:`trial_encoder_config`)."""
    return None if audio is None else {"segments": len(audio), "minutes": cfg.decoder_minutes}


def judge_data(table: pa.Table, store: Path, manifest: dict, cfg, run_dir: Path) -> dict:
    """The judge every trial shares: the real reference (two halves of the held-out files, in
    the store's fixed feature space) and the epochs to judge; its summary goes to
    ``RUN/judge/reference.json``. Built the same way (seeded) on ``--resume``."""
    from genaudio.models.score import held_out_reference, reference_is_held_out, reference_seconds, store_space
    from genaudio.quality import save_reference_summary
    from genaudio.search.tuner import judged_epochs

    ids = table.select(list(IDENTITY_COLUMNS)).to_pandas()
    val_files = held_out_files(table, cfg.seed)   # the reference is music the trials never saw
    seconds = reference_seconds(ids, cfg.judge_seconds)
    sr = analysis_of(manifest)["sample_rate"]
    kw = dict(n=cfg.judge_clips, seconds=seconds, sample_rate=sr, seed=cfg.seed)
    ref = held_out_reference(ids, val_files, space=store_space(store), **kw)
    save_reference_summary(run_dir / REFERENCE_FILE, ref, held_out_files=val_files,
                           held_out_only=reference_is_held_out(ref, val_files))
    return {"reference": ref, "epochs": judged_epochs(cfg)}


def _frame_arrays(table: pa.Table, feature: str) -> np.ndarray:
    col = table.column(FRAME_PREFIX + feature).combine_chunks()
    dims, t = col.type.list_size, col.type.value_type.list_size
    return np.asarray(col.flatten().flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(table), dims, t)


# ---------------------------------------------------------------------------------------------
# encoder cache


def cache_key(store: dict, enc_cfg: dict) -> str:
    """Cache key of an encoder: the features store's config hash and the full encoder config (and
    the learned decoder's training audio, when it has one)."""
    key = {"store": store["config_hash"], "encoder": enc_cfg}
    if enc_cfg.get("decoder") == "learned":
        key["decoder_audio"] = store.get("decoder_audio")
    return config_hash(key)


def cached_codes(table: pa.Table, store: dict, enc_cfg: dict, decoder_audio: np.ndarray | None = None):
    """Codes of every segment under ``enc_cfg``: from the cache, or fitted, encoded and cached.

    Returns ``(SequenceData, entry_dir, hit)``. A cache entry is a complete encoded store
    (:func:`genaudio.encoders.store.write_codes`), so ``genaudio train ENTRY`` and the scoring read
    it. The fit uses every segment's frames (the encoder is unsupervised; the model's
    train/validation split is by file, later); a learned decoder trains on ``decoder_audio``
    (:func:`decoder_data`).
    """
    from genaudio.encoders.store import read_codes
    from genaudio.models.data import SequenceData

    key = cache_key(store, enc_cfg)
    root = Path(store["cache_dir"])
    root.mkdir(parents=True, exist_ok=True)
    entry = root / key
    with file_lock(root / f"{key}.lock"):
        # one trial per key fits; the others wait and then read (one machine; see module docstring)
        hit = (entry / "manifest.json").is_file()
        if not hit:
            _fit_and_write(table, store, enc_cfg, entry, decoder_audio)
        codes = read_codes(entry)
    meta = json.loads((entry / "manifest.json").read_text())
    ids = codes.ids
    data = SequenceData(list(codes.codes), ids["file_id"].to_numpy(), float(meta["code_rate_hz"]),
                        ids["label"].to_numpy(), ids["segment"].to_numpy(), str(entry))
    return data, entry, hit


def _fit_and_write(table: pa.Table, store: dict, enc_cfg: dict, entry: Path, decoder_audio=None) -> None:
    from genaudio.encoders import make_encoder
    from genaudio.encoders.store import CodesData, features_source, write_codes

    feats = [enc_cfg["core"]] + list(enc_cfg["groups"])
    arrays = {f: _frame_arrays(table, f) for f in feats}
    items = [{f: arrays[f][i] for f in feats} for i in range(len(table))]
    t0 = time.perf_counter()
    opts = {k: v for k, v in enc_cfg.items() if k not in ("kind", "dim")}
    enc = make_encoder(enc_cfg["kind"], dim=enc_cfg["dim"], **opts).fit(items)
    fit_s = time.perf_counter() - t0
    timings = {"fit_s": fit_s}
    if enc_cfg["decoder"] == "learned" and enc.can_learn_decoder:
        if decoder_audio is None:
            raise GenaudioError("a learned decoder needs the driver's decoder audio (decoder_data)")
        t0 = time.perf_counter()
        enc.fit_decoder(list(decoder_audio))   # from this encoder's codes, with its code noise
        timings["decoder_fit_s"] = time.perf_counter() - t0
    codes = [enc.encode(it) for it in items]
    ids = table.select(list(IDENTITY_COLUMNS)).to_pandas()
    # written complete into a temporary folder, then renamed: readers never see half an entry
    with atomic_dir(entry) as tmp:
        write_codes(tmp, CodesData(codes, ids, enc, None), enc,
                    source=features_source(store["dir"], config_hash=store["config_hash"]),
                    extra_manifest={"written_by": "genaudio search", "timings": timings})


# ---------------------------------------------------------------------------------------------
# the trainable


def search_trainable(config: dict, frames: pa.Table, store: dict, judge: dict,
                     decoder_audio: np.ndarray | None = None) -> None:
    """Tune function trainable of the real search (see the module docstring)."""
    import torch
    from ray import tune

    from genaudio.encoders import load_encoder
    from genaudio.models import load_checkpoint, train
    from genaudio.models.run import LAST

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1") or 1)))
    t0 = time.perf_counter()
    tcfg = train_config(config)
    enc_cfg = trial_encoder_config(config, store)
    data, entry, hit = cached_codes(frames, store, enc_cfg, decoder_audio)
    enc = load_encoder(entry / "encoder")
    extra = {"encoder_cache_hit": int(hit), "encode_s": time.perf_counter() - t0, "code_dim": data.dim,
             "decoder": enc.decoder_name,
             "code_rate_hz": data.code_rate_hz, **entry_ceiling(entry, enc, judge["reference"])}
    out_dir = Path(tune.get_context().get_trial_dir()) / TRIAL_MODEL_DIR
    resume_from = None
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        # copy out of Tune's checkpoint (it may be a temporary download) into the trial's folder
        local = out_dir / "resume"
        shutil.rmtree(local, ignore_errors=True)
        with ckpt.as_directory() as d:
            shutil.copytree(d, local)
        resume_from = local / LAST
    start_epoch = int(load_checkpoint(resume_from)["epoch"]) if resume_from is not None else 0
    judged: dict = {}   # the last judgement, reported again until the next judged epoch
    judge_s = [0.0]

    def callback(epoch: int, metrics: dict, checkpoint_dir: str | None):
        m = dict(metrics)
        fd = m.pop("code_fd", None)
        if fd is not None and math.isfinite(fd):
            # training diagnostic: code-space Frechet distance per code dimension
            m["code_score"] = fd / data.dim
        if epoch in judge["epochs"] or epoch >= tcfg.epochs or not judged:
            judged.clear()
            judged.update(judge_epoch(Path(checkpoint_dir) / LAST, enc, judge["reference"], epoch=epoch,
                                      n=judge["reference"].n, seed=tcfg.seed))
            judge_s[0] += judged["quality_seconds"]
        m.update(extra)
        m.update({k: v for k, v in judged.items() if k != "reason"})
        m[METRIC] = judged["quality"]
        m["judge_fraction"] = judge_s[0] / max(time.perf_counter() - t0, 1e-9)
        if not report_epoch(epoch, m, checkpoint_dir, reason=judged.get("reason")):
            return False
        return None

    result = train(tcfg, data, out_dir=out_dir, callback=callback, resume_from=resume_from)
    if result.status in ("nan", "diverged"):
        # the loop stopped inside an epoch it never reported: report it, so that the trial is
        # recorded with its reason and not retried (a NaN is a result, not a crash)
        last = max([start_epoch] + [int(h.get("epoch", 0)) for h in result.history])
        report_epoch(last + 1, {METRIC: float("nan"), **extra}, None, reason=f"{result.status}: {result.message}")


def judge_epoch(checkpoint: Path, enc, reference, *, epoch: int, n: int, seed: int) -> dict:
    """Judge the model of one checkpoint: ``quality``, ``quality_se``, ``quality_epoch``,
    ``quality_seconds`` (the cost), ``quality_nonfinite``; a model that cannot generate finite
    audio gets ``quality`` NaN and a ``reason`` (the trial then ends as ``nan``)."""
    from genaudio.models.generate import load_run
    from genaudio.models.score import judge_generated

    t0 = time.perf_counter()
    try:
        j, _ = judge_generated(load_run(checkpoint), enc, reference, n=n, seed=seed)
        out = {"quality": j.score, "quality_se": j.score_se, "quality_nonfinite": j.n_nonfinite}
    except GenaudioError as e:
        out = {"quality": float("nan"), "reason": f"judge at epoch {epoch}: {e}"[:300]}
    return {**out, "quality_epoch": epoch, "quality_seconds": time.perf_counter() - t0}


def entry_ceiling(entry: Path, enc, reference) -> dict:
    """The cached encoder's ceiling: its reconstructions of the reference's real clips, judged.

    Computed by the first trial that uses the encoder and kept in the cache entry
    (:data:`CEILING_FILE`); ``{}`` when the encoder cannot reconstruct audio.
    """
    from genaudio.models.score import decoder_ceiling

    path = entry / CEILING_FILE
    if path.is_file():
        return json.loads(path.read_text())
    try:
        j = decoder_ceiling(enc, reference)
    except GenaudioError:
        return {}
    out = {"decoder_quality": j.score, "decoder_quality_se": j.score_se}
    atomic_write_json(path, out)
    return out
