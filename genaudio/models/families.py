"""Model families: what the training loop, the run folder and sampling need to know about a model.

A :class:`Family` builds its modules from a :class:`~genaudio.models.config.TrainConfig`, makes
their optimisers, takes one training step on a batch, validates, and samples code frames. The loop
(:mod:`genaudio.models.train`), the run layout (:mod:`genaudio.models.run`) and sampling
(:mod:`genaudio.models.generate`) only use this interface, so a new family is one class here, one
entry in :data:`FAMILIES` and its sub-config in :mod:`genaudio.models.config`.

- :class:`LSTMFamily`: the autoregressive LSTM (:mod:`genaudio.models.lstm`), teacher-forced;
- :class:`GANFamily`: a generator and a discriminator (:mod:`genaudio.models.gan`).

All tensors are ``(batch, time, dim)`` in normalised code units.
"""
from __future__ import annotations

import torch
from torch import nn

from genaudio.models.config import TrainConfig
from genaudio.models.data import WindowSet
from genaudio.models.gan import build_gan, d_loss, g_loss, generate_frames, gradient_penalty
from genaudio.models.lstm import LSTMModel
from genaudio.models.metrics import code_stats, frechet_distance
from genaudio.models.parallel import DistContext

#: Generated windows compared with as many validation windows for ``code_fd``.
VALIDATION_WINDOWS = 128


class Updater:
    """The optimisers of a run, their gradient scalers, and the one way to update a module.

    Parameters
    ----------
    optimizers : dict of str -> Optimizer
        One per updated module, keyed like :attr:`Family.modules`.
    modules : dict of str -> nn.Module
    dist : DistContext
        Gradients are averaged across its ranks before every step.
    grad_clip : float
        Gradient-norm clip (0 disables).
    amp : bool
        float16 autocast and gradient scaling (CUDA only: the caller decides).
    device : torch.device
    """

    def __init__(self, optimizers: dict, modules: dict, *, dist: DistContext, grad_clip: float, amp: bool,
                 device: torch.device):
        self.optimizers, self.modules, self.dist = optimizers, modules, dist
        self.grad_clip, self.amp, self.device = grad_clip, amp, device
        self.scalers = {k: torch.amp.GradScaler("cuda", enabled=amp) for k in optimizers}

    def autocast(self):
        """The forward passes' mixed-precision context (a no-op without ``amp``)."""
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)

    def update(self, name: str, loss: torch.Tensor) -> None:
        """Backward, average gradients across ranks, clip, step: one update of module ``name``."""
        opt, scaler, params = self.optimizers[name], self.scalers[name], self.modules[name].parameters
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        self.dist.average_gradients(params())
        scaler.unscale_(opt)
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(params(), self.grad_clip)
        scaler.step(opt)
        scaler.update()

    def state_dict(self) -> dict:
        return {"optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "scalers": {k: s.state_dict() for k, s in self.scalers.items()}}

    def load_state_dict(self, state: dict) -> None:
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.scalers.items():
            if state["scalers"].get(k):
                s.load_state_dict(state["scalers"][k])


class Family:
    """A kind of model over code frames. Subclasses set the class attributes and implement
    :meth:`build`, :meth:`optimizers`, :meth:`train_step`, :meth:`_validate` and :meth:`sample`.

    Attributes
    ----------
    name : str
        ``TrainConfig.model`` of the family.
    monitor : str
        The validation metric (lower is better) that picks ``best.pt``, detects divergence and
        drives early stopping.
    progress_keys : tuple of str
        Metrics shown in the per-epoch progress line.
    modules : dict of str -> nn.Module
        Built on the CPU under the caller's seed; :meth:`to` moves them.
    """

    name = ""
    monitor = ""
    progress_keys: tuple = ()

    def __init__(self, cfg: TrainConfig, dim: int):
        self.cfg, self.dim = cfg, dim
        self.modules: dict[str, nn.Module] = self.build()

    def build(self) -> dict:
        raise NotImplementedError

    def optimizers(self) -> dict:
        raise NotImplementedError

    def train_step(self, x: torch.Tensor, step: int, updater: Updater) -> dict:
        """One training step on batch ``x`` (B, window, dim); returns its losses as floats.
        ``step`` counts steps within the epoch."""
        raise NotImplementedError

    def sample(self, n: int, frames: int, *, generator: torch.Generator, device, primes: torch.Tensor,
               temperature: float | None = None) -> torch.Tensor:
        """``n`` sequences of ``frames`` generated frames (n, frames, dim), normalised units."""
        raise NotImplementedError

    def diverged(self, metrics: dict) -> str:
        """Why the epoch's ``metrics`` show a blown-up model beyond the monitored metric ('' if not)."""
        return ""

    def to(self, device) -> "Family":
        for m in self.modules.values():
            m.to(device)
        return self

    def state_dict(self) -> dict:
        return {k: m.state_dict() for k, m in self.modules.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state[k])

    @torch.no_grad()
    def validate(self, val: WindowSet, device) -> dict:
        """Validation metrics (``code_fd`` and the family's own); deterministic: their randomness
        comes from a generator seeded with ``cfg.seed``, never from the global RNG."""
        for m in self.modules.values():
            m.eval()
        gen = torch.Generator().manual_seed(self.cfg.seed + 7919)
        pick = torch.randperm(len(val), generator=gen)[:min(len(val), VALIDATION_WINDOWS)]
        out = self._validate(val, val[pick.tolist()], gen, device)
        for m in self.modules.values():
            m.train()
        return out

    def _validate(self, val: WindowSet, real: torch.Tensor, gen: torch.Generator, device) -> dict:
        raise NotImplementedError


def _code_fd(real: torch.Tensor, fake: torch.Tensor) -> float:
    return frechet_distance(code_stats(real.numpy()), code_stats(fake.numpy()))


class LSTMFamily(Family):
    """Autoregressive next-frame LSTM: teacher-forced training, free-running sampling from real
    primes. Metrics: ``train_loss``; ``val_loss`` (head NLL or MSE), ``val_mse`` (of the predicted
    mean), ``baseline_mse`` (repeat the last frame), ``code_fd`` (free-running continuations of
    the first half of validation windows vs their second half)."""

    name = "lstm"
    monitor = "val_mse"
    progress_keys = ("train_loss", "val_loss", "val_mse", "baseline_mse", "code_fd")

    def build(self) -> dict:
        return {"lstm": LSTMModel(self.dim, self.cfg.lstm)}

    def optimizers(self) -> dict:
        return {"lstm": torch.optim.Adam(self.modules["lstm"].parameters(), lr=self.cfg.lr,
                                         weight_decay=self.cfg.weight_decay)}

    def train_step(self, x, step, updater) -> dict:
        model = self.modules["lstm"]
        inp, tgt = x[:, :-1], x[:, 1:]
        if self.cfg.lstm.input_noise:
            inp = inp + self.cfg.lstm.input_noise * torch.randn_like(inp)
        with updater.autocast():
            p, _ = model(inp)
        loss = model.loss(p, tgt)
        updater.update("lstm", loss)
        return {"train_loss": float(loss.detach())}

    def _validate(self, val, real, gen, device) -> dict:
        model = self.modules["lstm"]
        tot_loss = tot_mse = tot_base = 0.0
        count = 0
        sq = torch.zeros(model.dim, dtype=torch.float64)
        for b in range(0, len(val), 256):
            x = val[list(range(b, min(b + 256, len(val))))].to(device)
            p, _ = model(x[:, :-1])
            tgt = x[:, 1:]
            w = tgt.shape[0]
            tot_loss += float(model.loss(p, tgt)) * w
            err = model.mean(p) - tgt.float()
            tot_mse += float((err ** 2).mean()) * w
            tot_base += float(((x[:, :-1] - tgt) ** 2).mean()) * w
            sq += (err.double() ** 2).mean(dim=(0, 1)).cpu() * w
            count += w
        # the mse head samples with noise of the residuals' scale
        model.residual_std.copy_((sq / count).sqrt().float().to(model.residual_std.device))
        half = real.shape[1] // 2
        tail = model.generate(real[:, :half].to(device), real.shape[1] - half, generator=gen).cpu()
        return {"val_loss": tot_loss / count, "val_mse": tot_mse / count, "baseline_mse": tot_base / count,
                "code_fd": _code_fd(real[:, half:], tail)}

    def sample(self, n, frames, *, generator, device, primes, temperature=None) -> torch.Tensor:
        """Free-running continuations of ``n`` primes drawn from ``primes`` (not included)."""
        idx = torch.randint(len(primes), (n,), generator=generator)
        return self.modules["lstm"].generate(primes[idx].to(device), frames, temperature=temperature,
                                             generator=generator)


class GANFamily(Family):
    """Generator ``g`` and discriminator (critic) ``d`` over patches; ``n_critic`` critic steps per
    generator step. Metrics: ``d_loss``, ``g_loss``, ``gp`` (WGAN-GP), ``code_fd`` (generated vs
    validation windows), ``fake_rms`` (RMS of generated codes; real codes are ~1)."""

    name = "gan"
    monitor = "code_fd"
    progress_keys = ("d_loss", "g_loss", "code_fd", "fake_rms")

    def build(self) -> dict:
        g, d = build_gan(self.dim, self.cfg.gan)
        return {"g": g, "d": d}

    def optimizers(self) -> dict:
        cfg, betas = self.cfg, (self.cfg.gan.beta1, self.cfg.gan.beta2)
        return {"g": torch.optim.Adam(self.modules["g"].parameters(), lr=cfg.lr, betas=betas,
                                      weight_decay=cfg.weight_decay),
                "d": torch.optim.Adam(self.modules["d"].parameters(), lr=cfg.lr * cfg.gan.d_lr_scale, betas=betas,
                                      weight_decay=cfg.weight_decay)}

    def train_step(self, x, step, updater) -> dict:
        gen, disc, gcfg = self.modules["g"], self.modules["d"], self.cfg.gan
        b, window = x.shape[0], x.shape[1]
        with updater.autocast():
            fake = gen(gen.noise(b, window, device=x.device)).detach()
            ld = d_loss(gcfg.loss, disc(x).float(), disc(fake).float())
        losses = {"d_loss": float(ld.detach())}
        if gcfg.loss == "wgan-gp":
            gp = gradient_penalty(disc, x.float(), fake.float())
            ld = ld + gcfg.gp_weight * gp
            losses["gp"] = float(gp.detach())
        updater.update("d", ld)
        if step % gcfg.n_critic == 0:
            with updater.autocast():
                lg = g_loss(gcfg.loss, disc(gen(gen.noise(b, window, device=x.device))).float())
            updater.update("g", lg)
            losses["g_loss"] = float(lg.detach())
        return losses

    def _validate(self, val, real, gen, device) -> dict:
        fake = generate_frames(self.modules["g"], len(real), real.shape[1], generator=gen, device=device).float().cpu()
        return {"code_fd": _code_fd(real, fake), "fake_rms": float(fake.pow(2).mean().sqrt())}

    def diverged(self, metrics) -> str:
        # generated codes are in normalised units (real RMS ~1): 1000x means the generator blew up
        if metrics.get("fake_rms", 0.0) > 1e3:
            return f"generated codes have RMS {metrics['fake_rms']:.4g} (real codes ~1)"
        return ""

    def sample(self, n, frames, *, generator, device, primes, temperature=None) -> torch.Tensor:
        """Generator output (consecutive patches for the conv family); ``primes`` are unused."""
        return generate_frames(self.modules["g"], n, frames, generator=generator, device=device)


#: ``TrainConfig.model`` -> its family.
FAMILIES: dict[str, type[Family]] = {f.name: f for f in (LSTMFamily, GANFamily)}


def build_family(cfg: TrainConfig, dim: int) -> Family:
    """The family ``cfg.model`` with its modules built (on the CPU, under the global RNG)."""
    return FAMILIES[cfg.model](cfg, dim)
