"""librosa's dynamic-programming beat tracker (Ellis, 2007), without importing ``librosa.beat``.

``import librosa.beat`` compiles one of its numba kernels afresh in every process
(``__beat_local_score`` is declared ``cache=False``): ~3 s of a 4-s import on an idle 2-core
machine, paid by every extraction worker, search trial and command that computes beats. The
kernels below are librosa 0.11's (``librosa/beat.py``, ISC licence, (c) librosa development
team), copied unchanged except for their names and ``cache=True`` everywhere, so the first
process compiles them once and later ones load them from numba's cache. Same code, same numba:
the same beats (``tests/naive.py`` compares with ``librosa.beat.beat_track``).
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
    onset_envelope : np.ndarray, shape (t,)
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
    bpm = np.atleast_1d(bpm)
    frames_per_beat = np.round(frame_rate * 60.0 / bpm)
    onsets = onset_envelope / (onset_envelope.std(ddof=1, axis=-1, keepdims=True) + tiny(onset_envelope))
    localscore = _local_score(onsets, frames_per_beat)
    backlink, cumscore = _track_dp(localscore, frames_per_beat, tightness)
    beats = np.zeros_like(onset_envelope, dtype=bool)
    _backtrack(backlink, _last_beat(cumscore), beats)
    return np.flatnonzero(_trim_beats(localscore, beats, trim))


def _last_beat(cumscore):
    """Position of the last detected beat: the last local maximum above half their median."""
    mask = ~localmax(cumscore, axis=-1)
    medians = np.ma.median(np.ma.masked_array(data=cumscore, mask=mask), axis=-1)
    tail = np.empty(shape=cumscore.shape[:-1], dtype=int)
    _last_beat_selector(cumscore, mask, 0.5 * np.ma.getdata(medians), tail)
    return tail


# ---------------------------------------------------------------------------------------------
# librosa 0.11's kernels, unchanged but for names and caching


@numba.guvectorize(
        [
            "void(float32[:], float32[:], float32[:])",
            "void(float64[:], float64[:], float64[:])",
        ],
        "(t),(n)->(t)",
        nopython=True, cache=True)
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


@numba.guvectorize(
        [
            "void(float32[:], float32[:], float32, int32[:], float32[:])",
            "void(float64[:], float64[:], float32, int32[:], float64[:])",
        ],
        "(t),(n),()->(t),(t)",
        nopython=True, cache=True)
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


@numba.guvectorize(
    [
        "void(float32[:], bool_[:], bool_, bool_[:])",
        "void(float64[:], bool_[:], bool_, bool_[:])"
        ],
    "(t),(t),()->(t)",
    nopython=True, cache=True
    )
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


@numba.guvectorize(
        [
            "void(float32[:], bool_[:], float32, int64[:])",
            "void(float64[:], bool_[:], float64, int64[:])",
        ],
        "(t),(t),()->()",
        nopython=True, cache=True
        )
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


@numba.guvectorize(
        [
            "void(int32[:], int32, bool_[:])",
            "void(int64[:], int64, bool_[:])"
        ],
        "(t),()->(t)",
        nopython=True, cache=True
        )
def _backtrack(backlinks, tail, beats):
    """Mark the beats along the back-links from ``tail``."""
    n = tail
    while n >= 0:
        beats[n] = True
        n = backlinks[n]
