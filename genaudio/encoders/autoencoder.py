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

Training is seeded (``torch.manual_seed``; one ``torch.Generator`` draws every crop), runs on CUDA
when available (``device="auto"``), and can checkpoint every epoch (``fit(data, checkpoint=PATH)``:
model, optimiser, schedule, epoch, history and both RNG states, loaded with ``weights_only=True``);
an interrupted fit resumes from it to the same result as an uninterrupted one. The saved encoder
holds the final weights in ``weights.pt`` (a plain state dict).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genaudio.devices import resolve_device
from genaudio.encoders.base import Encoder, register
from genaudio.errors import EncoderError
from genaudio.infra import atomic_path

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


@register("autoencoder")
class AutoencoderEncoder(Encoder):
    """Convolutional autoencoder; see the module docstring. Its options: ``config.autoencoder``
    (:class:`~genaudio.encoders.base.AutoencoderOptions`)."""

    model: ConvAutoencoder | None = None
    history: list[float]
    _checkpoint: Path | None = None   # set by fit(checkpoint=...)

    def _config_key(self) -> str:
        """What a checkpoint must have been trained with to be resumed."""
        return repr(sorted(vars(self.config).items()))

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
        device = resolve_device(c.device)
        torch.manual_seed(c.seed)
        gen = torch.Generator().manual_seed(c.seed)      # draws every crop; checkpointed
        crop = max(CROP // c.downsample, 1) * c.downsample
        # training crops: every clip padded to at least one crop
        data = []
        for z in zs:
            z = self._pad(z)
            if z.shape[1] < crop:
                z = np.pad(z, ((0, 0), (0, crop - z.shape[1])), mode="edge")
            data.append(torch.from_numpy(np.ascontiguousarray(z)))
        total = sum(z.shape[1] for z in data)
        # an epoch is one pass over the frames in random crops, at most 200 batches (big stores)
        steps = max(4, min(200, math.ceil(total / (a.batch_size * crop))))
        self.model = self._build().to(device)
        opt = torch.optim.AdamW(self.model.parameters(), lr=a.learning_rate, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.learning_rate, total_steps=a.epochs * steps,
                                                    pct_start=0.15)
        start_epoch = self._resume(opt, sched, gen, device)
        epochs = range(start_epoch, a.epochs)
        if getattr(self, "_progress", False):
            from tqdm.auto import tqdm
            epochs = tqdm(epochs, desc="train autoencoder", unit="epoch")
        for epoch in epochs:
            loss = self._train_epoch(epoch, data, crop, steps, opt, sched, gen, device)
            self.history.append(loss)
            if self._checkpoint is not None:
                with atomic_path(self._checkpoint) as tmp:
                    torch.save({"model": self.model.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "epoch": epoch + 1, "history": self.history,
                                "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                                "config_key": self._config_key()}, tmp)
        self.model.eval()
        self.model.to("cpu")

    def _train_epoch(self, epoch: int, data: list, crop: int, steps: int, opt, sched, gen, device) -> float:
        """``steps`` updates on random crops of ``data``; the mean training loss."""
        f, batch_size = self.config.downsample, self.config.autoencoder.batch_size
        self.model.train()
        total = 0.0
        for _ in range(steps):
            batch = []
            for i in torch.randint(len(data), (batch_size,), generator=gen).tolist():
                z = data[i]
                start = int(torch.randint(z.shape[1] - crop + 1, (1,), generator=gen)) // f * f
                batch.append(z[:, start:start + crop])
            x = torch.stack(batch).to(device)
            loss = spectral_loss(self.model(x), x, self.core_dims)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach())
        return total / steps

    def _resume(self, opt, sched, gen, device) -> int:
        """Restore model, optimiser, schedule, history and both RNGs from the fit's checkpoint when
        it exists (same config only): the epoch to start from. The resumed fit is the same as an
        uninterrupted one."""
        self.history = []
        ck = self._checkpoint
        if ck is None or not ck.is_file():
            return 0
        try:
            state = torch.load(ck, map_location=device, weights_only=True)
            if state.get("config_key") != self._config_key():
                raise EncoderError(f"checkpoint {ck} belongs to another encoder config; delete it or "
                                   "choose another path")
            self.model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            self.history = [float(x) for x in state["history"]]
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            return int(state["epoch"])
        except EncoderError:
            raise
        except Exception as e:  # noqa: BLE001 - a damaged checkpoint must say so
            raise EncoderError(f"checkpoint {ck} is unreadable ({e}); delete it to start over") from None

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
