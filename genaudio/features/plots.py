"""Figures of one clip, drawn as a researcher would: time in seconds, frequency in Hz, level in dB.

:func:`plot_clip` writes one PNG per view (waveform, log spectrogram, mel spectrogram, MFCC,
chroma, long-term average spectrum, spectral shape curves, onsets and beats, tempogram, tonnetz)
from one shared analysis (:class:`genaudio.features.Analysis`), so the figures show exactly the
catalog features. matplotlib runs on the Agg backend (no display needed).
"""
from __future__ import annotations

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


def plot_clip(y: np.ndarray, sr: int, out_dir: str | Path, *, config: FeatureConfig | None = None,
              title: str = "", analysis: Analysis | None = None, dpi: int = 110) -> list[Path]:
    """Write PNG figures of one clip to ``out_dir``.

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
    import librosa.display

    plt = _mpl()
    config = config or FeatureConfig()
    a = analysis or Analysis(y, sr, config=config)
    f = a.compute(PLOT_FEATURES)
    hop = config.hop_length
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    sup = f" - {title}" if title else ""
    t = librosa.times_like(f["rms"], sr=sr, hop_length=hop)[: f["rms"].shape[-1]]

    def save(fig, name):
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        written.append(path)

    spec_kw = dict(sr=sr, hop_length=hop, x_axis="time")

    # 1. waveform with the RMS envelope
    fig, ax = plt.subplots(figsize=(10, 3))
    librosa.display.waveshow(a.y, sr=sr, ax=ax, color="0.55", label="waveform")
    ax.plot(t, f["rms"][0], color="C3", lw=1.2, label="RMS (frame)")
    ax.plot(t, -f["rms"][0], color="C3", lw=1.2)
    ax.set(title=f"Waveform{sup}", xlabel="Time (s)", ylabel="Amplitude (full scale = 1)")
    ax.legend(loc="upper right", fontsize=8)
    save(fig, "waveform")

    # 2. log-frequency STFT spectrogram
    fig, ax = plt.subplots(figsize=(10, 4))
    img = librosa.display.specshow(f["stft_db"], y_axis="log", ax=ax, **spec_kw)
    ax.set(title=f"Spectrogram (STFT, n_fft={config.n_fft}){sup}", xlabel="Time (s)", ylabel="Frequency (Hz)")
    fig.colorbar(img, ax=ax, format="%+2.0f dB", label="Level (dB re 1.0)")
    save(fig, "spectrogram")

    # 3. mel spectrogram
    fig, ax = plt.subplots(figsize=(10, 4))
    img = librosa.display.specshow(f["log_mel"], y_axis="mel", ax=ax, **spec_kw)
    ax.set(title=f"Mel spectrogram ({config.n_mels} bands){sup}", xlabel="Time (s)", ylabel="Frequency (Hz, mel scale)")
    fig.colorbar(img, ax=ax, format="%+2.0f dB", label="Level (dB re 1.0)")
    save(fig, "mel_spectrogram")

    # 4. MFCC
    fig, ax = plt.subplots(figsize=(10, 4))
    img = librosa.display.specshow(f["mfcc"], ax=ax, cmap="coolwarm", **spec_kw)
    ax.set(title=f"MFCC ({config.n_mfcc} coefficients){sup}", xlabel="Time (s)", ylabel="Coefficient")
    fig.colorbar(img, ax=ax, label="Value (dB-scaled DCT)")
    save(fig, "mfcc")

    # 5. chroma: STFT, CQT, CENS
    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    for ax, name in zip(axes, ("chroma_stft", "chroma_cqt", "chroma_cens")):
        img = librosa.display.specshow(f[name], y_axis="chroma", ax=ax, cmap="magma", **spec_kw)
        ax.set(title=name, ylabel="Pitch class", xlabel="")
        fig.colorbar(img, ax=ax, label="Energy (normalised)")
    axes[-1].set_xlabel("Time (s)")
    fig.suptitle(f"Chromagrams{sup}")
    save(fig, "chroma")

    # 6. long-term average spectrum
    fig, ax = plt.subplots(figsize=(10, 4))
    freqs = librosa.fft_frequencies(sr=sr, n_fft=config.n_fft)
    ax.semilogx(freqs[1:], f["ltas"][1:], color="C0")
    ax.set(title=f"Long-term average spectrum{sup}", xlabel="Frequency (Hz)",
           ylabel="Mean power (dB re 1.0)", xlim=(max(freqs[1], 20.0), sr / 2))
    ax.grid(True, which="both", alpha=0.3)
    save(fig, "ltas")

    # 7. spectral shape curves over the spectrogram, and flatness / ZCR
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    ax = axes[0]
    librosa.display.specshow(f["stft_db"], y_axis="log", ax=ax, cmap="gray_r", alpha=0.6, **spec_kw)
    c, b = f["spectral_centroid"][0], f["spectral_bandwidth"][0]
    ax.fill_between(t, np.maximum(c - b, 1.0), c + b, color="C0", alpha=0.25, label="centroid ± bandwidth")
    ax.plot(t, c, color="C0", lw=1.2, label="spectral centroid")
    ax.plot(t, f["spectral_rolloff"][0], color="C3", lw=1.2, label=f"roll-off ({config.roll_percent:.0%})")
    ax.set(title=f"Spectral shape{sup}", ylabel="Frequency (Hz)", xlabel="")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    ax.plot(t, f["spectral_flatness"][0], color="C2", label="spectral flatness")
    ax.plot(t, f["zero_crossing_rate"][0], color="C1", label="zero-crossing rate")
    ax.set(xlabel="Time (s)", ylabel="Ratio (0-1)", ylim=(0, None))
    ax.legend(loc="upper right", fontsize=8)
    save(fig, "spectral_shape")

    # 8. onset strength and beats
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.plot(t, f["onset_strength"][0], color="C0", label="onset strength")
    beat_t = t[f["beats"][0] > 0]
    ax.vlines(beat_t, 0, float(np.max(f["onset_strength"])) or 1.0, color="C3", alpha=0.6, linestyle="--",
              label=f"beats ({len(beat_t)})")
    ax.set(title=f"Onset strength and beats, tempo {float(f['tempo'][0]):.1f} BPM{sup}", xlabel="Time (s)",
           ylabel="Spectral flux (dB)")
    ax.legend(loc="upper right", fontsize=8)
    save(fig, "onsets_beats")

    # 9. tempogram
    fig, ax = plt.subplots(figsize=(10, 4))
    img = librosa.display.specshow(f["tempogram"], y_axis="tempo", cmap="magma", ax=ax, **spec_kw)
    ax.axhline(float(f["tempo"][0]), color="w", linestyle="--", alpha=0.8, label=f"tempo {float(f['tempo'][0]):.1f} BPM")
    ax.set(title=f"Tempogram (autocorrelation){sup}", xlabel="Time (s)", ylabel="Tempo (BPM)")
    ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(img, ax=ax, label="Autocorrelation (normalised)")
    save(fig, "tempogram")

    # 10. tonnetz
    fig, ax = plt.subplots(figsize=(10, 3.5))
    img = librosa.display.specshow(f["tonnetz"], y_axis="tonnetz", cmap="coolwarm", ax=ax, **spec_kw)
    ax.set(title=f"Tonal centroids (tonnetz){sup}", xlabel="Time (s)", ylabel="Tonal axis")
    fig.colorbar(img, ax=ax, label="Coordinate")
    save(fig, "tonnetz")
    return written
