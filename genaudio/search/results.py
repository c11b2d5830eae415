"""The results table of a search: one row per trial, ranked by the judge's quality.

Built from ``RUN/tune/search`` (``ExperimentAnalysis``), so it is the same after ``--resume`` and
can be rebuilt at any time with :func:`collect_results`; the review builds rows of trials still
running with the same :func:`metric_columns` and ranks with the same :func:`rank_rows`.
Columns are documented in docs/search.md.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from genaudio.search.session import METRIC, STATUS_NAN
from genaudio.search.layout import RESULTS_CSV, RESULTS_PARQUET, tune_dir
from genaudio.store import atomic_write_bytes, atomic_write_table


# Tune's bookkeeping keys that are not metrics of the model
_TUNE_KEYS = {"timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
              "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
              "iterations_since_restore", "node_id", "config", "experiment_tag", "should_checkpoint",
              "epoch", "status", "reason", "gpu_ids", "_metric"}


def first_error_line(text: str | None) -> str:
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


#: Statuses of trials an interrupted search left behind (``--resume`` continues them)
UNFINISHED = ("running", "pending", "paused")

#: What the judge reports for a trial (its last judged epoch), promoted to top-level columns.
QUALITY_COLUMNS = ("quality", "quality_se", "quality_epoch", "quality_seconds", "quality_nonfinite",
                   "decoder_quality", "decoder_quality_se", "judge_fraction")


def metric_columns(params: dict, last: dict, history) -> dict:
    """The columns of a trial row that come from what it reported (ONE builder for both sources:
    Tune's experiment state in :func:`collect_results`, raw trial folders in the review).

    Parameters
    ----------
    params : dict
        The trial's sampled configuration (``param.*`` columns; ``epochs``/``seed`` left out).
    last : dict
        Its last reported result.
    history : DataFrame or None
        Every reported result (``best.*`` columns: the lowest loss-like value of each metric).
    """
    row: dict[str, Any] = {k: _num(last.get(k)) for k in QUALITY_COLUMNS if _num(last.get(k)) is not None}
    # the session protocol's metric IS the quality (the real trainable reports the judge's value
    # there, carried between judged epochs); any other trainable is ranked on it the same way
    row.pop("quality", None)
    q = _num(last.get(METRIC))
    if q is not None and math.isfinite(q):
        row["quality"] = q
    else:
        row.pop("quality_se", None)
    if isinstance(last.get("decoder"), str):
        row["decoder"] = last["decoder"]   # what the judge heard: learned, griffinlim (or none)
    for k, v in sorted(params.items()):
        if k not in ("epochs", "seed"):
            row[f"param.{k}"] = v
    for k, v in sorted(last.items()):
        if k in _TUNE_KEYS or k == METRIC or k in QUALITY_COLUMNS or isinstance(v, (dict, list)):
            continue
        if _num(v) is not None:
            row[f"final.{k}"] = _num(v)
    for k in getattr(history, "columns", []):
        if k in _TUNE_KEYS or k == METRIC or k.startswith("config/"):
            continue
        vals = [_num(x) for x in history[k].tolist()]
        vals = [x for x in vals if x is not None and math.isfinite(x)]
        if vals and (k.endswith("loss") or k.endswith("_score")):
            row[f"best.{k}"] = min(vals)
    return row


def rank_rows(rows: list[dict], *, sigmas: float = 2.0) -> list[dict]:
    """Rank by ``quality`` (lower is better); trials without one are unranked, last.

    ``tie_group``: consecutive ranks whose qualities are within ``sigmas`` combined standard
    errors of their group's first trial share a group (the judge cannot tell them apart).
    """
    def key(r):
        q = r.get("quality")
        return (0, q) if q is not None and math.isfinite(q) else (1, 0.0)

    rows = sorted(rows, key=key)
    lead = None
    group = 0
    for i, r in enumerate(rows, 1):
        ranked = key(r)[0] == 0
        r["rank"] = i if ranked else None
        if not ranked:
            r["tie_group"] = None
            continue
        se = r.get("quality_se") or 0.0
        if lead is None or abs(r["quality"] - lead[0]) > sigmas * math.hypot(se, lead[1]):
            group += 1
            lead = (r["quality"], se)
        r["tie_group"] = group
    return rows


def collect_results(run_dir: str | Path, *, epochs: int, resources=None) -> list[dict]:
    """One dict per trial (see docs/search.md for the columns), ranked by :func:`rank_rows`.

    ``status`` is ``completed`` (ran all epochs), ``stopped`` (ASHA or the time budget stopped
    it early), ``nan`` (loss or score went non-finite), ``error`` (raised, after retries),
    ``running``/``pending`` (an interrupted search, before ``--resume``).
    """
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(tune_dir(run_dir)))
    frames = analysis.trial_dataframes
    rows = []
    for trial in analysis.trials:
        last = dict(trial.last_result or {})
        epochs_done = int(last.get("training_iteration", 0) or 0)
        status, reason = _status(trial, last, epochs_done, epochs)
        req = resources.request(trial.config) if resources is not None else {}
        row: dict[str, Any] = {
            "trial_id": trial.trial_id, "status": status, "reason": reason, "epochs": epochs_done,
            "wall_time_s": _num(last.get("time_total_s")), "cpus": req.get("CPU"), "gpus": req.get("GPU"),
            "node_ip": last.get("node_ip"), "node_id": last.get("node_id"), "gpu_ids": last.get("gpu_ids"),
            "num_failures": int(trial.run_metadata.num_failures), "trial_path": trial.path,
            "checkpoint": trial.checkpoint.path if trial.checkpoint else None,
        }
        row.update(metric_columns(trial.config, last, frames.get(trial.trial_id)))
        rows.append(row)
    return rank_rows(rows)


def _status(trial, last: dict, epochs_done: int, epochs: int) -> tuple[str, str]:
    if trial.status == "ERROR":
        return "error", first_error_line(trial.get_error()) or "trial raised an error"
    if last.get("status") == STATUS_NAN:
        return "nan", str(last.get("reason", "non-finite metric"))
    if trial.status == "TERMINATED":
        if epochs_done >= epochs:
            return "completed", ""
        return "stopped", "stopped early by the scheduler or the time budget"
    if trial.status == "PENDING" and epochs_done == 0:
        return "pending", "not started"
    return trial.status.lower(), ""


def rows_to_table(rows: list[dict]) -> pa.Table:
    """Rows (with possibly different keys across families) as one Arrow table."""
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    front = ["rank", "tie_group", "trial_id", "status", "reason", *QUALITY_COLUMNS, "decoder", "epochs",
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
