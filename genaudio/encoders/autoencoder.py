"""A 1-D convolutional autoencoder over input frames, trained with a spectral loss (torch).

Architecture (channels = frame dimensions, convolution along time)::

    encoder  Conv1d(D, H, 1) - GELU - Conv1d(H, H, 3) - GELU - Conv1d(H, H, f, stride f) - GELU - Conv1d(H, k, 1)
    decoder  Conv1d(k, H, 3) - GELU - Upsample(f) - Conv1d(H, H, 3) - GELU - Conv1d(H, H, 3) - GELU - Conv1d(H, D, 1)

(the wide D-dimensional layers are pointwise, so a 513-bin log-STFT costs little on a CPU)

``D`` input dims (spectral core + extra features), ``H = hidden``, ``k = dim`` latent values per
code frame, ``f = downsample`` input frames per code frame.

Loss on standardised frames: L1 on every dimension (the spectral core is log-magnitude in dB, so
this is the L1 log-magnitude term) plus a multi-resolution term on the spectral core: L1 between
time-frequency average-pooled versions of target and output at 2x2 and 4x4 resolution, which
weighs the spectral envelope and slow energy changes that Griffin-Lim renders audibly.
(A waveform-domain multi-resolution STFT loss would need a differentiable vocoder; Griffin-Lim
is not one.)

Training runs on genaudio's one epoch loop (:mod:`genaudio.training`): seeded
(``torch.manual_seed``; one ``torch.Generator`` draws every crop), on CUDA when available
(``device="auto"``), stopped with a clear error when the loss becomes NaN, and checkpointed every
epoch when asked (``fit(data, checkpoint=PATH)``: model, optimiser, schedule, epoch, history and
both RNG states, loaded with ``weights_only=True``); an interrupted fit resumes from it to the same
result as an uninterrupted one. The saved encoder
holds the final weights in ``weights.pt`` (a plain state dict).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genaudio.config import to_dict
from genaudio.devices import resolve_device
from genaudio.encoders.base import Encoder, register
from genaudio.errors import EncoderError
from genaudio.infra import progress
from genaudio.training import (check_config, load_state, load_state_dicts, optimizer_step, rng_state, run_epochs,
                               save_state, set_rng_state, state_dicts)

CROP = 64  # training crop length in input frames (multiple of downsample)


class ConvAutoencoder(nn.Module):
    def __init__(self, d_in: int, dim: int, hidden: int, downsample: int):
        super().__init__()
        f = downsample
        self.encoder = nn.Sequential(
            nn.Conv1d(d_in, hidden, 1), nn.GELU(),
            nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU(),
            nn.Conv1d(hidden, hidden, f, stride=f), nn.GELU(),
            nn.Conv1d(hidden, dim, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv1d(dim, hidden, 3, padding=1), nn.GELU(),
            nn.Upsample(scale_factor=f, mode="nearest") if f > 1 else nn.Identity(),
            nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU(),
            nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU(),
            nn.Conv1d(hidden, d_in, 1),
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))


def spectral_loss(out: torch.Tensor, target: torch.Tensor, core_dims: int) -> torch.Tensor:
    """L1 on all standardised dims + multi-resolution (2x2, 4x4 pooled) L1 on the spectral core."""
    loss = F.l1_loss(out, target)
    if core_dims >= 4:
        o, t = out[:, None, :core_dims], target[:, None, :core_dims]
        for s in (2, 4):
            if o.shape[-1] >= s:
                loss = loss + 0.5 * F.l1_loss(F.avg_pool2d(o, s), F.avg_pool2d(t, s))
    return loss


@dataclasses.dataclass
class _Fit:
    """One fit while it trains: the crops it draws from and what a checkpoint saves."""

    device: torch.device
    crop: int                       # training crop length in input frames
    data: list = dataclasses.field(default_factory=list)   # (D, time) tensors, at least one crop each
    steps: int = 0                  # optimiser steps per epoch
    gen: torch.Generator = dataclasses.field(default_factory=torch.Generator)   # draws every crop
    opt: Any = None
    sched: Any = None
    bar: Any = None


@register("autoencoder")
class AutoencoderEncoder(Encoder):
    """Convolutional autoencoder; see the module docstring. Its options: ``config.autoencoder``
    (:class:`~genaudio.encoders.base.AutoencoderOptions`)."""

    model: ConvAutoencoder | None = None
    history: list[dict]   # per epoch: epoch, loss (mean training loss), seconds
    _checkpoint: Path | None = None   # set by fit(checkpoint=...)
    _progress: bool = False           # set by fit(progress=...)

    def _build(self) -> ConvAutoencoder:
        c = self.config
        return ConvAutoencoder(self.input_dims, c.dim, c.autoencoder.hidden, c.downsample)

    def _pad(self, z: np.ndarray) -> np.ndarray:
        f = self.config.downsample
        pad = (-z.shape[1]) % f
        return np.pad(z, ((0, 0), (0, pad)), mode="edge") if pad else z

    def fit(self, data, *, checkpoint: str | os.PathLike | None = None, progress: bool = False):
        """Fit on waveforms or frames (see :meth:`Encoder.fit`); ``checkpoint``: a file saved after
        every epoch and resumed from if it exists (same config)."""
        self._checkpoint = Path(checkpoint) if checkpoint else None
        self._progress = progress
        return super().fit(data)

    def _fit(self, zs):
        c, a = self.config, self.config.autoencoder
        fit = _Fit(device=resolve_device(c.device), crop=max(CROP // c.downsample, 1) * c.downsample)
        torch.manual_seed(c.seed)
        fit.gen.manual_seed(c.seed)
        # training crops: every clip padded to at least one crop
        for z in zs:
            z = self._pad(z)
            if z.shape[1] < fit.crop:
                z = np.pad(z, ((0, 0), (0, fit.crop - z.shape[1])), mode="edge")
            fit.data.append(torch.from_numpy(np.ascontiguousarray(z)))
        total = sum(z.shape[1] for z in fit.data)
        # an epoch is one pass over the frames in random crops, at most 200 batches (big stores)
        fit.steps = max(4, min(200, math.ceil(total / (a.batch_size * fit.crop))))
        self.model = self._build().to(fit.device)
        fit.opt = torch.optim.AdamW(self.model.parameters(), lr=a.learning_rate, weight_decay=1e-4)
        fit.sched = torch.optim.lr_scheduler.OneCycleLR(fit.opt, max_lr=a.learning_rate,
                                                        total_steps=a.epochs * fit.steps, pct_start=0.15)
        start = self._resume(fit)
        fit.bar = progress(total=a.epochs, initial=start, desc="train autoencoder", unit="epoch",
                           enabled=self._progress)
        outcome = run_epochs(functools.partial(self._train_epoch, fit=fit), start=start, stop=a.epochs,
                             end_epoch=functools.partial(self._end_epoch, fit))
        fit.bar.close()
        if outcome.status == "nan":
            raise EncoderError(f"the autoencoder did not train: {outcome.message}; try a lower "
                               "autoencoder.learning_rate")
        self.model.eval()
        self.model.to("cpu")

    def _train_epoch(self, epoch: int, fit: "_Fit") -> dict | None:
        """``fit.steps`` updates on random crops of ``fit.data``: the epoch's mean training loss,
        or ``None`` when a loss became NaN or infinite."""
        f, batch_size = self.config.downsample, self.config.autoencoder.batch_size
        self.model.train()
        t0, total = time.perf_counter(), 0.0
        for _ in range(fit.steps):
            batch = []
            for i in torch.randint(len(fit.data), (batch_size,), generator=fit.gen).tolist():
                z = fit.data[i]
                start = int(torch.randint(z.shape[1] - fit.crop + 1, (1,), generator=fit.gen)) // f * f
                batch.append(z[:, start:start + fit.crop])
            x = torch.stack(batch).to(fit.device)
            loss = spectral_loss(self.model(x), x, self.core_dims)
            if not optimizer_step(loss, fit.opt, fit.sched, self.model.parameters()):
                return None
            total += float(loss.detach())
        return {"epoch": epoch + 1, "loss": total / fit.steps, "seconds": time.perf_counter() - t0}

    def _end_epoch(self, fit: "_Fit", metrics: dict) -> None:
        """Record the epoch and save the fit's checkpoint (when asked for) before anything else:
        an interruption loses no finished epoch."""
        self.history.append(metrics)
        if self._checkpoint is not None:
            save_state(self._checkpoint, {
                "config": to_dict(self.config), "epoch": metrics["epoch"], "history": self.history,
                "rng": rng_state(fit.gen), **state_dicts(model=self.model, optimizer=fit.opt, scheduler=fit.sched)})
        fit.bar.update(1)
        fit.bar.set_postfix(loss=f"{metrics['loss']:.4f}")

    def _resume(self, fit: "_Fit") -> int:
        """Restore model, optimiser, schedule, history and both RNGs from the fit's checkpoint when
        it exists (same config only): the epoch to start from. The resumed fit is the same as an
        uninterrupted one."""
        self.history = []
        ck = self._checkpoint
        if ck is None or not ck.is_file():
            return 0
        state = load_state(ck, error=EncoderError, what="autoencoder checkpoint", map_location=fit.device)
        check_config(state.get("config") or {}, to_dict(self.config), may_differ={"device"}, error=EncoderError,
                     what=f"autoencoder checkpoint {ck}")
        load_state_dicts(state, model=self.model, optimizer=fit.opt, scheduler=fit.sched)
        set_rng_state(state["rng"], fit.gen)
        self.history = list(state["history"])
        return int(state["epoch"])

    @torch.no_grad()
    def _encode(self, z):
        t = self.model.encoder[0].weight
        x = torch.from_numpy(np.ascontiguousarray(self._pad(z)))[None].to(t.device, t.dtype)
        return self.model.encoder(x)[0].T.cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def _decode(self, codes):
        t = self.model.decoder[0].weight
        x = torch.from_numpy(np.ascontiguousarray(codes.T))[None].to(t.device, t.dtype)
        return self.model.decoder(x)[0].cpu().numpy().astype(np.float32)

    def _save_extra(self, folder):
        torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, folder / "weights.pt")

    def _load_extra(self, folder):
        path = folder / "weights.pt"
        if not path.is_file():
            raise EncoderError(f"{folder}: weights.pt is missing")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model = self._build()
            model.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - corrupt, foreign or mismatched weights
            raise EncoderError(f"{folder}: weights.pt cannot be loaded ({type(e).__name__}: {e})") from None
        self.model = model.eval()
