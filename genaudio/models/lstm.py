"""Autoregressive LSTM over code frames, with an MSE, Gaussian or mixture-density output head.

Training is teacher-forced: the model reads frames ``x[:, :-1]`` and predicts ``x[:, 1:]``.
Generation is free-running: each sampled frame is fed back as the next input.
All tensors are ``(batch, time, dim)`` in normalised code units.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from genaudio.models.config import LSTMConfig

_LOG_2PI = math.log(2 * math.pi)
# log-std is clamped so that an untrained or diverging head cannot produce inf/NaN likelihoods
_MIN_LOG_STD, _MAX_LOG_STD = -7.0, 5.0


class LSTMModel(nn.Module):
    """Next-frame predictor.

    Parameters
    ----------
    dim : int
        Code dimension.
    cfg : LSTMConfig
    """

    def __init__(self, dim: int, cfg: LSTMConfig):
        super().__init__()
        self.dim, self.cfg = dim, cfg
        self.inp = nn.Linear(dim, cfg.hidden)
        self.lstm = nn.LSTM(cfg.hidden, cfg.hidden, cfg.layers, batch_first=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        k = cfg.mixtures
        n_out = {"mse": dim, "gaussian": 2 * dim, "mdn": k * 2 * dim + k}[cfg.head]
        self.out = nn.Linear(cfg.hidden, n_out)
        # std of the residuals per dim on the validation windows (set at validation), which the
        # mse head's sampling noise is scaled by
        self.register_buffer("residual_std", torch.ones(dim))

    def forward(self, x: torch.Tensor, state=None):
        """``x`` (B, T, dim) -> head parameters (B, T, n_out), LSTM state."""
        h, state = self.lstm(torch.relu(self.inp(x)), state)
        return self.out(self.drop(h)), state

    # -- head ------------------------------------------------------------------------------------

    def _split(self, p: torch.Tensor):
        d, k = self.dim, self.cfg.mixtures
        if self.cfg.head == "mse":
            return p, None, None
        if self.cfg.head == "gaussian":
            mu, log_std = p[..., :d], p[..., d:]
            return mu, log_std.clamp(_MIN_LOG_STD, _MAX_LOG_STD), None
        mu = p[..., :k * d].unflatten(-1, (k, d))
        log_std = p[..., k * d:2 * k * d].unflatten(-1, (k, d)).clamp(_MIN_LOG_STD, _MAX_LOG_STD)
        logits = p[..., 2 * k * d:]
        return mu, log_std, logits

    def loss(self, p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss per frame and dim: MSE, or Gaussian / mixture NLL (nats per dim)."""
        p, target = p.float(), target.float()
        mu, log_std, logits = self._split(p)
        if self.cfg.head == "mse":
            return F.mse_loss(mu, target)
        if self.cfg.head == "gaussian":
            nll = 0.5 * ((target - mu) / log_std.exp()) ** 2 + log_std + 0.5 * _LOG_2PI
            return nll.mean()
        t = target.unsqueeze(-2)  # (B, T, 1, d)
        comp = -(0.5 * ((t - mu) / log_std.exp()) ** 2 + log_std + 0.5 * _LOG_2PI).sum(-1)  # (B, T, k)
        ll = torch.logsumexp(torch.log_softmax(logits, -1) + comp, dim=-1)
        return -(ll.mean() / self.dim)

    def mean(self, p: torch.Tensor) -> torch.Tensor:
        """The predicted expected frame (B, T, dim)."""
        mu, _, logits = self._split(p.float())
        if self.cfg.head == "mdn":
            return (torch.softmax(logits, -1).unsqueeze(-1) * mu).sum(-2)
        return mu

    def sample(self, p: torch.Tensor, *, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw one frame per position from the head's distribution; temperature scales the std."""
        mu, log_std, logits = self._split(p.float())
        # noise is drawn on the CPU so a seeded CPU generator gives the same clips on any device
        noise = lambda shape: torch.randn(shape, generator=generator).to(p.device)  # noqa: E731
        if self.cfg.head == "mse":
            return mu + temperature * self.cfg.noise * self.residual_std * noise(mu.shape)
        if self.cfg.head == "gaussian":
            return mu + temperature * log_std.exp() * noise(mu.shape)
        if temperature == 0:   # as for the other heads: the expected frame, no draw at all
            return self.mean(p)
        probs = torch.softmax(logits, -1)
        flat = probs.reshape(-1, probs.shape[-1])
        # the component on the CPU too (a CPU generator cannot draw from CUDA probabilities)
        idx = torch.multinomial(flat.cpu(), 1, generator=generator).to(p.device).reshape(probs.shape[:-1])
        sel = idx[..., None, None].expand(*idx.shape, 1, self.dim)
        m = mu.gather(-2, sel).squeeze(-2)
        s = log_std.gather(-2, sel).squeeze(-2).exp()
        return m + temperature * s * noise(m.shape)

    @torch.no_grad()
    def generate(self, prime: torch.Tensor, n_frames: int, *, temperature: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Continue ``prime`` (B, T0, dim) by ``n_frames`` free-running steps -> (B, n_frames, dim)."""
        temperature = self.cfg.temperature if temperature is None else temperature
        p, state = self(prime)
        frame = self.sample(p[:, -1:], temperature=temperature, generator=generator)
        out = [frame]
        for _ in range(n_frames - 1):
            p, state = self(frame, state)
            frame = self.sample(p, temperature=temperature, generator=generator)
            out.append(frame)
        return torch.cat(out, dim=1)
