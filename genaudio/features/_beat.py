"""librosa's dynamic-programming beat tracker (Ellis, 2007), without importing ``librosa.beat``.

``import librosa.beat`` compiles one of its numba kernels afresh in every process
(``__beat_local_score`` is declared ``cache=False``): ~3 s of a 4-s import on an idle 2-core
machine, paid by every extraction worker, search trial and command that computes beats. The
kernel bodies below are librosa 0.11's (``librosa/beat.py``, ISC licence, (c) librosa
development team), unchanged; they are ``njit(cache=True)`` functions on 1-D arrays instead of
gufuncs with every signature declared, so a process compiles only the dtype it meets, once, and
later processes load it from numba's cache (also in a Ray job's fresh ``working_dir`` copy, where
compiling all ten of librosa's signatures took ~25 s). :func:`beat_frames` casts the inputs as
librosa's gufunc signatures do (the period to the envelope's dtype, ``tightness`` to float32, the
back-links to int64), so the arithmetic and the beats are the same (``tests/features/test_beat.py``
compares with ``librosa.beat.beat_track``).
"""
from __future__ import annotations

import numba
import numpy as np
from librosa.util import localmax, tiny


def beat_frames(onset_envelope: np.ndarray, *, bpm: float | np.ndarray, frame_rate: float,
                tightness: float = 100.0, trim: bool = True) -> np.ndarray:
    """``librosa.beat.beat_track(onset_envelope=, bpm=, sr=, hop_length=)[1]`` for a mono envelope.

    Parameters
    ----------
    onset_envelope : np.ndarray, shape (t,), float32 or float64
        Onset strength per frame.
    bpm : float or np.ndarray, shape (1,)
        Tempo estimate, beats per minute.
    frame_rate : float
        Frames per second (``sr / hop_length``).

    Returns
    -------
    np.ndarray, shape (beats,), int
        Frame indices of the beats (empty for a silent envelope).
    """
    if not onset_envelope.any():
        return np.array([], dtype=int)
    dtype = np.float32 if onset_envelope.dtype == np.float32 else np.float64
    frames_per_beat = np.round(frame_rate * 60.0 / np.atleast_1d(bpm)).astype(dtype)
    onsets = (onset_envelope / (onset_envelope.std(ddof=1, axis=-1, keepdims=True) + tiny(onset_envelope)))
    onsets = onsets.astype(dtype, copy=False)
    localscore = np.empty_like(onsets)
    _local_score(onsets, frames_per_beat, localscore)
    backlink = np.empty(len(onsets), np.int32)
    cumscore = np.empty_like(onsets)
    _track_dp(localscore, frames_per_beat, np.float32(tightness), backlink, cumscore)
    beats = np.zeros(len(onsets), dtype=bool)
    _backtrack(backlink.astype(np.int64), _last_beat(cumscore), beats)
    trimmed = np.empty_like(beats)
    _trim_beats(localscore, beats, bool(trim), trimmed)
    return np.flatnonzero(trimmed)


def _last_beat(cumscore) -> int:
    """Position of the last detected beat: the last local maximum above half their median."""
    mask = ~localmax(cumscore, axis=-1)
    median = np.ma.getdata(np.ma.median(np.ma.masked_array(data=cumscore, mask=mask), axis=-1))
    out = np.empty(1, np.int64)
    _last_beat_selector(cumscore, mask, cumscore.dtype.type(0.5 * median), out)
    return int(out[0])


# ---------------------------------------------------------------------------------------------
# librosa 0.11's kernel bodies, unchanged (names, 1-D njit functions, caching: see the module docstring)


@numba.njit(cache=True)
def _local_score(onset_envelope, frames_per_beat, localscore):
    """Same-mode convolution with a Gaussian of the beat period (time-varying with one period per frame)."""
    N = len(onset_envelope)
    if len(frames_per_beat) == 1:
        window = np.exp(-0.5 * (np.arange(-frames_per_beat[0], frames_per_beat[0] + 1) * 32.0 / frames_per_beat[0]) ** 2)
        K = len(window)
        for i in range(len(onset_envelope)):
            localscore[i] = 0.
            for k in range(max(0, i + K // 2 - N + 1), min(i + K // 2, K)):
                localscore[i] += window[k] * onset_envelope[i + K//2 -k]
    elif len(frames_per_beat) == len(onset_envelope):
        for i in range(len(onset_envelope)):
            window = np.exp(-0.5 * (np.arange(-frames_per_beat[i], frames_per_beat[i] + 1) * 32.0 / frames_per_beat[i]) ** 2)
            K = 2 * int(frames_per_beat[i]) + 1
            localscore[i] = 0.
            for k in range(max(0, i + K // 2 - N + 1), min(i + K // 2, K)):
                localscore[i] += window[k] * onset_envelope[i + K // 2 - k]


@numba.njit(cache=True)
def _track_dp(localscore, frames_per_beat, tightness, backlink, cumscore):
    """Core dynamic program: each frame's best predecessor beat and cumulative score."""
    score_thresh = 0.01 * localscore.max()
    first_beat = True
    backlink[0] = -1
    cumscore[0] = localscore[0]
    tv = int(len(frames_per_beat) > 1)
    for i, score_i in enumerate(localscore):
        best_score = - np.inf
        beat_location = -1
        for loc in range(i - np.round(frames_per_beat[tv * i] / 2), i - 2 * frames_per_beat[tv * i] - 1, - 1):
            if loc < 0:
                break
            score = cumscore[loc] - tightness * (np.log(i - loc) - np.log(frames_per_beat[tv * i]))**2
            if score > best_score:
                best_score = score
                beat_location = loc
        if beat_location >= 0:
            cumscore[i] = score_i + best_score
        else:
            cumscore[i] = score_i
        if first_beat and score_i < score_thresh:
            backlink[i] = -1
        else:
            backlink[i] = beat_location
            first_beat = False


@numba.njit(cache=True)
def _trim_beats(localscore, beats, trim, beats_trimmed):
    """Remove spurious leading and trailing beats (local score below half the beats' smoothed RMS)."""
    beats_trimmed[:] = beats
    w = np.hanning(5)
    smooth_boe = np.convolve(localscore[beats], w)[len(w)//2:len(localscore)+len(w)//2]
    if trim:
        threshold = 0.5 * ((smooth_boe**2).mean()**0.5)
    else:
        threshold = 0.0
    n = 0
    while localscore[n] <= threshold:
        beats_trimmed[n] = False
        n += 1
    n = len(localscore) - 1
    while localscore[n] <= threshold:
        beats_trimmed[n] = False
        n -= 1


@numba.njit(cache=True)
def _last_beat_selector(cumscore, mask, threshold, out):
    """The last frame that is a local maximum (``not mask``) with ``cumscore >= threshold``."""
    n = len(cumscore) - 1
    out[0] = n
    while n >= 0:
        if not mask[n] and cumscore[n] >= threshold:
            out[0] = n
            break
        else:
            n -= 1


@numba.njit(cache=True)
def _backtrack(backlinks, tail, beats):
    """Mark the beats along the back-links from ``tail``."""
    n = tail
    while n >= 0:
        beats[n] = True
        n = backlinks[n]
