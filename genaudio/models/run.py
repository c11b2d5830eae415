"""The model run: the folder of one trained model, written and read only here.

A run is a folder::

    RUN/
      config.yaml          the full TrainConfig (``genaudio train --config RUN/config.yaml`` repeats it)
      checkpoints/last.pt  every epoch: everything an exact resume needs (see :class:`Checkpoint`)
      checkpoints/best.pt  the epoch with the best monitored validation metric
      metrics.json         status, message, model, per-epoch history, init and final metrics
      ray_train/           (data-parallel runs only) Ray Train's own records

A checkpoint is a dict of tensors and plain Python values written with ``torch.save`` and read
with ``torch.load(weights_only=True)``: no pickled classes, so reading one runs no code. A
checkpoint file alone (e.g. a search trial's ``last.pt``) restores a model: :func:`load_run`.

>>> from genaudio.models.run import load_run
>>> model = load_run("runs/lstm1")              # checkpoints/last.pt (which="best": best.pt)
>>> codes = model.generate_codes(n=4, frames=200, seed=0)   # (4, 200, dim), encoder units
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genaudio.config import dump_yaml, from_dict, to_dict
from genaudio.devices import resolve_device
from genaudio.errors import ModelError
from genaudio.infra import atomic_write_bytes, atomic_write_json
from genaudio.models.config import TrainConfig
from genaudio.models.data import Normalizer
from genaudio.models.families import Family, build_family
from genaudio.training import load_state, save_state

CONFIG = "config.yaml"
CHECKPOINTS = "checkpoints"
LAST, BEST = "last.pt", "best.pt"
METRICS = "metrics.json"

CHECKPOINT_FORMAT = 1
#: Config keys that may differ between a checkpoint and the run resuming it.
RESUMABLE_CHANGES = {"epochs", "score", "device", "patience", "divergence_factor"}


def checkpoints_dir(run_dir: str | Path) -> Path:
    """``RUN/checkpoints``: what the training callback receives (it holds ``last.pt``)."""
    return Path(run_dir) / CHECKPOINTS


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a trained run (``checkpoints/last.pt``)."""
    return (checkpoints_dir(run_dir) / LAST).is_file()


def is_model_run(path: str | Path) -> bool:
    """Whether ``path`` is a trained model: a run folder with checkpoints, or a ``.pt`` file."""
    p = Path(path)
    return (p.is_dir() and has_checkpoint(p)) or (p.is_file() and p.suffix == ".pt")


# ---------------------------------------------------------------------------------------------
# metrics.json and config.yaml


@dataclasses.dataclass
class TrainResult:
    """What :func:`~genaudio.models.train.train` returns (and ``metrics.json`` holds).

    Attributes
    ----------
    status : {"ok", "nan", "diverged", "stopped"}
        ``ok``: all epochs ran (or early stop on patience); ``nan``: a loss became NaN/inf (the
        last good checkpoint is kept); ``diverged``: the monitored loss exceeded
        ``divergence_factor`` x its best; ``stopped``: the callback asked to stop.
        (``running`` in ``metrics.json`` while training.)
    message : str
        One line saying why training ended.
    history : list of dict
        Per-epoch metrics (see :func:`~genaudio.models.train.train`).
    metrics : dict
        Final metrics: the last epoch's, plus the judge's score (``quality``, ``quality_se``,
        ...) once a caller scored the model (:func:`genaudio.models.score.score_at_end`).
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


def write_config(run_dir: str | Path, cfg: TrainConfig) -> None:
    """``RUN/config.yaml`` (creates ``RUN``)."""
    atomic_write_bytes(Path(run_dir) / CONFIG, dump_yaml(cfg).encode())


def write_metrics(run_dir: str | Path, result: TrainResult, *, model: str, val_files: list) -> None:
    """``RUN/metrics.json``: ``status``, ``message``, ``model``, ``epochs_done``, ``final``,
    ``init``, ``history``, ``val_files``."""
    atomic_write_json(Path(run_dir) / METRICS, {
        "status": result.status, "message": result.message, "model": model, "epochs_done": len(result.history),
        "final": result.metrics, "init": result.init_metrics, "history": result.history, "val_files": val_files,
    })


def read_result(run_dir: str | Path) -> TrainResult:
    """The :class:`TrainResult` recorded in ``RUN/metrics.json``."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise ModelError(f"{run_dir} holds no {METRICS}: training never finished an epoch there")
    m = json.loads(path.read_text())
    return TrainResult(m["status"], m["message"], m["history"], m["final"], m.get("init", {}), str(run_dir))


def record_final(run_dir: str | Path, final: dict) -> None:
    """Replace the ``final`` metrics of ``RUN/metrics.json`` (a caller adds the judge's score)."""
    path = Path(run_dir) / METRICS
    m = json.loads(path.read_text())
    m["final"] = final
    atomic_write_json(path, m)


# ---------------------------------------------------------------------------------------------
# Checkpoints


@dataclasses.dataclass
class Checkpoint:
    """One checkpoint, typed: the model, its data facts and the training state of an exact resume.

    Attributes
    ----------
    config : dict
        The TrainConfig as a dict.
    dim, code_rate_hz : int, float
        Code dimension and frames per second.
    enc_dir : str or None
        The encoded store the model was trained on (its ``encoder/`` decodes the codes).
    val_files : list of str
        Held-out recordings (validation, and the judge's real reference).
    normalizer : Normalizer
    primes : Tensor (n, t0, dim)
        Normalised real training windows that start LSTM generation.
    models, optimizers, scalers : dict of str -> state dict
    rng : dict
        Global torch (and CUDA) RNG states.
    epoch : int
        Epochs completed.
    history : list of dict
    best : float
        Best monitored validation metric so far.
    init_metrics : dict
    path : str or None
        Where it was read from.
    """

    config: dict
    dim: int
    code_rate_hz: float
    enc_dir: str | None
    val_files: list
    normalizer: Normalizer
    primes: torch.Tensor
    models: dict
    optimizers: dict
    scalers: dict
    rng: dict
    epoch: int
    history: list
    best: float
    init_metrics: dict
    path: str | None = None

    def to_dict(self) -> dict:
        """The on-disk dict (format :data:`CHECKPOINT_FORMAT`)."""
        return {"format": CHECKPOINT_FORMAT, "config": self.config, "model": self.config["model"], "dim": self.dim,
                "code_rate_hz": self.code_rate_hz, "enc_dir": self.enc_dir, "val_files": self.val_files,
                "normalizer": self.normalizer.state(), "primes": self.primes, "models": self.models,
                "optimizers": self.optimizers, "scalers": self.scalers, "rng": self.rng, "epoch": self.epoch,
                "history": self.history, "best": self.best, "init_metrics": self.init_metrics}

    @classmethod
    def from_dict(cls, d: dict) -> "Checkpoint":
        return cls(dict(d["config"]), int(d["dim"]), float(d["code_rate_hz"]), d.get("enc_dir"), list(d["val_files"]),
                   Normalizer.from_state(d["normalizer"]), d["primes"], d["models"], d["optimizers"], d["scalers"],
                   d["rng"], int(d["epoch"]), list(d["history"]), float(d["best"]), dict(d.get("init_metrics") or {}),
                   d.get("path"))

    def check_resume(self, cfg: TrainConfig, *, val_files: list, dim: int, normalizer: Normalizer) -> None:
        """Refuse (:class:`~genaudio.errors.ModelError`) to resume with another model or other data:
        only the keys in :data:`RESUMABLE_CHANGES` may differ; the data must split into the same
        validation files and its training codes have the checkpoint's statistics (other codes of
        the same files, e.g. another encoder's, would not)."""
        new = to_dict(cfg)
        diff = sorted(k for k in set(self.config) | set(new)
                      if k not in RESUMABLE_CHANGES and self.config.get(k) != new.get(k))
        if diff:
            raise ModelError(f"cannot resume {self.path}: config differs in {', '.join(diff)}")
        same_codes = self.dim == dim and all(
            np.allclose(getattr(self.normalizer, k), getattr(normalizer, k), rtol=1e-5, atol=1e-6)
            for k in ("mean", "std"))
        if self.val_files != val_files or not same_codes:
            raise ModelError(f"cannot resume {self.path}: the training data differ from the checkpoint's")


def save_checkpoint(run_dir: str | Path, ckpt: Checkpoint, *, best: bool = False) -> None:
    """Write ``checkpoints/last.pt`` (and ``best.pt`` when ``best``) atomically."""
    state = ckpt.to_dict()
    for name in (LAST, BEST) if best else (LAST,):
        save_state(checkpoints_dir(run_dir) / name, state)


def load_checkpoint(path: str | Path) -> dict:
    """The dict of a checkpoint: a ``.pt`` file, or a folder holding ``checkpoints/last.pt`` (a
    run) or ``last.pt`` (a search trial's checkpoint). ``path`` says where it was read from."""
    path = Path(path)
    if path.is_dir():
        cand = [checkpoints_dir(path) / LAST, path / LAST]
        found = next((c for c in cand if c.is_file()), None)
        if found is None:
            raise ModelError(f"{path} holds no checkpoint (expected {CHECKPOINTS}/{LAST})")
        path = found
    ckpt = load_state(path, error=ModelError)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not a genaudio checkpoint (format {CHECKPOINT_FORMAT})")
    ckpt["path"] = str(path)
    return ckpt


def read_checkpoint(path: str | Path) -> Checkpoint:
    """:func:`load_checkpoint` as a :class:`Checkpoint`."""
    return Checkpoint.from_dict(load_checkpoint(path))


# ---------------------------------------------------------------------------------------------
# Trained models


@dataclasses.dataclass
class TrainedModel:
    """A model restored from a checkpoint, ready to sample (modules in eval mode on ``device``).

    Attributes
    ----------
    config : TrainConfig
    family : Family
        Its :attr:`~Family.modules` (also :attr:`models`): ``{"lstm": ...}`` or ``{"g": ..., "d": ...}``.
    normalizer : Normalizer
        Maps model units back to encoder codes.
    dim : int
    code_rate_hz : float
    enc_dir : str or None
        The encoded store the model was trained on.
    primes : Tensor (n, t0, dim)
    val_files : list of str
        Held-out files (the judge's real reference).
    epoch : int
    history : list of dict
    path : str
    device : torch.device
    """

    config: TrainConfig
    family: Family
    normalizer: Normalizer
    dim: int
    code_rate_hz: float
    enc_dir: str | None
    primes: torch.Tensor
    val_files: list
    epoch: int
    history: list
    path: str
    device: torch.device

    @property
    def models(self) -> dict:
        return self.family.modules

    @torch.no_grad()
    def generate_codes(self, *, n: int, frames: int, seed: int = 0, temperature: float | None = None) -> np.ndarray:
        """``n`` sequences of ``frames`` code frames, in encoder units.

        Returns
        -------
        ndarray (n, frames, dim) float32
            LSTM: free-running continuations of ``n`` real primes (the primes themselves are not
            included); GAN: generator output (consecutive patches for the conv family).
        """
        if n < 1 or frames < 1:
            raise ModelError(f"need n >= 1 clips and frames >= 1, got n={n}, frames={frames}")
        gen = torch.Generator().manual_seed(seed)
        x = self.family.sample(n, frames, generator=gen, device=self.device, primes=self.primes,
                               temperature=temperature)
        x = x.float().cpu().numpy()
        if not np.isfinite(x).all():
            raise ModelError(f"{self.path}: the model generated NaN or infinite codes")
        return self.normalizer.inverse(x)


def load_run(run: str | Path | TrainedModel, *, which: str = "last", device: str = "cpu") -> TrainedModel:
    """Restore a trained model from a run folder (``checkpoints/<which>.pt``) or a ``.pt`` file."""
    if isinstance(run, TrainedModel):
        return run
    path = Path(run)
    if path.is_dir() and (checkpoints_dir(path) / f"{which}.pt").is_file():
        path = checkpoints_dir(path) / f"{which}.pt"
    ck = read_checkpoint(path)
    cfg = from_dict(TrainConfig, ck.config)
    dev = resolve_device(device)
    family = build_family(cfg, ck.dim)
    family.load_state_dict(ck.models)
    for m in family.to(dev).modules.values():
        m.eval()
    return TrainedModel(cfg, family, ck.normalizer, ck.dim, ck.code_rate_hz, ck.enc_dir, ck.primes, ck.val_files,
                        ck.epoch, ck.history, ck.path, dev)


def load_run_encoder(model: TrainedModel, encoder: Any = None):
    """The encoder that decodes ``model``'s codes: ``encoder`` itself, a path to one, or the
    encoder of the run's encoded store (``ENC/encoder``)."""
    from genaudio.encoders import load_encoder  # another package, heavy: imported when needed

    if encoder is not None and not isinstance(encoder, (str, Path)):
        enc = encoder
    else:
        path = encoder or model.enc_dir
        if not path:
            raise ModelError(f"{model.path}: the run does not name its encoded store; pass the encoder explicitly")
        path = Path(path)
        enc = load_encoder(path / "encoder" if (path / "encoder").is_dir() else path)
    if enc.dim != model.dim:
        raise ModelError(f"encoder has dim {enc.dim} but the model generates {model.dim}-dim codes")
    return enc
