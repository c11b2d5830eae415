"""GAN generators and discriminators over patches of code frames, and the two losses.

Two families:

- ``conv`` (DCGAN / WaveGAN style): the generator maps one noise vector per patch through a linear
  layer and ``layers`` upsample+conv stages to ``(patch, dim)``; the discriminator mirrors it with
  strided convolutions and LeakyReLU (no batch norm, so the gradient penalty stays per-sample).
- ``rnn`` (C-RNN-GAN style): an LSTM generator reads fresh noise at every frame; a bidirectional
  LSTM discriminator scores every frame and averages.

Losses: non-saturating (``ns``) and Wasserstein with gradient penalty (``wgan-gp``).
Tensors are ``(batch, time, dim)`` in normalised code units.
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from torch.nn import functional as F

from genaudio.models.config import GANConfig


class ConvGenerator(nn.Module):
    def __init__(self, dim: int, cfg: GANConfig):
        super().__init__()
        self.dim, self.cfg = dim, cfg
        self.l0 = math.ceil(cfg.patch / 2 ** cfg.layers)
        ch = [max(cfg.channels // 2 ** i, 16) for i in range(cfg.layers + 1)]
        self.fc = nn.Linear(cfg.latent, ch[0] * self.l0)
        self.ch0 = ch[0]
        blocks = []
        for i in range(cfg.layers):
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv1d(ch[i], ch[i + 1], 5, padding=2), nn.BatchNorm1d(ch[i + 1]), nn.ReLU()]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Conv1d(ch[-1], dim, 5, padding=2)

    def noise(self, n: int, frames: int, *, generator=None, device=None) -> torch.Tensor:
        return torch.randn(n, self.cfg.latent, generator=generator).to(device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc(z)).view(z.shape[0], self.ch0, self.l0)
        x = self.head(self.body(h))[:, :, :self.cfg.patch]
        return x.transpose(1, 2)


class ConvDiscriminator(nn.Module):
    def __init__(self, dim: int, cfg: GANConfig):
        super().__init__()
        ch = [max(cfg.channels // 2 ** (cfg.layers - i), 16) for i in range(cfg.layers + 1)]
        layers, c_in, length = [], dim, cfg.patch
        for i in range(cfg.layers):
            layers += [nn.Conv1d(c_in, ch[i + 1], 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in, length = ch[i + 1], length // 2
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in * length, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x.transpose(1, 2)).flatten(1)).squeeze(-1)


class RNNGenerator(nn.Module):
    def __init__(self, dim: int, cfg: GANConfig):
        super().__init__()
        self.dim, self.cfg = dim, cfg
        self.lstm = nn.LSTM(cfg.latent, cfg.channels, cfg.layers, batch_first=True)
        self.out = nn.Linear(cfg.channels, dim)

    def noise(self, n: int, frames: int, *, generator=None, device=None) -> torch.Tensor:
        return torch.randn(n, frames, self.cfg.latent, generator=generator).to(device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(z)
        return self.out(h)


class RNNDiscriminator(nn.Module):
    def __init__(self, dim: int, cfg: GANConfig):
        super().__init__()
        self.lstm = nn.LSTM(dim, cfg.channels, cfg.layers, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * cfg.channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)
        return self.out(h).mean(dim=(1, 2))


def build_gan(dim: int, cfg: GANConfig) -> tuple[nn.Module, nn.Module]:
    """Generator and discriminator of ``cfg.family`` for codes of dimension ``dim``."""
    if cfg.family == "conv":
        return ConvGenerator(dim, cfg), ConvDiscriminator(dim, cfg)
    return RNNGenerator(dim, cfg), RNNDiscriminator(dim, cfg)


def _no_cudnn(x: torch.Tensor):
    # cuDNN's LSTM has no double backward, which the gradient penalty needs
    return torch.backends.cudnn.flags(enabled=False) if x.is_cuda else contextlib.nullcontext()


def gradient_penalty(d: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty: mean of (||grad_x D(x_hat)||_2 - 1)^2 on random interpolates x_hat."""
    eps = torch.rand(real.shape[0], 1, 1, device=real.device)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    with _no_cudnn(x_hat):
        out = d(x_hat)
        (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def d_loss(loss: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator (critic) loss without the gradient penalty."""
    if loss == "ns":
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    return d_fake.mean() - d_real.mean()


def g_loss(loss: str, d_fake: torch.Tensor) -> torch.Tensor:
    """Generator loss: non-saturating ``-log D(G(z))`` or Wasserstein ``-D(G(z))``."""
    if loss == "ns":
        return F.softplus(-d_fake).mean()
    return -d_fake.mean()


@torch.no_grad()
def generate_frames(g: nn.Module, n: int, frames: int, *, generator: torch.Generator | None = None,
                    device=None) -> torch.Tensor:
    """``n`` sequences of ``frames`` code frames (B, frames, dim) from generator ``g``.

    The ``rnn`` generator runs for ``frames`` steps directly; the ``conv`` one concatenates
    ``ceil(frames / patch)`` independent patches and trims.
    """
    if isinstance(g, RNNGenerator):
        return g(g.noise(n, frames, generator=generator, device=device))
    patch = g.cfg.patch
    k = math.ceil(frames / patch)
    z = g.noise(n * k, patch, generator=generator, device=device)
    x = g(z).reshape(n, k * patch, -1)
    return x[:, :frames]
