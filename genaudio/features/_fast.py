"""librosa features with the same definitions and faster arithmetic.

Each function here equals the librosa call named in its docstring within float rounding (tests
compare them; the benchmark ``features_vs_librosa.py`` reports the largest relative error). The
time goes elsewhere in librosa:

* ``spectral_centroid`` / ``spectral_bandwidth`` normalise a float64 copy of the whole
  ``(1 + n_fft/2, t)`` magnitude per call and (bandwidth) build an outer difference matrix; the
  two moments need only two matrix-vector products, ``sum S f`` and ``sum S f^2``.
* ``spectral_rolloff`` builds a NaN mask and a ``nanmin`` over the whole spectrogram; the first
  bin whose cumulative energy reaches the threshold is an ``argmax`` (bit-identical result).
* ``zero_crossing_rate`` frames the signal (``n_fft`` copies of every sample) before counting;
  counting sign changes once and differencing a cumulative sum gives the same integer counts.
* ``tempogram`` autocorrelates with an FFT of ``2 * win_length - 1`` points (767 for the default
  384: 13 x 59, a slow size) along the non-contiguous axis; any size >= that gives the same
  autocorrelation, so this uses the next fast size on contiguous rows. ``tempo`` and
  ``beat_track`` take this tempogram (``tg=``, ``bpm=``) instead of building their own.
* ``beat_track``: ``import librosa.beat`` compiles a numba kernel afresh in every process (~3 s);
  the same kernels, cached, are in :mod:`genaudio.features._beat`.
"""
from __future__ import annotations

import librosa
import numpy as np
import scipy.fft

from genaudio.features._beat import beat_frames

_TINY32 = np.finfo(np.float32).tiny


def spectral_moments(S: np.ndarray, *, sr: float) -> tuple[np.ndarray, np.ndarray]:
    """``librosa.feature.spectral_centroid(S=S, sr=sr)`` and ``spectral_bandwidth(S=S, sr=sr)``
    (p=2, norm=True) of a magnitude spectrogram ``S`` ``(1 + n_fft/2, t)``.

    Returns
    -------
    centroid, bandwidth : np.ndarray [shape=(1, t)], float64, Hz.
    """
    n_fft = 2 * (S.shape[-2] - 1)
    freq = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    basis = np.stack([np.ones_like(freq), freq, freq * freq])
    m0, m1, m2 = basis @ S.astype(np.float64)
    # librosa's util.normalize leaves columns whose L1 norm is below float32's tiny as they are
    # (silent frames), which makes both moments 0
    m0 = np.where(m0 < _TINY32, np.inf, m0)
    centroid = m1 / m0
    bandwidth = np.sqrt(np.maximum(m2 / m0 - centroid * centroid, 0.0))
    return centroid[np.newaxis], bandwidth[np.newaxis]


def spectral_rolloff(S: np.ndarray, *, sr: float, roll_percent: float) -> np.ndarray:
    """``librosa.feature.spectral_rolloff(S=S, sr=sr, roll_percent=roll_percent)``, bit for bit.

    Returns
    -------
    np.ndarray [shape=(1, t)], Hz.
    """
    freq = librosa.fft_frequencies(sr=sr, n_fft=2 * (S.shape[-2] - 1))
    total = np.cumsum(S, axis=-2)
    reached = total >= roll_percent * total[-1]
    return freq[np.argmax(reached, axis=-2)][np.newaxis]


def zero_crossing_rate(y: np.ndarray, *, frame_length: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.zero_crossing_rate(y, frame_length=..., hop_length=...)`` (centred,
    threshold 1e-10, zero counts as positive), bit for bit.

    Returns
    -------
    np.ndarray [shape=(1, 1 + len(y) // hop_length)], fraction of the frame's samples (0-1).
    """
    half = frame_length // 2
    yp = np.pad(y, (half, half), mode="edge")
    sign = np.signbit(np.where(np.abs(yp) <= 1e-10, 0.0, yp))
    cum = np.concatenate([[0], np.cumsum(sign[1:] != sign[:-1])])
    starts = np.arange(0, len(yp) - frame_length + 1, hop_length)
    # sign changes between consecutive samples inside [start, start + frame_length)
    counts = cum[starts + frame_length - 1] - cum[starts]
    return (counts / frame_length)[np.newaxis]


def tempogram(onset_envelope: np.ndarray, *, win_length: int) -> np.ndarray:
    """``librosa.feature.tempogram(onset_envelope=..., win_length=...)`` (centred, Hann window,
    max-normalised per frame).

    Returns
    -------
    np.ndarray [shape=(win_length, len(onset_envelope))], dtype of the envelope.
    """
    n = onset_envelope.shape[-1]
    half = win_length // 2
    padded = np.pad(onset_envelope, (half, half), mode="linear_ramp", end_values=(0, 0))
    window = librosa.filters.get_window("hann", win_length, fftbins=True).astype(onset_envelope.dtype)
    frames = np.lib.stride_tricks.sliding_window_view(padded, win_length)[:n] * window
    n_fft = scipy.fft.next_fast_len(2 * win_length - 1, real=True)
    spec = scipy.fft.rfft(frames, n=n_fft, axis=-1)
    ac = scipy.fft.irfft(spec.real ** 2 + spec.imag ** 2, n=n_fft, axis=-1)[:, :win_length]
    peak = np.max(np.abs(ac), axis=-1, keepdims=True)
    peak[peak < np.finfo(ac.dtype).tiny] = 1.0  # util.normalize leaves all-zero frames as they are
    return np.ascontiguousarray((ac / peak).T)


def tempo(onset_envelope: np.ndarray, *, sr: float, hop_length: int, aggregate=np.mean) -> np.ndarray:
    """``librosa.feature.tempo(onset_envelope=..., sr=..., hop_length=..., aggregate=...)`` with
    librosa's defaults (ac_size 8 s, start 120 bpm), through :func:`tempogram`.

    Returns
    -------
    np.ndarray [shape=(1,)] (``aggregate=None``: one per frame), beats per minute.
    """
    win = int(librosa.time_to_frames(8.0, sr=sr, hop_length=hop_length))
    tg = tempogram(onset_envelope, win_length=win)
    return librosa.feature.tempo(tg=tg, sr=sr, hop_length=hop_length, aggregate=aggregate)


def beat_track(onset_envelope: np.ndarray, *, sr: float, hop_length: int) -> np.ndarray:
    """``librosa.beat.beat_track(onset_envelope=..., sr=..., hop_length=...)[1]``: beat frames,
    with the tempo estimate from :func:`tempo`, tracked by librosa's own kernels in
    :mod:`genaudio.features._beat` (importing ``librosa.beat`` recompiles one of them in every process)."""
    bpm = tempo(onset_envelope, sr=sr, hop_length=hop_length)
    return beat_frames(onset_envelope, bpm=bpm, frame_rate=float(sr) / hop_length)
