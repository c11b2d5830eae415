"""Sampling trained models: codes, audio through the encoder, WAV files and spectrogram plots.

>>> from genaudio.models import load_run, generate_clips
>>> run = load_run("runs/lstm1")                 # checkpoints/last.pt (or which="best")
>>> codes = run.generate_codes(n=4, frames=200, seed=0)      # (4, 200, dim), encoder units
>>> clips, sr = generate_clips(run, n=4, seconds=10, seed=0)  # list of (samples,) float32
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genaudio.config import from_dict
from genaudio.errors import EncoderError, ModelError
from genaudio.models.config import TrainConfig
from genaudio.models.data import Normalizer
from genaudio.models.gan import generate_frames
from genaudio.models.train import build_models, load_checkpoint, resolve_device


@dataclasses.dataclass
class TrainedModel:
    """A model restored from a checkpoint, ready to sample.

    Attributes
    ----------
    config : TrainConfig
    models : dict of str -> nn.Module
        ``{"lstm": ...}`` or ``{"g": ..., "d": ...}``, in eval mode on ``device``.
    normalizer : Normalizer
        Maps model units back to encoder codes.
    dim : int
    code_rate_hz : float
    enc_dir : str or None
        The encoded store the model was trained on (its ``encoder/`` decodes the codes).
    primes : Tensor (n, t0, dim)
        Real training windows (normalised) that start LSTM generation.
    val_files : list of str
        Held-out files (the scorer's real reference).
    epoch : int
    history : list of dict
    path : str
    device : torch.device
    """

    config: TrainConfig
    models: dict
    normalizer: Normalizer
    dim: int
    code_rate_hz: float
    enc_dir: str | None
    primes: torch.Tensor
    val_files: list
    epoch: int
    history: list
    path: str
    device: torch.device

    @torch.no_grad()
    def generate_codes(self, *, n: int, frames: int, seed: int = 0, temperature: float | None = None) -> np.ndarray:
        """``n`` sequences of ``frames`` code frames, in encoder units.

        Returns
        -------
        ndarray (n, frames, dim) float32
            LSTM: free-running continuations of ``n`` real primes (the primes themselves are not
            included); GAN: generator output (consecutive patches for the conv family).
        """
        if n < 1 or frames < 1:
            raise ModelError(f"need n >= 1 clips and frames >= 1, got n={n}, frames={frames}")
        gen = torch.Generator().manual_seed(seed)
        if self.config.model == "lstm":
            idx = torch.randint(len(self.primes), (n,), generator=gen)
            prime = self.primes[idx].to(self.device)
            x = self.models["lstm"].generate(prime, frames, temperature=temperature, generator=gen)
        else:
            x = generate_frames(self.models["g"], n, frames, generator=gen, device=self.device)
        x = x.float().cpu().numpy()
        if not np.isfinite(x).all():
            raise ModelError(f"{self.path}: the model generated NaN or infinite codes")
        return self.normalizer.inverse(x)


def load_run(run: str | Path | TrainedModel, *, which: str = "last", device: str = "cpu") -> TrainedModel:
    """Restore a trained model from a run folder (``checkpoints/<which>.pt``) or a ``.pt`` file."""
    if isinstance(run, TrainedModel):
        return run
    path = Path(run)
    if path.is_dir() and (path / "checkpoints" / f"{which}.pt").is_file():
        path = path / "checkpoints" / f"{which}.pt"
    ckpt = load_checkpoint(path)
    cfg = from_dict(TrainConfig, ckpt["config"])
    dev = resolve_device(device)
    models = build_models(cfg, int(ckpt["dim"]))
    for k, m in models.items():
        m.load_state_dict(ckpt["models"][k])
        m.to(dev).eval()
    return TrainedModel(cfg, models, Normalizer.from_state(ckpt["normalizer"]), int(ckpt["dim"]),
                        float(ckpt["code_rate_hz"]), ckpt.get("enc_dir"), ckpt["primes"], list(ckpt["val_files"]),
                        int(ckpt["epoch"]), list(ckpt["history"]), ckpt["path"], dev)


def load_run_encoder(model: TrainedModel, encoder: Any = None):
    """The encoder that decodes ``model``'s codes: given, a path, or the run's encoded store."""
    from genaudio.encoders import load_encoder

    if encoder is not None and not isinstance(encoder, (str, Path)):
        enc = encoder
    else:
        path = encoder or model.enc_dir
        if not path:
            raise ModelError(f"{model.path}: the run does not name its encoded store; pass the encoder explicitly")
        path = Path(path)
        enc = load_encoder(path / "encoder" if (path / "encoder").is_dir() else path)
    if enc.dim != model.dim:
        raise ModelError(f"encoder has dim {enc.dim} but the model generates {model.dim}-dim codes")
    return enc


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
