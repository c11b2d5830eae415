"""One model on several GPUs or nodes: Ray Train's ``TorchTrainer`` running the same training loop.

Every worker runs :func:`genaudio.models.train.train` with a
:class:`~genaudio.models.parallel.DistContext` built from Ray Train's own context (rank, world
size: ``ray.train.get_context()``; device: ``ray.train.torch.get_device()``). Ray Train creates
the torch process group (NCCL on GPUs, gloo on CPUs); the loop gives each rank an equal,
contiguous slice of every global batch and averages gradients across ranks with one all-reduce
before each optimiser step, which is what DDP does (why not DDP itself:
:mod:`genaudio.models.parallel`), so for the same seed and global batch the result matches
single-process training up to floating-point summation order (dropout and GAN noise are drawn per
rank, rank 0's from the run's seed and the others' from their rank and epoch, so those models
match in distribution rather than bit for bit).

Rank 0 writes the run folder (``config.yaml``, checkpoints, ``metrics.json``); on several nodes
``out_dir`` must be on storage every node sees.

>>> from genaudio.models.distributed import train_distributed
>>> result = train_distributed(cfg, data, out_dir="runs/big", workers=4, gpus_per_worker=1)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from genaudio.errors import GenaudioError, ModelError
from genaudio.infra import connect_ray
from genaudio.models.config import TrainConfig
from genaudio.models.data import as_sequence_data
from genaudio.models.parallel import DistContext
from genaudio.models.run import TrainResult, read_result
from genaudio.models.train import train


def _worker(loop_config: dict) -> None:
    """The per-worker entry point: unpack, find rank and device, run the one loop."""
    import ray
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    data = loop_config["data"]
    if isinstance(data, ray.ObjectRef):
        data = ray.get(data)
    device = ray.train.torch.get_device() if loop_config["use_gpu"] else torch.device("cpu")
    dist = DistContext(rank=ctx.get_world_rank(), world=ctx.get_world_size(), device=device)
    result = train(loop_config["config"], data, out_dir=loop_config["out_dir"],
                   callback=loop_config.get("callback"), resume_from=loop_config.get("resume_from"),
                   dist=dist, progress=print if loop_config.get("verbose") else None)
    ray.train.report({"status": result.status, "epochs_done": len(result.history)})


def train_distributed(config: TrainConfig, data: Any, *, out_dir: str | Path, workers: int,
                      gpus_per_worker: float = 0, cpus_per_worker: float = 1,
                      callback: Callable | None = None, resume_from: str | Path | None = None,
                      verbose: bool = True) -> TrainResult:
    """Data-parallel training of one model on ``workers`` Ray Train workers.

    Parameters
    ----------
    config : TrainConfig
        ``batch_size`` is the global batch and must be divisible by ``workers``.
    data : SequenceData, CodesData or path
    out_dir : path
        The run folder (written by rank 0).
    workers : int
        Number of workers (processes); one GPU each when ``gpus_per_worker`` is 1.
    gpus_per_worker, cpus_per_worker : float
        Resources of each worker. Without GPUs the process group uses gloo.
    callback : callable, optional
        As for :func:`~genaudio.models.train.train`; runs on rank 0 inside its worker, so it must
        be picklable.
    resume_from : path, optional
        Checkpoint or run folder to continue.

    Returns
    -------
    TrainResult
        Read back from the run folder's ``metrics.json``.
    """
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if workers < 1:
        raise ModelError(f"workers must be >= 1, got {workers}")
    if config.batch_size % workers:
        raise ModelError(f"batch_size ({config.batch_size}) must be divisible by --workers ({workers})")
    out_dir = Path(out_dir).resolve()
    data = as_sequence_data(data)
    connect_ray(log_to_driver=verbose)  # no-op when the caller has connected already
    use_gpu = gpus_per_worker > 0
    resources = {"CPU": cpus_per_worker}
    if use_gpu:
        resources["GPU"] = gpus_per_worker
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"config": config, "data": ray.put(data), "out_dir": str(out_dir),
                           "callback": callback, "resume_from": str(resume_from) if resume_from else None,
                           "use_gpu": use_gpu, "verbose": verbose},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(name="ray_train", storage_path=str(out_dir)),
    )
    try:
        trainer.fit()
    except Exception as e:  # Ray wraps worker errors; surface a GenaudioError's own message
        cause = e
        while cause is not None and not isinstance(cause, GenaudioError):
            cause = cause.__cause__ or getattr(cause, "cause", None)
        if isinstance(cause, GenaudioError):
            raise type(cause)(str(cause)) from None
        raise ModelError(f"distributed training failed: {type(e).__name__}: {e}") from None
    return read_result(out_dir)
