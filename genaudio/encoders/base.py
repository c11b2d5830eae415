"""The encoder interface, its configuration, quantisation of codes, saving and loading.

Every encoder maps an input (a waveform, or input frames: see :mod:`genaudio.encoders.framing`) to
**codes** of shape ``(time, dim)`` at ``code_rate_hz`` code frames per second, maps codes back to
input frames (``decode``), and, when it has a spectral core, to a waveform (``to_audio``).

Bitrate is honest: ``code_rate_hz * dim * bits_per_value`` where ``bits_per_value`` is the stored
precision (32, 16 or 8 bits). With ``precision="uint8"`` each code dimension is quantised uniformly
between two bounds fitted on the training codes; those bounds are part of the fitted encoder (a
fixed cost, like the PCA basis), not of the per-second stream. ``encode`` returns float32 codes
that are exactly representable at the stored precision, so what a model trains on and what the
metrics measure is what the encoded store holds.

The audio decoder is an object the encoder holds (:attr:`Encoder.decoder`): a trained vocoder
(:class:`genaudio.encoders.vocoder.LearnedDecoder`, see :meth:`Encoder.fit_decoder`) when it has
one, else Griffin-Lim (:class:`genaudio.encoders.framing.GriffinLimDecoder`), the fallback.

Saved encoders are a folder: ``config.json`` (format tag, kind, :class:`EncoderConfig`, input
layout, decoder name) plus ``arrays.npz`` (loaded with ``allow_pickle=False``), for the
autoencoder ``weights.pt`` and, with a learned decoder, ``decoder/`` (the vocoder's
``config.json`` + ``weights.pt``); weights load with ``torch.load(weights_only=True)``.
Nothing is unpickled. Format version 2 added ``decoder/``; version 1 folders still load.
"""
from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from genaudio.config import ConfigError, FeatureConfig, from_dict, merge, nest, to_dict
from genaudio.encoders import framing
from genaudio.encoders.framing import Block, Standardizer
from genaudio.errors import EncoderError
from genaudio.infra import atomic_dir

FORMAT = "genaudio-encoder"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
DECODER_DIR = "decoder"
PRECISIONS = {"float32": 32, "float16": 16, "uint8": 8}
KINDS = ("mel", "pca", "autoencoder", "mulaw")
DECODERS = ("griffinlim", "learned")


@dataclasses.dataclass(frozen=True)
class PCAOptions:
    """Options of the ``pca`` kind.

    Attributes
    ----------
    whiten : bool
        Scale codes to unit variance per dimension.
    """

    whiten: bool = False


@dataclasses.dataclass(frozen=True)
class AutoencoderOptions:
    """Options of the ``autoencoder`` kind (its training; ``device`` and ``seed`` are shared).

    Attributes
    ----------
    epochs : int
        Passes over the training frames.
    batch_size : int
        Crops per optimiser step.
    learning_rate : float
        Peak learning rate (one-cycle schedule).
    hidden : int
        Hidden channels of the convolutional encoder and decoder.
    """

    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 2e-3
    hidden: int = 128

    def __post_init__(self):
        for name in ("epochs", "batch_size", "hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"autoencoder.{name} must be positive, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ConfigError(f"autoencoder.learning_rate must be positive, got {self.learning_rate}")


#: Options that were top-level fields of EncoderConfig before the kinds' options moved to their
#: own sections; saved encoders and search runs of that time are read through
#: :func:`upgrade_config`.
_LEGACY_FIELDS = {"whiten": "pca", "epochs": "autoencoder", "batch_size": "autoencoder",
                  "learning_rate": "autoencoder", "hidden": "autoencoder"}


def upgrade_config(d: Mapping[str, Any]) -> dict:
    """An :class:`EncoderConfig` mapping of an older genaudio (kind options at the top level)
    in today's form (``whiten`` under ``pca``, ``epochs``... under ``autoencoder``)."""
    out = {k: v for k, v in d.items() if k not in _LEGACY_FIELDS}
    for k, section in _LEGACY_FIELDS.items():
        if k in d:
            out[section] = {**dict(out.get(section) or {}), k: d[k]}
    return out


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """What an encoder is: its kind, size, input frames, stored precision, decoder, and the
    options of each kind in their own section (``pca``, ``autoencoder``).

    Attributes
    ----------
    kind : {"mel", "pca", "autoencoder", "mulaw"}
    dim : int
        Values per code frame. ``mel``: the number of mel bands (plus the extra feature dims, if
        any); ``pca``/``autoencoder``: the latent size; ``mulaw``: waveform samples per code frame.
    core : {"log_mel", "log_stft", "none"}
        Spectral core of the input frame (what ``to_audio`` renders). ``"none"``: only ``groups``,
        no audio decoder. ``mel`` always uses ``log_mel``; ``mulaw`` ignores it.
    groups : tuple of str
        Extra frame-level features joined to the core (catalog feature names such as ``mfcc``,
        ``chroma_stft``; group names are resolved by :func:`genaudio.encoders.store.resolve_groups`).
    sample_rate, n_fft, hop_length, n_mels : int
        Analysis of the spectral core (Hz, samples, samples, bands). Match the features store when
        encoding one (:func:`genaudio.encoders.store.config_for_store` does).
    feature_options : dict
        The other analysis options of the input features (``FeatureConfig`` fields: ``n_mfcc``,
        ``fmin``, ``win_length``, ...) where they differ from the defaults, as the features store
        was extracted with them (:func:`genaudio.encoders.store.feature_options`), so that frames
        computed from audio (``reconstruct``, a decoder's training) are the store's. ``{}``: the
        defaults.
    downsample : int
        Input frames per code frame (temporal downsampling): PCA stacks them, the autoencoder
        strides, mel averages them. ``code_rate_hz = sample_rate / hop_length / downsample``.
    precision : {"float16", "float32", "uint8"}
        Stored precision of the codes (``uint8``: per-dimension uniform quantisation).
    device : str
        Where the autoencoder and the learned decoder train (``"auto"``: CUDA when available).
    seed : int
        Seeds training and Griffin-Lim's initial phase.
    griffin_lim_iters : int
        Griffin-Lim iterations of ``to_audio``: of the Griffin-Lim decoder, and of a magnitude-only
        learned decoder's phase (``decoder_phase="griffinlim"``).
    decoder : {"learned", "griffinlim"}
        The audio decoder ``genaudio encode`` and the pipeline give a spectral encoder:
        ``"learned"`` (the default) trains a vocoder on the training audio
        (:meth:`Encoder.fit_decoder`; on real music at 32x it beats Griffin-Lim from the codes' own
        magnitude on spectral convergence, LSD and the judge: docs/encoders.md); ``"griffinlim"``
        trains nothing. Griffin-Lim stays the fallback of any encoder without a trained vocoder
        (an encoder made in code, a search trial's).
    decoder_epochs : int
        Training epochs of that vocoder (:class:`genaudio.encoders.vocoder.VocoderConfig`).
    decoder_phase : {"griffinlim", "learned"}
        Where that vocoder's phase comes from (``VocoderConfig.phase``): ``"griffinlim"`` (the
        default) learns the magnitude only and finds its phase as Griffin-Lim does (Griffin-Lim's
        speed); ``"learned"`` predicts the phase too (an iSTFT, ~20-40x faster to decode, behind
        Griffin-Lim on spectral convergence and LSD).
    decoder_code_noise : float
        Noise on the codes the vocoder trains from, in units of each code dimension's standard
        deviation (``VocoderConfig.code_noise``): a decoder for a model's generated codes.
    pca : PCAOptions
        Options of the ``pca`` kind.
    autoencoder : AutoencoderOptions
        Options of the ``autoencoder`` kind.
    """

    kind: str = "pca"
    dim: int = 16
    core: str = "log_mel"
    groups: tuple[str, ...] = ()
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 128
    downsample: int = 1
    precision: str = "float16"
    device: str = "auto"
    seed: int = 0
    griffin_lim_iters: int = 64
    decoder: str = "learned"
    decoder_epochs: int = 12
    decoder_phase: str = "griffinlim"
    decoder_code_noise: float = 0.0
    feature_options: dict = dataclasses.field(default_factory=dict)
    pca: PCAOptions = dataclasses.field(default_factory=PCAOptions)
    autoencoder: AutoencoderOptions = dataclasses.field(default_factory=AutoencoderOptions)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown encoder {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.dim < 1:
            raise ConfigError(f"encoder dim must be >= 1, got {self.dim}")
        if self.core not in framing.CORES:
            raise ConfigError(f"unknown spectral core {self.core!r}; choose one of {', '.join(framing.CORES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.downsample < 1:
            raise ConfigError(f"downsample must be >= 1, got {self.downsample}")
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.hop_length > self.n_fft:
            raise ConfigError(f"hop_length ({self.hop_length}) must not exceed n_fft ({self.n_fft})")
        if self.decoder not in DECODERS:
            raise ConfigError(f"unknown decoder {self.decoder!r}; choose one of {', '.join(DECODERS)}")
        if self.decoder_epochs < 1:
            raise ConfigError(f"decoder_epochs must be >= 1, got {self.decoder_epochs}")
        from genaudio.encoders.vocoder import PHASES

        if self.decoder_phase not in PHASES:
            raise ConfigError(f"unknown decoder_phase {self.decoder_phase!r}; choose one of {', '.join(PHASES)}")
        if self.decoder_code_noise < 0:
            raise ConfigError(f"decoder_code_noise must be >= 0, got {self.decoder_code_noise}")
        if self.griffin_lim_iters < 0:
            raise ConfigError(f"griffin_lim_iters must be >= 0, got {self.griffin_lim_iters}")
        encoder_class(self.kind).check_config(self)   # what only this kind requires
        unknown = set(self.feature_options) - set(framing.FEATURE_OPTIONS)
        if unknown:
            raise ConfigError(f"feature_options cannot set {', '.join(sorted(unknown))}: its keys are the analysis options "
                              f"of the features, {', '.join(framing.FEATURE_OPTIONS)}")
        from_dict(FeatureConfig, dict(self.feature_options))   # the values, checked as extraction checks them
        if len(set(self.groups)) != len(self.groups):
            raise ConfigError(f"feature groups repeat: {list(self.groups)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")


#: The kinds with options of their own: each is a section of :class:`EncoderConfig` of that name.
KIND_SECTIONS = tuple(f.name for f in dataclasses.fields(EncoderConfig) if f.name in KINDS)


# ---------------------------------------------------------------------------------------------
# Registry


_REGISTRY: dict[str, type["Encoder"]] = {}


def register(kind: str):
    def deco(cls):
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls
    return deco


def encoder_class(kind: str) -> type["Encoder"]:
    # importing the package registers every kind
    import genaudio.encoders  # noqa: F401

    if kind not in _REGISTRY:
        raise EncoderError(f"unknown encoder {kind!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[kind]


def make_encoder(kind: str | None = None, *, dim: int | None = None, config: EncoderConfig | None = None,
                 **options: Any) -> "Encoder":
    """A new, unfitted encoder.

    Parameters
    ----------
    kind : {"mel", "pca", "autoencoder", "mulaw"}, optional
        Overrides ``config.kind``.
    dim : int, optional
        Overrides ``config.dim``. For ``mel`` without extra groups it also sets ``n_mels``.
    config : EncoderConfig, optional
        Base configuration (defaults otherwise).
    **options
        Any other :class:`EncoderConfig` field, e.g. ``core="log_stft"``, ``precision="uint8"``;
        a kind's section as a mapping merged over the base's (``autoencoder={"epochs": 10}``).

    Examples
    --------
    >>> enc = make_encoder("pca", dim=16, core="log_stft", precision="uint8")
    >>> enc.fit(waveforms).encode(y).shape   # (time, 16)
    >>> make_encoder("autoencoder", dim=8, autoencoder={"epochs": 10, "hidden": 64})
    """
    base = merge(to_dict(config) if config is not None else {}, nest(options))
    if kind is not None:
        base["kind"] = kind
    if dim is not None:
        base["dim"] = dim
    if base.get("kind") == "mel":
        base["core"] = "log_mel"
        if not base.get("groups") and dim is not None and "n_mels" not in options:
            base["n_mels"] = dim
    try:
        cfg = from_dict(EncoderConfig, base)
    except ConfigError as e:
        raise EncoderError(str(e)) from None
    return encoder_class(cfg.kind)(cfg)


# ---------------------------------------------------------------------------------------------
# The interface


def _is_waveform(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.ndim == 1


class Encoder:
    """Base class: input frames -> standardised -> codes (time, dim) -> frames -> audio.

    Subclasses implement ``_fit(zs)``, ``_encode(z)`` and ``_decode(codes)`` on standardised
    input matrices ``z`` (dims, time), plus ``_arrays()`` / ``_set_arrays()`` for persistence.
    """

    kind: ClassVar[str] = "?"
    #: What :meth:`encode` and :meth:`fit` take: input frames (a dict of frame arrays per segment,
    #: or waveforms it frames itself), or the waveform itself (a waveform coder).
    takes_waveform: ClassVar[bool] = False
    #: The precision codes are stored at when the kind fixes it (else the config's).
    fixed_precision: ClassVar[str | None] = None
    #: What the kind codes when it fixes it (else the config's spectral core).
    fixed_core: ClassVar[str | None] = None

    @classmethod
    def check_config(cls, config: EncoderConfig) -> None:
        """Raise :class:`ConfigError` for a config this kind cannot use (called by
        :class:`EncoderConfig` itself, after the checks every kind shares)."""
        if config.core == "none" and not config.groups:
            raise ConfigError("core='none' needs at least one feature group (nothing to encode)")

    @classmethod
    def precision_of(cls, config: EncoderConfig) -> str:
        """The precision this kind stores codes at under ``config``."""
        return cls.fixed_precision or config.precision

    @classmethod
    def core_of(cls, config: EncoderConfig) -> str:
        """What this kind codes under ``config``: a spectral core, ``"none"`` or ``"waveform"``."""
        return cls.fixed_core or config.core

    @classmethod
    def item_of(cls, waveform: np.ndarray | None, parts: Mapping[str, np.ndarray] | None):
        """Of a segment's waveform and its input frames, the one :meth:`encode` takes."""
        return waveform if cls.takes_waveform else parts

    def __init__(self, config: EncoderConfig):
        self.config = config
        self.blocks: list[Block] = []
        self.standardizer: Standardizer | None = None
        self.q_lo: np.ndarray | None = None
        self.q_step: np.ndarray | None = None
        self.fitted = False
        #: the trained vocoder, when there is one (see :attr:`decoder`)
        self.learned_decoder = None

    def __repr__(self) -> str:
        state = "fitted" if self.fitted else "unfitted"
        return (f"<{type(self).__name__} {state} dim={self.dim} core={self.config.core} "
                f"code_rate={self.code_rate_hz:.2f}Hz bitrate={self.bitrate:.0f}b/s>")

    # -- properties ---------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Values per code frame."""
        return self.config.dim

    @property
    def sample_rate(self) -> int:
        """Sample rate (Hz) of the audio the encoder reads and renders."""
        return self.config.sample_rate

    @property
    def code_rate_hz(self) -> float:
        """Code frames per second of audio."""
        return self.config.sample_rate / self.config.hop_length / self.config.downsample

    @property
    def precision(self) -> str:
        """The precision codes are stored at (:meth:`precision_of` its config)."""
        return self.precision_of(self.config)

    @property
    def bits_per_value(self) -> int:
        """Bits per stored code value (32, 16 or 8)."""
        return PRECISIONS[self.precision]

    @property
    def bitrate(self) -> float:
        """Bits per second of audio at the stored precision: ``code_rate_hz * dim * bits``."""
        return self.code_rate_hz * self.dim * self.bits_per_value

    @property
    def compression_ratio(self) -> float:
        """16-bit PCM at ``sample_rate`` divided by :attr:`bitrate`."""
        return 16.0 * self.sample_rate / self.bitrate

    @property
    def has_audio_decoder(self) -> bool:
        """Whether :meth:`to_audio` works (the input has a spectral core)."""
        return self.config.core != "none"

    @property
    def decoder(self) -> framing.GriffinLimDecoder:
        """The object that renders core frames to audio: the learned decoder when one is trained
        (:meth:`fit_decoder`, :meth:`set_decoder`), else Griffin-Lim. Both have ``name`` and
        ``render(frames, length=)``."""
        if self.learned_decoder is not None:
            return self.learned_decoder
        c = self.config
        return framing.GriffinLimDecoder(core=c.core, sample_rate=c.sample_rate, n_fft=c.n_fft,
                                         hop_length=c.hop_length, n_iter=c.griffin_lim_iters, seed=c.seed)

    @property
    def can_learn_decoder(self) -> bool:
        """Whether :meth:`fit_decoder` / :meth:`set_decoder` apply (a spectral core to vocode)."""
        return self.has_audio_decoder

    @property
    def decoder_name(self) -> str:
        """``"learned"``, ``"griffinlim"`` or ``"none"`` (no spectral core)."""
        return self.decoder.name if self.has_audio_decoder else "none"

    def vocoder_config(self, **options: Any):
        """The :class:`~genaudio.encoders.vocoder.VocoderConfig` matching this encoder's analysis
        (``decoder_epochs``, ``decoder_phase``, ``decoder_code_noise``, ``griffin_lim_iters``, ``seed``,
        ``device`` from its config; ``options`` override any field)."""
        from genaudio.encoders.vocoder import VocoderConfig

        c = self.config
        base = dict(core=c.core, sample_rate=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length,
                    n_mels=c.n_mels, epochs=c.decoder_epochs, phase=c.decoder_phase,
                    code_noise=c.decoder_code_noise, seed=c.seed, griffin_lim_iters=c.griffin_lim_iters,
                    device=c.device)
        base.update(options)
        try:
            return from_dict(VocoderConfig, base)
        except ConfigError as e:
            raise EncoderError(str(e)) from None

    def fit_decoder(self, waves: Iterable[np.ndarray], *, config=None, from_codes: bool | None = None,
                    checkpoint: str | os.PathLike | None = None, progress: bool = False, log=None) -> "Encoder":
        """Train a learned decoder (vocoder) on waveforms ``(samples,)`` and use it from now on.

        The vocoder learns core frames -> audio. With ``from_codes`` (the default once the encoder
        is fitted) its input frames are the ones this encoder's codes decode to,
        ``decode(encode(y))`` with quantisation, so it learns to undo the encoder's losses as well
        as to find the phase: at 32x the decoded frames are far from the clean ones, and a vocoder
        trained on clean frames meets inputs it never saw. ``from_codes=False`` trains on the clean
        frames: one vocoder then serves every encoder with the same core and analysis
        (:meth:`set_decoder`), each less well. ``config`` defaults to :meth:`vocoder_config`; its
        ``code_noise`` adds seeded Gaussian noise to the codes before they are decoded (from codes
        only). ``checkpoint``/``progress``/``log`` as :func:`genaudio.encoders.vocoder.train_vocoder`.
        Returns ``self``.
        """
        from genaudio.encoders.vocoder import train_vocoder

        if not self.has_audio_decoder:
            raise EncoderError(f"this {self.kind} encoder has no spectral core: there is nothing to vocode")
        from_codes = self.fitted if from_codes is None else from_codes
        if from_codes:
            self._require_fitted()
        cfg = config if config is not None else self.vocoder_config()
        if cfg.code_noise and not from_codes:
            raise EncoderError("code_noise needs a vocoder trained from the encoder's codes (from_codes=True)")
        waves = [np.asarray(y, dtype=np.float32) for y in waves]
        if not waves:
            raise EncoderError("no training audio for the decoder")
        name = framing.core_feature(self.config.core)
        frames, codes = [], []
        for y in waves:
            parts = self._frame_parts(y)
            frames.append(parts[name])
            if from_codes:
                codes.append(self.encode(parts))
        if from_codes:
            if cfg.code_noise:
                codes = add_code_noise(codes, cfg.code_noise, seed=cfg.seed)
            frames = [framing.fit_length(self.decode(c)[:self.core_dims], f.shape[1]) for c, f in zip(codes, frames)]
        decoder = train_vocoder(waves, frames, cfg, checkpoint=checkpoint, progress=progress, log=log)
        decoder.training["frames"] = self.decoded_frames_name if from_codes else "clean core frames"
        self.set_decoder(decoder)
        return self

    @property
    def decoded_frames_name(self) -> str:
        """What ``fit_decoder(from_codes=True)`` records as a vocoder's training frames
        (``decoder.training["frames"]``): says which encoder's codes it learned to decode."""
        return f"decoded codes of this {self.kind} encoder (dim {self.dim}, {self.precision})"

    def set_decoder(self, decoder) -> "Encoder":
        """Use a trained :class:`~genaudio.encoders.vocoder.LearnedDecoder` (its analysis must match
        this encoder's), or ``None`` for Griffin-Lim. Returns ``self``."""
        if decoder is not None:
            if not self.has_audio_decoder:
                raise EncoderError(f"this {self.kind} encoder has no spectral core: it cannot use a vocoder")
            decoder.check_analysis(self.config)
        self.learned_decoder = decoder
        return self

    @property
    def input_dims(self) -> int:
        """Rows of an input frame matrix (core + extra features); known after :meth:`fit`."""
        return sum(b.dims for b in self.blocks)

    @property
    def core_dims(self) -> int:
        return framing.core_dims(self.config.core, n_fft=self.config.n_fft, n_mels=self.config.n_mels)

    # -- input frames -------------------------------------------------------------------------
    def _frame_parts(self, y: np.ndarray) -> dict[str, np.ndarray]:
        c = self.config
        y = np.asarray(y, dtype=np.float32)
        if y.size == 0:
            raise EncoderError("empty waveform (0 samples)")
        if not np.all(np.isfinite(y)):
            raise EncoderError("waveform contains NaN or infinity")
        return framing.compute_parts(y, sr=c.sample_rate, core=c.core, groups=c.groups, n_fft=c.n_fft,
                                     hop_length=c.hop_length, n_mels=c.n_mels, options=c.feature_options)

    def blocks_names_extra(self) -> list[str]:
        return [b.name for b in self.blocks if not b.core]

    def _layout_from(self, parts: Mapping[str, np.ndarray]) -> list[Block]:
        c = self.config
        blocks = []
        if c.core != "none":
            name = framing.core_feature(c.core)
            if name not in parts:
                raise EncoderError(f"input frames lack the spectral core {c.core} (feature {name}; "
                                   f"have {', '.join(sorted(parts)) or 'nothing'})")
            blocks.append(Block(name, int(np.asarray(parts[name]).shape[0]), core=True))
            if blocks[0].dims != self.core_dims:
                raise EncoderError(
                    f"{name} frames have {blocks[0].dims} rows but this encoder expects {self.core_dims} "
                    f"(n_fft={c.n_fft}, n_mels={c.n_mels}); use the features store's analysis settings")
        for g in c.groups:
            if g not in parts:
                raise EncoderError(f"input frames lack feature {g!r} (have {', '.join(sorted(parts))})")
            m = np.asarray(parts[g])
            blocks.append(Block(g, 1 if m.ndim == 1 else int(m.shape[0])))
        return blocks

    def input_frames(self, x: Any) -> np.ndarray:
        """Raw (unstandardised) input frame matrix ``(input_dims, time)`` of a waveform or frames.

        ``x`` is a waveform ``(samples,)`` at :attr:`sample_rate`, a mapping ``{feature: (dims,
        time)}`` (a features-store row or :func:`genaudio.features.compute` output), or an
        already assembled ``(input_dims, time)`` matrix.
        """
        if isinstance(x, Mapping):
            parts = x
            name = framing.core_feature(self.config.core)
            if name and name not in parts and self.config.core in parts:
                # accept the core under its option name too ({"log_stft": ...} for catalog "stft_db")
                parts = {**parts, name: parts[self.config.core]}
        else:
            arr = np.asarray(x)
            if arr.ndim == 1:
                parts = self._frame_parts(arr)
            elif arr.ndim == 2:
                if not self.blocks:
                    raise EncoderError("an assembled frame matrix needs a fitted encoder (its layout is unknown)")
                if arr.shape[0] != self.input_dims:
                    raise EncoderError(f"frame matrix has {arr.shape[0]} rows, expected {self.input_dims} "
                                       "(input_dims, time)")
                if arr.shape[1] == 0:
                    raise EncoderError("input frames are empty (0 frames)")
                if not np.all(np.isfinite(arr)):
                    raise EncoderError("input frames contain NaN or infinity")
                return arr.astype(np.float32)
            else:
                raise EncoderError(f"cannot encode an array of shape {arr.shape}: pass a waveform "
                                   "(samples,) or frames (dims, time)")
        if not self.blocks:
            return framing.assemble(parts, self._layout_from(parts))
        return framing.assemble(parts, self.blocks)

    # -- fit / encode / decode ------------------------------------------------------------------
    def fit(self, data: Any) -> "Encoder":
        """Fit on training data; returns ``self``.

        ``data`` is one input (waveform, frames mapping or matrix; see :meth:`input_frames`) or an
        iterable of them.
        """
        items = _as_items(data)
        if not items:
            raise EncoderError("no training data: the input holds no segments")
        first = items[0]
        parts = None
        if isinstance(first, Mapping):
            name = framing.core_feature(self.config.core)
            parts = first
            if name and name not in first and self.config.core in first:
                parts = {**first, name: first[self.config.core]}
        if parts is None and _is_waveform(np.asarray(first)):
            parts = self._frame_parts(np.asarray(first))
            items = [parts] + items[1:]
        if parts is None:
            raise EncoderError("fit() needs waveforms or named frames ({feature: (dims, time)})")
        blocks = self._layout_from(parts)
        self.blocks = blocks
        try:
            frames = [self.input_frames(it) for it in items]
            self.standardizer = Standardizer.fit(frames, blocks)
            zs = [self.standardizer.apply(f) for f in frames]
            self._fit(zs)
            self.fitted = True
            self._fit_quantizer([self._encode(z) for z in zs])
        except BaseException:
            self.blocks, self.standardizer, self.fitted = [], None, False
            raise
        return self

    def _require_fitted(self):
        if not self.fitted:
            raise EncoderError(f"this {self.kind} encoder is not fitted yet: call fit() or load_encoder()")

    def encode(self, x: Any) -> np.ndarray:
        """Codes ``(time, dim)`` float32 of a waveform or frames, at the stored precision."""
        self._require_fitted()
        z = self.standardizer.apply(self.input_frames(x))
        return self.dequantize(self.quantize(self._encode(z)))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Input frames ``(input_dims, time * downsample)`` (raw units: dB, feature units)."""
        self._require_fitted()
        codes = self._check_codes(codes)
        return self.standardizer.invert(self._decode(codes))

    def split_frames(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """``{feature: (dims, time)}`` of a decoded frame matrix."""
        return framing.split(frames, self.blocks)

    def to_audio(self, codes: np.ndarray | None = None, *, frames: np.ndarray | None = None,
                 length: int | None = None) -> np.ndarray:
        """Render codes ``(time, dim)`` (or decoded ``frames=(input_dims, time)``) to a waveform
        with :attr:`decoder` (the learned decoder when trained, else Griffin-Lim).

        Returns ``(samples,)`` float32 at :attr:`sample_rate`; ``length`` trims/pads to a size.
        """
        self._require_fitted()
        if not self.has_audio_decoder:
            raise EncoderError(f"this {self.kind} encoder was fitted without a spectral core "
                               f"(features {', '.join(self.config.groups)} only): it has no audio decoder")
        if (codes is None) == (frames is None):
            raise EncoderError("to_audio needs exactly one of codes or frames=")
        if frames is None:
            frames = self.decode(codes)
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim != 2 or frames.shape[0] != self.input_dims:
            raise EncoderError(f"frames have shape {frames.shape}, expected ({self.input_dims}, time)")
        c = self.config
        if length is not None:
            # decoded frames may carry the padding of temporal downsampling: cut to the clip's frames
            frames = framing.fit_length(frames, 1 + int(length) // c.hop_length)
        return self.decoder.render(frames[:self.core_dims], length=length)

    def reconstruct(self, y: np.ndarray) -> np.ndarray:
        """``to_audio(encode(y))`` at the length of ``y``."""
        return self.to_audio(self.encode(y), length=len(y))

    def _check_codes(self, codes: Any) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[1] != self.dim or codes.shape[0] == 0:
            raise EncoderError(f"codes have shape {codes.shape}, expected (time, {self.dim}) with time >= 1")
        if not np.all(np.isfinite(codes)):
            raise EncoderError("codes contain NaN or infinity")
        return codes

    # -- quantisation ---------------------------------------------------------------------------
    def _fit_quantizer(self, codes: list[np.ndarray]) -> None:
        if self.config.precision != "uint8":
            self.q_lo = self.q_step = None
            return
        C = np.concatenate(codes, axis=0).astype(np.float64)
        # Robust bounds: the extreme 0.05 % of training values are clipped, buying resolution.
        lo, hi = np.percentile(C, 0.05, axis=0), np.percentile(C, 99.95, axis=0)
        span = np.maximum(hi - lo, 1e-6)
        self.q_lo, self.q_step = lo.astype(np.float32), (span / 255.0).astype(np.float32)

    def quantize(self, codes: np.ndarray) -> np.ndarray:
        """Codes as stored: float32, float16 or uint8 (per-dimension uniform bins)."""
        codes = np.asarray(codes, dtype=np.float32)
        p = self.config.precision
        if p == "float32":
            return codes
        if p == "float16":
            return np.clip(codes, -65000, 65000).astype(np.float16)
        q = np.rint((codes - self.q_lo) / self.q_step)
        return np.clip(q, 0, 255).astype(np.uint8)

    def dequantize(self, stored: np.ndarray) -> np.ndarray:
        """The float32 codes a stored array stands for."""
        stored = np.asarray(stored)
        if self.config.precision == "uint8":
            return (stored.astype(np.float32) * self.q_step + self.q_lo).astype(np.float32)
        return stored.astype(np.float32)

    # -- persistence ----------------------------------------------------------------------------
    def _read_quantizer(self, arrays: Mapping[str, np.ndarray], path: Path) -> None:
        """Restore the fitted uint8 quantiser's bounds from a saved folder's arrays."""
        if self.config.precision == "uint8":
            self.q_lo, self.q_step = arrays["q_lo"], arrays["q_step"]
            if self.q_lo.shape != (self.dim,):
                raise EncoderError(f"{path}: quantiser has shape {self.q_lo.shape}, expected ({self.dim},)")

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        pass

    def _save_extra(self, folder: Path) -> None:
        pass

    def _load_extra(self, folder: Path) -> None:
        pass

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted encoder to folder ``path`` (replaced atomically if it holds an encoder).

        Refuses to replace a folder that is not an encoder, so nothing else is ever overwritten.
        """
        self._require_fitted()
        path = Path(path)
        if path.exists():
            if not path.is_dir():
                raise EncoderError(f"{path} exists and is not a folder; not overwriting it")
            if any(path.iterdir()) and not (path / "config.json").is_file():
                raise EncoderError(f"{path} is a non-empty folder that holds no encoder; not overwriting it")
        with atomic_dir(path) as tmp:
            arrays = dict(self._arrays())
            arrays["std_mean"] = self.standardizer.mean
            arrays["std_scale"] = self.standardizer.scale
            if self.q_lo is not None:
                arrays["q_lo"], arrays["q_step"] = self.q_lo, self.q_step
            np.savez(tmp / "arrays.npz", **arrays)
            self._save_extra(tmp)
            if self.learned_decoder is not None:
                self.learned_decoder.save(tmp / DECODER_DIR)
            meta = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "kind": self.kind,
                "config": to_dict(self.config),
                "blocks": [dataclasses.asdict(b) for b in self.blocks],
                "dim": self.dim,
                "code_rate_hz": self.code_rate_hz,
                "bits_per_value": self.bits_per_value,
                "bitrate": self.bitrate,
                "has_audio_decoder": self.has_audio_decoder,
                "decoder": self.decoder_name,
            }
            (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Encoder":
        """Load an encoder saved by :meth:`save` (of this class or, from the base, of any kind)."""
        enc = load_encoder(path)
        if cls is not Encoder and not isinstance(enc, cls):
            raise EncoderError(f"{path} holds a {enc.kind} encoder, not a {cls.kind} encoder")
        return enc

    # -- subclass hooks -------------------------------------------------------------------------
    def _fit(self, zs: list[np.ndarray]) -> None:
        raise NotImplementedError

    def _encode(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def add_code_noise(codes: list[np.ndarray], scale: float, *, seed: int) -> list[np.ndarray]:
    """Codes ``(time, dim)`` plus seeded white Gaussian noise of ``scale`` times each dimension's
    standard deviation over all of them."""
    std = np.concatenate(codes, axis=0).std(axis=0)
    rng = np.random.default_rng(seed)
    return [(c + scale * std * rng.standard_normal(c.shape)).astype(c.dtype) for c in codes]


def _as_items(data: Any) -> list:
    if isinstance(data, Mapping):
        return [data]
    if isinstance(data, np.ndarray):
        if data.ndim in (1, 2):
            return [data]
        return list(data)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        return [d for d in data]
    raise EncoderError(f"cannot fit on {type(data).__name__}: pass waveforms or frames")


def load_encoder(path: str | os.PathLike) -> Encoder:
    """Load a saved encoder folder (or an encoded store's ``encoder/``) without unpickling.

    Raises :class:`EncoderError` for a missing, corrupt or foreign folder.
    """
    path = Path(path)
    if (path / "encoder" / "config.json").is_file():
        path = path / "encoder"
    meta_path = path / "config.json"
    if not meta_path.is_file():
        raise EncoderError(f"{path} is not a saved genaudio encoder (no config.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EncoderError(f"{meta_path} is corrupt: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise EncoderError(f"{path} is not a genaudio encoder (config.json has no format: {FORMAT!r})")
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise EncoderError(f"{path}: encoder format version {meta.get('format_version')} is not supported "
                           f"(this genaudio reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    try:
        cfg = from_dict(EncoderConfig, upgrade_config(meta["config"]))
        blocks = [Block(str(b["name"]), int(b["dims"]), bool(b["core"])) for b in meta["blocks"]]
    except (ConfigError, KeyError, TypeError, ValueError) as e:
        raise EncoderError(f"{path}: invalid encoder config: {e}") from None
    enc = encoder_class(cfg.kind)(cfg)
    try:
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise EncoderError(f"{path}: arrays.npz is missing") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise EncoderError(f"{path}: arrays.npz is corrupt ({e})") from None
    try:
        enc.blocks = blocks
        d = sum(b.dims for b in blocks)
        mean, scale = arrays["std_mean"], arrays["std_scale"]
        if mean.shape != (d,) or scale.shape != (d,):
            raise EncoderError(f"{path}: standardiser has shape {mean.shape}, expected ({d},)")
        enc.standardizer = Standardizer(mean.astype(np.float32), scale.astype(np.float32))
        enc._read_quantizer(arrays, path)
        enc._set_arrays(arrays)
        enc._load_extra(path)
        if (path / DECODER_DIR).is_dir():
            from genaudio.encoders.vocoder import LearnedDecoder

            enc.set_decoder(LearnedDecoder.load(path / DECODER_DIR))
    except KeyError as e:
        raise EncoderError(f"{path}: arrays.npz lacks {e}") from None
    enc.fitted = True
    return enc
