"""Configuration of model training: one frozen dataclass per concern, validated on creation.

``TrainConfig`` is what ``genaudio train --config FILE --set ...`` reads (YAML, via
:func:`genaudio.config.load`) and what ``RUN/config.yaml`` holds, so a run can be repeated.
"""
from __future__ import annotations

import dataclasses

from genaudio.errors import ConfigError

MODELS = ("lstm", "gan")
LSTM_HEADS = ("mse", "gaussian", "mdn")
GAN_FAMILIES = ("conv", "rnn")
GAN_LOSSES = ("ns", "wgan-gp")


@dataclasses.dataclass(frozen=True)
class LSTMConfig:
    """Autoregressive next-frame LSTM over code sequences.

    Attributes
    ----------
    layers, hidden : int
        Stacked LSTM layers and their width.
    dropout : float
        Dropout between layers and before the output head (training only).
    context : int
        Training window length in code frames (teacher forcing over ``context`` steps).
    head : {"mse", "gaussian", "mdn"}
        Output distribution: ``mse`` predicts the mean (sampling adds ``noise`` x the std of its
        residuals on the validation windows, per dimension); ``gaussian`` a diagonal Gaussian;
        ``mdn`` a mixture of ``mixtures`` diagonal Gaussians. The last two are trained by negative
        log-likelihood, so sampling draws from a distribution rather than repeating the mean.
    mixtures : int
        Components of the ``mdn`` head.
    temperature : float
        Default sampling temperature (scales the predicted std; 0 = the mean, deterministic,
        for the mixture too).
    noise : float
        For the ``mse`` head: std of the Gaussian noise added when sampling, in units of the
        model's residual std on the validation windows (per dimension, measured at validation).
    input_noise : float
        Std of Gaussian noise added to teacher-forced inputs during training (robustness to the
        model's own errors in free-running generation).
    """

    layers: int = 2
    hidden: int = 256
    dropout: float = 0.1
    context: int = 64
    head: str = "gaussian"
    mixtures: int = 4
    temperature: float = 1.0
    noise: float = 0.0
    input_noise: float = 0.0

    def __post_init__(self):
        if self.layers < 1 or self.hidden < 1:
            raise ConfigError("lstm.layers and lstm.hidden must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lstm.dropout must be in [0, 1), got {self.dropout}")
        if self.context < 2:
            raise ConfigError(f"lstm.context must be >= 2 frames, got {self.context}")
        if self.head not in LSTM_HEADS:
            raise ConfigError(f"lstm.head must be one of {', '.join(LSTM_HEADS)}, got {self.head!r}")
        if self.mixtures < 1:
            raise ConfigError("lstm.mixtures must be >= 1")
        if self.temperature < 0 or self.noise < 0 or self.input_noise < 0:
            raise ConfigError("lstm.temperature, lstm.noise and lstm.input_noise must be >= 0")


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """A GAN generating fixed-length patches of code frames from noise.

    Attributes
    ----------
    family : {"conv", "rnn"}
        ``conv``: DCGAN/WaveGAN-style 1-D (transposed) convolutions over time;
        ``rnn``: C-RNN-GAN-style LSTM generator (noise at every step) and bidirectional LSTM
        discriminator.
    latent : int
        Noise dimension (per patch for ``conv``, per frame for ``rnn``).
    loss : {"ns", "wgan-gp"}
        Non-saturating GAN loss, or Wasserstein loss with gradient penalty.
    patch : int
        Frames per generated patch (the training window length). Longer clips are generated as
        consecutive patches (``conv``) or by running the generator longer (``rnn``).
    channels : int
        Base width: conv channels, or LSTM hidden size for ``rnn``.
    layers : int
        Up/down-sampling stages (``conv``) or LSTM layers (``rnn``).
    gp_weight : float
        Gradient-penalty weight for ``wgan-gp``.
    n_critic : int
        Discriminator steps per generator step.
    d_lr_scale : float
        Discriminator learning rate = ``TrainConfig.lr * d_lr_scale``.
    beta1, beta2 : float
        Adam betas (GANs train better with a low beta1).
    """

    family: str = "conv"
    latent: int = 64
    loss: str = "ns"
    patch: int = 32
    channels: int = 128
    layers: int = 3
    gp_weight: float = 10.0
    n_critic: int = 1
    d_lr_scale: float = 1.0
    beta1: float = 0.5
    beta2: float = 0.9

    def __post_init__(self):
        if self.family not in GAN_FAMILIES:
            raise ConfigError(f"gan.family must be one of {', '.join(GAN_FAMILIES)}, got {self.family!r}")
        if self.loss not in GAN_LOSSES:
            raise ConfigError(f"gan.loss must be one of {', '.join(GAN_LOSSES)}, got {self.loss!r}")
        if self.latent < 1 or self.channels < 1 or self.layers < 1 or self.n_critic < 1:
            raise ConfigError("gan.latent, gan.channels, gan.layers and gan.n_critic must be >= 1")
        if self.patch < 4:
            raise ConfigError(f"gan.patch must be >= 4 frames, got {self.patch}")
        if self.family == "conv" and self.patch < 2 ** self.layers:
            raise ConfigError(
                f"gan.patch ({self.patch}) must be >= 2**gan.layers ({2 ** self.layers}) for the conv family"
            )
        if self.gp_weight < 0 or self.d_lr_scale <= 0:
            raise ConfigError("gan.gp_weight must be >= 0 and gan.d_lr_scale > 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError("gan.beta1 and gan.beta2 must be in [0, 1)")


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    """How the comparable quality score is computed (see :mod:`genaudio.models.score`).

    Attributes
    ----------
    at_end : bool
        ``genaudio train`` scores the final model when training ends
        (:func:`genaudio.models.score.score_at_end`; needs the encoded store, for its decoder and
        the held-out real clips). :func:`~genaudio.models.train.train` itself never scores.
    n_clips : int
        Generated clips judged, and real clips in each half of the held-out reference.
    seconds : float or None
        Length of each judged clip; ``None``: 5 s, or the segments' length when shorter.
    seed : int
        Seed of generation and of the choice of real clips, so two scorings of one model agree.
    """

    at_end: bool = True
    n_clips: int = 32
    seconds: float | None = None
    seed: int = 0

    def __post_init__(self):
        if self.n_clips < 5:
            raise ConfigError("score.n_clips must be >= 5 (the judge's standard error needs them)")
        if self.seconds is not None and self.seconds <= 0:
            raise ConfigError("score.seconds must be positive")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run.

    Attributes
    ----------
    model : {"lstm", "gan"}
        Which model family to train; only the matching sub-config is used.
    lstm, gan : LSTMConfig, GANConfig
    lr : float
        Adam learning rate (generator's for the GAN).
    batch_size : int
        Global batch size in windows (split evenly across data-parallel workers).
    epochs : int
        Passes over the training windows.
    steps_per_epoch : int or None
        Cap on optimiser steps per epoch (``None``: one full pass).
    seed : int
        Seeds initialisation, data order, dropout and sampling.
    device : str
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    amp : bool
        Mixed precision (float16 autocast + gradient scaling) on CUDA; ignored on CPU.
    val_fraction : float
        Fraction of files (never segments) held out for validation and scoring, used when the
        encoded store does not record the encoder's own train/test split of files.
    window_hop : int or None
        Frames between consecutive training windows inside a segment; ``None`` = half a window.
    grad_clip : float
        Gradient-norm clip (0 disables).
    weight_decay : float
        Adam weight decay.
    divergence_factor : float
        Stop with status ``"diverged"`` when the monitored loss exceeds this many times its best.
    patience : int
        Early stop after this many epochs without validation improvement (0 disables).
    score : ScoreConfig
    """

    model: str = "lstm"
    lstm: LSTMConfig = dataclasses.field(default_factory=LSTMConfig)
    gan: GANConfig = dataclasses.field(default_factory=GANConfig)
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 20
    steps_per_epoch: int | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    val_fraction: float = 0.2
    window_hop: int | None = None
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    divergence_factor: float = 100.0
    patience: int = 0
    score: ScoreConfig = dataclasses.field(default_factory=ScoreConfig)

    def __post_init__(self):
        if self.model not in MODELS:
            raise ConfigError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ConfigError("batch_size and epochs must be >= 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError("steps_per_epoch must be >= 1 (or null for a full pass)")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.window_hop is not None and self.window_hop < 1:
            raise ConfigError("window_hop must be >= 1")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ConfigError("grad_clip and weight_decay must be >= 0")
        if self.divergence_factor <= 1:
            raise ConfigError("divergence_factor must be > 1")
        if self.patience < 0:
            raise ConfigError("patience must be >= 0")

    @property
    def window(self) -> int:
        """Frames per training window: LSTM context + 1 (inputs and shifted targets), or GAN patch."""
        return self.lstm.context + 1 if self.model == "lstm" else self.gan.patch
