"""Sampling trained models: audio through the encoder, WAV files and spectrogram plots.

Restoring a model is :mod:`genaudio.models.run`'s (:func:`~genaudio.models.run.load_run`,
:class:`~genaudio.models.run.TrainedModel`); this module only samples.

>>> from genaudio.models import load_run, generate_clips
>>> run = load_run("runs/lstm1")                 # checkpoints/last.pt (or which="best")
>>> codes = run.generate_codes(n=4, frames=200, seed=0)      # (4, 200, dim), encoder units
>>> clips, sr, codes = generate_clips(run, n=4, seconds=10, seed=0)  # list of (samples,) float32
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from genaudio.errors import EncoderError, ModelError
from genaudio.models.run import TrainedModel, load_run, load_run_encoder


def generate_clips(run: str | Path | TrainedModel, *, n: int = 4, seconds: float = 10.0, seed: int = 0,
                   encoder: Any = None, temperature: float | None = None) -> tuple[list, int, np.ndarray]:
    """Generate ``n`` clips of ``seconds`` and decode them to audio.

    Returns
    -------
    clips : list of ndarray (samples,) float32
        Exactly ``round(seconds * sr)`` samples each.
    sr : int
        The encoder's sample rate (Hz).
    codes : ndarray (n, frames, dim)
        The generated codes (``frames = ceil(seconds * code_rate_hz)``).
    """
    model = load_run(run)
    enc = load_run_encoder(model, encoder)
    if not enc.has_audio_decoder:
        raise ModelError("this encoder has no audio decoder (feature-subset codes): only codes can be generated")
    if seconds <= 0:
        raise ModelError(f"seconds must be positive, got {seconds}")
    frames = max(2, math.ceil(seconds * model.code_rate_hz))
    codes = model.generate_codes(n=n, frames=frames, seed=seed, temperature=temperature)
    length = int(round(seconds * enc.sample_rate))
    try:
        clips = [np.asarray(enc.to_audio(c, length=length), np.float32) for c in codes]
    except EncoderError as e:
        raise ModelError(f"decoding generated codes failed: {e}") from None
    return clips, int(enc.sample_rate), codes


def plot_spectrogram(y: np.ndarray, sr: int, path: str | Path, *, title: str = "") -> Path:
    """A log-frequency power spectrogram PNG of one clip (time in s, frequency in Hz, dB colour bar)."""
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    S = librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=2048, hop_length=512)), ref=np.max, top_db=80)
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    img = librosa.display.specshow(S, sr=sr, hop_length=512, x_axis="time", y_axis="log", ax=ax)
    ax.set(title=title, xlabel="time (s)", ylabel="frequency (Hz)")
    fig.colorbar(img, ax=ax, format="%+2.0f dB", label="level (dB re max)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_codes(codes: np.ndarray, code_rate_hz: float, path: str | Path, *, title: str = "") -> Path:
    """A heat map of a code sequence (time in s, code dimension), for encoders without audio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    t = len(codes) / code_rate_hz
    img = ax.imshow(codes.T, aspect="auto", origin="lower", extent=(0, t, -0.5, codes.shape[1] - 0.5), cmap="magma")
    ax.set(title=title, xlabel="time (s)", ylabel="code dimension")
    fig.colorbar(img, ax=ax, label="code value")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def write_clips(run: str | Path | TrainedModel, out_dir: str | Path, *, n: int = 4, seconds: float = 10.0,
                seed: int = 0, encoder: Any = None, temperature: float | None = None,
                progress=None) -> list[dict]:
    """Generate clips into ``out_dir``: ``clip_XX.wav`` + ``clip_XX.png`` (spectrogram) each.

    With an encoder that has no audio decoder, writes ``clip_XX.npy`` (codes) + a code heat map.

    Returns
    -------
    list of dict
        One entry per clip: ``wav``/``npy``, ``png``, ``seconds``, ``sample_rate``.
    """
    import soundfile as sf

    model = load_run(run)
    enc = load_run_encoder(model, encoder)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if not enc.has_audio_decoder:
        frames = max(2, math.ceil(seconds * model.code_rate_hz))
        codes = model.generate_codes(n=n, frames=frames, seed=seed, temperature=temperature)
        for i, c in enumerate(codes):
            npy = out / f"clip_{i:02d}.npy"
            np.save(npy, c)
            png = plot_codes(c, model.code_rate_hz, out / f"clip_{i:02d}.png", title=f"generated codes {i}")
            written.append({"npy": str(npy), "png": str(png), "seconds": frames / model.code_rate_hz,
                            "sample_rate": None})
        return written
    clips, sr, _ = generate_clips(model, n=n, seconds=seconds, seed=seed, encoder=enc, temperature=temperature)
    for i, y in enumerate(clips):
        wav = out / f"clip_{i:02d}.wav"
        # generated audio can exceed full scale; normalise loud clips rather than clip them
        peak = float(np.max(np.abs(y))) if len(y) else 0.0
        sf.write(wav, y / peak * 0.99 if peak > 0.99 else y, sr, subtype="PCM_16")
        png = plot_spectrogram(y, sr, out / f"clip_{i:02d}.png",
                               title=f"{model.config.model} clip {i} ({seconds:g} s, seed {seed})")
        written.append({"wav": str(wav), "png": str(png), "seconds": len(y) / sr, "sample_rate": sr})
        if progress:
            progress(f"wrote {wav.name} and {png.name}")
    return written
