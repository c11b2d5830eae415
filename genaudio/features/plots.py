"""Figures of one clip, drawn as a researcher would: time in seconds, frequency in Hz, level in dB.

:func:`plot_clip` writes one PNG per view (waveform, log spectrogram, mel spectrogram, MFCC,
chroma, long-term average spectrum, spectral shape curves, onsets and beats, tempogram, tonnetz)
from one shared analysis (:class:`genaudio.features.Analysis`), so the figures show exactly the
catalog features. matplotlib runs on the Agg backend (no display needed).
"""
from __future__ import annotations

import dataclasses

from pathlib import Path

import numpy as np

from genaudio.config import FeatureConfig
from genaudio.features.analysis import Analysis

#: Catalog features the figures draw (computed once for plots and summary alike).
PLOT_FEATURES = ("stft_db", "log_mel", "mfcc", "chroma_stft", "chroma_cqt", "chroma_cens", "ltas",
                 "spectral_centroid", "spectral_bandwidth", "spectral_rolloff", "spectral_flatness",
                 "rms", "zero_crossing_rate", "onset_strength", "beats", "tempo", "tempogram", "tonnetz")


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@dataclasses.dataclass
class _Clip:
    """What every figure of :func:`plot_clip` draws from: the features, their time axis, labels."""

    y: np.ndarray
    sr: int
    config: FeatureConfig
    f: dict
    t: np.ndarray     # frame times (s)
    sup: str          # " - <title>" or ""

    @property
    def spec_kw(self) -> dict:
        return dict(sr=self.sr, hop_length=self.config.hop_length, x_axis="time")


def plot_clip(y: np.ndarray, sr: int, out_dir: str | Path, *, config: FeatureConfig | None = None,
              title: str = "", analysis: Analysis | None = None, dpi: int = 110) -> list[Path]:
    """Write PNG figures of one clip to ``out_dir`` (one per entry of :data:`CLIP_FIGURES`).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio.
    sr : int
        Sample rate in Hz.
    out_dir : path
        Folder for the PNGs (created).
    config : FeatureConfig
        Analysis parameters.
    title : str
        Shown in every figure title (e.g. the file name).
    analysis : Analysis, optional
        A shared analysis of ``y`` to reuse (e.g. the one the summary was computed from).

    Returns
    -------
    list of Path
        The PNG files written.
    """
    import librosa

    plt = _mpl()
    config = config or FeatureConfig()
    a = analysis or Analysis(y, sr, config=config)
    f = a.compute(PLOT_FEATURES)
    t = librosa.times_like(f["rms"], sr=sr, hop_length=config.hop_length)[: f["rms"].shape[-1]]
    clip = _Clip(a.y, sr, config, f, t, f" - {title}" if title else "")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, draw in CLIP_FIGURES:
        fig = draw(plt, clip)
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def _waveform(plt, c: _Clip):
    """The waveform with the RMS envelope."""
    import librosa.display

    fig, ax = plt.subplots(figsize=(10, 3))
    librosa.display.waveshow(c.y, sr=c.sr, ax=ax, color="0.55", label="waveform")
    ax.plot(c.t, c.f["rms"][0], color="C3", lw=1.2, label="RMS (frame)")
    ax.plot(c.t, -c.f["rms"][0], color="C3", lw=1.2)
    ax.set(title=f"Waveform{c.sup}", xlabel="Time (s)", ylabel="Amplitude (full scale = 1)")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def _image(plt, c: _Clip, data, *, title: str, ylabel: str, colorbar: str, size=(10, 4), db: bool = False,
           **show):
    """One time-frequency image with its colour bar (spectrograms, MFCC, tempogram, tonnetz)."""
    import librosa.display

    fig, ax = plt.subplots(figsize=size)
    img = librosa.display.specshow(data, ax=ax, **show, **c.spec_kw)
    ax.set(title=f"{title}{c.sup}", xlabel="Time (s)", ylabel=ylabel)
    fig.colorbar(img, ax=ax, label=colorbar, **({"format": "%+2.0f dB"} if db else {}))
    return fig, ax


def _chroma(plt, c: _Clip):
    """Chromagrams: STFT, CQT, CENS."""
    import librosa.display

    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    for ax, name in zip(axes, ("chroma_stft", "chroma_cqt", "chroma_cens")):
        img = librosa.display.specshow(c.f[name], y_axis="chroma", ax=ax, cmap="magma", **c.spec_kw)
        ax.set(title=name, ylabel="Pitch class", xlabel="")
        fig.colorbar(img, ax=ax, label="Energy (normalised)")
    axes[-1].set_xlabel("Time (s)")
    fig.suptitle(f"Chromagrams{c.sup}")
    return fig


def _ltas(plt, c: _Clip):
    """The long-term average spectrum."""
    import librosa

    fig, ax = plt.subplots(figsize=(10, 4))
    freqs = librosa.fft_frequencies(sr=c.sr, n_fft=c.config.n_fft)
    ax.semilogx(freqs[1:], c.f["ltas"][1:], color="C0")
    ax.set(title=f"Long-term average spectrum{c.sup}", xlabel="Frequency (Hz)",
           ylabel="Mean power (dB re 1.0)", xlim=(max(freqs[1], 20.0), c.sr / 2))
    ax.grid(True, which="both", alpha=0.3)
    return fig


def _spectral_shape(plt, c: _Clip):
    """Centroid, bandwidth and roll-off over the spectrogram; flatness and ZCR below."""
    import librosa.display

    f, t = c.f, c.t
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    ax = axes[0]
    librosa.display.specshow(f["stft_db"], y_axis="log", ax=ax, cmap="gray_r", alpha=0.6, **c.spec_kw)
    cen, bw = f["spectral_centroid"][0], f["spectral_bandwidth"][0]
    ax.fill_between(t, np.maximum(cen - bw, 1.0), cen + bw, color="C0", alpha=0.25, label="centroid ± bandwidth")
    ax.plot(t, cen, color="C0", lw=1.2, label="spectral centroid")
    ax.plot(t, f["spectral_rolloff"][0], color="C3", lw=1.2, label=f"roll-off ({c.config.roll_percent:.0%})")
    ax.set(title=f"Spectral shape{c.sup}", ylabel="Frequency (Hz)", xlabel="")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    ax.plot(t, f["spectral_flatness"][0], color="C2", label="spectral flatness")
    ax.plot(t, f["zero_crossing_rate"][0], color="C1", label="zero-crossing rate")
    ax.set(xlabel="Time (s)", ylabel="Ratio (0-1)", ylim=(0, None))
    ax.legend(loc="upper right", fontsize=8)
    return fig


def _onsets_beats(plt, c: _Clip):
    """Onset strength with the tracked beats."""
    f, t = c.f, c.t
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.plot(t, f["onset_strength"][0], color="C0", label="onset strength")
    beat_t = t[f["beats"][0] > 0]
    ax.vlines(beat_t, 0, float(np.max(f["onset_strength"])) or 1.0, color="C3", alpha=0.6, linestyle="--",
              label=f"beats ({len(beat_t)})")
    ax.set(title=f"Onset strength and beats, tempo {float(f['tempo'][0]):.1f} BPM{c.sup}", xlabel="Time (s)",
           ylabel="Spectral flux (dB)")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def _tempogram(plt, c: _Clip):
    tempo = float(c.f["tempo"][0])
    fig, ax = _image(plt, c, c.f["tempogram"], title="Tempogram (autocorrelation)", ylabel="Tempo (BPM)",
                     colorbar="Autocorrelation (normalised)", y_axis="tempo", cmap="magma")
    ax.axhline(tempo, color="w", linestyle="--", alpha=0.8, label=f"tempo {tempo:.1f} BPM")
    ax.legend(loc="upper right", fontsize=8)
    return fig


#: The figures of :func:`plot_clip`, in order: (PNG name, drawing function).
CLIP_FIGURES = (
    ("waveform", _waveform),
    ("spectrogram", lambda plt, c: _image(
        plt, c, c.f["stft_db"], title=f"Spectrogram (STFT, n_fft={c.config.n_fft})", ylabel="Frequency (Hz)",
        colorbar="Level (dB re 1.0)", db=True, y_axis="log")[0]),
    ("mel_spectrogram", lambda plt, c: _image(
        plt, c, c.f["log_mel"], title=f"Mel spectrogram ({c.config.n_mels} bands)",
        ylabel="Frequency (Hz, mel scale)", colorbar="Level (dB re 1.0)", db=True, y_axis="mel")[0]),
    ("mfcc", lambda plt, c: _image(
        plt, c, c.f["mfcc"], title=f"MFCC ({c.config.n_mfcc} coefficients)", ylabel="Coefficient",
        colorbar="Value (dB-scaled DCT)", cmap="coolwarm")[0]),
    ("chroma", _chroma),
    ("ltas", _ltas),
    ("spectral_shape", _spectral_shape),
    ("onsets_beats", _onsets_beats),
    ("tempogram", _tempogram),
    ("tonnetz", lambda plt, c: _image(
        plt, c, c.f["tonnetz"], title="Tonal centroids (tonnetz)", ylabel="Tonal axis", colorbar="Coordinate",
        size=(10, 3.5), y_axis="tonnetz", cmap="coolwarm")[0]),
)
