"""The real trial: fit (or reuse) an encoder on the chosen feature groups, train an LSTM or a GAN.

Per trial:

1. the feature groups switched on + the spectral core -> :class:`EncoderConfig` (kind, dim);
2. the encoder and its codes come from the run's cache ``RUN/cache/encoders/<hash>/`` keyed by
   (features store, encoder config); the first trial needing them fits and writes them (under a
   file lock, atomically: written to a temporary folder and renamed), later trials read them;
3. :func:`genaudio.models.train` trains the model; after every epoch its callback reports to
   Tune the per-epoch ``score`` (code-space Frechet distance per code dimension) with the epoch's
   checkpoint; a restarted trial resumes from ``tune.get_checkpoint()``;
4. at the last epoch the comparable quality score (:func:`genaudio.models.score.score_model`:
   Frechet distance in genaudio's feature space of generated vs held-out clips) is added to
   the report as ``frechet``; that is what the final ranking uses.

The features table arrives through the object store (``tune.with_parameters``): read once by the
driver, shared by every trial on a node without copies.

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

from genaudio.config import config_hash, from_dict, load, to_dict
from genaudio.errors import ConfigError
from genaudio.infra import atomic_dir, file_lock
from genaudio.search.session import METRIC, report_epoch
from genaudio.search.space import selected_groups
from genaudio.store import FRAME_PREFIX, IDENTITY_COLUMNS, read_segments

CACHE_DIR = "cache/encoders"
# A trial's ``train.*`` parameters are TrainConfig's top-level options, except those the search
# sets itself: the family (from ``model.family``), epochs and seed (the search's), the device (Tune's).
_SEARCH_OWNED = ("model", "epochs", "seed", "device")


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


def encoder_options(flat: dict, analysis: dict | None = None, group_features: dict | None = None) -> dict:
    """:class:`~genaudio.encoders.EncoderConfig` fields of a trial (checked).

    ``analysis`` holds the store's ``sample_rate``, ``n_fft``, ``hop_length``, ``n_mels`` so the
    encoder matches the frames it reads; ``group_features`` maps groups to their frame features.
    """
    from genaudio.encoders import EncoderConfig

    feats: list[str] = []
    for g in selected_groups(flat):
        feats += list((group_features or {}).get(g, ()))
    d = {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith("encoder.")}
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
    conf = manifest.get("config") or {}
    audio, feats = conf.get("audio") or {}, conf.get("features") or {}
    out = {"sample_rate": audio.get("sample_rate") or 22050}
    for k in ("n_fft", "hop_length", "n_mels"):
        if feats.get(k):
            out[k] = int(feats[k])
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
            "cache_dir": str(run_dir / CACHE_DIR)}
    return {"frames": table, "store": info}


def _frame_arrays(table: pa.Table, feature: str) -> np.ndarray:
    col = table.column(FRAME_PREFIX + feature).combine_chunks()
    dims, t = col.type.list_size, col.type.value_type.list_size
    return np.asarray(col.flatten().flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(table), dims, t)


# ---------------------------------------------------------------------------------------------
# encoder cache


def cache_key(store: dict, enc_cfg: dict) -> str:
    """Cache key of an encoder: the features store's config hash and the full encoder config."""
    return config_hash({"store": store["config_hash"], "encoder": enc_cfg})


def cached_codes(table: pa.Table, store: dict, enc_cfg: dict):
    """Codes of every segment under ``enc_cfg``: from the cache, or fitted, encoded and cached.

    Returns ``(SequenceData, entry_dir, hit)``. A cache entry is a complete encoded store
    (:func:`genaudio.encoders.store.write_codes`), so ``genaudio train ENTRY`` and the scoring read
    it. The fit uses every segment's frames (the encoder is unsupervised; the model's
    train/validation split is by file, later).
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
            _fit_and_write(table, store, enc_cfg, entry)
        codes = read_codes(entry)
    meta = json.loads((entry / "manifest.json").read_text())
    ids = codes.ids
    data = SequenceData(list(codes.codes), ids["file_id"].to_numpy(), float(meta["code_rate_hz"]),
                        ids["label"].to_numpy(), ids["segment"].to_numpy(), str(entry))
    return data, entry, hit


def _fit_and_write(table: pa.Table, store: dict, enc_cfg: dict, entry: Path) -> None:
    from genaudio.encoders import make_encoder
    from genaudio.encoders.store import CodesData, write_codes

    feats = [enc_cfg["core"]] + list(enc_cfg["groups"])
    arrays = {f: _frame_arrays(table, f) for f in feats}
    items = [{f: arrays[f][i] for f in feats} for i in range(len(table))]
    t0 = time.perf_counter()
    opts = {k: v for k, v in enc_cfg.items() if k not in ("kind", "dim")}
    enc = make_encoder(enc_cfg["kind"], dim=enc_cfg["dim"], **opts).fit(items)
    fit_s = time.perf_counter() - t0
    codes = [enc.encode(it) for it in items]
    ids = table.select(list(IDENTITY_COLUMNS)).to_pandas()
    # written complete into a temporary folder, then renamed: readers never see half an entry
    with atomic_dir(entry) as tmp:
        write_codes(tmp, CodesData(codes, ids, enc, None), enc,
                    source={"dir": store["dir"], "config_hash": store["config_hash"]},
                    extra_manifest={"written_by": "genaudio search", "timings": {"fit_s": fit_s}})


# ---------------------------------------------------------------------------------------------
# the trainable


def search_trainable(config: dict, frames: pa.Table, store: dict) -> None:
    """Tune function trainable of the real search (see the module docstring)."""
    import torch
    from ray import tune

    from genaudio.models.train import train

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1") or 1)))
    t0 = time.perf_counter()
    tcfg = train_config(config)
    enc_cfg = encoder_options(config, store["analysis"], store["group_features"])
    data, entry, hit = cached_codes(frames, store, enc_cfg)
    encode_s = time.perf_counter() - t0
    out_dir = Path(tune.get_context().get_trial_dir()) / "model"
    resume_from = None
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        # copy out of Tune's checkpoint (it may be a temporary download) into the trial's folder
        local = out_dir / "resume"
        shutil.rmtree(local, ignore_errors=True)
        with ckpt.as_directory() as d:
            shutil.copytree(d, local)
        resume_from = local / "last.pt"
    extra = {"encoder_cache_hit": int(hit), "encode_s": encode_s, "code_dim": data.dim,
             "code_rate_hz": data.code_rate_hz}

    last = [0]

    def callback(epoch: int, metrics: dict, checkpoint_dir: str | None):
        last[0] = epoch
        m = dict(metrics)
        fd = m.get("code_fd")
        # per-epoch learning signal: code-space Frechet distance per code dimension (codes are
        # standardised, so this is roughly comparable across encoders of different sizes)
        m[METRIC] = fd / data.dim if fd is not None and math.isfinite(fd) else float("nan")
        m.update(extra)
        if epoch >= tcfg.epochs:
            m.update(_final_score(out_dir, tcfg))
        if not report_epoch(epoch, m, checkpoint_dir):
            return False
        return None

    result = train(tcfg, data, out_dir=out_dir, callback=callback, resume_from=resume_from)
    if result.status in ("nan", "diverged"):
        # the loop stopped inside an epoch it never reported: report it, so that the trial is
        # recorded with its reason and not retried (a NaN is a result, not a crash)
        start = int(resume_from is not None and torch.load(resume_from, weights_only=False)["epoch"] or 0)
        report_epoch(max(last[0], start) + 1, {METRIC: float("nan"), **extra}, None,
                     reason=f"{result.status}: {result.message}")


def _final_score(run_dir: Path, tcfg) -> dict:
    """The comparable quality score of the model after its last epoch (errors are recorded)."""
    try:
        from genaudio.models.score import score_model

        s = tcfg.score
        out = score_model(run_dir, n_clips=s.n_clips, seconds=s.seconds, seed=s.seed, k=s.ndb_bins)
    except Exception as e:  # the trial still counts (ranked by its per-epoch score)
        return {"score_error": f"{type(e).__name__}: {e}"[:300]}
    return {k: v for k, v in out.items() if isinstance(v, (int, float, str, bool))}
