"""Summary functionals: one number per feature dimension and statistic, stably named.

Frame-level features ``(dims, time)`` get ``config.stats`` per dimension, computed over time:

=============  =================================================================================
mean, std      population mean and standard deviation (ddof=0)
min, max       extremes
median         50th percentile
skew           Fisher-Pearson skewness (biased, as ``scipy.stats.skew``)
kurtosis       excess kurtosis (Fisher, biased, as ``scipy.stats.kurtosis``)
delta_mean     mean of the first difference along time (``np.diff``; units per frame)
delta_std      standard deviation of that first difference
=============  =================================================================================

Clip-level features ``(dims,)`` give one column per dimension with stat ``"value"``.
Columns are named by :func:`genaudio.store.summary_column`, e.g. ``mfcc_03_mean``.

Degenerate inputs never produce NaN or infinity (documented values):

* a constant row (silence, one frame): ``std = skew = kurtosis = 0``; a normal distribution's
  excess kurtosis is also 0, so "no shape information" reads as "nothing unusual";
* fewer than two frames: ``delta_mean = delta_std = 0``;
* zero frames: every statistic is 0;
* any non-finite input value is replaced by 0 before the statistics (features from
  :func:`genaudio.features.compute` are finite; this guards arrays from elsewhere).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from genaudio.config import DEFAULT_STATS, FeatureConfig
from genaudio.errors import ConfigError
from genaudio.store import summary_column


def frame_stats(x: np.ndarray, stats=DEFAULT_STATS) -> dict[str, np.ndarray]:
    """Per-row statistics of a ``(dims, time)`` matrix.

    Returns
    -------
    dict of stat -> np.ndarray [shape=(dims,)], float64, always finite.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[np.newaxis, :]
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    dims, t = x.shape
    zeros = np.zeros(dims)
    out: dict[str, np.ndarray] = {}
    if t == 0:
        return {s: zeros.copy() for s in stats}
    mean = x.mean(axis=1)
    c = x - mean[:, None]
    m2 = np.mean(c ** 2, axis=1)
    # a row whose spread is at rounding level of its values has no shape: treat it as constant
    scale = np.maximum(np.abs(x).max(axis=1), 1e-300)
    flat = np.sqrt(m2) <= 1e-6 * scale
    safe_m2 = np.where(flat, 1.0, m2)
    for s in stats:
        if s == "mean":
            out[s] = mean
        elif s == "std":
            out[s] = np.where(flat, 0.0, np.sqrt(m2))
        elif s == "min":
            out[s] = x.min(axis=1)
        elif s == "max":
            out[s] = x.max(axis=1)
        elif s == "median":
            out[s] = np.median(x, axis=1)
        elif s == "skew":
            out[s] = np.where(flat, 0.0, np.mean(c ** 3, axis=1) / safe_m2 ** 1.5)
        elif s == "kurtosis":
            out[s] = np.where(flat, 0.0, np.mean(c ** 4, axis=1) / safe_m2 ** 2 - 3.0)
        elif s in ("delta_mean", "delta_std"):
            if t < 2:
                out[s] = zeros.copy()
            else:
                d = np.diff(x, axis=1)
                out[s] = d.mean(axis=1) if s == "delta_mean" else d.std(axis=1)
        else:
            raise ConfigError(f"unknown stat {s!r}; valid: {', '.join(DEFAULT_STATS)}")
    return out


def summarize(computed: Mapping[str, np.ndarray], *, config: FeatureConfig | None = None) -> dict[str, float]:
    """Summary columns of computed features.

    Parameters
    ----------
    computed : mapping of str -> np.ndarray
        Output of :func:`genaudio.features.compute`: ``(dims, time)`` frame-level matrices and
        ``(dims,)`` clip-level vectors (a 2-D array counts as frame-level, a 1-D one as clip-level).
    config : FeatureConfig
        ``config.stats`` selects the functionals of frame-level features.

    Returns
    -------
    dict of str -> float
        ``{"<feature>_<dim:02d>_<stat>": value}``; frame-level features in dim-major order
        (``mfcc_00_mean, mfcc_00_std, ..., mfcc_01_mean, ...``); clip-level features use stat
        ``"value"``. Every value is finite.
    """
    config = config or FeatureConfig()
    out: dict[str, float] = {}
    for name, arr in computed.items():
        arr = np.asarray(arr)
        if arr.ndim == 2:
            st = frame_stats(arr, config.stats)
            for d in range(arr.shape[0]):
                for s in config.stats:
                    out[summary_column(name, d, s)] = float(st[s][d])
        elif arr.ndim <= 1:
            vals = np.nan_to_num(np.atleast_1d(arr).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            for d, v in enumerate(vals):
                out[summary_column(name, d, "value")] = float(v)
        else:
            raise ConfigError(f"feature {name!r} has shape {arr.shape}; expected (dims, time) or (dims,)")
    return out
