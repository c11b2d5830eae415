"""The one training loop for every model: LSTM or GAN, one process or data-parallel workers.

:func:`train` reads top to bottom:

1. split the segments by file, fit the code normaliser on the training files, cut windows;
2. seed everything, build the model(s) and optimiser(s) on the device (CUDA when present);
3. optionally resume: model, optimiser, gradient scaler, RNG states, epoch and history;
4. per epoch: one pass of optimiser steps, validation metrics, a NaN / divergence check, an
   atomic checkpoint (``last.pt``, and ``best.pt`` when validation improved), ``metrics.json``,
   then ``callback(epoch, metrics, checkpoint_dir)`` (the search reports from there);
5. score the final model (:mod:`genaudio.models.score`) when the data names its encoded store.

Data order depends only on ``(seed, epoch)`` and every RNG state is checkpointed, so a resumed run
reproduces the uninterrupted one. :mod:`genaudio.models.distributed` runs this same function in
each Ray Train worker with a :class:`DistContext`: each rank takes an equal slice of every global
batch and gradients are averaged across ranks before each optimiser step.
"""
from __future__ import annotations

import dataclasses
import math
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from genaudio.config import dump_yaml, from_dict, to_dict
from genaudio.devices import resolve_device
from genaudio.errors import ConfigError, ModelError
from genaudio.models.config import TrainConfig
from genaudio.models.data import (Normalizer, SequenceData, WindowSet, as_sequence_data, make_loader,
                                  split_by_file)
from genaudio.models.gan import build_gan, d_loss, g_loss, generate_frames, gradient_penalty
from genaudio.models.lstm import LSTMModel
from genaudio.models.score import code_stats, frechet_distance
from genaudio.infra import atomic_path
from genaudio.store import atomic_write_bytes, atomic_write_json

CHECKPOINT_FORMAT = 1
#: Config keys that may differ between a checkpoint and the run resuming it.
RESUMABLE_CHANGES = {"epochs", "score", "device", "patience", "divergence_factor"}


class StopTraining(Exception):
    """Raise from a training callback to stop the run cleanly (status ``"stopped"``)."""


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns (and ``metrics.json`` holds).

    Attributes
    ----------
    status : {"ok", "nan", "diverged", "stopped"}
        ``ok``: all epochs ran (or early stop on patience); ``nan``: a loss became NaN/inf (the
        last good checkpoint is kept); ``diverged``: the monitored loss exceeded
        ``divergence_factor`` x its best; ``stopped``: the callback asked to stop.
    message : str
        One line saying why training ended.
    history : list of dict
        Per-epoch metrics (see :func:`train`).
    metrics : dict
        Final metrics: the last epoch's, plus the judge's score (``quality``, ``quality_se``, ...) when computed.
    init_metrics : dict
        Validation metrics of the untrained model (the reference a learning curve starts from).
    run_dir : str or None
    """

    status: str
    message: str
    history: list
    metrics: dict
    init_metrics: dict
    run_dir: str | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class DistContext:
    """Data-parallel context: this process's rank among ``world`` and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, params) -> None:
        """Average gradients across ranks (one flat all-reduce), as DDP does before each step."""
        if self.world == 1:
            return
        import torch.distributed as tdist

        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        tdist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def mean(self, value: float) -> float:
        """Average a scalar metric across ranks."""
        if self.world == 1:
            return value
        import torch.distributed as tdist

        t = torch.tensor([value], dtype=torch.float64)
        tdist.all_reduce(t)
        return float(t.item()) / self.world

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is true on any rank (so that all ranks stop together)."""
        if self.world == 1:
            return flag
        import torch.distributed as tdist

        t = torch.tensor([1.0 if flag else 0.0])
        tdist.all_reduce(t)
        return bool(t.item() > 0)


def _optimizer_step(loss, module, opt, scaler, dist, grad_clip: float) -> None:
    """Backward, average gradients across ranks, clip, step: one update of ``module``."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    dist.average_gradients(module.parameters())
    scaler.unscale_(opt)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    scaler.step(opt)
    scaler.update()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if s.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def build_models(cfg: TrainConfig, dim: int) -> dict[str, torch.nn.Module]:
    """The modules of a run: ``{"lstm": ...}`` or ``{"g": ..., "d": ...}``."""
    if cfg.model == "lstm":
        return {"lstm": LSTMModel(dim, cfg.lstm)}
    g, d = build_gan(dim, cfg.gan)
    return {"g": g, "d": d}


def _build_optimizers(cfg: TrainConfig, models: dict) -> dict[str, torch.optim.Optimizer]:
    if cfg.model == "lstm":
        return {"lstm": torch.optim.Adam(models["lstm"].parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)}
    betas = (cfg.gan.beta1, cfg.gan.beta2)
    return {"g": torch.optim.Adam(models["g"].parameters(), lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay),
            "d": torch.optim.Adam(models["d"].parameters(), lr=cfg.lr * cfg.gan.d_lr_scale, betas=betas,
                                  weight_decay=cfg.weight_decay)}


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`train` (a ``.pt`` file or a run folder -> ``last.pt``)."""
    path = Path(path)
    if path.is_dir():
        cand = [path / "checkpoints" / "last.pt", path / "last.pt"]
        found = next((c for c in cand if c.is_file()), None)
        if found is None:
            raise ModelError(f"{path} holds no checkpoint (expected checkpoints/last.pt)")
        path = found
    if not path.is_file():
        raise ModelError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ModelError(f"{path} is not a readable genaudio checkpoint: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not a genaudio checkpoint (format {CHECKPOINT_FORMAT})")
    ckpt["path"] = str(path)
    return ckpt


def _save_checkpoint(path: Path, ckpt: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def _split(data: SequenceData, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Training / validation segment indices, by file: the encoder's own held-out files when the
    store records them (so no validation recording was seen by encoder or model), else a seeded
    ``val_fraction`` of the files."""
    if data.splits is not None:
        is_test = np.asarray(data.splits).astype(str) == "test"
        tr, va = np.flatnonzero(~is_test), np.flatnonzero(is_test)
        if len(tr) and len(va) and not set(data.file_ids[tr]) & set(data.file_ids[va]):
            return tr, va
    return split_by_file(data.file_ids, val_fraction=cfg.val_fraction, seed=cfg.seed)


def _finite(x: float) -> bool:
    return x is not None and math.isfinite(x)


# ---------------------------------------------------------------------------------------------
# Validation (both families report code_fd: a per-epoch learning signal in code space)


@torch.no_grad()
def _validate(cfg: TrainConfig, models: dict, val: WindowSet, device: torch.device, *, n_gen: int = 128) -> dict:
    """Validation metrics in normalised code units; deterministic (own generator)."""
    for m in models.values():
        m.eval()
    gen = torch.Generator().manual_seed(cfg.seed + 7919)
    n = min(len(val), n_gen)
    pick = torch.randperm(len(val), generator=gen)[:n]
    real = val[pick.tolist()]
    out: dict[str, float] = {}
    if cfg.model == "lstm":
        model = models["lstm"]
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
        out.update(val_loss=tot_loss / count, val_mse=tot_mse / count, baseline_mse=tot_base / count)
        model.residual_std.copy_((sq / count).sqrt().float().to(model.residual_std.device))
        # free-running continuation of the first half of each window
        half = real.shape[1] // 2
        fake_tail = model.generate(real[:, :half].to(device), real.shape[1] - half, generator=gen).cpu()
        out["code_fd"] = frechet_distance(code_stats(real[:, half:].numpy()), code_stats(fake_tail.numpy()))
    else:
        fake = generate_frames(models["g"], n, real.shape[1], generator=gen, device=device).float().cpu()
        out["code_fd"] = frechet_distance(code_stats(real.numpy()), code_stats(fake.numpy()))
        out["fake_rms"] = float(fake.pow(2).mean().sqrt())
    for m in models.values():
        m.train()
    return out


# ---------------------------------------------------------------------------------------------
# The loop


def train(config: TrainConfig | dict, data: Any, *, out_dir: str | Path | None,
          callback: Callable[[int, dict, str | None], Any] | None = None,
          resume_from: str | Path | None = None, dist: DistContext | None = None,
          progress: Callable[[str], None] | None = None) -> TrainResult:
    """Train an LSTM or a GAN on code sequences.

    Parameters
    ----------
    config : TrainConfig or dict
        A dict goes through :func:`genaudio.config.from_dict` (unknown keys are refused).
    data : SequenceData, CodesData or path
        Code sequences ``(time, dim)`` per segment with their ``file_id`` (see
        :func:`genaudio.models.data.as_sequence_data`); a path is an encoded store.
    out_dir : path or None
        Run folder: ``config.yaml``, ``checkpoints/last.pt`` and ``best.pt``, ``metrics.json``.
        ``None`` trains without writing anything (no checkpoints, no resume).
    callback : callable, optional
        ``callback(epoch, metrics, checkpoint_dir)`` after every epoch, where ``epoch`` counts
        completed epochs (1-based) and ``checkpoint_dir`` holds ``last.pt`` (``None`` without
        ``out_dir``). Returning ``False`` or raising :class:`StopTraining` stops the run with
        status ``"stopped"``.
    resume_from : path, optional
        A checkpoint file or run folder; training continues after its epoch. The config may differ
        only in ``epochs``, ``score``, ``device``, ``patience`` and ``divergence_factor``.
    dist : DistContext, optional
        Set by :mod:`genaudio.models.distributed` in each data-parallel worker.
    progress : callable, optional
        Receives one human-readable line per epoch (the CLI prints it).

    Returns
    -------
    TrainResult
        Per-epoch metrics: ``epoch``, ``seconds``, ``frames_per_s`` (training frames per second,
        all ranks), ``data_wait_fraction`` (share of step time spent waiting for batches), and
        ``train_loss``, ``val_loss`` (head NLL or MSE), ``val_mse`` (mean prediction),
        ``baseline_mse`` (repeat-last-frame) for the LSTM; ``d_loss``, ``g_loss``, ``gp``
        (WGAN-GP), ``fake_rms`` for the GAN; ``code_fd`` for both (Frechet distance of per-window
        code statistics, generated vs validation; comparable only within one encoder).
    """
    cfg = config if isinstance(config, TrainConfig) else from_dict(TrainConfig, config)
    data = as_sequence_data(data)
    dist = dist or DistContext()
    device = dist.device or resolve_device(cfg.device)
    say = progress if (progress and dist.is_main) else (lambda _msg: None)
    run_dir = Path(out_dir) if out_dir is not None else None
    ckpt_dir = run_dir / "checkpoints" if run_dir is not None else None
    if cfg.batch_size % dist.world:
        raise ConfigError(f"batch_size ({cfg.batch_size}) must be divisible by the number of workers ({dist.world})")

    # 1. data: split by file, normalise with training statistics, cut windows
    train_idx, val_idx = _split(data, cfg)
    norm = Normalizer.fit([data.codes[i] for i in train_idx])
    window = cfg.window
    hop = cfg.window_hop or max(1, window // 2)
    train_ds = WindowSet([norm.apply(data.codes[i]) for i in train_idx], window=window, hop=hop)
    try:
        val_ds = WindowSet([norm.apply(data.codes[i]) for i in val_idx], window=window, hop=hop)
    except ModelError as e:
        raise ModelError(f"validation files: {e}") from None
    if len(train_ds) < cfg.batch_size:
        raise ModelError(
            f"only {len(train_ds)} training windows of {window} frames for batch_size {cfg.batch_size}; "
            "lower batch_size or the window (lstm.context / gan.patch)"
        )
    val_files = sorted(set(data.file_ids[val_idx].tolist()))

    # 2. seeded models and optimisers on the device
    _seed_everything(cfg.seed)
    models = {k: m.to(device) for k, m in build_models(cfg, data.dim).items()}
    optims = _build_optimizers(cfg, models)
    use_amp = cfg.amp and device.type == "cuda"
    scalers = {k: torch.amp.GradScaler("cuda", enabled=use_amp) for k in optims}
    autocast = lambda: torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp)  # noqa: E731
    g = torch.Generator().manual_seed(cfg.seed + 1)
    n_primes = min(64, len(train_ds))
    prime_len = min(16, window - 1)
    primes = train_ds[torch.randperm(len(train_ds), generator=g)[:n_primes].tolist()][:, :prime_len].clone()

    history: list[dict] = []
    start_epoch = 0
    best = math.inf
    init_metrics: dict = {}

    # 3. resume
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from)
        old = dict(ckpt["config"])
        new = to_dict(cfg)
        diff = sorted(k for k in set(old) | set(new) if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k))
        if diff:
            raise ModelError(f"cannot resume {ckpt['path']}: config differs in {', '.join(diff)}")
        if ckpt.get("val_files") != val_files or int(ckpt["dim"]) != data.dim:
            raise ModelError(f"cannot resume {ckpt['path']}: the training data differ from the checkpoint's")
        for k, m in models.items():
            m.load_state_dict(ckpt["models"][k])
        for k, o in optims.items():
            o.load_state_dict(ckpt["optimizers"][k])
        for k, s in scalers.items():
            if ckpt["scalers"].get(k):
                s.load_state_dict(ckpt["scalers"][k])
        _set_rng_state(ckpt["rng"])
        history = list(ckpt["history"])
        start_epoch = int(ckpt["epoch"])
        best = float(ckpt["best"])
        init_metrics = dict(ckpt.get("init_metrics") or {})
    elif start_epoch == 0:
        init_metrics = _validate(cfg, models, val_ds, device)
        # _validate uses its own generator, but restore the global RNG anyway so the first
        # epoch's dropout/noise do not depend on whether validation ran
        _seed_everything(cfg.seed)

    if run_dir is not None and dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / "config.yaml", dump_yaml(cfg).encode())

    def checkpoint(epoch_done: int) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "config": to_dict(cfg), "model": cfg.model, "dim": data.dim,
            "code_rate_hz": float(data.code_rate_hz), "enc_dir": data.enc_dir, "val_files": val_files,
            "normalizer": norm.state(), "primes": primes,
            "models": {k: m.state_dict() for k, m in models.items()},
            "optimizers": {k: o.state_dict() for k, o in optims.items()},
            "scalers": {k: s.state_dict() for k, s in scalers.items()},
            "rng": _rng_state(), "epoch": epoch_done, "history": history, "best": best,
            "init_metrics": init_metrics,
        }

    def write_metrics(status: str, message: str, final: dict) -> None:
        if run_dir is not None and dist.is_main:
            atomic_write_json(run_dir / "metrics.json", {
                "status": status, "message": message, "model": cfg.model, "epochs_done": len(history),
                "final": final, "init": init_metrics, "history": history, "val_files": val_files,
            })

    # 4. epochs
    status, message = "ok", f"trained {cfg.epochs} epochs"
    since_best = 0
    for epoch in range(start_epoch, cfg.epochs):
        loader = make_loader(train_ds, batch_size=cfg.batch_size, seed=cfg.seed, epoch=epoch, rank=dist.rank,
                             world=dist.world, max_steps=cfg.steps_per_epoch, pin_memory=device.type == "cuda")
        sums: dict[str, float] = {}
        steps = frames = 0
        wait = 0.0
        t_epoch = time.perf_counter()
        t_ready = t_epoch
        bad = False
        for x in loader:
            x = x.to(device, non_blocking=True)
            wait += time.perf_counter() - t_ready
            if cfg.model == "lstm":
                model, opt, scaler = models["lstm"], optims["lstm"], scalers["lstm"]
                inp, tgt = x[:, :-1], x[:, 1:]
                if cfg.lstm.input_noise:
                    inp = inp + cfg.lstm.input_noise * torch.randn_like(inp)
                with autocast():
                    p, _ = model(inp)
                loss = model.loss(p, tgt)
                _optimizer_step(loss, model, opt, scaler, dist, cfg.grad_clip)
                step_losses = {"train_loss": float(loss.detach())}
            else:
                gen, disc = models["g"], models["d"]
                b = x.shape[0]
                # discriminator / critic step
                with autocast():
                    fake = gen(gen.noise(b, window, device=device)).detach()
                    ld = d_loss(cfg.gan.loss, disc(x).float(), disc(fake).float())
                step_losses = {"d_loss": float(ld.detach())}
                if cfg.gan.loss == "wgan-gp":
                    gp = gradient_penalty(disc, x.float(), fake.float())
                    ld = ld + cfg.gan.gp_weight * gp
                    step_losses["gp"] = float(gp.detach())
                _optimizer_step(ld, disc, optims["d"], scalers["d"], dist, cfg.grad_clip)
                # generator step every n_critic discriminator steps
                if steps % cfg.gan.n_critic == 0:
                    with autocast():
                        lg = g_loss(cfg.gan.loss, disc(gen(gen.noise(b, window, device=device))).float())
                    _optimizer_step(lg, gen, optims["g"], scalers["g"], dist, cfg.grad_clip)
                    step_losses["g_loss"] = float(lg.detach())
            if not all(math.isfinite(v) for v in step_losses.values()):
                bad = True
            for k, v in step_losses.items():
                sums[k] = sums.get(k, 0.0) + v
                sums[k + "_n"] = sums.get(k + "_n", 0) + 1
            steps += 1
            frames += x.shape[0] * x.shape[1] * dist.world
            if dist.any(bad):
                break
            t_ready = time.perf_counter()
        if dist.any(bad):
            status = "nan"
            message = f"a loss became NaN or infinite in epoch {epoch + 1}; the last good checkpoint is kept"
            break
        train_time = time.perf_counter() - t_epoch
        metrics = {k: dist.mean(sums[k] / sums[k + "_n"]) for k in sums if not k.endswith("_n")}
        metrics.update(_validate(cfg, models, val_ds, device))
        metrics.update(epoch=epoch + 1, steps=steps, seconds=time.perf_counter() - t_epoch,
                       frames_per_s=frames / max(train_time, 1e-9),
                       data_wait_fraction=dist.mean(wait / max(train_time, 1e-9)))
        # the monitored quantity: validation MSE (LSTM) or code-space Frechet distance (GAN)
        monitor = metrics["val_mse"] if cfg.model == "lstm" else metrics["code_fd"]
        if not all(_finite(v) for v in metrics.values() if isinstance(v, float)):
            status = "nan"
            message = f"a validation metric became NaN or infinite in epoch {epoch + 1}; the last good checkpoint is kept"
            history.append(metrics)
            break
        history.append(metrics)
        mname = "val_mse" if cfg.model == "lstm" else "code_fd"
        why = ""
        if math.isfinite(best) and monitor > cfg.divergence_factor * best:
            why = f"{mname} {monitor:.4g} > {cfg.divergence_factor:g} x best {best:.4g}"
        elif cfg.model == "gan" and metrics.get("fake_rms", 0.0) > 1e3:
            # generated codes are in normalised units (real RMS ~1): 1000x means the generator blew up
            why = f"generated codes have RMS {metrics['fake_rms']:.4g} (real codes ~1)"
        diverged = bool(why)
        improved = monitor < best
        if improved:
            best, since_best = monitor, 0
        else:
            since_best += 1
        if run_dir is not None and dist.is_main and not diverged:
            ck = checkpoint(epoch + 1)
            _save_checkpoint(ckpt_dir / "last.pt", ck)
            if improved:
                _save_checkpoint(ckpt_dir / "best.pt", ck)
        write_metrics("running", f"epoch {epoch + 1}/{cfg.epochs}", metrics)
        say(_progress_line(cfg, metrics))
        if diverged:
            status = "diverged"
            message = f"diverged in epoch {epoch + 1}: {why}; the last good checkpoint is kept"
            break
        stop, why = False, ""
        if callback is not None and dist.is_main:
            try:
                stop = callback(epoch + 1, dict(metrics), str(ckpt_dir) if ckpt_dir else None) is False
            except StopTraining as e:
                stop, why = True, str(e)
        if dist.any(stop):
            status = "stopped"
            message = f"stopped by callback after epoch {epoch + 1}" + (f": {why}" if why else "")
            break
        if cfg.patience and since_best >= cfg.patience:
            message = f"early stop after epoch {epoch + 1}: no validation improvement for {cfg.patience} epochs"
            break

    final = dict(history[-1]) if history else {}
    # 5. the comparable score of the final model
    if (status in ("ok", "stopped") and cfg.score.at_end and data.enc_dir and run_dir is not None
            and dist.is_main and history):
        from genaudio.models.score import score_model

        say("scoring: generating clips, decoding and computing features ...")
        try:
            final.update(score_model(run_dir, encoder=None, n_clips=cfg.score.n_clips,
                                     seconds=cfg.score.seconds, seed=cfg.score.seed))
        except Exception as e:  # the trained model is still usable; record why there is no score
            final["score_error"] = f"{type(e).__name__}: {e}"
    write_metrics(status, message, final)
    say(f"{status}: {message}")
    return TrainResult(status, message, history, final, init_metrics, str(run_dir) if run_dir else None)


def _progress_line(cfg: TrainConfig, m: dict) -> str:
    keys = (["train_loss", "val_loss", "val_mse", "baseline_mse", "code_fd"] if cfg.model == "lstm"
            else ["d_loss", "g_loss", "code_fd", "fake_rms"])
    parts = [f"epoch {m['epoch']}/{cfg.epochs}"] + [f"{k} {m[k]:.4g}" for k in keys if k in m]
    parts += [f"{m['frames_per_s']:.0f} frames/s", f"wait {100 * m['data_wait_fraction']:.1f}%", f"{m['seconds']:.1f}s"]
    return "  ".join(parts)
