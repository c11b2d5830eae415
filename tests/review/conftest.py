"""Builders of synthetic RUN folders in the exact on-disk layout of `genaudio search`
(search.json, tune/search/<trial>/params.json + result.json lines + error.txt, results.parquet
written by genaudio.search.results.write_results, study.db a real Optuna SQLite study)."""
from __future__ import annotations

import json
import time
from pathlib import Path


def write_trial(run: Path, tid: str, params: dict, scores: list[float], *, index: int = 1, error: str | None = None,
                t0: float | None = None, epoch_s: float = 2.0, extra: dict | None = None) -> Path:
    """A Tune trial folder as the real trainable leaves it (one result.json line per epoch)."""
    folder = run / "tune" / "search" / f"search_trainable_{tid}_{index}_model_family={params.get('model.family')}_2026-01-01"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps({"epochs": 3, "seed": 0, **params}))
    t0 = time.time() if t0 is None else t0
    lines = []
    for e, s in enumerate(scores, 1):
        row = {"score": s, "quality": s, "quality_se": 0.2, "code_score": s * 8, "epoch": e, "training_iteration": e, "trial_id": tid,
               "time_total_s": e * epoch_s, "timestamp": int(t0 + e * epoch_s), "status": "running", "reason": "",
               "node_ip": "127.0.0.1", "config": {"epochs": 3, **params}}
        if s != s or s == float("inf"):
            row.update(score=float("inf"), status="nan", reason=f"nan: loss became NaN at epoch {e}")
        row.update(extra or {})
        lines.append(json.dumps(row))
    (folder / "result.json").write_text("\n".join(lines) + ("\n" if lines else ""))
    if error:
        (folder / "error.txt").write_text(f"Traceback (most recent call last):\n  File \"x.py\", line 1\n{error}\n")
    return folder


def write_state(run: Path, epochs: int = 3) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "search.json").write_text(json.dumps({"store": "/nowhere", "config": {"epochs": epochs, "seed": 0}}))


def lstm_params(hidden=32, lr=1e-3, tonal=False, dim=8):
    return {"model.family": "lstm", "encoder.kind": "pca", "encoder.dim": dim, "features.core": "log_mel",
            "features.tonal": tonal, "lstm.hidden": hidden, "lstm.layers": 1, "lstm.context": 8, "train.lr": lr,
            "train.batch_size": 8}
