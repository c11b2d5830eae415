"""The naive way: each catalog feature by its documented librosa call, straight from ``y``.

Test and benchmark support, not part of the package: shared by the correctness tests and
``benchmarks/features_vs_librosa.py`` (the "naive way"), which puts ``tests/`` on its path.
Each entry calls librosa exactly as its documentation shows, from the waveform, with the
parameters of a :class:`~genaudio.config.FeatureConfig`.
"""
from __future__ import annotations

import librosa
import numpy as np

from genaudio.config import FeatureConfig


def _hp_ratio(y, c):
    h, p = librosa.decompose.hpss(librosa.stft(y, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length))
    eh, ep = float(np.nansum(np.abs(h) ** 2)), float(np.nansum(np.abs(p) ** 2))
    return [0.0 if eh + ep <= 0 else 10 * np.log10((eh + 1e-12) / (ep + 1e-12))]


def _onset_args(y, sr, c, **kw):
    """``y=y`` as documented, or (for non-default STFT/mel parameters, which the ``y=`` path of
    tempo/tempogram/beat_track cannot take) the onset envelope built with those parameters."""
    if (c.n_fft, c.n_mels, c.win_length) == (2048, 128, None):
        return {"y": y}
    return {"onset_envelope": librosa.onset.onset_strength(
        y=y, sr=sr, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length, n_mels=c.n_mels, **kw)}


def _beats(y, sr, c):
    return librosa.beat.beat_track(sr=sr, hop_length=c.hop_length,
                                   **_onset_args(y, sr, c, aggregate=np.median))[1]


def _indicator(y, sr, c):
    n = 1 + len(y) // c.hop_length
    ind = np.zeros(n)
    b = _beats(y, sr, c)
    ind[b[b < n]] = 1
    return ind


def reference(name: str, y: np.ndarray, sr: int, c: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Feature ``name`` of ``y`` computed the naive, documented way."""
    n_fft, hop, win = c.n_fft, c.hop_length, c.win_length
    cq = dict(sr=sr, hop_length=hop, fmin=c.fmin, n_chroma=c.n_chroma,
              bins_per_octave=c.bins_per_octave, n_octaves=c.n_octaves)
    mel = dict(sr=sr, n_fft=n_fft, hop_length=hop, win_length=win, n_mels=c.n_mels)
    spec = dict(sr=sr, n_fft=n_fft, hop_length=hop, win_length=win)
    y64 = y.astype(np.float64)
    rms_all = np.sqrt(np.mean(y64 ** 2))
    f = {
        "rms": lambda: librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop),
        "zero_crossing_rate": lambda: librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop),
        "peak": lambda: [np.max(np.abs(y))],
        "rms_db": lambda: [20 * np.log10(max(rms_all, 1e-6))],
        "crest_factor_db": lambda: [20 * np.log10(np.max(np.abs(y)) / rms_all) if rms_all > 0 else 0.0],
        "dc_offset": lambda: [np.mean(y64)],
        "clipping_ratio": lambda: [np.mean(np.abs(y) >= c.clip_threshold)],
        "stft_db": lambda: librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win)), ref=1.0),
        "melspectrogram": lambda: librosa.feature.melspectrogram(y=y, **mel),
        "log_mel": lambda: librosa.power_to_db(librosa.feature.melspectrogram(y=y, **mel)),
        "cqt": lambda: librosa.amplitude_to_db(np.abs(librosa.cqt(
            y, sr=sr, hop_length=hop, fmin=c.fmin, n_bins=c.n_octaves * c.bins_per_octave,
            bins_per_octave=c.bins_per_octave, tuning=None)), ref=1.0),
        "ltas": lambda: librosa.power_to_db(np.mean(np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win)) ** 2, axis=-1)),
        "ltas_mel": lambda: librosa.power_to_db(np.mean(librosa.feature.melspectrogram(y=y, **mel), axis=-1)),
        "spectral_centroid": lambda: librosa.feature.spectral_centroid(y=y, **spec),
        "spectral_bandwidth": lambda: librosa.feature.spectral_bandwidth(y=y, **spec),
        "spectral_rolloff": lambda: librosa.feature.spectral_rolloff(y=y, roll_percent=c.roll_percent, **spec),
        "spectral_flatness": lambda: librosa.feature.spectral_flatness(y=y, n_fft=n_fft, hop_length=hop, win_length=win),
        "spectral_contrast": lambda: librosa.feature.spectral_contrast(y=y, n_bands=c.n_bands, **spec),
        "poly_features": lambda: librosa.feature.poly_features(y=y, order=c.poly_order, **spec),
        "mfcc": lambda: librosa.feature.mfcc(y=y, n_mfcc=c.n_mfcc, **mel),
        "mfcc_delta": lambda: librosa.feature.delta(librosa.feature.mfcc(y=y, n_mfcc=c.n_mfcc, **mel)),
        "mfcc_delta2": lambda: librosa.feature.delta(librosa.feature.mfcc(y=y, n_mfcc=c.n_mfcc, **mel), order=2),
        "chroma_stft": lambda: librosa.feature.chroma_stft(y=y, n_chroma=c.n_chroma, **spec),
        "chroma_cqt": lambda: librosa.feature.chroma_cqt(y=y, **cq),
        "chroma_cens": lambda: librosa.feature.chroma_cens(y=y, **cq),
        "chroma_vqt": lambda: librosa.feature.chroma_vqt(y=y, sr=sr, hop_length=hop, fmin=c.fmin,
                                                         intervals=c.vqt_intervals, bins_per_octave=12,
                                                         n_octaves=c.n_octaves),
        "tonnetz": lambda: librosa.feature.tonnetz(y=y, **cq),
        "onset_strength": lambda: librosa.onset.onset_strength(y=y, **mel),
        "tempo": lambda: librosa.feature.tempo(**_onset_args(y, sr, c), sr=sr, hop_length=hop),
        "tempogram": lambda: librosa.feature.tempogram(**_onset_args(y, sr, c), sr=sr, hop_length=hop, win_length=c.tempogram_win_length),
        "fourier_tempogram": lambda: np.abs(librosa.feature.fourier_tempogram(
            **_onset_args(y, sr, c), sr=sr, hop_length=hop, win_length=c.tempogram_win_length))[..., :1 + len(y) // hop],
        "tempogram_ratio": lambda: librosa.feature.tempogram_ratio(**_onset_args(y, sr, c), sr=sr, hop_length=hop,
                                                                   win_length=c.tempogram_win_length),
        "beats": lambda: _indicator(y, sr, c),
        "beat_count": lambda: [len(_beats(y, sr, c))],
        "beat_rate": lambda: [len(_beats(y, sr, c)) / (len(y) / sr)],
        "onset_rate": lambda: [len(librosa.onset.onset_detect(**_onset_args(y, sr, c), sr=sr, hop_length=hop)) / (len(y) / sr)],
        "hp_ratio_db": lambda: _hp_ratio(y, c),
        "pyin_f0": lambda: librosa.pyin(y, fmin=c.pitch_fmin, fmax=c.pitch_fmax, sr=sr, frame_length=n_fft,
                                        hop_length=hop, fill_na=None)[0],
        "pyin_voiced_prob": lambda: librosa.pyin(y, fmin=c.pitch_fmin, fmax=c.pitch_fmax, sr=sr,
                                                 frame_length=n_fft, hop_length=hop, fill_na=None)[2],
        "yin_f0": lambda: librosa.yin(y, fmin=c.pitch_fmin, fmax=c.pitch_fmax, sr=sr, frame_length=n_fft,
                                      hop_length=hop),
    }
    return np.asarray(f[name](), dtype=np.float64)


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - ref| / max |ref| (0 when both are all zero)."""
    ours = np.asarray(ours, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    if ours.shape != ref.shape:
        return float("inf")
    scale = np.max(np.abs(ref)) if ref.size else 0.0
    diff = np.max(np.abs(ours - ref)) if ref.size else 0.0
    return 0.0 if diff == 0 else float(diff / scale) if scale > 0 else float("inf")
