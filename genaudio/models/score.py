"""One quality score for every trained model: Frechet distance and NDB in genaudio's feature space.

Losses of different trials are not comparable (different codes, heads, model families). The score
is computed the same way for all of them: generate ``n_clips`` clips, decode them to audio with the
encoder, compute genaudio's default summary features (:mod:`genaudio.features`) on each clip, and
compare them with the same features of held-out real clips (validation files):

- **Frechet distance** (as FAD, but in genaudio's own summary-feature space, since pretrained
  embedding weights cannot be downloaded): ``|mu_r - mu_g|^2 + Tr(C_r + C_g - 2 (C_r C_g)^{1/2})``
  of Gaussians fitted to the two feature sets, after standardising every column with the real
  set's mean and std (so that Hz-valued and unit-free features weigh alike). Standardised values
  are clipped to +-``Z_CLIP``: with a few dozen real clips some columns are all but constant
  (a clipping ratio of 0, a DC offset of 1e-9), and dividing a generated clip's value by that
  near-zero spread would let one column outweigh thousands (scores of 1e22 were seen). A column
  ``Z_CLIP`` standard deviations off is simply "maximally off".
- **NDB** (number of statistically different bins, Richardson & Weiss 2018, as in GANSynth's
  evaluation): k-means on the real features; a bin is different when a two-proportion z-test
  rejects equal real/generated proportions at alpha = 0.05. Reported as a count and a fraction of
  ``k``, with the Jensen-Shannon divergence of the two bin histograms.

Where the encoder has no audio decoder (feature-subset codes), the same statistics are computed in
the code space (per-dimension mean, std and mean absolute frame difference of each clip's codes)
and the result is marked ``comparable: False``: it ranks models of one encoder only.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from genaudio.errors import ModelError


def frechet_distance(x: np.ndarray, y: np.ndarray, *, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two samples.

    Parameters
    ----------
    x : ndarray (n, d)
    y : ndarray (m, d)
        Samples (rows) of the same ``d`` features; ``n, m >= 2``.
    eps : float
        Added to the covariance diagonals in the ``d <= min(n, m)`` path (numerical safety);
        with fewer samples than dimensions an exact low-rank formula is used instead.

    Returns
    -------
    float
        ``|mu_x - mu_y|^2 + Tr(C_x + C_y - 2 (C_x C_y)^{1/2})`` (>= 0; 0 for identical samples).
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ModelError(f"frechet_distance needs (n, d) and (m, d) arrays, got {x.shape} and {y.shape}")
    if len(x) < 2 or len(y) < 2:
        raise ModelError("frechet_distance needs at least 2 samples on each side")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("inf")
    mu_x, mu_y = x.mean(0), y.mean(0)
    n, m, d = len(x), len(y), x.shape[1]
    if d > min(n, m):
        # Few samples in many dimensions (the usual case: 32 clips x thousands of summary
        # columns): with C_x = A^T A and C_y = B^T B, the non-zero eigenvalues of C_x C_y are the
        # squared singular values of A B^T, so Tr((C_x C_y)^1/2) is its nuclear norm. Exact, and
        # O(n m d) instead of O(d^3).
        a = (x - mu_x) / math.sqrt(n - 1)
        b = (y - mu_y) / math.sqrt(m - 1)
        tr_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum()
        fd = float(((mu_x - mu_y) ** 2).sum() + (a ** 2).sum() + (b ** 2).sum() - 2 * tr_sqrt)
        return max(fd, 0.0)
    cx = np.atleast_2d(np.cov(x, rowvar=False)) + eps * np.eye(d)
    cy = np.atleast_2d(np.cov(y, rowvar=False)) + eps * np.eye(d)
    # Tr((Cx Cy)^1/2) = sum sqrt(eig(Cx^1/2 Cy Cx^1/2)): a symmetric PSD problem, so eigh is exact
    # and stable where scipy.linalg.sqrtm of the non-symmetric product returns complex noise.
    w, v = np.linalg.eigh(cx)
    sx = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(sx @ cy @ sx), 0, None)).sum()
    fd = float(((mu_x - mu_y) ** 2).sum() + np.trace(cx) + np.trace(cy) - 2 * tr_sqrt)
    return max(fd, 0.0)


#: Standardised feature values are clipped to this many standard deviations (see module docstring).
Z_CLIP = 10.0


def standardize(real: np.ndarray, *others: np.ndarray, clip: float = Z_CLIP) -> list[np.ndarray]:
    """Z-score every column with the real set's mean and std, clipped to +-``clip``.

    Columns whose spread is negligible against their magnitude (constant up to rounding) get
    std 1, so they count by their absolute difference.
    """
    real = np.asarray(real, np.float64)
    mu, sd = real.mean(0), real.std(0)
    sd = np.where(sd < 1e-6 * np.maximum(1.0, np.abs(mu)), 1.0, sd)
    return [np.clip((np.asarray(a, np.float64) - mu) / sd, -clip, clip) for a in (real, *others)]


def ndb(real: np.ndarray, fake: np.ndarray, *, k: int = 10, alpha: float = 0.05, seed: int = 0) -> dict:
    """Number of statistically different bins between a real and a generated sample.

    Parameters
    ----------
    real : ndarray (n, d)
    fake : ndarray (m, d)
        Features (already standardised); k-means bins are fitted on ``real``.
    k : int
        Number of bins (reduced to ``n`` when there are fewer real samples).
    alpha : float
        Significance of the per-bin two-proportion z-test.

    Returns
    -------
    dict
        ``ndb`` (count), ``ndb_fraction`` (count / k), ``k``, ``jsd`` (Jensen-Shannon divergence of
        the bin histograms, nats), ``real_props`` and ``fake_props`` (per-bin proportions).
    """
    from scipy.stats import norm
    from sklearn.cluster import KMeans

    real = np.asarray(real, np.float64)
    fake = np.asarray(fake, np.float64)
    k = int(min(k, len(real)))
    if k < 2:
        raise ModelError("NDB needs at least 2 real samples")
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(real)
    p_r = np.bincount(km.labels_, minlength=k) / len(real)
    fake_ok = np.isfinite(fake).all(axis=1)
    labels_f = km.predict(fake[fake_ok]) if fake_ok.any() else np.zeros(0, int)
    # generated samples with non-finite features fall in no bin: they only lower the proportions
    p_f = np.bincount(labels_f, minlength=k) / len(fake)
    n_r, n_f = len(real), len(fake)
    p = (p_r * n_r + p_f * n_f) / (n_r + n_f)
    se = np.sqrt(p * (1 - p) * (1 / n_r + 1 / n_f))
    z = np.divide(p_r - p_f, se, out=np.zeros(k), where=se > 0)
    different = np.abs(z) > norm.ppf(1 - alpha / 2)
    m = 0.5 * (p_r + p_f)
    kl = lambda a, b: float(np.sum(np.where(a > 0, a * np.log(np.where(a > 0, a, 1) / np.where(b > 0, b, 1)), 0)))  # noqa: E731
    jsd = 0.5 * kl(p_r, m) + 0.5 * kl(p_f, m)
    return {"ndb": int(different.sum()), "ndb_fraction": float(different.mean()), "k": k, "jsd": jsd,
            "real_props": p_r.tolist(), "fake_props": p_f.tolist()}


def code_stats(codes: np.ndarray) -> np.ndarray:
    """Per-clip summary of code sequences, the code-space analogue of the summary features.

    Parameters
    ----------
    codes : ndarray (n, time, dim)

    Returns
    -------
    ndarray (n, 3 * dim)
        Per dimension: mean and std over time, and mean absolute frame-to-frame difference.
    """
    codes = np.asarray(codes, np.float64)
    if codes.ndim != 3 or codes.shape[1] < 2:
        raise ModelError(f"code_stats needs (n, time >= 2, dim) codes, got {codes.shape}")
    d = np.abs(np.diff(codes, axis=1)).mean(1)
    return np.concatenate([codes.mean(1), codes.std(1), d], axis=1)


# ---------------------------------------------------------------------------------------------
# Features of clips and the held-out reference


def feature_matrix(clips: list, sr: int, *, config=None, features=None) -> tuple[np.ndarray, list[str]]:
    """genaudio summary features of each clip.

    Parameters
    ----------
    clips : list of ndarray (samples,)
    sr : int
        Sample rate (Hz).
    config : FeatureConfig, optional
    features : iterable of str, optional
        Catalog names; default :func:`genaudio.features.default_features`.

    Returns
    -------
    X : ndarray (n_clips, n_columns) float64
    columns : list of str
        Summary column names (``<feature>_<dim>_<stat>``), identical for every clip.
    """
    from genaudio.features import compute, default_features, summarize

    features = tuple(features or default_features(config))
    rows, columns = [], None
    for y in clips:
        s = summarize(compute(np.asarray(y, np.float32), int(sr), config=config, features=features), config=config)
        if columns is None:
            columns = list(s)
        rows.append([s.get(c, np.nan) for c in columns])
    return np.asarray(rows, np.float64), columns or []


def _held_out(model, enc, *, n: int, seed: int):
    """Real reference of a run: validation-file segments as codes, and as audio when readable.

    Returns ``(codes_list, audio_list_or_None, reference)`` where ``reference`` says where the
    audio came from: ``"original"`` (the source files, read at the encoder's rate) or
    ``"reconstruction"`` (the encoder's decoding of the held-out codes, when the source files are
    not readable any more).
    """
    from genaudio.models.data import as_sequence_data

    if not model.enc_dir:
        raise ModelError(f"{model.path}: the run does not name its encoded store; pass real_audio or real_features")
    from genaudio.encoders.store import read_codes

    raw = read_codes(model.enc_dir)
    data = as_sequence_data(raw)
    ident = raw.ids
    val = np.flatnonzero(np.isin(data.file_ids, model.val_files))
    if len(val) == 0:
        raise ModelError(f"{model.enc_dir}: none of the run's validation files are in the encoded store")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(val, size=min(n, len(val)), replace=False))
    codes = [data.codes[i] for i in pick]
    if not enc.has_audio_decoder:
        return codes, None, "codes"
    audio = None
    if ident is not None and {"path", "start_s", "duration_s"} <= set(ident.columns):
        from genaudio.audio import load
        from genaudio.config import AudioConfig
        from genaudio.errors import GenaudioError

        acfg = AudioConfig(sample_rate=int(enc.sample_rate))
        try:
            audio = []
            for i in pick:
                row = ident.iloc[int(i)]
                y, _ = load(row["path"], config=acfg, offset=float(row["start_s"]), duration=float(row["duration_s"]))
                audio.append(y)
        except GenaudioError:
            audio = None  # source moved or unreadable: fall back to reconstructions
    if audio is not None:
        return codes, audio, "original"
    return codes, [enc.to_audio(c) for c in codes], "reconstruction"


def score_model(run: Any, *, encoder: Any = None, real_audio: list | None = None,
                real_features: Any = None, real_sr: int | None = None, n_clips: int = 32,
                seconds: float | None = None, seed: int = 0, k: int = 10, feature_config=None,
                features=None, progress=None) -> dict:
    """The comparable quality score of a trained model.

    Parameters
    ----------
    run : path or TrainedModel
        A run folder, a checkpoint, or a model from :func:`genaudio.models.load_run`.
    encoder : Encoder or path, optional
        Decodes generated codes; default: the encoder of the run's encoded store.
    real_audio : list of ndarray (samples,), optional
        Held-out real clips at ``real_sr`` (default the encoder's rate). Default: the run's
        validation-file segments, read from their source files.
    real_features : ndarray (n, c) or DataFrame, optional
        Precomputed summary features of real clips (a DataFrame is aligned by column name;
        an array must follow :func:`feature_matrix`'s column order).
    n_clips : int
        Clips generated (and at most as many real clips used).
    seconds : float, optional
        Generated clip length; default the median real clip length.
    seed : int
        Seeds generation, the choice of real clips and k-means.
    k : int
        NDB bins.

    Returns
    -------
    dict
        ``frechet`` (Frechet distance, standardised features), ``frechet_per_dim``, ``ndb``,
        ``ndb_fraction``, ``ndb_k``, ``jsd``, ``comparable`` (False for code-space scores),
        ``space`` ("features" or "codes"), ``reference`` (where the real clips came from),
        ``n_real``, ``n_generated``, ``seconds``, ``score_seconds`` (time taken), and
        ``val_loss`` / ``val_mse`` (LSTM, last epoch) when the run has them.
    """
    from genaudio.models.generate import load_run, load_run_encoder

    t0 = time.perf_counter()
    say = progress or (lambda _m: None)
    model = load_run(run)
    enc = load_run_encoder(model, encoder)
    out: dict[str, Any] = {}
    last = model.history[-1] if model.history else {}
    for key in ("val_loss", "val_mse"):
        if model.config.model == "lstm" and key in last:
            out[key] = float(last[key])

    if not enc.has_audio_decoder:
        real_codes, _, _ = _held_out(model, enc, n=n_clips, seed=seed)
        frames = int(np.median([len(c) for c in real_codes]))
        if seconds is not None:
            frames = max(2, math.ceil(seconds * model.code_rate_hz))
        fake = model.generate_codes(n=n_clips, frames=frames, seed=seed)
        real_x = np.concatenate([code_stats(c[None]) for c in real_codes])
        fake_x = code_stats(fake)
        space, reference, comparable = "codes", "codes", False
        n_seconds = frames / model.code_rate_hz
    else:
        sr = int(enc.sample_rate)
        reference = "given"
        columns = None
        if real_features is None:
            if real_audio is None:
                say("loading held-out real clips ...")
                _, real_audio, reference = _held_out(model, enc, n=n_clips, seed=seed)
                real_sr = sr
            real_sr = real_sr or sr
            say(f"features of {len(real_audio)} real clips ...")
            real_x, columns = feature_matrix(real_audio, real_sr, config=feature_config, features=features)
            if seconds is None:
                seconds = float(np.median([len(y) for y in real_audio])) / real_sr
        else:
            real_x = real_features
        if seconds is None:
            raise ModelError("seconds is required when only real_features are given")
        say(f"generating {n_clips} clips of {seconds:g} s ...")
        clips, _, _ = _generate_audio(model, enc, n=n_clips, seconds=seconds, seed=seed)
        say("features of generated clips ...")
        fake_x, fake_cols = feature_matrix(clips, sr, config=feature_config, features=features)
        if hasattr(real_x, "columns"):  # a DataFrame of summary columns: align by name
            missing = [c for c in fake_cols if c not in real_x.columns]
            if missing:
                raise ModelError(f"real_features lack {len(missing)} summary column(s), e.g. {missing[0]}")
            real_x = real_x[fake_cols].to_numpy(np.float64)
        real_x = np.asarray(real_x, np.float64)
        if real_x.shape[1] != fake_x.shape[1]:
            raise ModelError(f"real features have {real_x.shape[1]} columns, generated {fake_x.shape[1]}")
        space, comparable = "features", True
        n_seconds = seconds
    # a generated clip whose features are not finite counts as maximally bad, not as a crash
    bad = ~np.isfinite(fake_x).all(axis=1)
    rs, fs = standardize(real_x, np.where(np.isfinite(fake_x), fake_x, 0.0))
    fd = frechet_distance(rs, fs) if not bad.any() else float("inf")
    nd = ndb(rs, np.where(bad[:, None], np.nan, fs), k=k, seed=seed)
    out.update(frechet=fd, frechet_per_dim=fd / rs.shape[1], ndb=nd["ndb"], ndb_fraction=nd["ndb_fraction"],
               ndb_k=nd["k"], jsd=nd["jsd"], comparable=comparable, space=space, reference=reference,
               n_real=int(len(rs)), n_generated=int(len(fs)), n_features=int(rs.shape[1]),
               seconds=float(n_seconds), score_seconds=time.perf_counter() - t0)
    return out


def _generate_audio(model, enc, *, n: int, seconds: float, seed: int):
    from genaudio.models.generate import generate_clips

    return generate_clips(model, n=n, seconds=seconds, seed=seed, encoder=enc)
