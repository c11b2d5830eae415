"""What every training loop in genaudio shares: the epoch loop, seeds and RNG states, and
checkpoints that resume exactly.

Three things train in genaudio: the model families (:mod:`genaudio.models.train`), the
autoencoder encoder (:mod:`genaudio.encoders.autoencoder`) and the learned decoder
(:mod:`genaudio.encoders.vocoder`). Their data, losses and outputs differ; how they run epochs,
stop on a NaN, and save and resume their state does not, so it lives here, below both (encoders
never import models: data flows one way).

:func:`run_epochs` is the loop. The caller gives one epoch's training (``train_epoch(epoch) ->
metrics``) and what happens after it (``end_epoch(metrics) -> why to stop or None``: record,
checkpoint, report); the loop stops at the last epoch, at the first non-finite metric, or when
``end_epoch`` says so, and returns an :class:`Outcome`.

An exact resume needs every module, optimiser and schedule, the global torch RNG (and CUDA's), the
loop's own ``torch.Generator`` (which draws every batch and noise), the epochs done and the
history. :func:`save_state` / :func:`load_state` write and read such a dict with ``torch.save`` /
``torch.load(weights_only=True)`` (tensors and plain values only: reading runs no code), and
:func:`check_config` refuses to resume a run trained with another configuration.

>>> outcome = run_epochs(train_epoch, start=0, stop=10, end_epoch=save_and_report)
>>> outcome.status, outcome.message
('ok', 'trained 10 epochs')
"""
from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from genaudio.errors import GenaudioError
from genaudio.infra import atomic_path


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a run of :func:`run_epochs` ended.

    Attributes
    ----------
    status : str
        ``"ok"`` (every epoch, or ``end_epoch`` ended it early on purpose: an early stop),
        ``"nan"`` (a metric became NaN or infinite) or what ``end_epoch`` returned as the status.
    message : str
        One line for people.
    epochs : int
        Epochs completed when it ended.
    """

    status: str
    message: str
    epochs: int


class Stop(Exception):
    """Raised by ``end_epoch`` to end the run with ``status`` (e.g. ``"diverged"``, ``"stopped"``;
    ``"ok"`` for an early stop) and ``message``."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def run_epochs(train_epoch: Callable[[int], dict], *, start: int, stop: int,
               end_epoch: Callable[[dict], None] | None = None) -> Outcome:
    """Train epochs ``start .. stop - 1``: the one epoch loop of genaudio.

    Parameters
    ----------
    train_epoch : callable
        ``train_epoch(epoch) -> metrics`` trains epoch ``epoch`` (0-based) and returns its metrics
        (plain numbers), or ``None`` when a training step's loss became NaN or infinite.
    start, stop : int
        Epochs already done (a resume starts after them) and the total.
    end_epoch : callable, optional
        ``end_epoch(metrics)`` after every finite epoch: record it, checkpoint, report. It ends
        the run by raising :class:`Stop`.

    Returns
    -------
    Outcome
        A non-finite epoch ends the run with status ``"nan"`` before ``end_epoch`` sees it, so
        the last checkpoint stays the last good one.
    """
    done = start
    for epoch in range(start, stop):
        metrics = train_epoch(epoch)
        if metrics is None:
            return Outcome("nan", f"a loss became NaN or infinite in epoch {epoch + 1}", done)
        bad = sorted(k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v))
        if bad:
            return Outcome("nan", f"{', '.join(bad)} became NaN or infinite in epoch {epoch + 1}", done)
        done = epoch + 1
        if end_epoch is not None:
            try:
                end_epoch(metrics)
            except Stop as s:
                return Outcome(s.status, s.message, done)
    return Outcome("ok", f"trained {stop} epochs", done)


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler: Any, params, *,
                   max_norm: float = 1.0) -> bool:
    """One plain update: backward, clip the gradient norm to ``max_norm``, step the optimiser and
    the schedule. Returns ``False`` (and changes nothing) when ``loss`` is NaN or infinite."""
    if not torch.isfinite(loss):
        return False
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.step()
    scheduler.step()
    return True


# ---------------------------------------------------------------------------------------------
# Seeds and RNG states


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(generator: torch.Generator | None = None) -> dict:
    """The global torch RNG state (and every CUDA device's), and ``generator``'s when given."""
    state = {"torch": torch.get_rng_state(),
             "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only where CUDA is present).

    The states may come from a checkpoint loaded with ``map_location`` a GPU: torch takes them
    as CPU byte tensors only, so they are moved back first.
    """
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        # as many as both machines have: a run resumed where fewer GPUs are visible (another
        # server, a Ray worker that sees one) restores those it can
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"].cpu())


# ---------------------------------------------------------------------------------------------
# Checkpoints


def save_state(path: str | Path, state: dict) -> None:
    """Write a checkpoint dict (tensors and plain values) atomically: an interruption leaves the
    previous checkpoint whole."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | Path, *, error: type[GenaudioError], what: str = "checkpoint",
               map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint dict with ``weights_only=True``; ``error`` (one line) when it is missing,
    damaged or not a dict."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise error(f"no {what} at {path}") from None
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file must say so
        raise error(f"{what} {path} is unreadable ({type(e).__name__}: {e}); delete it to start over") from None
    if not isinstance(state, dict):
        raise error(f"{what} {path} is not a genaudio checkpoint; delete it to start over")
    return state


def check_config(saved: dict, current: dict, *, may_differ: set[str] | frozenset[str] = frozenset(),
                 error: type[GenaudioError], what: str) -> None:
    """Refuse (``error``, one line naming the fields) to resume ``what`` trained with another
    configuration; only the fields in ``may_differ`` (e.g. ``epochs``, ``device``) may change."""
    diff = sorted(k for k in set(saved) | set(current) if k not in may_differ and saved.get(k) != current.get(k))
    if diff:
        raise error(f"{what} belongs to another configuration (differs in {', '.join(diff)}); delete it or "
                    "choose another path")


def state_dicts(**parts: Any) -> dict:
    """``{name: part.state_dict()}`` for every part that is not ``None`` (modules, optimisers,
    schedulers, AMP scalers)."""
    return {name: part.state_dict() for name, part in parts.items() if part is not None}


def load_state_dicts(saved: dict, **parts: Any) -> None:
    """Load :func:`state_dicts`' output back into the same parts (``None`` parts are skipped)."""
    for name, part in parts.items():
        if part is not None and name in saved:
            part.load_state_dict(saved[name])
