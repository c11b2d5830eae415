"""The feature catalog: every feature genaudio can compute, laid out in one registry.

Each :class:`FeatureSpec` says what a feature is (group, dimensionality, units), whether it is
frame-level (a ``(dims, time)`` matrix, one column per STFT hop) or clip-level (a ``(dims,)``
vector), what it costs, whether it is in the default set, which shared intermediates of the
analysis it needs (``stft``, ``mel``, ``cqt``, ``onset``, ...), and the documented librosa call
it equals (``reference``; tests check the equality).

``genaudio features list`` prints this table. The computations live in
:mod:`genaudio.features.analysis`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from genaudio.config import FeatureConfig
from genaudio.errors import ConfigError

#: Groups, in display order.
GROUPS = ("waveform", "spectrum", "spectral", "cepstral", "tonal", "rhythm", "harmonic", "pitch")

#: Shared intermediates of one analysis, with what each one is.
INTERMEDIATES = {
    "stft": "complex STFT of y (n_fft, hop_length, win_length, hann, centred), computed once",
    "magnitude": "|STFT|",
    "power": "|STFT|**2",
    "mel": "mel power spectrogram from the power STFT (n_mels bands)",
    "log_mel": "power_to_db(mel), shared by log_mel, mfcc and onset strength",
    "cqt_tuning": "tuning estimate of the CQT (piptrack on |STFT| when n_fft=2048, hop=512)",
    "cqt": "|CQT| with n_octaves * bins_per_octave bins from fmin, computed once",
    "onset": "onset strength envelope from log_mel (mean over bands), computed once",
    "onset_median": "onset envelope from the same log_mel with median aggregation (what beat_track uses)",
    "tempogram": "autocorrelation tempogram of the onset envelope",
    "tempo": "global tempo estimate from the onset envelope (bpm)",
    "beats": "beat frames tracked on the median onset envelope",
    "hpss": "harmonic/percussive separation of the complex STFT (median filtering)",
    "pyin": "pYIN pitch track (slow)",
    "mfcc": "MFCC from log_mel",
    "spectral_moments": "spectral centroid and bandwidth of |STFT| (two weighted sums over frequency)",
    "chroma_cqt": "CQT chroma (inf-normalised)",
}


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One entry of the catalog.

    Attributes
    ----------
    name : str
        Catalog name (used in configs, column names ``<name>_<dim:02d>_<stat>`` and frame columns
        ``frames_<name>``).
    group : str
        One of :data:`GROUPS`.
    frame_level : bool
        ``True``: the feature is a ``(dims, time)`` matrix with one column per ``hop_length``
        samples (``1 + len(y) // hop_length`` frames, aligned across features). ``False``: a
        clip-level ``(dims,)`` vector.
    description : str
        What it is, with units.
    cost : int
        Relative cost from the CPU time of the feature alone (with the intermediates it needs)
        on a 30 s clip at 22.05 kHz, one thread: 1 <= 20 ms, 2 <= 100 ms, 3 <= 300 ms,
        4 <= 3 s, 5 > 3 s. Features sharing intermediates cost much less together (the CQT is
        paid once for chroma_cqt, chroma_cens, tonnetz and cqt).
    default : bool
        In the default set (:func:`default_features`).
    needs : tuple of str
        Shared intermediates (keys of :data:`INTERMEDIATES`) the feature is derived from.
    reference : str
        The documented librosa call the feature equals (same parameters).
    dims_fn : callable
        ``config -> int``; use :meth:`dims`.
    """

    name: str
    group: str
    frame_level: bool
    description: str
    cost: int
    default: bool
    needs: tuple[str, ...]
    reference: str
    dims_fn: Callable[[FeatureConfig], int] = dataclasses.field(repr=False, compare=False)

    def dims(self, config: FeatureConfig | None = None) -> int:
        """Number of dimensions (rows) of the feature under ``config``."""
        return int(self.dims_fn(config or FeatureConfig()))

    def to_dict(self, config: FeatureConfig | None = None) -> dict:
        """A JSON-serialisable description (for ``features list --format json`` and manifests)."""
        return {
            "name": self.name, "group": self.group, "dims": self.dims(config),
            "frame_level": self.frame_level, "default": self.default, "cost": self.cost,
            "needs": list(self.needs), "description": self.description, "reference": self.reference,
        }


def _c(v):
    return lambda cfg: v


_SPECS: list[FeatureSpec] = []


def _add(name, group, dims, frame_level, description, *, cost, default, needs=(), reference):
    _SPECS.append(FeatureSpec(name=name, group=group, frame_level=frame_level,
                              description=description, cost=cost, default=default,
                              needs=tuple(needs), reference=reference,
                              dims_fn=dims if callable(dims) else _c(dims)))


_N_BINS = lambda c: 1 + c.n_fft // 2  # noqa: E731
# chains of shared intermediates (what each feature builds under the default config)
_MAG = ("stft", "magnitude")
_POW = _MAG + ("power",)
_MEL = _POW + ("mel",)
_LOGMEL = _MEL + ("log_mel",)
_CQT = _MAG + ("cqt_tuning", "cqt")  # the tuning estimate reads |STFT| when n_fft=2048, hop=512
_ONSET = _LOGMEL + ("onset",)
_BEATS = _LOGMEL + ("onset_median", "beats")

# --- waveform --------------------------------------------------------------------------------
_add("rms", "waveform", 1, True, "root-mean-square amplitude per frame of n_fft samples (linear, full scale = 1)",
     cost=1, default=True, reference="librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop_length)")
_add("zero_crossing_rate", "waveform", 1, True, "fraction of sign changes per frame of n_fft samples (0-1)",
     cost=1, default=True,
     reference="librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length)")
_add("peak", "waveform", 1, False, "peak absolute sample value of the clip (linear, full scale = 1)",
     cost=1, default=True, reference="np.max(np.abs(y))")
_add("rms_db", "waveform", 1, False, "RMS level of the whole clip in dBFS (floor -120 dB for silence)",
     cost=1, default=True, reference="20 * log10(max(sqrt(mean(y**2)), 1e-6))")
_add("crest_factor_db", "waveform", 1, False,
     "peak-to-RMS ratio of the clip in dB (0 dB for silence)", cost=1, default=True,
     reference="20 * log10(peak / rms)")
_add("dc_offset", "waveform", 1, False, "mean sample value of the clip (linear, full scale = 1)",
     cost=1, default=True, reference="np.mean(y)")
_add("clipping_ratio", "waveform", 1, False,
     "fraction of samples with |y| >= clip_threshold (0-1)", cost=1, default=True,
     reference="np.mean(np.abs(y) >= clip_threshold)")

# --- spectrum (time-frequency representations) --------------------------------------------------
_add("stft_db", "spectrum", _N_BINS, True,
     "log STFT magnitude, 1 + n_fft/2 linear-frequency bins (dB re 1.0, top_db 80)",
     cost=2, default=False, needs=_MAG,
     reference="librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length)), ref=1.0)")
_add("melspectrogram", "spectrum", lambda c: c.n_mels, True,
     "mel power spectrogram, n_mels bands (|STFT|**2 through mel filters, linear power)",
     cost=2, default=False, needs=_MEL,
     reference="librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)")
_add("log_mel", "spectrum", lambda c: c.n_mels, True,
     "log mel spectrogram, n_mels bands (dB re 1.0, top_db 80)",
     cost=2, default=True, needs=_LOGMEL,
     reference="librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, ...))")
_add("cqt", "spectrum", lambda c: c.n_octaves * c.bins_per_octave, True,
     "log constant-Q magnitude, n_octaves * bins_per_octave bins from fmin (dB re 1.0, top_db 80)",
     cost=3, default=False, needs=_CQT,
     reference="librosa.amplitude_to_db(np.abs(librosa.cqt(y, sr=sr, hop_length=hop_length, fmin=fmin, "
               "n_bins=n_octaves*bins_per_octave, bins_per_octave=bins_per_octave, tuning=None)), ref=1.0) "
               "(tuning estimated, as in chroma_cqt)")
_add("ltas", "spectrum", _N_BINS, False,
     "long-term average spectrum: mean power per linear STFT bin over the clip (dB re 1.0, top_db 80)",
     cost=2, default=False, needs=_POW,
     reference="librosa.power_to_db(np.mean(np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length))**2, axis=-1))")
_add("ltas_mel", "spectrum", lambda c: c.n_mels, False,
     "long-term average spectrum on the mel scale: mean mel power per band (dB re 1.0, top_db 80)",
     cost=2, default=True, needs=_MEL,
     reference="librosa.power_to_db(np.mean(librosa.feature.melspectrogram(y=y, sr=sr, ...), axis=-1))")

# --- spectral shape ----------------------------------------------------------------------------
_add("spectral_centroid", "spectral", 1, True, "magnitude-weighted mean frequency per frame (Hz)",
     cost=2, default=True, needs=_MAG + ("spectral_moments",),
     reference="librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length)")
_add("spectral_bandwidth", "spectral", 1, True, "magnitude-weighted spread around the centroid (Hz, p=2)",
     cost=2, default=True, needs=_MAG + ("spectral_moments",),
     reference="librosa.feature.spectral_bandwidth(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length)")
_add("spectral_rolloff", "spectral", 1, True, "frequency below which roll_percent of the magnitude lies (Hz)",
     cost=2, default=True, needs=_MAG,
     reference="librosa.feature.spectral_rolloff(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, roll_percent=roll_percent)")
_add("spectral_flatness", "spectral", 1, True,
     "geometric / arithmetic mean of the power spectrum per frame (0 tonal - 1 noise-like)",
     cost=2, default=True, needs=_MAG,
     reference="librosa.feature.spectral_flatness(y=y, n_fft=n_fft, hop_length=hop_length)")
_add("spectral_contrast", "spectral", lambda c: c.n_bands + 1, True,
     "peak-valley difference per octave sub-band from 200 Hz, n_bands + 1 rows (dB)",
     cost=2, default=True, needs=_MAG,
     reference="librosa.feature.spectral_contrast(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_bands=n_bands)")
_add("poly_features", "spectral", lambda c: c.poly_order + 1, True,
     "coefficients of a poly_order polynomial fitted to each magnitude spectrum (highest order first)",
     cost=2, default=False, needs=_MAG,
     reference="librosa.feature.poly_features(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, order=poly_order)")

# --- cepstral ----------------------------------------------------------------------------------
_add("mfcc", "cepstral", lambda c: c.n_mfcc, True, "mel-frequency cepstral coefficients (DCT-II of log_mel, dB units)",
     cost=2, default=True, needs=_LOGMEL + ("mfcc",),
     reference="librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)")
_add("mfcc_delta", "cepstral", lambda c: c.n_mfcc, True, "first time derivative of mfcc (per frame, width 9)",
     cost=2, default=False, needs=_LOGMEL + ("mfcc",),
     reference="librosa.feature.delta(mfcc)")
_add("mfcc_delta2", "cepstral", lambda c: c.n_mfcc, True, "second time derivative of mfcc (per frame^2, width 9)",
     cost=2, default=False, needs=_LOGMEL + ("mfcc",),
     reference="librosa.feature.delta(mfcc, order=2)")

# --- tonal -------------------------------------------------------------------------------------
_add("chroma_stft", "tonal", lambda c: c.n_chroma, True,
     "pitch-class energy from the power STFT, tuning estimated, max-normalised per frame (0-1)",
     cost=2, default=True, needs=_POW,
     reference="librosa.feature.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_chroma=n_chroma)")
_add("chroma_cqt", "tonal", lambda c: c.n_chroma, True,
     "pitch-class energy from the CQT, max-normalised per frame (0-1)",
     cost=3, default=True, needs=_CQT + ("chroma_cqt",),
     reference="librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=hop_length, fmin=fmin, n_chroma=n_chroma, "
               "bins_per_octave=bins_per_octave, n_octaves=n_octaves)")
_add("chroma_cens", "tonal", lambda c: c.n_chroma, True,
     "chroma energy normalised statistics (quantised, smoothed over 41 frames, unit L2 norm)",
     cost=3, default=True, needs=_CQT,
     reference="librosa.feature.chroma_cens(y=y, sr=sr, hop_length=hop_length, fmin=fmin, n_chroma=n_chroma, "
               "bins_per_octave=bins_per_octave, n_octaves=n_octaves)")
_add("chroma_vqt", "tonal", lambda c: 12, True,
     "pitch-class energy from a just-intonation VQT (vqt_intervals, 12 bins/octave), max-normalised; "
     "opt-in, computes its own VQT", cost=3, default=False, needs=(),
     reference="librosa.feature.chroma_vqt(y=y, sr=sr, hop_length=hop_length, fmin=fmin, intervals=vqt_intervals, "
               "bins_per_octave=12, n_octaves=n_octaves)")
_add("tonnetz", "tonal", 6, True,
     "tonal centroid: fifths, minor and major thirds as (sin, cos) pairs of the L1-normalised CQT chroma",
     cost=3, default=True, needs=_CQT + ("chroma_cqt",),
     reference="librosa.feature.tonnetz(y=y, sr=sr, hop_length=hop_length, fmin=fmin, n_chroma=n_chroma, "
               "bins_per_octave=bins_per_octave, n_octaves=n_octaves)")

# --- rhythm ------------------------------------------------------------------------------------
_add("onset_strength", "rhythm", 1, True, "spectral flux of log_mel (mean positive dB increase per frame)",
     cost=2, default=True, needs=_ONSET,
     reference="librosa.onset.onset_strength(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)")
_add("tempo", "rhythm", 1, False, "global tempo estimate of the clip (beats per minute)",
     cost=2, default=True, needs=_ONSET + ("tempo",),
     reference="librosa.feature.tempo(y=y, sr=sr, hop_length=hop_length)")
_add("tempogram", "rhythm", lambda c: c.tempogram_win_length, True,
     "local autocorrelation of the onset envelope, one row per lag of 0..win_length-1 frames (max-normalised)",
     cost=2, default=True, needs=_ONSET + ("tempogram",),
     reference="librosa.feature.tempogram(y=y, sr=sr, hop_length=hop_length, win_length=tempogram_win_length)")
_add("fourier_tempogram", "rhythm", lambda c: c.tempogram_win_length // 2 + 1, True,
     "magnitude of the short-time Fourier transform of the onset envelope (tempo frequencies)",
     cost=2, default=False, needs=_ONSET,
     reference="np.abs(librosa.feature.fourier_tempogram(y=y, sr=sr, hop_length=hop_length, win_length=tempogram_win_length))")
_add("tempogram_ratio", "rhythm", 13, True,
     "tempogram energy at 13 metrical ratios of the per-frame tempo (4, 8/3, 3, 2, ..., 1/4)",
     cost=3, default=False, needs=_ONSET + ("tempogram",),
     reference="librosa.feature.tempogram_ratio(y=y, sr=sr, hop_length=hop_length, win_length=tempogram_win_length)")
_add("beats", "rhythm", 1, True, "beat indicator per frame (1 on a tracked beat, else 0)",
     cost=2, default=False, needs=_BEATS,
     reference="librosa.beat.beat_track(y=y, sr=sr, hop_length=hop_length)[1] as a frame indicator")
_add("beat_count", "rhythm", 1, False, "number of tracked beats in the clip",
     cost=2, default=True, needs=_BEATS,
     reference="len(librosa.beat.beat_track(y=y, sr=sr, hop_length=hop_length)[1])")
_add("beat_rate", "rhythm", 1, False, "tracked beats per second of audio (Hz)",
     cost=2, default=True, needs=_BEATS,
     reference="beat_count / (len(y) / sr)")
_add("onset_rate", "rhythm", 1, False, "detected onsets per second of audio (Hz)",
     cost=2, default=True, needs=_ONSET,
     reference="len(librosa.onset.onset_detect(y=y, sr=sr, hop_length=hop_length)) / (len(y) / sr)")

# --- harmonic / percussive ---------------------------------------------------------------------
_add("hp_ratio_db", "harmonic", 1, False,
     "harmonic-to-percussive energy ratio of the clip from median-filter HPSS (dB; 0 dB for silence)",
     cost=4, default=False, needs=("stft", "hpss"),
     reference="H, P = librosa.decompose.hpss(librosa.stft(y, ...)); 10*log10(nansum |H|^2 / nansum |P|^2)")

# --- pitch -------------------------------------------------------------------------------------
_add("pyin_f0", "pitch", 1, True,
     "pYIN fundamental frequency per frame between pitch_fmin and pitch_fmax (Hz; best guess in "
     "unvoiced frames); opt-in, slow", cost=5, default=False, needs=("pyin",),
     reference="librosa.pyin(y, fmin=pitch_fmin, fmax=pitch_fmax, sr=sr, frame_length=n_fft, "
               "hop_length=hop_length, fill_na=None)[0]")
_add("pyin_voiced_prob", "pitch", 1, True, "pYIN voicing probability per frame (0-1); opt-in, slow",
     cost=5, default=False, needs=("pyin",),
     reference="librosa.pyin(y, fmin=pitch_fmin, fmax=pitch_fmax, sr=sr, frame_length=n_fft, "
               "hop_length=hop_length, fill_na=None)[2]")
_add("yin_f0", "pitch", 1, True, "YIN fundamental frequency per frame (Hz), no voicing decision",
     cost=3, default=False, needs=(),
     reference="librosa.yin(y, fmin=pitch_fmin, fmax=pitch_fmax, sr=sr, frame_length=n_fft, hop_length=hop_length)")

#: The catalog: name -> spec, in display order.
CATALOG: dict[str, FeatureSpec] = {s.name: s for s in _SPECS}

#: Public ``librosa.feature`` functions that are not features of a signal, with the reason.
LIBROSA_EXCLUDED = {
    "delta": "utility over another feature; offered as mfcc_delta / mfcc_delta2 and the delta_* stats",
    "stack_memory": "utility that stacks delayed copies of another feature (no new information)",
    "inverse": "namespace of inversions (mel/mfcc back to audio), not features",
}

#: Public ``librosa.feature`` functions and the catalog entry covering each.
LIBROSA_COVERAGE = {
    "chroma_cens": "chroma_cens", "chroma_cqt": "chroma_cqt", "chroma_stft": "chroma_stft",
    "chroma_vqt": "chroma_vqt", "fourier_tempogram": "fourier_tempogram",
    "melspectrogram": "melspectrogram", "mfcc": "mfcc", "poly_features": "poly_features", "rms": "rms",
    "spectral_bandwidth": "spectral_bandwidth", "spectral_centroid": "spectral_centroid",
    "spectral_contrast": "spectral_contrast", "spectral_flatness": "spectral_flatness",
    "spectral_rolloff": "spectral_rolloff", "tempo": "tempo", "tempogram": "tempogram",
    "tempogram_ratio": "tempogram_ratio", "tonnetz": "tonnetz", "zero_crossing_rate": "zero_crossing_rate",
}


def default_features(config: FeatureConfig | None = None) -> tuple[str, ...]:
    """The default feature set, in catalog order (``config`` reserved for config-dependent sets)."""
    return tuple(name for name, s in CATALOG.items() if s.default)


def resolve(features=None, config: FeatureConfig | None = None) -> tuple[str, ...]:
    """Validate feature names; ``None`` or empty means ``config.features`` or else the default set.

    Raises
    ------
    ConfigError
        For an unknown name, listing the valid ones.
    """
    config = config or FeatureConfig()
    if isinstance(features, str):
        features = (features,)
    names = tuple(features) if features else (tuple(config.features) or default_features(config))
    unknown = [n for n in names if n not in CATALOG]
    if unknown:
        raise ConfigError(
            f"unknown feature(s) {', '.join(map(repr, unknown))}; valid features are: {', '.join(CATALOG)}"
        )
    seen: dict[str, None] = {}
    for n in names:
        seen.setdefault(n, None)
    return tuple(seen)


def feature_table(features=None, config: FeatureConfig | None = None) -> dict[str, dict]:
    """``{name: {group, dims, frame}}`` for a features-store manifest."""
    config = config or FeatureConfig()
    return {n: {"group": CATALOG[n].group, "dims": CATALOG[n].dims(config), "frame": CATALOG[n].frame_level}
            for n in resolve(features, config)}
