"""A learned decoder: a Vocos-style vocoder from spectral-core frames (dB) to a waveform (torch).

PCA, autoencoder and mel codes decode to core frames (``log_mel`` or ``log_stft`` in dB, as the
features store holds them) and the vocoder turns frames into audio, in place of Griffin-Lim's
phase search. Any vocoder serves every encoder on the same spectral core and analysis; it serves
best the one whose decoded codes it was trained on (``Encoder.fit_decoder(from_codes=True)``).

Architecture (Siuzdak, "Vocos", 2023), channels = core bins, convolution along time::

    frames (dB) -> (x - mean) / scale -> Conv1d(n_in, C, 7) - LayerNorm
                -> L x ConvNeXt-1D block [depthwise Conv1d(C, C, 7) - LayerNorm - Linear(C, 3C)
                                          - GELU - Linear(3C, C) - layer scale, + residual]
                -> LayerNorm - Linear(C, n_fft + 2), or 3 (n_fft / 2 + 1) with integrated_phase
                -> log-magnitude m, phase p (+ cumsum over frames of the advance a):
                   S = exp(prior + m) (clipped) (cos p + i sin p) -> iSTFT

``prior`` (``magnitude_prior=True``, the default) is the log-magnitude the input frames imply on
their own: the STFT bins of ``log_stft``, or for ``log_mel`` each linear bin interpolated between
the mel bands it lies in (:func:`mel_interpolation`, exact for a locally flat spectrum). The
network then learns a correction and the phase, not the whole magnitude: a short CPU training
starts where Griffin-Lim's magnitude estimate is instead of from noise.

The phase is the hard part. A convolution sees no absolute time, so a phase predicted frame by
frame cannot advance from one frame to the next for a steady tone: the overlap-add then adds up
in step every hop, a buzz at the frame rate (:func:`genaudio.encoders.metrics.frame_comb`).
``integrated_phase`` predicts each bin's advance per frame and sums it over frames, as a phase
vocoder does; ``phase_prior`` starts the advance at the bin's centre frequency; ``phase_weight``
trains the phase on the audio's own group delay and instantaneous frequency.

The iSTFT uses the core's own ``n_fft``/``hop_length`` (Hann, centred), so one input frame is one
output frame and the vocoder runs at the frame rate: it decodes far faster than real time on a CPU.

``phase="griffinlim"`` is the other way: the same network with a head of one output per bin
predicts the STFT magnitude only (prior + correction), trained on the training audio's own
magnitude (:func:`magnitude_loss`, no waveform in the loop: a step costs a fraction of a
waveform-loss step), and Griffin-Lim finds its phase. A short-time magnitude of music is far more
predictable from the frames around it than the codes of one frame say, so the network recovers
part of what the encoder lost; Griffin-Lim then sits at that better magnitude, as it sits at the
codes' own magnitude without it.

Training (:func:`train_vocoder`), learned phase: random crops of ``crop_frames`` frames and the
matching audio; loss = multi-resolution STFT (spectral convergence + L1 log-magnitude at 512/128, 1024/256,
2048/512, the Parallel WaveGAN loss) + ``mel_weight`` x L1 between log-mel spectrograms
(+ ``phase_weight`` x :func:`phase_loss`, group delay and instantaneous frequency). Input
frames get Gaussian noise of ``input_noise_db`` dB so the vocoder tolerates the slightly wrong
frames that decoded codes are. ``adversarial=True`` adds a multi-resolution spectrogram
discriminator (hinge loss + feature matching), worth its cost on a GPU only. It trains on
genaudio's one epoch loop (:mod:`genaudio.training`): seeded (one ``torch.Generator`` draws every
crop and noise), stopped with a clear error when a loss becomes NaN, checkpointed every epoch
(model, optimiser, scheduler, RNG states, history and :class:`VocoderConfig`, loaded with
``weights_only=True``) and resumed exactly from the checkpoint.

Saved as a folder: ``config.json`` (format tag, :class:`VocoderConfig`, training history) and
``weights.pt`` (a plain state dict, loaded with ``torch.load(weights_only=True)``).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genaudio.config import ConfigError, from_dict, to_dict
from genaudio.devices import resolve_device
from genaudio.encoders import framing
from genaudio.errors import EncoderError
from genaudio.infra import progress as progress_bar
from genaudio.training import (check_config, load_state, load_state_dicts, optimizer_step, rng_state, run_epochs,
                               save_state, set_rng_state, state_dicts)

FORMAT = "genaudio-vocoder"
#: 2 added ``magnitude_prior``, 3 the phase options on by default, 4 ``phase`` (``"griffinlim"``: a
#: magnitude-only vocoder); older vocoders still load
FORMAT_VERSION = 4
#: what a config of an older version meant by the fields it lacks (the defaults of its day)
OLDER_DEFAULTS = {1: {"magnitude_prior": False, "phase_prior": False, "integrated_phase": False, "phase_weight": 0.0,
                      "phase": "learned"},
                  2: {"phase_prior": False, "integrated_phase": False, "phase_weight": 0.0, "phase": "learned"},
                  3: {"phase": "learned"}}
#: where a vocoder's phase comes from: its own head (iSTFT), or Griffin-Lim from its magnitude
PHASES = ("learned", "griffinlim")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
LOSS_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))
#: magnitude ceiling of the head (|STFT| of a full-scale sine at n_fft 2048 is ~512)
MAX_MAGNITUDE = 1e3
#: decoded dB frames are clipped to this range, as Griffin-Lim's input is (a model may emit anything)
DB_RANGE = (10 * math.log10(framing.AMIN), 60.0)


@dataclasses.dataclass(frozen=True)
class VocoderConfig:
    """What a vocoder is and how it trains.

    Attributes
    ----------
    core : {"log_mel", "log_stft"}
        The spectral core it decodes; ``sample_rate``, ``n_fft``, ``hop_length``, ``n_mels`` are its
        analysis (Hz, samples, samples, bands) and must match the encoder's.
    phase : {"learned", "griffinlim"}
        Where the phase comes from. ``"learned"``: the head predicts magnitude and phase and the
        waveform is their iSTFT (fast: ~100-200x real time on one CPU core). ``"griffinlim"``: the
        head predicts the STFT magnitude only, trained on the training audio's own magnitude
        (spectral convergence + L1 log-magnitude, :func:`magnitude_loss`), and Griffin-Lim finds a
        phase for it (``griffin_lim_iters`` iterations, as fast as the Griffin-Lim decoder): the
        network learns what the codes lose of the magnitude, from the frames around each one, and
        is the only decoder here that beats Griffin-Lim from the codes' own magnitude on spectral
        convergence and LSD (docs/encoders.md, "Fourth run"); the default since format version 4.
        The phase options below, ``mel_weight`` and ``adversarial`` apply to ``"learned"`` only.
    griffin_lim_iters : int
        Griffin-Lim iterations of ``phase="griffinlim"`` (:func:`genaudio.encoders.framing.griffin_lim`).
    channels, intermediate, layers, kernel : int
        ConvNeXt width, hidden width of its pointwise MLP, number of blocks, depthwise kernel size.
        The default (128, 384, 6, 7) has 0.78 M parameters with ``phase="griffinlim"`` and 0.92 M
        with the integrated phase (log_mel 128); Vocos's published size is (512, 1536, 8, 7), 13.5 M.
        Measured on one CPU core (an hour of real music): the default magnitude-only vocoder, 600
        steps in ~2 min; (256, 768, 6, 7), 2.7 M, 2,000 steps in 16 min, a little closer to real
        music by the judge (docs/encoders.md, "Fourth run"). Larger ones are for GPUs.
    epochs, steps_per_epoch, batch_size, crop_frames : int
        Training length: ``epochs * steps_per_epoch`` optimiser steps on batches of
        ``batch_size`` random crops of ``crop_frames`` frames (64 frames = 0.74 s at hop 256, 22.05 kHz).
    learning_rate : float
        Peak AdamW learning rate (one-cycle schedule).
    input_noise_db : float
        Standard deviation (dB) of the Gaussian noise added to training input frames.
    code_noise : float
        Training from an encoder's codes (``Encoder.fit_decoder``): standard deviation of white
        Gaussian noise added to the codes before they are decoded into training frames, in units
        of each code dimension's standard deviation over the training codes. A generative model's
        codes carry its sampling noise (an LSTM's is about ``sqrt(val_mse)`` in those units); a
        vocoder that saw such codes in training decodes them towards the music instead of
        rendering the noise. 0: the codes as encoded.
    mel_weight : float
        Weight of the log-mel L1 term against the multi-resolution STFT term.
    adversarial : bool
        Add a multi-resolution spectrogram discriminator (GPUs; slow on a CPU).
    adversarial_weight : float
        Weight of the generator's adversarial + feature-matching terms.
    phase_weight : float
        Weight of the phase term (:func:`phase_loss`): the predicted phase against the training
        audio's own, as group delay (its step across bins) and instantaneous frequency (its step
        across frames), each wrapped to [-pi, pi] and weighted by the bins' magnitude. The
        spectral losses see only magnitudes; a phase that advances wrongly between frames is what
        buzzes at the frame rate. 0: no phase term.
    magnitude_prior : bool
        Predict the log-magnitude as a correction of the one the input frames imply (see the
        module docstring); False predicts it from scratch (format version 1 vocoders).
    phase_prior : bool
        Add to the predicted phase of bin ``k`` at frame ``t`` the advance of a sinusoid at the
        bin's centre frequency, ``2 pi k hop t / n_fft``, so that a phase the network leaves
        constant does not add up in step every hop (a buzz at the frame rate, see
        :func:`genaudio.encoders.metrics.frame_comb`).
    integrated_phase : bool
        The head predicts, besides a phase offset, each bin's phase advance per frame, and the
        phase is the offset plus the running sum of the advances (a phase vocoder's synthesis): a
        network that sees no absolute time can hold a steady tone's phase advancing frame after
        frame, which a phase predicted frame by frame cannot. Composes with ``phase_prior`` (the
        bin-centre advance is then what the predicted advances deviate from). With
        ``phase_prior`` and ``phase_weight`` 0.3 the default since format version 3: on real
        music it removed the buzz (frame comb 87-92 -> 4-7, the originals' 5) and, at the default
        training length, the judge preferred it (at 4x the steps it did not: docs/encoders.md,
        "The phase").
    seed : int
        Seeds the initial weights, the crops and the input noise.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.
    """

    core: str = "log_mel"
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 128
    phase: str = "griffinlim"
    griffin_lim_iters: int = 64
    channels: int = 128
    intermediate: int = 384
    layers: int = 6
    kernel: int = 7
    epochs: int = 12
    steps_per_epoch: int = 50
    batch_size: int = 16
    crop_frames: int = 64
    learning_rate: float = 1e-3
    input_noise_db: float = 1.0
    code_noise: float = 0.0
    mel_weight: float = 1.0
    phase_weight: float = 0.3
    adversarial: bool = False
    adversarial_weight: float = 0.1
    magnitude_prior: bool = True
    phase_prior: bool = True
    integrated_phase: bool = True
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        if self.core not in framing.CORE_FEATURES:
            raise ConfigError(f"a vocoder decodes a spectral core ({', '.join(framing.CORE_FEATURES)}), "
                              f"not {self.core!r}")
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels", "channels", "intermediate", "layers",
                     "epochs", "steps_per_epoch", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"vocoder {name} must be positive, got {getattr(self, name)}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError(f"vocoder kernel must be odd and positive, got {self.kernel}")
        if self.crop_frames < 4:
            raise ConfigError(f"vocoder crop_frames must be >= 4, got {self.crop_frames}")
        if self.hop_length > self.n_fft:
            raise ConfigError(f"hop_length ({self.hop_length}) must not exceed n_fft ({self.n_fft})")
        if self.phase not in PHASES:
            raise ConfigError(f"vocoder phase must be one of {', '.join(PHASES)}, got {self.phase!r}")
        if self.phase == "griffinlim" and self.adversarial:
            raise ConfigError("the adversarial term trains a vocoder's waveform: it needs phase 'learned'")
        if self.griffin_lim_iters < 0:
            raise ConfigError(f"vocoder griffin_lim_iters must be >= 0, got {self.griffin_lim_iters}")
        edge_loss = self.phase == "griffinlim" or self.phase_weight > 0
        if edge_loss and self.crop_frames <= 2 * phase_edge(self.n_fft, self.hop_length) + 1:
            raise ConfigError(f"the {'magnitude' if self.phase == 'griffinlim' else 'phase'} term leaves out "
                              f"{phase_edge(self.n_fft, self.hop_length)} frames at each end of a crop: "
                              f"crop_frames {self.crop_frames} is too short")
        if (self.learning_rate <= 0 or self.input_noise_db < 0 or self.code_noise < 0 or self.mel_weight < 0
                or self.phase_weight < 0 or self.adversarial_weight < 0):
            raise ConfigError("vocoder learning_rate must be positive; input_noise_db, code_noise, mel_weight, "
                              "phase_weight and adversarial_weight non-negative")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")

    @property
    def input_dims(self) -> int:
        """Rows of an input frame matrix (mel bands or STFT bins)."""
        return framing.core_dims(self.core, n_fft=self.n_fft, n_mels=self.n_mels)

    def analysis(self) -> dict:
        """The fields that must match an encoder's for this vocoder to decode its frames."""
        return {k: getattr(self, k) for k in ("core", "sample_rate", "n_fft", "hop_length", "n_mels")
                if k != "n_mels" or self.core == "log_mel"}


# ---------------------------------------------------------------------------------------------
# The network


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate: int, kernel: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, intermediate)
        self.pw2 = nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim))

    def forward(self, x):  # (B, C, T)
        h = self.dwconv(x).transpose(1, 2)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


class VocoderNet(nn.Module):
    """Frames (B, n_in, T) in dB -> waveform (B, samples); see the module docstring."""

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.n_fft, self.hop = cfg.n_fft, cfg.hop_length
        n_in = cfg.input_dims
        # input standardisation, fitted on the training frames and saved with the weights
        self.register_buffer("in_mean", torch.zeros(n_in))
        self.register_buffer("in_scale", torch.ones(()))
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        prior = None
        if cfg.magnitude_prior and cfg.core == "log_mel":
            prior = torch.from_numpy(mel_interpolation(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels))
        # not saved: it follows from the config
        self.register_buffer("mel_to_bins", prior, persistent=False)
        self.magnitude_prior = cfg.magnitude_prior
        self.phase_prior = cfg.phase_prior
        self.integrated_phase = cfg.integrated_phase
        self.embed = nn.Conv1d(n_in, cfg.channels, cfg.kernel, padding=cfg.kernel // 2)
        self.norm = nn.LayerNorm(cfg.channels, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(cfg.channels, cfg.intermediate, cfg.kernel, 1.0 / cfg.layers)
                                    for _ in range(cfg.layers))
        self.final_norm = nn.LayerNorm(cfg.channels, eps=1e-6)
        # log-magnitude per bin, with a learned phase its phase (offset) and, with integrated_phase,
        # its phase advance
        self.predicts_phase = cfg.phase == "learned"
        outputs = (3 if cfg.integrated_phase else 2) if self.predicts_phase else 1
        self.head = nn.Linear(cfg.channels, (cfg.n_fft // 2 + 1) * outputs)
        if not self.predicts_phase:  # a magnitude-only vocoder starts at the prior exactly
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def prior(self, frames: torch.Tensor) -> torch.Tensor:
        """Natural-log STFT magnitude (B, 1 + n_fft // 2, T) implied by dB frames (B, n_in, T)."""
        if self.mel_to_bins is None:  # log_stft: the frames are the bins' power in dB
            return frames * (math.log(10) / 20)
        power = torch.pow(10.0, frames / 10)
        return 0.5 * torch.log(torch.clamp(self.mel_to_bins @ power, min=framing.AMIN))

    def _head(self, frames: torch.Tensor) -> torch.Tensor:
        """The head's outputs (B, outputs x (1 + n_fft // 2), T) for dB frames (B, n_in, T)."""
        x = (frames - self.in_mean[:, None]) / self.in_scale
        x = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2)

    def log_magnitude(self, frames: torch.Tensor) -> torch.Tensor:
        """Natural-log STFT magnitude (B, 1 + n_fft // 2, T) of a magnitude-only vocoder
        (``phase="griffinlim"``), at most ``log(MAX_MAGNITUDE)``."""
        if self.predicts_phase:
            raise EncoderError("this vocoder predicts magnitude and phase: use spectrum()")
        log_mag = self._head(frames)
        if self.magnitude_prior:
            log_mag = log_mag + self.prior(frames)
        return torch.clamp(log_mag, max=math.log(MAX_MAGNITUDE))

    def spectrum(self, frames: torch.Tensor) -> torch.Tensor:
        """Complex STFT (B, 1 + n_fft // 2, T) predicted from dB frames (B, n_in, T), by a vocoder
        with a learned phase."""
        if not self.predicts_phase:
            raise EncoderError("this vocoder predicts the magnitude only (phase 'griffinlim'): use log_magnitude()")
        log_mag, phase, *advance = self._head(frames).chunk(3 if self.integrated_phase else 2, dim=1)
        if advance:  # summed in float64 and wrapped: exact enough over an hour of frames
            turns = torch.cumsum(advance[0].double(), dim=2)
            phase = phase + torch.remainder(turns, 2 * math.pi).to(phase.dtype)
        if self.magnitude_prior:
            log_mag = log_mag + self.prior(frames)
        if self.phase_prior:
            # k * t * hop modulo n_fft in integers: exact for any clip length (float32 is not)
            bins = torch.arange(phase.shape[1], device=phase.device)
            steps = torch.arange(phase.shape[2], device=phase.device)
            turns = torch.remainder(bins[:, None] * steps * self.hop, self.n_fft).to(phase.dtype) / self.n_fft
            phase = phase + 2 * math.pi * turns
        mag = torch.clip(torch.exp(log_mag), max=MAX_MAGNITUDE)
        return torch.polar(mag, phase)

    def waveform(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """iSTFT of a complex spectrum (B, 1 + n_fft // 2, T): (B, length) samples, by default
        ``hop * (T - 1)``."""
        n = length if length is not None else self.hop * (spec.shape[-1] - 1)
        return torch.istft(spec, self.n_fft, hop_length=self.hop, window=self.window, center=True, length=n)

    def forward(self, frames: torch.Tensor, length: int | None = None) -> torch.Tensor:
        return self.waveform(self.spectrum(frames), length)


def mel_interpolation(*, sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Linear map ``(1 + n_fft // 2, n_mels)`` from mel band power to STFT bin power.

    Each bin takes the power density (band power / band width in bins, the librosa filterbank's
    row sum) of the bands that cover it, weighted by its filter weights: exact for a locally flat
    spectrum, non-negative, and smooth (no pseudo-inverse ringing). Bins no band covers (DC, the
    edges) take their nearest covered bin's weights.
    """
    import librosa

    M = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float64)  # (n_mels, bins)
    band_bins = np.maximum(M.sum(axis=1), 1e-12)   # a flat spectrum of power p gives band power p * this
    cover = M.sum(axis=0)
    covered = np.flatnonzero(cover > 0)
    nearest = covered[np.abs(np.arange(M.shape[1])[:, None] - covered[None]).argmin(axis=1)]
    weights = (M / np.where(cover > 0, cover, 1.0))[:, nearest]   # each bin's weights sum to 1
    W = (weights / band_bins[:, None]).T
    return W.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Losses


class SpectralLoss(nn.Module):
    """Multi-resolution STFT loss + ``mel_weight`` x log-mel L1 between waveforms (B, samples)."""

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        import librosa

        self.mel_weight = cfg.mel_weight
        for n_fft, _ in LOSS_RESOLUTIONS:
            self.register_buffer(f"win{n_fft}", torch.hann_window(n_fft), persistent=False)
        mel = librosa.filters.mel(sr=cfg.sample_rate, n_fft=1024, n_mels=80)
        self.register_buffer("mel_fb", torch.from_numpy(mel).float(), persistent=False)

    def _mag(self, y, n_fft, hop):
        s = torch.stft(y, n_fft, hop_length=hop, window=getattr(self, f"win{n_fft}"), center=True,
                       return_complex=True)
        return torch.sqrt(s.real ** 2 + s.imag ** 2 + 1e-9)

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        mr = y_hat.new_zeros(())
        for n_fft, hop in LOSS_RESOLUTIONS:
            S, S_hat = self._mag(y, n_fft, hop), self._mag(y_hat, n_fft, hop)
            sc = torch.linalg.norm(S - S_hat) / torch.linalg.norm(S).clamp_min(1e-7)
            mr = mr + sc + F.l1_loss(torch.log(S_hat), torch.log(S))
        mr = mr / len(LOSS_RESOLUTIONS)
        M, M_hat = self._mag(y, 1024, 256), self._mag(y_hat, 1024, 256)
        mel = F.l1_loss(torch.log(torch.clamp(self.mel_fb @ M_hat, min=1e-5)),
                        torch.log(torch.clamp(self.mel_fb @ M, min=1e-5)))
        return mr + self.mel_weight * mel, {"mrstft": float(mr.detach()), "mel_l1": float(mel.detach())}


def magnitude_loss(log_mag_hat: torch.Tensor, mag: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Spectral convergence + L1 log-magnitude of a predicted STFT magnitude against the true one.

    Parameters
    ----------
    log_mag_hat : torch.Tensor, (B, bins, T)
        Predicted natural-log magnitude.
    mag : torch.Tensor, (B, bins, T)
        The true magnitude, same analysis.

    Returns
    -------
    loss : torch.Tensor, ()
        The batch's spectral convergence (over all its crops at once, as :class:`SpectralLoss`:
        one near-silent crop's own would be huge and swamp the step), plus the mean absolute
        difference of the log-magnitudes (both floored at 1e-5, -100 dB).
    parts : dict
        ``sc`` and ``log_l1``, floats.
    """
    floor = math.log(1e-5)
    sc = torch.linalg.norm(mag - torch.exp(log_mag_hat)) / torch.linalg.norm(mag).clamp_min(1e-7)
    l1 = F.l1_loss(torch.clamp(log_mag_hat, min=floor), torch.log(mag.clamp_min(1e-5)))
    return sc + l1, {"sc": float(sc.detach()), "log_l1": float(l1.detach())}


def phase_edge(n_fft: int, hop_length: int) -> int:
    """Frames at each end of a crop whose true STFT sees the crop's padding instead of the audio
    around it (half a window): the phase and magnitude terms leave them out."""
    return math.ceil(n_fft / 2 / hop_length)


def _wrap(x: torch.Tensor) -> torch.Tensor:
    """|x| wrapped to [0, pi]: the angular distance of a phase difference (anti-wrapping)."""
    return torch.abs(x - 2 * math.pi * torch.round(x / (2 * math.pi)))


def phase_loss(spec_hat: torch.Tensor, y: torch.Tensor, *, n_fft: int, hop_length: int,
               window: torch.Tensor, edge: int | None = None) -> torch.Tensor:
    """Group delay and instantaneous frequency distance of a predicted spectrum to audio's.

    The anti-wrapping phase losses of APNet (Ai & Ling, 2023) without the absolute phase, which
    the ear does not hear: the phase's step across bins (group delay) and across frames
    (instantaneous frequency), each wrapped to [-pi, pi] and weighted by the true magnitude so
    that silent bins (whose phase is noise) do not count.

    Parameters
    ----------
    spec_hat : torch.Tensor, complex, (B, 1 + n_fft // 2, T)
        The predicted STFT, frame ``t`` centred on sample ``t * hop_length``.
    y : torch.Tensor, (B, samples)
        The true audio, ``samples >= T * hop_length``.
    n_fft, hop_length : int
        The spectrum's analysis (samples); ``window`` its window (n_fft,).
    edge : int, optional
        Frames left out at each end; default :func:`phase_edge`.

    Returns
    -------
    torch.Tensor, ()
        Mean of the two weighted distances, radians (0 for a phase right up to a constant,
        ~pi/2 at random).
    """
    T = spec_hat.shape[-1]
    e = phase_edge(n_fft, hop_length) if edge is None else edge
    if T <= 2 * e + 1:
        raise EncoderError(f"phase_loss needs more than {2 * e + 1} frames, got {T}")
    S = torch.stft(y, n_fft, hop_length=hop_length, window=window, center=True, return_complex=True)
    S, S_hat = S[..., e:T - e], spec_hat[..., e:T - e]
    mag = S.abs()
    error = torch.angle(S_hat) - torch.angle(S)

    def weighted(d, w):
        return (_wrap(d) * w).sum() / w.sum().clamp_min(1e-9)

    group_delay = weighted(torch.diff(error, dim=-2), torch.sqrt(mag[..., 1:, :] * mag[..., :-1, :]))
    frequency = weighted(torch.diff(error, dim=-1), torch.sqrt(mag[..., 1:] * mag[..., :-1]))
    return (group_delay + frequency) / 2


class SpectrogramDiscriminator(nn.Module):
    """Multi-resolution discriminator on log-magnitude spectrograms (UnivNet/Vocos MRD, small)."""

    def __init__(self, resolutions=LOSS_RESOLUTIONS, channels: int = 32):
        super().__init__()
        self.resolutions = resolutions
        for n_fft, _ in resolutions:
            self.register_buffer(f"win{n_fft}", torch.hann_window(n_fft), persistent=False)
        self.nets = nn.ModuleList(nn.ModuleList([
            nn.Conv2d(1, channels, (3, 9), padding=(1, 4)),
            nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)),
            nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)),
            nn.Conv2d(channels, channels, (3, 3), padding=(1, 1)),
            nn.Conv2d(channels, 1, (3, 3), padding=(1, 1))]) for _ in resolutions)

    def forward(self, y: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per resolution: the feature maps of every layer, the last one being the logits."""
        outs = []
        for (n_fft, hop), convs in zip(self.resolutions, self.nets):
            s = torch.stft(y, n_fft, hop_length=hop, window=getattr(self, f"win{n_fft}"), center=True,
                           return_complex=True)
            x = torch.log(s.abs().clamp_min(1e-5))[:, None].transpose(2, 3)  # (B, 1, T, F)
            feats = []
            for i, conv in enumerate(convs):
                x = conv(x)
                if i < len(convs) - 1:
                    x = F.leaky_relu(x, 0.1)
                feats.append(x)
            outs.append(feats)
        return outs


def _adversarial_terms(disc: SpectrogramDiscriminator, y_hat: torch.Tensor, y: torch.Tensor):
    """Generator hinge loss + feature matching (the discriminator's real features are targets)."""
    real, fake = disc(y), disc(y_hat)
    adv = sum(torch.mean(F.relu(1 - f[-1])) for f in fake) / len(fake)
    fm = sum(F.l1_loss(a, b.detach()) for fr, rr in zip(fake, real) for a, b in zip(fr[:-1], rr[:-1]))
    return adv + fm / len(fake)


def _discriminator_loss(disc: SpectrogramDiscriminator, y_hat: torch.Tensor, y: torch.Tensor):
    real, fake = disc(y), disc(y_hat.detach())
    return sum(torch.mean(F.relu(1 - r[-1])) + torch.mean(F.relu(1 + f[-1])) for r, f in zip(real, fake)) / len(real)


# ---------------------------------------------------------------------------------------------
# The decoder object


class LearnedDecoder:
    """A trained vocoder: renders core frames (dB) to audio. Build with :func:`train_vocoder` or
    :meth:`load`; an encoder holding one uses it in ``to_audio`` (see ``Encoder.decoder``)."""

    name = "learned"

    def __init__(self, config: VocoderConfig, net: VocoderNet, history: list[dict] | None = None,
                 training: dict | None = None):
        self.config = config
        self.net = net.eval()
        self.history = list(history or [])
        self.training = dict(training or {})

    def __repr__(self) -> str:
        return (f"<LearnedDecoder {self.config.core} {self.n_parameters / 1e6:.2f}M params "
                f"{len(self.history)} epochs>")

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def check_analysis(self, config) -> None:
        """Raise :class:`EncoderError` unless encoder config ``config`` has this vocoder's analysis."""
        mine = self.config.analysis()
        theirs = {k: getattr(config, k) for k in mine}
        if mine != theirs:
            diff = ", ".join(f"{k}: vocoder {mine[k]} vs encoder {theirs[k]}" for k in mine if mine[k] != theirs[k])
            raise EncoderError(f"this vocoder was trained on other frames than the encoder's ({diff})")

    @torch.no_grad()
    def render(self, frames: np.ndarray, *, length: int | None = None) -> np.ndarray:
        """Waveform ``(samples,)`` float32 of core frames ``(input_dims, time)`` in dB.

        ``length`` defaults to ``hop_length * (time - 1)`` samples (as Griffin-Lim's).
        """
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim != 2 or frames.shape[0] != self.config.input_dims:
            raise EncoderError(f"frames have shape {frames.shape}, expected ({self.config.input_dims}, time)")
        frames = np.clip(np.nan_to_num(frames, nan=DB_RANGE[0]), *DB_RANGE)
        p = next(self.net.parameters())
        x = torch.from_numpy(np.ascontiguousarray(frames))[None].to(p.device, p.dtype)
        if self.net.predicts_phase:
            y = self.net(x, length)[0].float().cpu().numpy()
        else:
            cfg = self.config
            mag = torch.exp(self.net.log_magnitude(x))[0].float().cpu().numpy()
            y = framing.griffin_lim(mag, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_iter=cfg.griffin_lim_iters,
                                    length=length, seed=cfg.seed)
        return np.nan_to_num(y).astype(np.float32)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``weights.pt`` into ``folder`` (created)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in self.net.state_dict().items()}, folder / WEIGHTS_FILE)
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": to_dict(self.config),
                "n_parameters": self.n_parameters, "history": self.history, "training": self.training}
        (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "LearnedDecoder":
        """Load a saved vocoder (no unpickling). :class:`EncoderError` if missing or corrupt."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / CONFIG_FILE).read_text())
        except FileNotFoundError:
            raise EncoderError(f"{folder} holds no vocoder ({CONFIG_FILE} is missing)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise EncoderError(f"{folder / CONFIG_FILE} is corrupt: {e}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise EncoderError(f"{folder} is not a genaudio vocoder (no format: {FORMAT!r})")
        version = meta.get("format_version")
        if version not in (*OLDER_DEFAULTS, FORMAT_VERSION):
            raise EncoderError(f"{folder}: vocoder format version {version} is not supported")
        try:
            cfg = from_dict(VocoderConfig, {**OLDER_DEFAULTS.get(version, {}), **meta["config"]})
        except (ConfigError, KeyError) as e:
            raise EncoderError(f"{folder}: invalid vocoder config: {e}") from None
        try:
            state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
            net = VocoderNet(cfg)
            net.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - missing, corrupt or mismatched weights
            raise EncoderError(f"{folder}: {WEIGHTS_FILE} cannot be loaded ({type(e).__name__}: {e})") from None
        return cls(cfg, net, meta.get("history"), meta.get("training"))


def load_decoder(path: str | os.PathLike) -> LearnedDecoder:
    """The learned decoder in ``path``: a vocoder folder, a saved encoder folder (its ``decoder/``)
    or an encoded store (``encoder/decoder/``), so one trained vocoder can serve other encoders."""
    path = Path(path)
    for folder in (path, path / "decoder", path / "encoder" / "decoder"):
        if (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file():
            return LearnedDecoder.load(folder)
    raise EncoderError(f"{path} holds no learned decoder (no vocoder, encoder/decoder or encoder folder with one)")


# ---------------------------------------------------------------------------------------------
# Training


def _pairs(waves: Sequence[np.ndarray], frames: Sequence[np.ndarray], cfg: VocoderConfig):
    """Aligned (frames, audio) tensors; every clip edge-padded to at least one crop."""
    if len(waves) != len(frames) or not waves:
        raise EncoderError(f"a vocoder trains on pairs of waveforms and frames (got {len(waves)} and {len(frames)})")
    hop, n_in = cfg.hop_length, cfg.input_dims
    out = []
    for y, f in zip(waves, frames):
        f = np.asarray(f, np.float32)
        if f.ndim != 2 or f.shape[0] != n_in:
            raise EncoderError(f"training frames have shape {f.shape}, expected ({n_in}, time)")
        f = framing.fit_length(np.clip(f, *DB_RANGE), max(f.shape[1], cfg.crop_frames))
        y = np.asarray(y, np.float32)
        y = np.pad(y[:f.shape[1] * hop], (0, max(0, f.shape[1] * hop - len(y))))
        out.append((torch.from_numpy(f), torch.from_numpy(y)))
    return out


def _batch(pairs, cfg: VocoderConfig, gen: torch.Generator):
    F_, hop = cfg.crop_frames, cfg.hop_length
    xs, ys = [], []
    for i in torch.randint(len(pairs), (cfg.batch_size,), generator=gen).tolist():
        f, y = pairs[i]
        s = int(torch.randint(f.shape[1] - F_ + 1, (1,), generator=gen))
        xs.append(f[:, s:s + F_])
        ys.append(y[s * hop:(s + F_) * hop])
    x = torch.stack(xs)
    if cfg.input_noise_db > 0:
        x = x + cfg.input_noise_db * torch.randn(x.shape, generator=gen)
    return x, torch.stack(ys)


#: What may change between a vocoder checkpoint and the training resuming it (a longer ``epochs``
#: continues training).
RESUMABLE_CHANGES = frozenset({"epochs", "device"})


@dataclasses.dataclass
class _Training:
    """One vocoder training while it runs: what a checkpoint saves and restores."""

    cfg: VocoderConfig
    pairs: list                     # (frames, audio) tensors, at least one crop each
    net: VocoderNet
    loss_fn: "SpectralLoss | None"  # None for a magnitude-only vocoder (magnitude_loss)
    opt: torch.optim.Optimizer
    sched: Any
    gen: torch.Generator            # draws every crop and all input noise
    device: torch.device
    disc: Any = None                # the adversarial option's discriminator and its optimiser
    opt_d: Any = None
    history: list = dataclasses.field(default_factory=list)
    spent: float = 0.0              # training seconds, all runs of a resumed training
    checkpoint: Path | None = None
    bar: Any = None
    log: Any = None


def train_vocoder(waves: Sequence[np.ndarray], frames: Sequence[np.ndarray], config: VocoderConfig, *,
                  checkpoint: str | os.PathLike | None = None, progress: bool = False,
                  log=None) -> LearnedDecoder:
    """Train a vocoder on waveforms and their core frames.

    Parameters
    ----------
    waves : sequence of np.ndarray, each (samples,)
        Training audio at ``config.sample_rate``.
    frames : sequence of np.ndarray, each (input_dims, 1 + samples // hop_length)
        The matching core frames in dB (what :func:`genaudio.encoders.framing.compute_parts` gives).
    config : VocoderConfig
    checkpoint : path, optional
        Saved after every epoch and resumed from when it exists (same config but ``epochs`` and
        ``device``; a longer ``epochs`` continues training). The resumed run is bit-identical to
        an uninterrupted one on the same device.
    progress : bool
        A tqdm bar over optimiser steps with the last epoch's metrics.
    log : callable, optional
        Called with one line per epoch (``epoch 3/30 loss 1.234 mrstft ... mel_l1 ...``).

    Returns
    -------
    LearnedDecoder
        With ``history`` (per-epoch ``loss``, ``mrstft``, ``mel_l1``, with ``phase_weight`` ``phase``,
        and ``seconds``; a magnitude-only vocoder's ``loss``, ``sc``, ``log_l1``, ``seconds``) and ``training``
        (steps, seconds, audio seconds, device).
    """
    t = _start(waves, frames, config, checkpoint)
    cfg, total = t.cfg, t.cfg.epochs * t.cfg.steps_per_epoch
    start = _resume(t) if t.checkpoint is not None and t.checkpoint.is_file() else 0
    t.log = log
    t.bar = progress_bar(total=total, initial=start * cfg.steps_per_epoch, desc=f"train vocoder ({cfg.core})",
                         unit="step", enabled=progress)
    t.net.train()
    outcome = run_epochs(functools.partial(_train_epoch, t), start=start, stop=cfg.epochs,
                         end_epoch=functools.partial(_end_epoch, t))
    t.bar.close()
    if outcome.status == "nan":
        raise EncoderError(f"the vocoder did not train: {outcome.message}; try a lower learning_rate")
    t.net.eval().to("cpu")
    training = {"steps": total, "seconds": t.spent, "clips": len(t.pairs), "device": str(t.device),
                "audio_seconds": sum(len(y) for _, y in t.pairs) / cfg.sample_rate}
    return LearnedDecoder(cfg, t.net, t.history, training)


def _start(waves, frames, cfg: VocoderConfig, checkpoint) -> _Training:
    """The training pairs and the seeded network (input statistics from all frames), its loss,
    optimiser, one-cycle schedule and, with ``adversarial``, the discriminator."""
    device = resolve_device(cfg.device)
    pairs = _pairs(waves, frames, cfg)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    net = VocoderNet(cfg)
    allf = torch.cat([f for f, _ in pairs], dim=1).double()
    net.in_mean.copy_(allf.mean(dim=1).float())
    net.in_scale.fill_(float(torch.sqrt(((allf - allf.mean(dim=1, keepdim=True)) ** 2).mean())) or 1.0)
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, betas=(0.8, 0.99), weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.learning_rate,
                                                total_steps=cfg.epochs * cfg.steps_per_epoch, pct_start=0.05)
    loss_fn = SpectralLoss(cfg).to(device) if net.predicts_phase else None
    t = _Training(cfg, pairs, net, loss_fn, opt, sched, gen, device,
                  checkpoint=Path(checkpoint) if checkpoint else None)
    if cfg.adversarial:
        t.disc = SpectrogramDiscriminator().to(device)
        t.opt_d = torch.optim.AdamW(t.disc.parameters(), lr=cfg.learning_rate, betas=(0.8, 0.99))
    return t


def _loss_names(cfg: VocoderConfig) -> tuple[str, ...]:
    """The per-epoch metrics of a training (history keys besides ``epoch`` and ``seconds``)."""
    if cfg.phase == "griffinlim":
        return ("loss", "sc", "log_l1")
    return ("loss", "mrstft", "mel_l1", *(("phase",) if cfg.phase_weight > 0 else ()))


def _train_epoch(t: _Training, epoch: int) -> dict | None:
    """``steps_per_epoch`` updates on random crops: the epoch's mean losses, or ``None`` when a
    loss became NaN or infinite."""
    cfg = t.cfg
    t0 = time.perf_counter()
    sums = dict.fromkeys(_loss_names(cfg), 0.0)
    for _ in range(cfg.steps_per_epoch):
        x, y = _batch(t.pairs, cfg, t.gen)
        x, y = x.to(t.device), y.to(t.device)
        loss, parts = _waveform_loss(t, x, y) if t.net.predicts_phase else _magnitude_loss(t, x, y)
        if not optimizer_step(loss, t.opt, t.sched, t.net.parameters()):
            return None
        sums["loss"] += float(loss.detach())
        for k, v in parts.items():
            sums[k] += v
        t.bar.update(1)
    dt = time.perf_counter() - t0
    t.spent += dt
    return {"epoch": epoch + 1, **{k: v / cfg.steps_per_epoch for k, v in sums.items()}, "seconds": dt}


def _waveform_loss(t: _Training, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """A learned phase: the spectral losses of the rendered crops (+ the phase term, and with
    ``adversarial`` one discriminator step and the generator's terms)."""
    cfg = t.cfg
    spec = t.net.spectrum(x)
    y_hat = t.net.waveform(spec, y.shape[-1])
    loss, parts = t.loss_fn(y_hat, y)
    if cfg.phase_weight > 0:
        phase = phase_loss(spec, y, n_fft=cfg.n_fft, hop_length=cfg.hop_length, window=t.net.window)
        loss = loss + cfg.phase_weight * phase
        parts["phase"] = float(phase.detach())
    if t.disc is not None:
        t.opt_d.zero_grad(set_to_none=True)
        _discriminator_loss(t.disc, y_hat, y).backward()
        t.opt_d.step()
        loss = loss + cfg.adversarial_weight * _adversarial_terms(t.disc, y_hat, y)
    return loss, parts


def _magnitude_loss(t: _Training, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """A magnitude-only vocoder: :func:`magnitude_loss` against the crops' own STFT magnitude,
    leaving out the frames at each end that see the crop's edge instead of the audio around it."""
    n_frames, e = x.shape[-1], phase_edge(t.cfg.n_fft, t.cfg.hop_length)
    mag = torch.stft(y, t.cfg.n_fft, hop_length=t.cfg.hop_length, window=t.net.window, center=True,
                     return_complex=True).abs()[..., :n_frames]
    return magnitude_loss(t.net.log_magnitude(x)[..., e:n_frames - e], mag[..., e:n_frames - e])


def _end_epoch(t: _Training, metrics: dict) -> None:
    """Record the epoch and save the checkpoint (before anything is reported: an interruption
    loses no finished epoch), then the bar and the log line."""
    t.history.append(metrics)
    if t.checkpoint is not None:
        save_state(t.checkpoint, {"config": to_dict(t.cfg), "epoch": metrics["epoch"], "history": t.history,
                                  "seconds": t.spent, "rng": rng_state(t.gen),
                                  **state_dicts(model=t.net, optimizer=t.opt, scheduler=t.sched,
                                                discriminator=t.disc, optimizer_d=t.opt_d)})
    keys = _loss_names(t.cfg)
    t.bar.set_postfix({k: f"{metrics[k]:.3f}" for k in keys})
    if t.log is not None:
        t.log(f"epoch {metrics['epoch']}/{t.cfg.epochs} " + " ".join(f"{k} {metrics[k]:.4f}" for k in keys))


def _resume(t: _Training) -> int:
    """Restore everything from ``t.checkpoint`` (same configuration but ``epochs`` and ``device``):
    the epochs done. The resumed training is the same as an uninterrupted one."""
    ck, cfg = t.checkpoint, t.cfg
    state = load_state(ck, error=EncoderError, what="vocoder checkpoint", map_location=t.device)
    try:
        saved = from_dict(VocoderConfig, state["config"])
    except (KeyError, ConfigError) as e:
        raise EncoderError(f"vocoder checkpoint {ck} is unreadable ({e}); delete it to start over") from None
    check_config(to_dict(saved), to_dict(cfg), may_differ=RESUMABLE_CHANGES, error=EncoderError,
                 what=f"vocoder checkpoint {ck}")
    load_state_dicts(state, model=t.net, optimizer=t.opt, discriminator=t.disc, optimizer_d=t.opt_d)
    epoch = int(state["epoch"])
    if saved.epochs == cfg.epochs:
        t.sched.load_state_dict(state["scheduler"])
    else:  # a longer run: the one-cycle schedule is rebuilt for the new length, at the same step
        with warnings.catch_warnings():  # stepping a scheduler without an optimiser step warns
            warnings.simplefilter("ignore")
            for _ in range(epoch * cfg.steps_per_epoch):
                t.sched.step()
    set_rng_state(state["rng"], t.gen)
    t.history, t.spent = list(state["history"]), float(state.get("seconds", 0.0))
    return epoch
