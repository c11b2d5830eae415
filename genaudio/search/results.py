"""The results table of a search: one row per trial, from Tune's experiment state.

Built from ``RUN/tune/search`` (``ExperimentAnalysis``), so it is the same after ``--resume`` and
can be rebuilt at any time with :func:`collect_results`. Columns are documented in docs/search.md.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from genaudio.search.session import METRIC, STATUS_NAN
from genaudio.search.tuner import tune_dir
from genaudio.store import atomic_write_bytes, atomic_write_table

RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"

# Tune's bookkeeping keys that are not metrics of the model
_TUNE_KEYS = {"timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
              "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
              "iterations_since_restore", "node_id", "config", "experiment_tag", "should_checkpoint",
              "epoch", "status", "reason", "gpu_ids", "_metric"}


def _first_error_line(text: str | None) -> str:
    """The user-facing line of a trial's error trace: the last ``Type: message`` line."""
    if not text:
        return ""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        head = ln.split(":", 1)[0]
        if ":" in ln and (head.endswith("Error") or head.endswith("Exception") or "." in head):
            return ln[:500]
    return lines[-1][:500] if lines else ""


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


def collect_results(run_dir: str | Path, *, epochs: int, resources=None) -> list[dict]:
    """One dict per trial (see docs/search.md for the columns), ranked by best score.

    ``status`` is ``completed`` (ran all epochs), ``stopped`` (ASHA or the time budget stopped
    it early), ``nan`` (loss or score went non-finite), ``error`` (raised, after retries),
    ``running``/``pending`` (an interrupted search, before ``--resume``).
    """
    from ray.tune import ExperimentAnalysis

    exp = tune_dir(run_dir)
    analysis = ExperimentAnalysis(str(exp))
    frames = analysis.trial_dataframes
    rows = []
    for trial in analysis.trials:
        last = dict(trial.last_result or {})
        hist = frames.get(trial.trial_id)
        scores: list[float] = []
        if hist is not None and METRIC in getattr(hist, "columns", []):
            scores = [float(x) for x in hist[METRIC].tolist()]
        finite = [(s, i) for i, s in enumerate(scores) if _num(s) is not None and math.isfinite(s)]
        best = min(finite) if finite else None
        epochs_done = int(last.get("training_iteration", 0) or 0)
        err = trial.get_error() if trial.status == "ERROR" else None
        if trial.status == "ERROR":
            status, reason = "error", _first_error_line(err) or "trial raised an error"
        elif last.get("status") == STATUS_NAN:
            status, reason = "nan", str(last.get("reason", "non-finite metric"))
        elif trial.status == "TERMINATED":
            if epochs_done >= epochs:
                status, reason = "completed", ""
            else:
                status, reason = "stopped", "stopped early by the scheduler or the time budget"
        elif trial.status == "PENDING" and epochs_done == 0:
            status, reason = "pending", "not started"
        else:
            status, reason = trial.status.lower(), ""
        req = resources.request(trial.config) if resources is not None else {}
        row: dict[str, Any] = {
            "trial_id": trial.trial_id,
            "status": status,
            "reason": reason,
            "epochs": epochs_done,
            "best_score": best[0] if best else None,
            "best_epoch": (best[1] + 1) if best else None,
            "final_score": _num(last.get(METRIC)) if epochs_done else None,
            "wall_time_s": _num(last.get("time_total_s")),
            "cpus": req.get("CPU"),
            "gpus": req.get("GPU"),
            "node_ip": last.get("node_ip"),
            "node_id": last.get("node_id"),
            "gpu_ids": last.get("gpu_ids"),
            "num_failures": int(trial.run_metadata.num_failures),
            "trial_path": trial.path,
            "checkpoint": trial.checkpoint.path if trial.checkpoint else None,
        }
        for k, v in sorted(trial.config.items()):
            if k in ("epochs", "seed"):
                continue
            row[f"param.{k}"] = v
        for k, v in sorted(last.items()):
            if k in _TUNE_KEYS or k == METRIC or isinstance(v, (dict, list)):
                continue
            if _num(v) is not None:
                row[f"final.{k}"] = _num(v)
        if hist is not None:
            for k in getattr(hist, "columns", []):
                if k in _TUNE_KEYS or k == METRIC or k.startswith("config/"):
                    continue
                vals = [_num(x) for x in hist[k].tolist()]
                vals = [x for x in vals if x is not None and math.isfinite(x)]
                if vals and (k.endswith("loss") or k.endswith("distance") or k.endswith("_fd")):
                    row[f"best.{k}"] = min(vals)
        rows.append(row)
    order = {"completed": 0, "stopped": 1}
    rows.sort(key=lambda r: (r["best_score"] is None, r["best_score"] if r["best_score"] is not None else 0,
                             order.get(r["status"], 2)))
    for i, r in enumerate(rows, 1):
        r["rank"] = i if r["best_score"] is not None else None
    return rows


def rows_to_table(rows: list[dict]) -> pa.Table:
    """Rows (with possibly different keys across families) as one Arrow table."""
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    front = ["rank", "trial_id", "status", "reason", "best_score", "best_epoch", "final_score", "epochs",
             "wall_time_s", "cpus", "gpus", "node_ip", "node_id", "gpu_ids", "num_failures"]
    keys = [k for k in front if k in keys] + sorted(k for k in keys if k not in front)
    cols = {}
    for k in keys:
        vals = [r.get(k) for r in rows]
        present = [v for v in vals if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            cols[k] = pa.array(vals, pa.bool_())
        elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            cols[k] = pa.array(vals, pa.int64())
        elif present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            cols[k] = pa.array([None if v is None else float(v) for v in vals], pa.float64())
        else:
            cols[k] = pa.array([None if v is None else str(v) for v in vals], pa.string())
    return pa.table(cols)


def write_results(run_dir: str | Path, rows: list[dict]) -> pa.Table:
    """``RUN/results.parquet`` and ``RUN/results.csv`` (atomic)."""
    import pyarrow.csv as pacsv

    run_dir = Path(run_dir)
    table = rows_to_table(rows)
    atomic_write_table(run_dir / RESULTS_PARQUET, table)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    atomic_write_bytes(run_dir / RESULTS_CSV, sink.getvalue().to_pybytes())
    return table
