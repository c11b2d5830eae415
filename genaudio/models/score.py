"""One quality score for every trained model: Frechet distance and NDB in genaudio's feature space.

Losses of different trials are not comparable (different codes, heads, model families). The score
is computed the same way for all of them: generate ``n_clips`` clips, decode them to audio with the
encoder, compute genaudio's default summary features (:mod:`genaudio.features`) on each clip, and
compare them with the same features of held-out real clips (validation files):

- **Frechet distance** (as FAD, but in genaudio's own summary-feature space, since pretrained
  embedding weights cannot be downloaded): ``|mu_r - mu_g|^2 + Tr(C_r + C_g - 2 (C_r C_g)^{1/2})``
  of Gaussians fitted to the two feature sets, after standardising every column with the real
  set's mean and std (so that Hz-valued and unit-free features weigh alike).
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
        Added to the covariance diagonals to keep a rank-deficient estimate (n < d) stable.

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
    cx = np.atleast_2d(np.cov(x, rowvar=False)) + eps * np.eye(x.shape[1])
    cy = np.atleast_2d(np.cov(y, rowvar=False)) + eps * np.eye(x.shape[1])
    # Tr((Cx Cy)^1/2) = sum sqrt(eig(Cx^1/2 Cy Cx^1/2)): a symmetric PSD problem, so eigh is exact
    # and stable where scipy.linalg.sqrtm of the non-symmetric product returns complex noise.
    w, v = np.linalg.eigh(cx)
    sx = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(sx @ cy @ sx), 0, None)).sum()
    fd = float(((mu_x - mu_y) ** 2).sum() + np.trace(cx) + np.trace(cy) - 2 * tr_sqrt)
    return max(fd, 0.0)


def standardize(real: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Z-score every column with the real set's mean and std (constant columns: std 1)."""
    real = np.asarray(real, np.float64)
    mu, sd = real.mean(0), real.std(0)
    sd = np.where(sd < 1e-12, 1.0, sd)
    return [(np.asarray(a, np.float64) - mu) / sd for a in (real, *others)]


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
