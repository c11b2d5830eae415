"""A small real search RUN (a real Ray Tune search of the session's features store, tiny models), made once per module,
and builders of synthetic RUN folders in the exact on-disk layout of `genaudio search`
(search.json, tune/search/<trial>/params.json + result.json lines + error.txt, results.parquet
written by genaudio.search.results.write_results, study.db a real Optuna SQLite study)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# tiny models, 3 epochs (ASHA stops some trials at epoch 1), two families, one optional group
TINY = """\
trials: 5
epochs: 3
cpus_per_trial: 1
max_failures: 0
judge_clips: 5
space:
  features: {optional: [tonal]}
  encoder: {kind: [pca], dim: 8, griffin_lim_iters: 16}
  model: {family: [lstm, gan]}
  lstm: {layers: 1, hidden: [16, 32], context: 8}
  gan: {family: [conv], latent: 8, loss: ns, channels: 16, patch: 16}
  train: {lr: {low: 1.0e-3, high: 1.0e-2, log: true}, batch_size: 8, steps_per_epoch: 3}
"""


def _run(args, **kw):
    proc = subprocess.run([sys.executable, "-m", "genaudio", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=1500, **kw)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, small_store) -> Path:
    """A finished real search: 5 trials of LSTM/GAN on PCA codes of the session's 6-file store."""
    root = tmp_path_factory.mktemp("review_run")
    (root / "tiny.yaml").write_text(TINY)
    _run(["search", str(small_store), "--out", str(root / "run"), "--config", str(root / "tiny.yaml"),
          "--num-cpus", "2", "-q"])
    return root / "run"


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
