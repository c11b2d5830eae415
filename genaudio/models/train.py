"""The one training loop for every model family, in one process or in each data-parallel worker.

:func:`train` reads top to bottom:

1. :func:`_start`: split the segments by file, normalise, cut windows
   (:func:`~genaudio.models.data.training_windows`); seed; build the family
   (:mod:`genaudio.models.families`) and its optimisers on the device; resume from a checkpoint,
   or measure the untrained model;
2. per epoch (:func:`genaudio.training.run_epochs`, the loop every trainer in genaudio shares),
   :func:`_train_epoch`: the family's training steps over this rank's share of every batch, then
   validation; a NaN stops the run at once;
3. :func:`_end_epoch`: divergence check, best so far, ``last.pt`` / ``best.pt`` and
   ``metrics.json`` (:func:`_record_epoch`; :mod:`genaudio.models.run` owns the files), then the
   progress line, ``callback(epoch, metrics, checkpoint_dir)`` (the search reports from there)
   and patience;
4. the final ``metrics.json``. Judging the model is the caller's
   (:func:`genaudio.models.score.score_at_end` for ``genaudio train``).

Data order depends only on ``(seed, epoch)`` and every RNG state is checkpointed, so a resumed run
reproduces the uninterrupted one (but for ``patience``, which counts again from the resume).
:mod:`genaudio.models.distributed` runs this same function in each Ray Train worker with a
:class:`~genaudio.models.parallel.DistContext`: each rank takes an equal slice of every global
batch and gradients are averaged across ranks before each step.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch

from genaudio.config import from_dict, to_dict
from genaudio.devices import resolve_device
from genaudio.errors import ConfigError
from genaudio.models.config import TrainConfig
from genaudio.models.data import SequenceData, TrainingWindows, as_sequence_data, make_loader, training_windows
from genaudio.models.families import Family, Updater, build_family
from genaudio.models.parallel import DistContext
from genaudio.models.run import (Checkpoint, TrainResult, checkpoints_dir, read_checkpoint, save_checkpoint,
                                 write_config, write_metrics)
from genaudio.training import Stop, rng_state, run_epochs, seed_everything, set_rng_state

_KEPT = "the last good checkpoint is kept"


class StopTraining(Exception):
    """Raise from a training callback to stop the run cleanly (status ``"stopped"``)."""


def train(config: TrainConfig | dict, data: Any, *, out_dir: str | Path | None,
          callback: Callable[[int, dict, str | None], Any] | None = None,
          resume_from: str | Path | None = None, dist: DistContext | None = None,
          progress: Callable[[str], None] | None = None) -> TrainResult:
    """Train a model of family ``config.model`` (LSTM or GAN) on code sequences.

    Parameters
    ----------
    config : TrainConfig or dict
        A dict goes through :func:`genaudio.config.from_dict` (unknown keys are refused).
    data : SequenceData, CodesData or path
        Code sequences ``(time, dim)`` per segment with their ``file_id`` (see
        :func:`genaudio.models.data.as_sequence_data`); a path is an encoded store.
    out_dir : path or None
        Run folder (:mod:`genaudio.models.run`): ``config.yaml``, ``checkpoints/last.pt`` and
        ``best.pt``, ``metrics.json``. ``None`` trains without writing anything.
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
        Per-epoch metrics: ``epoch``, ``steps``, ``seconds``, ``frames_per_s`` (training frames
        per second, all ranks), ``data_wait_fraction`` (share of step time spent waiting for
        batches), ``code_fd`` (Frechet distance of per-window code statistics, generated vs
        validation; comparable only within one encoder), and the family's own:
        ``train_loss``, ``val_loss``, ``val_mse``, ``baseline_mse`` (LSTM); ``d_loss``,
        ``g_loss``, ``gp`` (WGAN-GP), ``fake_rms`` (GAN). No quality score: callers judge.
    """
    cfg = config if isinstance(config, TrainConfig) else from_dict(TrainConfig, config)
    dist = dist or DistContext()
    if cfg.batch_size % dist.world:
        raise ConfigError(f"batch_size ({cfg.batch_size}) must be divisible by the number of workers ({dist.world})")
    t = _start(cfg, as_sequence_data(data), dist, out_dir, resume_from)
    say = progress if progress is not None and dist.is_main else None

    outcome = run_epochs(functools.partial(_train_epoch, t), start=t.epoch, stop=cfg.epochs,
                         end_epoch=functools.partial(_end_epoch, t, callback=callback, say=say))
    message = outcome.message + (f"; {_KEPT}" if outcome.status == "nan" else "")
    result = TrainResult(outcome.status, message, t.history, dict(t.history[-1]) if t.history else {},
                         t.init_metrics, str(out_dir) if out_dir is not None else None)
    if t.run_dir is not None:
        write_metrics(t.run_dir, result, model=cfg.model, val_files=t.windows.val_files)
    if say:
        say(f"{outcome.status}: {message}")
    return result


@dataclasses.dataclass
class _Training:
    """One run while it trains: what a checkpoint saves and restores, and where it is written."""

    cfg: TrainConfig
    data: SequenceData
    windows: TrainingWindows
    family: Family
    updater: Updater
    dist: DistContext
    device: torch.device
    run_dir: Path | None  # None: write nothing (no out_dir, or not rank 0)
    history: list = dataclasses.field(default_factory=list)
    epoch: int = 0  # epochs completed
    best: float = math.inf  # best monitored validation metric
    since_best: int = 0  # epochs since it improved (not checkpointed: patience restarts on resume)
    init_metrics: dict = dataclasses.field(default_factory=dict)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(
            config=to_dict(self.cfg), dim=self.data.dim, code_rate_hz=float(self.data.code_rate_hz),
            enc_dir=self.data.enc_dir, val_files=self.windows.val_files, normalizer=self.windows.normalizer,
            primes=self.windows.primes, models=self.family.state_dict(), **self.updater.state_dict(),
            rng=rng_state(), epoch=self.epoch, history=self.history, best=self.best,
            init_metrics=self.init_metrics)


def _start(cfg: TrainConfig, data: SequenceData, dist: DistContext, out_dir, resume_from) -> _Training:
    """Windows, the seeded family and its optimisers on the device; the training state restored
    from ``resume_from``, or fresh with the untrained model's validation metrics."""
    device = dist.device or resolve_device(cfg.device)
    windows = training_windows(data, window=cfg.window, hop=cfg.window_hop or max(1, cfg.window // 2),
                               batch_size=cfg.batch_size, val_fraction=cfg.val_fraction, seed=cfg.seed)
    seed_everything(cfg.seed)
    family = build_family(cfg, data.dim).to(device)
    updater = Updater(family.optimizers(), family.modules, dist=dist, grad_clip=cfg.grad_clip,
                      amp=cfg.amp and device.type == "cuda", device=device)
    run_dir = Path(out_dir) if out_dir is not None and dist.is_main else None
    t = _Training(cfg, data, windows, family, updater, dist, device, run_dir)
    if resume_from is not None:
        ck = read_checkpoint(resume_from)
        ck.check_resume(cfg, val_files=windows.val_files, dim=data.dim, normalizer=windows.normalizer)
        family.load_state_dict(ck.models)
        updater.load_state_dict({"optimizers": ck.optimizers, "scalers": ck.scalers})
        set_rng_state(ck.rng)
        t.history, t.epoch, t.best, t.init_metrics = list(ck.history), ck.epoch, ck.best, ck.init_metrics
    else:
        t.init_metrics = family.validate(windows.val, device)
        # validation draws from its own generator; reseed anyway, so that the first epoch's
        # dropout and noise never depend on whether validation ran
        seed_everything(cfg.seed)
    if run_dir is not None:
        write_config(run_dir, cfg)
    return t


def _train_epoch(t: _Training, epoch: int) -> dict | None:
    """One epoch: the family's steps over this rank's share of every batch, then validation.

    Returns the epoch's metrics (step losses averaged over steps and ranks, validation, timing), or
    ``None`` when a step loss became NaN or infinite on any rank (all ranks stop together).
    """
    cfg, dist = t.cfg, t.dist
    if dist.rank:
        # every rank starts from rank 0's seed (the same initial weights) and a resume restores
        # rank 0's RNG state only: the other ranks' dropout and GAN noise come from their own
        # seed per epoch, so that they differ from rank 0's and a resume reproduces them
        seed_everything(cfg.seed + 1_000_003 * dist.rank + epoch)
    loader = make_loader(t.windows.train, batch_size=cfg.batch_size, seed=cfg.seed, epoch=epoch, rank=dist.rank,
                         world=dist.world, max_steps=cfg.steps_per_epoch, pin_memory=t.device.type == "cuda")
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    steps = frames = 0
    wait, bad = 0.0, False
    t_epoch = t_ready = time.perf_counter()
    for x in loader:
        x = x.to(t.device, non_blocking=True)
        wait += time.perf_counter() - t_ready
        losses = t.family.train_step(x, steps, t.updater)
        bad = bad or not all(math.isfinite(v) for v in losses.values())
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
            counts[k] = counts.get(k, 0) + 1
        steps += 1
        frames += x.shape[0] * x.shape[1] * dist.world
        if dist.any(bad):
            break
        t_ready = time.perf_counter()
    if dist.any(bad):
        return None
    train_time = max(time.perf_counter() - t_epoch, 1e-9)
    metrics = {k: dist.mean(sums[k] / counts[k]) for k in sums}
    metrics.update(t.family.validate(t.windows.val, t.device))
    metrics.update(epoch=epoch + 1, steps=steps, seconds=time.perf_counter() - t_epoch,
                   frames_per_s=frames / train_time, data_wait_fraction=dist.mean(wait / train_time))
    return metrics


def _end_epoch(t: _Training, metrics: dict, *, callback, say) -> None:
    """After a finite epoch: record and checkpoint it, print its line, ask the callback; raises
    :class:`~genaudio.training.Stop` when the model diverged, the callback stops the run or
    patience runs out."""
    epoch = metrics["epoch"]
    diverged = _record_epoch(t, metrics)
    if say:
        say(_progress_line(t, metrics))
    if diverged:
        raise Stop("diverged", f"diverged in epoch {epoch}: {diverged}; {_KEPT}")
    stop = _ask_callback(t, callback, metrics)
    if stop is not None:
        raise Stop("stopped", f"stopped by callback after epoch {epoch}" + (f": {stop}" if stop else ""))
    if t.cfg.patience and t.since_best >= t.cfg.patience:
        raise Stop("ok", f"early stop after epoch {epoch}: no validation improvement for {t.cfg.patience} epochs")


def _record_epoch(t: _Training, metrics: dict) -> str:
    """Record a finished epoch: history, best so far, checkpoints and ``metrics.json``.

    Returns why the model diverged (``""`` when it did not); a diverged epoch is not checkpointed,
    so ``last.pt`` stays the last good model.
    """
    t.history.append(metrics)
    t.epoch = metrics["epoch"]
    name = t.family.monitor
    value = metrics[name]
    if math.isfinite(t.best) and value > t.cfg.divergence_factor * t.best:
        why = f"{name} {value:.4g} > {t.cfg.divergence_factor:g} x best {t.best:.4g}"
    else:
        why = t.family.diverged(metrics)
    improved = value < t.best
    t.best, t.since_best = (value, 0) if improved else (t.best, t.since_best + 1)
    if t.run_dir is not None:
        if not why:
            save_checkpoint(t.run_dir, t.checkpoint(), best=improved)
        running = TrainResult("running", f"epoch {t.epoch}/{t.cfg.epochs}", t.history, metrics, t.init_metrics,
                              str(t.run_dir))
        write_metrics(t.run_dir, running, model=t.cfg.model, val_files=t.windows.val_files)
    return why


def _ask_callback(t: _Training, callback, metrics: dict) -> str | None:
    """Call ``callback`` on rank 0; ``None`` to go on, else the reason to stop (``""`` when it
    returned ``False``). All ranks get the same answer (the reason itself only on rank 0)."""
    stop, why = False, ""
    if callback is not None and t.dist.is_main:
        ckpt_dir = str(checkpoints_dir(t.run_dir)) if t.run_dir is not None else None
        try:
            stop = callback(metrics["epoch"], dict(metrics), ckpt_dir) is False
        except StopTraining as e:
            stop, why = True, str(e)
    return why if t.dist.any(stop) else None


def _progress_line(t: _Training, m: dict) -> str:
    parts = [f"epoch {m['epoch']}/{t.cfg.epochs}"] + [f"{k} {m[k]:.4g}" for k in t.family.progress_keys if k in m]
    parts += [f"{m['frames_per_s']:.0f} frames/s", f"wait {100 * m['data_wait_fraction']:.1f}%", f"{m['seconds']:.1f}s"]
    return "  ".join(parts)
