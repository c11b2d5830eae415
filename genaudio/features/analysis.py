"""One shared analysis per clip: every requested feature from one STFT, one CQT, one onset envelope.

:class:`Analysis` holds a clip and computes shared intermediates lazily, each at most once
(``analysis.computed`` lists the ones that were built, in order). Each catalog feature is a small
function of the analysis that calls the documented librosa building block on the shared
intermediate (``S=``, ``C=``, ``chroma=``, ``onset_envelope=``, ``tg=``), so results equal the
documented calls from ``y`` (tests check it) while the expensive parts run once:

* STFT once; magnitude and power derived from it; the mel spectrogram from the power STFT;
  ``power_to_db(mel)`` shared by ``log_mel``, ``mfcc`` and the onset envelope.
* CQT once (with one tuning estimate, taken from the shared |STFT| when the STFT has librosa's
  default n_fft=2048 / hop=512, which is exactly what ``librosa.cqt`` would compute internally)
  for ``chroma_cqt``, ``chroma_cens``, ``tonnetz`` and ``cqt``.
* Onset envelope once for tempo, tempogram, Fourier tempogram, tempogram ratio and onsets
  (beats use the median-aggregated envelope of the same log_mel, as ``beat_track`` does).

Only what the requested features need is computed: asking for ``mfcc`` never builds the CQT.

Where librosa's own implementation spends time on work its definition does not need (spectral
moments, rolloff, zero crossings, the tempogram behind tempo and beats), the computation goes
through :mod:`genaudio.features._fast`, which keeps the definitions (tests compare each with the
documented call). :meth:`Analysis.provide` lets the batched torch path
(:mod:`genaudio.features.torch_frames`) hand in intermediates and features it computed.
"""
from __future__ import annotations

import warnings
from typing import Callable, Iterable

import librosa
import numpy as np

from genaudio.config import FeatureConfig
from genaudio.errors import AudioError, ConfigError
from genaudio.features import _fast
from genaudio.features._cqt import cqt_magnitude, estimate_tuning
from genaudio.features.catalog import CATALOG, resolve

_EPS = 1e-12


class Analysis:
    """Lazy, shared intermediates of one mono clip.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio, float, full scale = 1.
    sr : int
        Sample rate (Hz).
    config : FeatureConfig
        Analysis parameters.

    Attributes
    ----------
    computed : list of str
        Names of the intermediates built so far, in order (see
        :data:`genaudio.features.catalog.INTERMEDIATES`).
    """

    def __init__(self, y: np.ndarray, sr: int, *, config: FeatureConfig | None = None):
        y = np.asarray(y)
        if y.ndim != 1:
            raise AudioError(f"features need mono audio of shape (n,), got shape {y.shape}")
        if y.size == 0:
            raise AudioError("cannot compute features of an empty signal")
        if not np.issubdtype(y.dtype, np.floating):
            raise AudioError(f"features need floating-point samples, got {y.dtype}")
        if not np.all(np.isfinite(y)):
            raise AudioError("signal contains NaN or infinite samples")
        if sr is None or sr <= 0:
            raise ConfigError(f"sample rate must be positive, got {sr}")
        self.y = np.ascontiguousarray(y, dtype=np.float32)
        self.sr = int(sr)
        self.config = config or FeatureConfig()
        self.computed: list[str] = []
        self._cache: dict[str, object] = {}

    # -- caching ----------------------------------------------------------------------------
    def _get(self, key: str, build: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = build()
            self.computed.append(key)
        return self._cache[key]

    def provide(self, key: str, value) -> None:
        """Put an intermediate (a key of :data:`~genaudio.features.catalog.INTERMEDIATES`) or a
        finished feature (``"feature:<name>"``, float32 in its final shape) computed elsewhere,
        e.g. by the batched torch path (:mod:`genaudio.features.torch_frames`)."""
        if key not in self._cache:
            self._cache[key] = value
            if not key.startswith("feature:"):
                self.computed.append(key)

    @property
    def duration_s(self) -> float:
        return len(self.y) / self.sr

    @property
    def n_frames(self) -> int:
        """Frames of every frame-level feature (centred STFT framing)."""
        return 1 + len(self.y) // self.config.hop_length

    # -- shared intermediates ------------------------------------------------------------------
    @property
    def stft(self) -> np.ndarray:
        c = self.config
        return self._get("stft", lambda: librosa.stft(self.y, n_fft=c.n_fft, hop_length=c.hop_length,
                                                      win_length=c.win_length, window="hann",
                                                      center=True, pad_mode="constant"))

    @property
    def magnitude(self) -> np.ndarray:
        return self._get("magnitude", lambda: np.abs(self.stft))

    @property
    def power(self) -> np.ndarray:
        # exactly what librosa's _spectrogram(power=2) computes: np.abs(stft) ** 2
        return self._get("power", lambda: self.magnitude ** 2)

    @property
    def mel(self) -> np.ndarray:
        c = self.config
        return self._get("mel", lambda: librosa.feature.melspectrogram(
            S=self.power, sr=self.sr, n_fft=c.n_fft, n_mels=c.n_mels))

    @property
    def log_mel(self) -> np.ndarray:
        return self._get("log_mel", lambda: librosa.power_to_db(self.mel))

    @property
    def mfcc(self) -> np.ndarray:
        return self._get("mfcc", lambda: librosa.feature.mfcc(S=self.log_mel, sr=self.sr,
                                                              n_mfcc=self.config.n_mfcc))

    def _cqt_tuning(self) -> float:
        c = self.config
        # librosa.cqt(tuning=None) runs estimate_tuning(y=y), i.e. piptrack on |stft(y)| with
        # n_fft=2048 and hop 512; with those STFT parameters the shared magnitude is that array.
        if c.n_fft == 2048 and c.hop_length == 512 and c.win_length in (None, 2048):
            return estimate_tuning(self.magnitude, sr=self.sr, bins_per_octave=c.bins_per_octave)
        return float(librosa.estimate_tuning(y=self.y, sr=self.sr, bins_per_octave=c.bins_per_octave))

    @property
    def cqt_tuning(self) -> float:
        return self._get("cqt_tuning", self._cqt_tuning)

    @property
    def cqt(self) -> np.ndarray:
        c = self.config
        # np.abs(librosa.cqt(...)) with the wavelet filter bank memoised across clips
        return self._get("cqt", lambda: cqt_magnitude(
            self.y, sr=self.sr, hop_length=c.hop_length, fmin=c.fmin,
            n_bins=c.n_octaves * c.bins_per_octave, bins_per_octave=c.bins_per_octave,
            tuning=self.cqt_tuning))

    @property
    def chroma_cqt(self) -> np.ndarray:
        c = self.config
        return self._get("chroma_cqt", lambda: librosa.feature.chroma_cqt(
            C=self.cqt, sr=self.sr, hop_length=c.hop_length, fmin=c.fmin, n_chroma=c.n_chroma,
            bins_per_octave=c.bins_per_octave, n_octaves=c.n_octaves))

    @property
    def onset(self) -> np.ndarray:
        return self._get("onset", lambda: librosa.onset.onset_strength(
            S=self.log_mel, sr=self.sr, n_fft=self.config.n_fft, hop_length=self.config.hop_length))

    @property
    def tempogram(self) -> np.ndarray:
        c = self.config
        return self._get("tempogram", lambda: _fast.tempogram(self.onset, win_length=c.tempogram_win_length))

    @property
    def tempo(self) -> np.ndarray:
        return self._get("tempo", lambda: _fast.tempo(self.onset, sr=self.sr, hop_length=self.config.hop_length))

    @property
    def onset_median(self) -> np.ndarray:
        # beat_track(y=...) aggregates the band-wise flux by the median, not the mean: derive that
        # envelope from the same log_mel (cheap) so beats equal the documented call
        return self._get("onset_median", lambda: librosa.onset.onset_strength(
            S=self.log_mel, sr=self.sr, n_fft=self.config.n_fft, hop_length=self.config.hop_length,
            aggregate=np.median))

    @property
    def beats(self) -> np.ndarray:
        return self._get("beats", lambda: _fast.beat_track(
            self.onset_median, sr=self.sr, hop_length=self.config.hop_length))

    @property
    def spectral_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """(centroid, bandwidth) of the magnitude, both ``(1, time)`` in Hz."""
        return self._get("spectral_moments", lambda: _fast.spectral_moments(self.magnitude, sr=self.sr))

    @property
    def hpss(self) -> tuple[np.ndarray, np.ndarray]:
        return self._get("hpss", lambda: librosa.decompose.hpss(self.stft))

    @property
    def pyin(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = self.config
        return self._get("pyin", lambda: librosa.pyin(
            self.y, fmin=c.pitch_fmin, fmax=c.pitch_fmax, sr=self.sr, frame_length=c.n_fft,
            hop_length=c.hop_length, fill_na=None))

    # -- features -----------------------------------------------------------------------------
    def feature(self, name: str) -> np.ndarray:
        """One catalog feature: ``(dims, time)`` float32 if frame-level, else ``(dims,)``."""
        if name not in _COMPUTE:
            resolve([name])  # raises ConfigError listing valid names
        key = f"feature:{name}"
        if key not in self._cache:
            with warnings.catch_warnings():
                # librosa warns on very short or silent input (n_fft larger than the signal,
                # empty tuning set); the results are still defined and finite.
                warnings.simplefilter("ignore", UserWarning)
                out = np.asarray(_COMPUTE[name](self), dtype=np.float32)
            spec = CATALOG[name]
            out = out.reshape(-1, out.shape[-1]) if spec.frame_level else out.reshape(-1)
            self._cache[key] = out
        return self._cache[key]

    def compute(self, features: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Several features by name (``None``: ``config.features`` or the default set)."""
        names = resolve(features, self.config)
        return {n: self.feature(n) for n in names}


# ---------------------------------------------------------------------------------------------
# Feature functions (one per catalog entry)


def _rms_db(a: Analysis) -> float:
    return 20.0 * np.log10(max(float(np.sqrt(np.mean(a.y.astype(np.float64) ** 2))), 1e-6))


def _crest_db(a: Analysis) -> float:
    peak = float(np.max(np.abs(a.y)))
    rms = float(np.sqrt(np.mean(a.y.astype(np.float64) ** 2)))
    if peak <= 0.0 or rms <= 0.0:
        return 0.0  # silence: no peak above the RMS
    return 20.0 * np.log10(peak / rms)


def _delta(x: np.ndarray, order: int) -> np.ndarray:
    # librosa's default width 9 needs >= 9 frames in "interp" mode; shorter inputs use "nearest"
    mode = "interp" if x.shape[-1] >= 9 else "nearest"
    return librosa.feature.delta(x, order=order, mode=mode)


def _beat_indicator(a: Analysis) -> np.ndarray:
    ind = np.zeros(a.n_frames, dtype=np.float32)
    beats = np.asarray(a.beats, dtype=int)
    ind[beats[beats < len(ind)]] = 1.0
    return ind


def _hp_ratio_db(a: Analysis) -> float:
    h, p = a.hpss
    # librosa's soft masks are 0/0 = NaN where both median-filtered spectra vanish (silent bins
    # of very short clips); those bins hold no energy, so NaN counts as 0
    eh = float(np.nansum(np.abs(h) ** 2))
    ep = float(np.nansum(np.abs(p) ** 2))
    if eh + ep <= 0.0:
        return 0.0  # silence: neither part dominates
    return 10.0 * np.log10((eh + _EPS) / (ep + _EPS))


def _cfg(a):
    return a.config


_COMPUTE: dict[str, Callable[[Analysis], np.ndarray]] = {
    # waveform
    "rms": lambda a: librosa.feature.rms(y=a.y, frame_length=_cfg(a).n_fft, hop_length=_cfg(a).hop_length),
    "zero_crossing_rate": lambda a: _fast.zero_crossing_rate(
        a.y, frame_length=_cfg(a).n_fft, hop_length=_cfg(a).hop_length),
    "peak": lambda a: [np.max(np.abs(a.y))],
    "rms_db": lambda a: [_rms_db(a)],
    "crest_factor_db": lambda a: [_crest_db(a)],
    "dc_offset": lambda a: [np.mean(a.y.astype(np.float64))],
    "clipping_ratio": lambda a: [np.mean(np.abs(a.y) >= _cfg(a).clip_threshold)],
    # spectrum
    "stft_db": lambda a: librosa.amplitude_to_db(a.magnitude, ref=1.0),
    "melspectrogram": lambda a: a.mel,
    "log_mel": lambda a: a.log_mel,
    "cqt": lambda a: librosa.amplitude_to_db(a.cqt, ref=1.0),
    "ltas": lambda a: librosa.power_to_db(np.mean(a.power, axis=-1)),
    "ltas_mel": lambda a: librosa.power_to_db(np.mean(a.mel, axis=-1)),
    # spectral shape
    "spectral_centroid": lambda a: a.spectral_moments[0],
    "spectral_bandwidth": lambda a: a.spectral_moments[1],
    "spectral_rolloff": lambda a: _fast.spectral_rolloff(a.magnitude, sr=a.sr, roll_percent=_cfg(a).roll_percent),
    "spectral_flatness": lambda a: librosa.feature.spectral_flatness(S=a.magnitude),
    "spectral_contrast": lambda a: librosa.feature.spectral_contrast(
        S=a.magnitude, sr=a.sr, n_bands=_cfg(a).n_bands),
    "poly_features": lambda a: librosa.feature.poly_features(S=a.magnitude, sr=a.sr, order=_cfg(a).poly_order),
    # cepstral
    "mfcc": lambda a: a.mfcc,
    "mfcc_delta": lambda a: _delta(a.mfcc, 1),
    "mfcc_delta2": lambda a: _delta(a.mfcc, 2),
    # tonal
    # chroma_stft(tuning=None) runs estimate_tuning(S=power, bins_per_octave=n_chroma): same, faster
    "chroma_stft": lambda a: librosa.feature.chroma_stft(
        S=a.power, sr=a.sr, n_chroma=_cfg(a).n_chroma,
        tuning=estimate_tuning(a.power, sr=a.sr, bins_per_octave=_cfg(a).n_chroma)),
    "chroma_cqt": lambda a: a.chroma_cqt,
    "chroma_cens": lambda a: librosa.feature.chroma_cens(
        C=a.cqt, sr=a.sr, hop_length=_cfg(a).hop_length, fmin=_cfg(a).fmin, n_chroma=_cfg(a).n_chroma,
        bins_per_octave=_cfg(a).bins_per_octave, n_octaves=_cfg(a).n_octaves),
    "chroma_vqt": lambda a: librosa.feature.chroma_vqt(
        y=a.y, sr=a.sr, hop_length=_cfg(a).hop_length, fmin=_cfg(a).fmin, intervals=_cfg(a).vqt_intervals,
        bins_per_octave=12, n_octaves=_cfg(a).n_octaves),
    "tonnetz": lambda a: librosa.feature.tonnetz(chroma=a.chroma_cqt, sr=a.sr),
    # rhythm
    "onset_strength": lambda a: a.onset,
    "tempo": lambda a: a.tempo,
    "tempogram": lambda a: a.tempogram,
    # librosa returns one more column than onset frames (centred STFT with hop 1); the last is
    # dropped so that every frame-level feature has the same time axis
    "fourier_tempogram": lambda a: np.abs(librosa.feature.fourier_tempogram(
        onset_envelope=a.onset, sr=a.sr, hop_length=_cfg(a).hop_length,
        win_length=_cfg(a).tempogram_win_length))[..., :len(a.onset)],
    "tempogram_ratio": lambda a: librosa.feature.tempogram_ratio(
        tg=a.tempogram, sr=a.sr, hop_length=_cfg(a).hop_length, win_length=_cfg(a).tempogram_win_length),
    "beats": _beat_indicator,
    "beat_count": lambda a: [len(a.beats)],
    "beat_rate": lambda a: [len(a.beats) / a.duration_s],
    "onset_rate": lambda a: [len(librosa.onset.onset_detect(
        onset_envelope=a.onset, sr=a.sr, hop_length=_cfg(a).hop_length)) / a.duration_s],
    # harmonic / percussive
    "hp_ratio_db": lambda a: [_hp_ratio_db(a)],
    # pitch
    "pyin_f0": lambda a: a.pyin[0],
    "pyin_voiced_prob": lambda a: a.pyin[2],
    "yin_f0": lambda a: librosa.yin(a.y, fmin=_cfg(a).pitch_fmin, fmax=_cfg(a).pitch_fmax, sr=a.sr,
                                    frame_length=_cfg(a).n_fft, hop_length=_cfg(a).hop_length),
}

assert set(_COMPUTE) == set(CATALOG), sorted(set(_COMPUTE) ^ set(CATALOG))


def compute(y: np.ndarray, sr: int, *, config: FeatureConfig | None = None,
            features: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Compute catalog features of one clip from one shared analysis.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio (float, full scale = 1), e.g. from ``genaudio.audio.load``.
    sr : int
        Sample rate of ``y`` in Hz.
    config : FeatureConfig
        Analysis parameters (n_fft, hop_length, n_mels, ...).
    features : iterable of str, optional
        Catalog names; ``None`` means ``config.features`` or, if empty, the default set.

    Returns
    -------
    dict of str -> np.ndarray
        Frame-level features as float32 ``(dims, time)`` with ``time = 1 + n // hop_length``;
        clip-level features as float32 ``(dims,)``. Keys in the order requested.

    Raises
    ------
    ConfigError
        An unknown feature name (the message lists the valid ones).
    AudioError
        ``y`` is not a finite, non-empty, mono float signal.
    """
    return Analysis(y, sr, config=config).compute(features)
