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
    unknown = [s for s in stats if s not in DEFAULT_STATS]
    if unknown:
        raise ConfigError(f"unknown stat {unknown[0]!r}; valid: {', '.join(DEFAULT_STATS)}")
    x = np.array(x, dtype=np.float64, ndmin=2)  # a copy: cleaned in place below
    if not np.isfinite(x).all():  # one pass; nan_to_num makes four even when all is finite
        np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    dims, t = x.shape
    if t == 0:
        return {s: np.zeros(dims) for s in stats}
    mean = x.mean(axis=1)
    c = x - mean[:, None]
    c2 = c * c
    m2 = c2.mean(axis=1)
    lo, hi = x.min(axis=1), x.max(axis=1)
    # a row whose spread is at rounding level of its values has no shape: treat it as constant
    # (max |x| is max(-min, max), exactly)
    scale = np.maximum(np.maximum(-lo, hi), 1e-300)
    flat = np.sqrt(m2) <= 1e-6 * scale
    safe_m2 = np.where(flat, 1.0, m2)
    d = np.diff(x, axis=1) if t >= 2 and ({"delta_mean", "delta_std"} & set(stats)) else None
    compute = {
        "mean": lambda: mean,
        "std": lambda: np.where(flat, 0.0, np.sqrt(m2)),
        "min": lambda: lo,
        "max": lambda: hi,
        "median": lambda: _median(x),
        "skew": lambda: np.where(flat, 0.0, (c2 * c).mean(axis=1) / (safe_m2 * np.sqrt(safe_m2))),
        "kurtosis": lambda: np.where(flat, 0.0, (c2 * c2).mean(axis=1) / (safe_m2 * safe_m2) - 3.0),
        "delta_mean": lambda: d.mean(axis=1) if d is not None else np.zeros(dims),
        "delta_std": lambda: d.std(axis=1) if d is not None else np.zeros(dims),
    }
    return {s: compute[s]() for s in stats}


def _median(x: np.ndarray) -> np.ndarray:
    """``np.median(x, axis=1)`` of a finite ``(dims, time)`` matrix, exactly (the same middle
    order statistics, averaged as numpy does), from a full sort: numpy's vectorised sort of many
    short rows is ~6x faster than the two-pivot partition ``np.median`` runs."""
    t = x.shape[1]
    k = t // 2
    s = np.sort(x, axis=1)
    return np.mean(s[:, k - 1:k + 1] if t % 2 == 0 else s[:, k:k + 1], axis=1)


def summary_columns(computed: Mapping[str, np.ndarray], *, config: FeatureConfig | None = None) -> list[str]:
    """The column names of :func:`summary_vector` for features of these shapes, in order."""
    config = config or FeatureConfig()
    out: list[str] = []
    for name, arr in computed.items():
        arr = np.asarray(arr)
        if arr.ndim == 2:
            out += [summary_column(name, d, s) for d in range(arr.shape[0]) for s in config.stats]
        else:
            out += [summary_column(name, d, "value") for d in range(np.atleast_1d(arr).shape[0])]
    return out


def summary_vector(computed: Mapping[str, np.ndarray], *, config: FeatureConfig | None = None) -> np.ndarray:
    """The values of :func:`summarize` as one float64 vector (names: :func:`summary_columns`).

    The frame-level features of one clip share their time axis, so their statistics are
    computed on one stacked matrix in a single pass (per-feature calls when lengths differ).
    """
    config = config or FeatureConfig()
    items = [(name, np.asarray(arr)) for name, arr in computed.items()]
    for name, arr in items:
        if arr.ndim > 2:
            raise ConfigError(f"feature {name!r} has shape {arr.shape}; expected (dims, time) or (dims,)")
    frames = [arr for _, arr in items if arr.ndim == 2]
    stacked = len({arr.shape[1] for arr in frames}) == 1

    def table(x):  # (dims, n_stats), rows in dim order, columns in config.stats order
        st = frame_stats(x, config.stats)
        return np.stack([st[s] for s in config.stats], axis=1)

    all_frames = table(np.concatenate(frames, axis=0)) if stacked else None
    pieces, row = [], 0
    for name, arr in items:
        if arr.ndim == 2:
            block = all_frames[row:row + arr.shape[0]] if stacked else table(arr)
            row += arr.shape[0]
            pieces.append(block.reshape(-1))
        else:
            pieces.append(np.nan_to_num(np.atleast_1d(arr).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0))
    return np.concatenate(pieces) if pieces else np.zeros(0)


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
    values = summary_vector(computed, config=config)
    return dict(zip(summary_columns(computed, config=config), values.tolist()))
