"""Trial-side helpers shared by every trainable: reporting an epoch, NaN handling, devices.

A trainable reports exactly one result per epoch (so Tune's ``training_iteration`` is the epoch
and ASHA's rungs are epochs) together with a checkpoint of that epoch, and resumes from
``tune.get_checkpoint()`` when Tune restarts it (after a failure, a lost node or ``--resume``).
"""
from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import Any

#: The per-epoch metric ASHA and Optuna see: a comparable quality score, lower is better.
METRIC = "score"

STATUS_RUNNING = "running"
STATUS_NAN = "nan"


def trial_info() -> dict[str, Any]:
    """Where the trial runs: node, process and the accelerator ids Ray assigned to it."""
    import ray

    try:
        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    except Exception:  # outside a Ray worker
        gpu_ids = []
    node_id = ""
    if ray.is_initialized():
        node_id = ray.get_runtime_context().get_node_id()
    return {"node_ip": ray.util.get_node_ip_address() if ray.is_initialized() else socket.gethostname(),
            "node_id": node_id, "pid": os.getpid(), "gpu_ids": ",".join(gpu_ids)}


def device() -> str:
    """``cuda`` when this trial was given a GPU and torch can use it, else ``cpu``.

    Ray sets ``CUDA_VISIBLE_DEVICES`` to the trial's own GPU ids, so ``cuda`` (device 0) is the
    trial's first assigned GPU; fractional trials sharing a GPU see the same physical device.
    """
    import torch

    info = trial_info()
    if info["gpu_ids"] and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def clean_metrics(metrics: dict) -> dict:
    """Keep scalar metrics only (Tune's tables want numbers and short strings)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or isinstance(v, (int, str)):
            out[k] = v
        elif isinstance(v, float):
            out[k] = v
        elif hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
            out[k] = v.item()
    return out


def report_epoch(epoch: int, metrics: dict, checkpoint_dir: str | Path | None, *,
                 score_key: str = METRIC, reason: str | None = None) -> bool:
    """Report one epoch to Tune with its checkpoint; ``False`` when the trial went non-finite.

    A non-finite score is reported as ``+inf`` with ``status="nan"`` so that ASHA stops the trial,
    Optuna records a bad value, and the results table shows why; the caller then ends the trial
    (a NaN trial is recorded, not retried).
    """
    from ray import tune

    row = clean_metrics(metrics)
    row["epoch"] = int(epoch)
    score = row.get(score_key)
    finite = score is not None and isinstance(score, (int, float)) and math.isfinite(score)
    bad = [k for k, v in row.items() if isinstance(v, float) and math.isnan(v)]
    if not finite or bad:
        row[score_key] = float("inf")
        row["status"] = STATUS_NAN
        row["reason"] = reason or f"non-finite {', '.join(bad) or score_key} at epoch {epoch}"
        for k in bad:
            row[k] = float("inf")
    else:
        row["status"] = STATUS_RUNNING
        row["reason"] = ""
    row.update(trial_info())
    ckpt = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
    tune.report(row, checkpoint=ckpt)
    return row["status"] != STATUS_NAN
