"""``librosa.cqt`` with a faster, memoised filter bank.

About half of a 30 s ``librosa.cqt`` (252 bins) is spent designing the wavelet filter bank
(7 octaves of windowed complex exponentials, normalised, FFT'd and sparsified, the last step
through a slow per-row ``lil_matrix`` assignment). The filters depend only on the parameters
(including the estimated tuning, quantised to 0.01 bin), never on the signal. librosa can cache
them on disk (``LIBROSA_CACHE_DIR``, joblib), which a shared cluster should not rely on.

This module runs librosa 0.11's own CQT steps (``vqt`` with ``gamma=0``, ``intervals="equal"``)
in the same order with the same helpers, except that the filter design skips librosa's per-filter
argument validation, the sparsification builds the CSR matrix directly (same values, same
indices), and the per-octave filter FFTs are memoised in process
memory (clips with the same tuning reuse them). The result is bit-for-bit
``np.abs(librosa.cqt(...))`` (tests check it). If librosa's private helpers are missing (another
librosa version), it falls back to ``librosa.cqt``.
"""
from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

import librosa
import numpy as np

try:  # librosa 0.10/0.11 private helpers; absent -> fallback to the public call
    from librosa import filters as _filters
    from librosa.core import constantq as _cq

    _filter_fft = getattr(_cq, "__vqt_filter_fft")
    _cqt_response = getattr(_cq, "__cqt_response")
    _trim_stack = getattr(_cq, "__trim_stack")
    _early_downsample = getattr(_cq, "__early_downsample")
    _early_downsample_count = getattr(_cq, "__early_downsample_count")
    _HAVE_INTERNALS = all(hasattr(_filters, n) for n in ("_relative_bandwidth", "wavelet_lengths", "get_window"))
except (ImportError, AttributeError):  # pragma: no cover - depends on the librosa version
    _HAVE_INTERNALS = False

_CACHE: "OrderedDict[tuple, tuple]" = OrderedDict()
_CACHE_MAX = 7 * 16  # octaves of filters: 16 tunings of the default CQT, ~1 MB each
_LOCK = threading.Lock()


def _cached_filter_fft(sr, freqs, alpha, dtype):
    key = (float(sr), freqs.tobytes(), alpha.tobytes(), np.dtype(dtype).str)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
    if hit is None:
        hit = _filter_fft_fast(sr, freqs, alpha, dtype)
        with _LOCK:
            _CACHE[key] = hit
            while len(_CACHE) > _CACHE_MAX:
                _CACHE.popitem(last=False)
    fft_basis, n_fft, lengths = hit
    # librosa rescales the basis in place; hand out a copy so the cached one stays pristine
    return fft_basis.copy(), n_fft, lengths


@dataclasses.dataclass(frozen=True)
class Octave:
    """One octave of a CQT: its filters' FFT basis at the octave's sample rate, applied to the
    STFT (window of ones) of the signal resampled to that rate."""

    fft_basis: "scipy.sparse.csr_matrix"   # (filters, n_fft // 2 + 1), scaled for this octave
    n_fft: int
    hop_length: int
    halve_after: bool                      # the next octave's signal is this one resampled by 1/2


@dataclasses.dataclass(frozen=True)
class CQTPlan:
    """``librosa.cqt`` step by step (librosa 0.11's ``vqt`` with ``gamma=0``): resample the signal
    by ``2 ** early_count``, then per :class:`Octave` (top octave first) the response, then stack
    (octaves fill the bins from the top down, trimmed to the shortest) and divide by
    ``sqrt(lengths)``. The numpy path runs it with soxr
    (:func:`cqt_magnitude`), the torch path (:mod:`genaudio.features.torch_frames`) on a device."""

    n_bins: int
    early_count: int
    early_args: tuple          # (n_octaves, nyquist, filter_cutoff) of librosa's early downsampling
    octaves: tuple
    lengths: np.ndarray        # the filter lengths at the (early-downsampled) rate


def cqt_plan(*, sr: float, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int,
             tuning: float, dtype=np.complex64) -> CQTPlan | None:
    """The plan of ``librosa.cqt(sr=..., hop_length=..., fmin=..., n_bins=..., bins_per_octave=...,
    tuning=...)`` with librosa's other defaults (filter_scale=1, norm=1, sparsity=0.01, hann,
    scale=True, pad_mode="constant", res_type="soxr_hq"), filters memoised; ``None`` where only
    ``librosa.cqt`` itself applies (another librosa version, one bin, filters above Nyquist)."""
    if not _HAVE_INTERNALS or n_bins == 1:  # one bin: librosa uses an equal-temperament bandwidth
        return None
    n_octaves = int(np.ceil(float(n_bins) / bins_per_octave))
    n_filters = min(bins_per_octave, n_bins)
    fmin = fmin * 2.0 ** (tuning / bins_per_octave)
    freqs = librosa.interval_frequencies(n_bins=n_bins, fmin=fmin, intervals="equal",
                                         bins_per_octave=bins_per_octave, sort=True)
    alpha = _filters._relative_bandwidth(freqs=freqs)
    lengths, filter_cutoff = _filters.wavelet_lengths(freqs=freqs, sr=sr, window="hann", filter_scale=1,
                                                      gamma=0, alpha=alpha)
    nyquist = sr / 2.0
    if filter_cutoff > nyquist:  # librosa raises its own error for this
        return None
    early_count = _early_downsample_count(nyquist, filter_cutoff, hop_length, n_octaves)
    sr, hop_length = sr / 2.0 ** early_count, hop_length // 2 ** early_count
    octaves = []
    my_sr, my_hop = sr, hop_length
    for i in range(n_octaves):
        sl = slice(-n_filters, None) if i == 0 else slice(-n_filters * (i + 1), -n_filters * i)
        fft_basis, n_fft, _ = _cached_filter_fft(my_sr, freqs[sl], alpha[sl], dtype)
        fft_basis[:] *= np.sqrt(sr / my_sr)
        halve = my_hop % 2 == 0
        octaves.append(Octave(fft_basis, n_fft, my_hop, halve))
        if halve:
            my_hop //= 2
            my_sr /= 2.0
    lengths, _ = _filters.wavelet_lengths(freqs=freqs, sr=sr, window="hann", filter_scale=1, gamma=0, alpha=alpha)
    return CQTPlan(n_bins, early_count, (n_octaves, nyquist, filter_cutoff), tuple(octaves), lengths)


def cqt_magnitude(y: np.ndarray, *, sr: float, hop_length: int, fmin: float, n_bins: int,
                  bins_per_octave: int, tuning: float) -> np.ndarray:
    """``np.abs(librosa.cqt(y, sr=sr, hop_length=..., fmin=..., n_bins=..., bins_per_octave=...,
    tuning=tuning))`` with librosa's other defaults, filters memoised.

    Returns
    -------
    np.ndarray [shape=(n_bins, 1 + len(y) // hop_length)], float32 magnitudes.
    """
    dtype = librosa.util.dtype_r2c(y.dtype)
    plan = cqt_plan(sr=sr, hop_length=hop_length, fmin=fmin, n_bins=n_bins, bins_per_octave=bins_per_octave,
                    tuning=tuning, dtype=dtype)
    if plan is None:
        return np.abs(librosa.cqt(y, sr=sr, hop_length=hop_length, fmin=fmin, n_bins=n_bins,
                                  bins_per_octave=bins_per_octave, tuning=tuning))
    y, _, _ = _early_downsample(y, sr, hop_length, "soxr_hq", *plan.early_args, True)
    resp = []
    for octave in plan.octaves:
        resp.append(_cqt_response(y, octave.n_fft, octave.hop_length, octave.fft_basis, "constant", dtype=dtype))
        if octave.halve_after:
            y = librosa.resample(y, orig_sr=2, target_sr=1, res_type="soxr_hq", scale=True)
    V = _trim_stack(resp, n_bins, dtype)
    V /= np.sqrt(plan.lengths)[:, np.newaxis]
    return np.abs(V)


def _sparsify_rows(x: np.ndarray, quantile: float, dtype) -> "scipy.sparse.csr_matrix":
    """``librosa.util.sparsify_rows`` without the per-row ``lil_matrix`` assignment (same result)."""
    import scipy.sparse

    mags = np.abs(x)
    norms = np.sum(mags, axis=1, keepdims=True)
    mag_sort = np.sort(mags, axis=1)
    cumulative_mag = np.cumsum(mag_sort / norms, axis=1)
    threshold_idx = np.argmin(cumulative_mag < quantile, axis=1)
    keep = mags >= mag_sort[np.arange(x.shape[0]), threshold_idx][:, np.newaxis]
    rows, cols = np.nonzero(keep)  # row-major: sorted by row, then column, as CSR wants
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
    return scipy.sparse.csr_matrix((x[rows, cols].astype(dtype), cols, indptr), shape=x.shape, dtype=dtype)


def _filter_fft_fast(sr, freqs, alpha, dtype):
    """librosa's ``__vqt_filter_fft(sr, freqs, 1, 1, 0.01, window="hann", gamma=0, dtype, alpha)``."""
    basis, lengths = _wavelet_fast(freqs, sr, alpha)
    n_fft = basis.shape[1]
    basis *= lengths[:, np.newaxis] / float(n_fft)
    fft_basis = librosa.get_fftlib().fft(basis, n=n_fft, axis=1)[:, : (n_fft // 2) + 1]
    return _sparsify_rows(fft_basis, 0.01, dtype), n_fft, lengths


def _wavelet_fast(freqs: np.ndarray, sr: float, alpha: np.ndarray):
    """``librosa.filters.wavelet(freqs=..., sr=..., window="hann", filter_scale=1, norm=1,
    pad_fft=True, gamma=0, alpha=...)`` with the same arithmetic per filter, minus the per-call
    validation of ``util.normalize`` / ``pad_center`` that dominates its run time."""
    lengths, _ = _filters.wavelet_lengths(freqs=freqs, sr=sr, window="hann", filter_scale=1, gamma=0, alpha=alpha)
    max_len = int(2.0 ** (np.ceil(np.log2(max(lengths)))))
    out = np.zeros((len(freqs), max_len), dtype=np.complex64)
    for i, (ilen, freq) in enumerate(zip(lengths, freqs)):
        sig = librosa.util.phasor(np.arange(-ilen // 2, ilen // 2, dtype=float) * 2 * np.pi * freq / sr)
        n = len(sig)
        n_min = int(np.floor(n))
        win = _filters.get_window("hann", n_min)  # __float_window for an integer length n
        sig *= win
        sig = sig / np.sum(np.abs(sig).astype(float), keepdims=True)  # util.normalize(norm=1)
        lpad = int((max_len - n) // 2)
        out[i, lpad:lpad + n] = sig
    return out, lengths


def estimate_tuning(S: np.ndarray, *, sr: float, bins_per_octave: int) -> float:
    """``librosa.estimate_tuning(S=S, sr=sr, bins_per_octave=...)`` with librosa's defaults
    (piptrack fmin=150, fmax=4000, threshold=0.1, ref=np.max; resolution 0.01), same arithmetic.

    librosa's piptrack computes the gradient, the parabolic shift and the local maxima over the
    whole spectrogram and writes two full-size output matrices; the tuning only needs them at the
    thresholded local maxima between 150 and 4000 Hz, so this evaluates exactly those (the shift
    with librosa's own numba stencil) and hands the same pitch/magnitude values to
    ``librosa.pitch_tuning``.
    """
    from librosa.core import pitch as _pitch

    S = np.abs(S)
    n_fft = 2 * (S.shape[-2] - 1)
    fft_freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    freq_mask = (150.0 <= fft_freqs) & (fft_freqs < min(4000.0, float(sr) / 2))
    rows = np.flatnonzero(freq_mask)
    if rows.size == 0 or S.shape[-1] == 0:
        return float(librosa.estimate_tuning(S=S, sr=sr, bins_per_octave=bins_per_octave))
    lo, hi = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, S.shape[-2])
    ref_value = 0.1 * np.max(S, axis=-2)[np.newaxis, :]
    block = S[lo:hi]
    # local maxima of the thresholded block; rows at the block edges are outside freq_mask unless
    # they are the spectrum's own edges, where librosa's padding rule is reproduced by localmax
    lm = librosa.util.localmax(block * (block > ref_value), axis=-2)
    lm &= freq_mask[lo:hi, np.newaxis]
    if lo > 0:
        lm[0] = False  # row lo is a neighbour row only (outside freq_mask) ...
    f_idx, t_idx = np.nonzero(lm)
    f_idx = f_idx + lo
    if f_idx.size and (f_idx.min() == 0 or f_idx.max() == S.shape[-2] - 1):
        # edge bins use one-sided differences in np.gradient: leave those to librosa
        return float(librosa.estimate_tuning(S=S, sr=sr, bins_per_octave=bins_per_octave))
    below, centre, above = S[f_idx - 1, t_idx], S[f_idx, t_idx], S[f_idx + 1, t_idx]
    shift = _pitch._pi_wrapper(np.stack([below, centre, above], axis=-1))[:, 1]
    avg = (above - below) / 2.0  # np.gradient, interior points
    dskew = 0.5 * avg * shift
    pitch = np.asarray((f_idx + shift) * float(sr) / n_fft, dtype=S.dtype)
    mag = np.asarray(centre + dskew, dtype=S.dtype)
    pitch_mask = pitch > 0
    threshold = np.median(mag[pitch_mask]) if pitch_mask.any() else 0.0
    return float(librosa.pitch_tuning(pitch[(mag >= threshold) & pitch_mask], resolution=0.01,
                                      bins_per_octave=bins_per_octave))
