"""Data-parallel context of the training loop: this process's rank, the world size, its device.

Ray Train (:mod:`genaudio.models.distributed`) starts the workers and the torch process group
(gloo on CPUs, NCCL on GPUs) and says each worker's rank and device
(``ray.train.get_context()``, ``ray.train.torch.get_device()``); the loop then

- reads an equal, contiguous slice of every global batch on each rank
  (:func:`genaudio.models.data.make_loader`), and
- averages gradients across ranks with one flat all-reduce before every optimiser step
  (:meth:`DistContext.average_gradients`).

Why not Ray Train's ``prepare_model`` (DistributedDataParallel) and ``prepare_data_loader``:

- DDP does not work with ``torch.autograd.grad`` (a warning in its own documentation): the
  WGAN-GP gradient penalty differentiates the critic's output with respect to its input with
  ``create_graph=True`` and then backpropagates through that gradient (a double backward);
  pytorch/pytorch#47562 shows DDP reducing wrong gradients for exactly this loss.
- The generator's loss backpropagates through the critic: a DDP-wrapped critic would all-reduce
  critic gradients that the generator's update then throws away.
- The LSTM alone would fit DDP, but one synchronisation scheme for every family keeps one
  behaviour to test. Averaging all gradients in one flat all-reduce is what DDP does with a
  single bucket, so the result is the same.
- ``prepare_data_loader`` swaps in a per-item ``DistributedSampler``; the loop's loader gathers a
  whole batch with one vectorised index (the reason data loading costs microseconds).

With one process (``world == 1``) every method is a no-op, and nothing imports Ray.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.distributed as tdist


@dataclasses.dataclass
class DistContext:
    """This process's ``rank`` among ``world`` data-parallel processes, and its ``device``.

    ``device=None``: the loop resolves ``TrainConfig.device`` (CUDA when present, else CPU).
    """

    rank: int = 0
    world: int = 1
    device: torch.device | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run folder and calls the callback."""
        return self.rank == 0

    def average_gradients(self, params) -> None:
        """Average the ``.grad`` of ``params`` across ranks (one flat all-reduce)."""
        if self.world == 1:
            return
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
        """The mean of a scalar metric across ranks."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)   # NCCL reduces GPU tensors only
        tdist.all_reduce(t)
        return float(t.item()) / self.world

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is true on any rank (so that all ranks stop together)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        tdist.all_reduce(t)
        return bool(t.item() > 0)
