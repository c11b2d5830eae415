"""Code-space metrics: pure numpy functions, the bottom layer of :mod:`genaudio.models`.

- :func:`code_stats`: a per-clip summary of code sequences (mean, std and frame-to-frame change
  per code dimension);
- :func:`frechet_distance`: the Frechet distance between Gaussians fitted to two samples.

Together they give ``code_fd``, the per-epoch learning signal both model families report
(a training diagnostic only: comparable within one encoder, not across encoders or families;
the comparable judgement of audio is :mod:`genaudio.quality`).
"""
from __future__ import annotations

import math

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
