"""Reading a search RUN folder into one trials table, and the terminal / JSON / CSV views of it.

A RUN is read as it is: ``results.parquet`` (written by ``genaudio search`` when it ends) when
present, plus every trial folder under ``RUN/tune/search/`` that the table does not list yet (a
search still running, interrupted, or resumed after the table was written). A trial folder holds
``params.json`` (the sampled configuration), ``result.json`` (one JSON line per reported epoch),
``progress.csv`` and ``error.txt`` when it crashed; see docs/search.md.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genaudio.errors import StoreError
from genaudio.search.layout import REFERENCE_FILE, RESULTS_PARQUET, STATE_FILE, tune_checkpoints, tune_dir


#: statuses in the order the status line lists them
STATUSES = ("completed", "stopped", "running", "pending", "nan", "error")

#: parameters shown in their own columns (everything else goes to "key parameters")
_OWN_COLUMNS = {"param.model.family", "param.encoder.kind", "param.encoder.dim", "param.features.core"}
_SHORT = {"batch_size": "bs", "steps_per_epoch": "steps", "channels": "ch", "context": "ctx"}


@dataclasses.dataclass
class Run:
    """A search RUN as read now.

    Attributes
    ----------
    path : Path
    trials : DataFrame
        One row per trial, ranked (``rank`` 1 = best, null for trials without any score); the
        columns of ``results.parquet`` (docs/search.md: ``quality`` and ``quality_se`` are the
        judge's score at the trial's last judged epoch, ``tie_group`` the trials it cannot tell
        apart) plus ``groups`` (optional feature groups on, as ``"a+b"``) and ``source``
        (``results`` | ``tune``: read from Tune's trial folder).
    state : dict
        ``search.json`` (store, options, space), or ``{}``.
    finished : bool
        ``results.parquet`` exists and lists every trial folder.
    max_epochs : int or None
        The search's ``epochs`` option.
    """

    path: Path
    trials: pd.DataFrame
    state: dict
    finished: bool
    max_epochs: int | None

    def counts(self) -> dict[str, int]:
        """Trials per status (every status of the run, also zero-count known ones omitted)."""
        if self.trials.empty:
            return {}
        c = self.trials["status"].fillna("unknown").value_counts().to_dict()
        order = [s for s in STATUSES if s in c] + sorted(s for s in c if s not in STATUSES)
        return {s: int(c[s]) for s in order}

    def status_line(self) -> str:
        n = len(self.trials)
        if n == 0:
            return ("0 trials: the search finished without any trial" if self.finished else
                    "no trials yet: the search has not started a trial (or was stopped before its first)")
        parts = ", ".join(f"{v} {k}" for k, v in self.counts().items())
        state = "finished" if self.finished else "in progress or interrupted (read from Tune's trial folders)"
        return f"{n} trial{'s' if n != 1 else ''}: {parts or 'none'} - search {state}"

    def top(self, k: int | None) -> pd.DataFrame:
        ranked = self.trials[self.trials["rank"].notna()].sort_values("rank")
        return ranked if k is None else ranked.head(k)

    def tune_dir(self) -> Path:
        return tune_dir(self.path)


# ---------------------------------------------------------------------------------------------
# reading


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if not math.isnan(f) else None


def _trial_id_of(folder: Path, params: dict, last: dict) -> str:
    if last.get("trial_id"):
        return str(last["trial_id"])
    # Tune names trial folders <trainable>_<trial_id>_<index>_<params>_<date>
    m = re.search(r"_([0-9a-f]{5,})_\d+", folder.name)
    return m.group(1) if m else folder.name


def read_history(trial_path: str | Path) -> pd.DataFrame:
    """Per-epoch reports of one trial (``result.json`` lines; ``progress.csv`` as a fallback).

    Returns an empty frame when the trial reported nothing yet. A half-written last line (the
    trial is writing it right now) is skipped. An epoch reported twice (a resumed search redoes
    the epochs reported after Tune last saved its state) keeps its last report.
    """
    p = Path(trial_path)
    rows = []
    rj = p / "result.json"
    if rj.is_file():
        for line in rj.read_text(errors="replace").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                d = json.loads(line)
            except ValueError:
                continue
            rows.append({k: v for k, v in d.items() if not isinstance(v, (dict, list))})
    if not rows and (p / "progress.csv").is_file():
        try:
            return pd.read_csv(p / "progress.csv")
        except (ValueError, pd.errors.EmptyDataError):
            return pd.DataFrame()
    hist = pd.DataFrame(rows)
    if "epoch" in hist.columns:
        hist = hist.drop_duplicates(subset="epoch", keep="last").sort_values("epoch", kind="stable")
    return hist.reset_index(drop=True)


def tune_statuses(run_dir: Path) -> dict[str, str]:
    """``{trial_id: Tune status}`` (``RUNNING``, ``TERMINATED``, ``ERROR``, ``PENDING``, ...) from the
    newest ``experiment_state-*.json`` the driver wrote; ``{}`` when there is none or it cannot be
    read (Tune's internal format: best effort, the trial folders are the source of truth)."""
    d = tune_dir(run_dir)
    files = sorted(d.glob("experiment_state-*.json")) if d.is_dir() else []
    if not files:
        return {}
    try:
        data = json.loads(files[-1].read_text())
        out = {}
        for item in data.get("trial_data", []):
            t = item[0] if isinstance(item, (list, tuple)) else item
            t = json.loads(t) if isinstance(t, str) else t
            if isinstance(t, dict) and t.get("trial_id") and isinstance(t.get("status"), str):
                out[str(t["trial_id"])] = t["status"]
        return out
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        return {}


def _trial_row_from_folder(folder: Path, max_epochs: int | None, finished_table: bool,
                           tune_status: dict[str, str] | None = None) -> dict:
    """A results-table row (docs/search.md columns) from one Tune trial folder."""
    from genaudio.search.results import metric_columns
    from genaudio.search.session import STATUS_NAN

    try:
        params = json.loads((folder / "params.json").read_text())
    except (OSError, ValueError):
        params = {}
    hist = read_history(folder)
    last = hist.iloc[-1].to_dict() if len(hist) else {}
    tid = _trial_id_of(folder, params, last)
    epochs = int(_num(last.get("training_iteration")) or 0)
    err_file = next((f for f in ("error.txt",) if (folder / f).is_file()), None)
    # Tune appends to error.txt at every failure and keeps it after a retry that recovers: the
    # trial is an error only where Tune's state says so (or there is no state to say otherwise)
    if err_file and (tune_status or {}).get(tid) in (None, "ERROR"):
        from genaudio.search.results import first_error_line

        status, reason = "error", first_error_line((folder / err_file).read_text(errors="replace")) or "trial raised an error"
    elif last.get("status") == STATUS_NAN:
        status, reason = "nan", str(last.get("reason") or "non-finite metric")
    elif epochs == 0:
        status, reason = "pending", "no epoch reported yet"
    elif max_epochs is not None and epochs >= max_epochs:
        status, reason = "completed", ""
    elif finished_table or (tune_status or {}).get(tid) == "TERMINATED":
        status, reason = "stopped", "stopped early by the scheduler or the time budget"
    elif (tune_status or {}).get(tid) == "PAUSED":
        status, reason = "pending", "paused by the scheduler"
    else:
        # Tune says RUNNING (or nothing): still training, or the driver was interrupted
        status, reason = "running", "running (or interrupted before its last epoch)"
    ckpts = tune_checkpoints(folder)
    row: dict[str, Any] = {
        "trial_id": tid, "status": status, "reason": reason, "epochs": epochs,
        "wall_time_s": _num(last.get("time_total_s")), "node_ip": last.get("node_ip"), "trial_path": str(folder),
        "checkpoint": str(ckpts[-1]) if ckpts else None,
    }
    row.update(metric_columns(params, last, hist))
    return row


def _trial_folders(run_dir: Path) -> list[Path]:
    d = tune_dir(run_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and ((p / "params.json").is_file() or (p / "result.json").is_file()))


def load_run(run_dir: str | Path) -> Run:
    """Read a search RUN folder (finished, running, interrupted or empty).

    Raises
    ------
    StoreError
        ``run_dir`` does not exist or holds no search (no ``search.json``, ``results.parquet``
        or ``tune/search/``).
    """
    from genaudio.search.results import UNFINISHED, rank_rows

    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise StoreError(f"{run_dir}: no such search run folder (the --out of `genaudio search`)")
    state = {}
    if (run_dir / STATE_FILE).is_file():
        try:
            state = json.loads((run_dir / STATE_FILE).read_text())
        except ValueError:
            state = {}
    has_results = (run_dir / RESULTS_PARQUET).is_file()
    if not (state or has_results or (tune_dir(run_dir)).is_dir()):
        raise StoreError(f"{run_dir} holds no search (no {STATE_FILE}, {RESULTS_PARQUET} or tune/search/); "
                         "point `genaudio review` at the --out folder of `genaudio search`")
    max_epochs = (state.get("config") or {}).get("epochs")
    rows: list[dict] = []
    if has_results:
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(run_dir / RESULTS_PARQUET).to_pandas().to_dict("records")
        except Exception as e:  # a truncated or foreign file: say which, do not crash
            raise StoreError(f"{run_dir / RESULTS_PARQUET} cannot be read ({type(e).__name__}: {e}); "
                             "delete it to review the trial folders as they are") from None
        rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
        if max_epochs is None and rows:
            max_epochs = max(int(r.get("epochs") or 0) for r in rows) or None
    in_table = {str(r["trial_id"]): r["status"] for r in rows}
    missing = []   # trials as their folders say now: new since the table, or unfinished in it
    statuses = tune_statuses(run_dir)
    for folder in _trial_folders(run_dir):
        row = _trial_row_from_folder(folder, max_epochs, finished_table=False, tune_status=statuses)
        status = in_table.get(row["trial_id"])
        if status is None or status in UNFINISHED:
            row["source"] = "tune"
            missing.append(row)
    replaced = {r["trial_id"] for r in missing}
    rows = [r for r in rows if str(r["trial_id"]) not in replaced]
    for r in rows:
        r["source"] = "results"
    # an interrupted search wrote its table too: finished only when every trial in it has ended
    finished = has_results and not missing and not any(r["status"] in UNFINISHED for r in rows)
    rows = rank_rows(rows + missing) if (missing or not has_results) else rows
    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(columns=["rank", "tie_group", "trial_id", "status", "reason", "quality", "quality_se",
                                   "epochs", "wall_time_s", "trial_path", "checkpoint", "source"])
    df = _derive(df)
    return Run(run_dir, df, state, finished, int(max_epochs) if max_epochs else None)


def _derive(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for col in ("quality", "quality_se", "decoder_quality", "decoder_quality_se", "tie_group"):
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else np.nan
    gcols = [c for c in df.columns if c.startswith("param.features.") and c != "param.features.core"]
    df["groups"] = [("+".join(sorted(c.split(".", 2)[2] for c in gcols if _true(r[c]))) or "(core only)")
                    for _, r in df[gcols].iterrows()] if gcols else "(core only)"
    df["rank"] = pd.to_numeric(df["rank"], errors="coerce").astype("Int64")
    return df.sort_values(["rank", "trial_id"], na_position="last", kind="stable").reset_index(drop=True)


def _true(v) -> bool:
    return v is True or (isinstance(v, (np.bool_,)) and bool(v)) or v in ("True", "true", 1)


def group_names(df: pd.DataFrame) -> list[str]:
    """Optional feature groups the space offered (``param.features.<group>`` columns)."""
    return sorted(c.split(".", 2)[2] for c in df.columns
                  if c.startswith("param.features.") and c != "param.features.core")


# ---------------------------------------------------------------------------------------------
# views


def varying_params(df: pd.DataFrame) -> set[str]:
    """``param.*`` columns whose value differs between trials of ``df`` (the searched ones)."""
    out = set()
    for c in df.columns:
        if str(c).startswith("param.") and df[c].dropna().astype(str).nunique() > 1:
            out.add(c)
    return out


def key_params(row: dict | pd.Series, varying: set[str] | None = None) -> str:
    """The trial's model architecture and searched training parameters in one short string.

    Architecture parameters (``lstm.*`` / ``gan.*`` of the trial's family) are always shown;
    other sections only when they are in ``varying`` (when given): fixed options are noise.
    """
    fam = row.get("param.model.family")
    out = []
    for k in sorted(row.keys()):
        if not str(k).startswith("param.") or k in _OWN_COLUMNS or str(k).startswith("param.features."):
            continue
        sec = str(k).split(".")[1] if str(k).count(".") >= 2 else ""
        if sec in ("encoder", "score") or (varying is not None and sec not in ("lstm", "gan") and k not in varying):
            continue
        v = row[k]
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        section, name = k[len("param."):].split(".", 1) if "." in k[len("param."):] else ("", k[len("param."):])
        if section in ("lstm", "gan") and section != fam:
            continue
        name = _SHORT.get(name, name)
        if isinstance(v, float):
            v = f"{v:.2g}" if abs(v) < 0.01 else f"{v:.3g}"
        out.append(f"{name}={v}")
    return " ".join(out)


def _fmt(v, spec: str = ".4g") -> str:
    f = _num(v)
    if f is None:
        return "-"
    if math.isinf(f):
        return "inf"
    return format(f, spec)


def _fmt_time(v) -> str:
    f = _num(v)
    if f is None:
        return "-"
    return f"{f:.0f} s" if f < 600 else f"{f / 60:.1f} min"


def view_rows(df: pd.DataFrame, varying: set[str] | None = None) -> list[dict]:
    """The rows of the terminal table (strings), one per trial of ``df``."""
    out, prev_group = [], None
    for _, r in df.iterrows():
        r = r.to_dict()
        group = _num(r.get("tie_group"))
        tie = group is not None and group == prev_group
        prev_group = group
        enc = r.get("param.encoder.kind") or "-"
        dim = _num(r.get("param.encoder.dim"))
        if dim is None:
            dim = _num(r.get("final.code_dim"))
        out.append({
            "rank": "-" if pd.isna(r.get("rank")) else str(int(r["rank"])) + ("=" if tie else ""),
            "quality": _fmt(r.get("quality")) + ("" if _num(r.get("quality_se")) is None
                                                 else f" ± {_fmt(r.get('quality_se'), '.2g')}"),
            "decoder": _fmt(r.get("decoder_quality")),
            "model": str(r.get("param.model.family") or "-"),
            "encoder": f"{enc} {int(dim)}" if dim is not None else enc,
            "features": str(r.get("groups") or "-"),
            "params": key_params(r, varying),
            "epochs": str(int(_num(r.get("epochs")) or 0)),
            "wall": _fmt_time(r.get("wall_time_s")),
            "status": str(r.get("status") or "-"),
            "trial": str(r.get("trial_id")),
        })
    return out


def render_table(run: Run, *, top: int = 10, console=None) -> None:
    """Print the top trials and the status counts of the whole run (rich)."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or redirected: rich would squash the table to 80 columns
            console = Console(width=max(160, console.width))
    console.print(f"[bold]{run.path}[/bold]  {run.status_line()}")
    rows = view_rows(run.top(top), varying_params(run.trials))
    if not rows:
        console.print("no trial has a score yet" + (" (see the failures below)" if len(run.trials) else ""))
    else:
        t = Table(show_lines=False, header_style="bold")
        for col, kw in [("rank", {"justify": "right"}), ("quality", {"justify": "right"}),
                        ("decoder", {"justify": "right"}), ("model", {}),
                        ("encoder", {}), ("features", {}), ("params", {"overflow": "fold"}),
                        ("epochs", {"justify": "right"}), ("wall", {"justify": "right"}), ("status", {}),
                        ("trial", {})]:
            t.add_column(col, **kw)
        for r in rows:
            t.add_row(*[r[c] for c in ("rank", "quality", "decoder", "model", "encoder", "features", "params", "epochs",
                                       "wall", "status", "trial")])
        console.print(t)
        n_ranked = int(run.trials["rank"].notna().sum())
        note = ("quality: the judge's KID of generated vs held-out real clips ± standard error (lower is better)"
                + reference_note(run) + f"; decoder: the encoder's own reconstructions{decoder_note(run)}, "
                "judged the same way; '=' within 2 standard errors of its tie group's first trial")
        if n_ranked > len(rows):
            note += f"; {n_ranked - len(rows)} more ranked trials (--top K)"
        console.print(note, style="dim")
    bad = run.trials[run.trials["status"].isin(["error", "nan"])]
    if len(bad):
        console.print(f"[red]{len(bad)} failed trial(s)[/red]:")
        for reason, grp in bad.groupby(bad["reason"].fillna("").astype(str)):
            ids = ", ".join(grp["trial_id"].astype(str).head(5)) + (" ..." if len(grp) > 5 else "")
            console.print(f"  {len(grp)} x {reason or 'no reason recorded'} ({ids})")


def reference_note(run: Run) -> str:
    """``"; real vs real 0.01 ± 0.05"`` from the search's judge/reference.json, or ``""``."""
    from genaudio.quality import read_reference_summary
    ref = read_reference_summary(run.path / REFERENCE_FILE)
    if not ref:
        return ""
    return f"; real vs real {ref['score']:.3g} ± {ref['score_se']:.2g} ({ref['n']} clips of {ref['seconds']:g} s)"


def decoder_note(run: Run) -> str:
    """``" (learned decoders)"``: the decoders the judge heard (the results' ``decoder`` column),
    or ``""`` for a search that did not record them."""
    kinds = sorted(run.trials["decoder"].dropna().unique()) if "decoder" in run.trials else []
    return f" ({' and '.join(map(str, kinds))} decoders)" if kinds else ""


def _jsonable(v):
    if v is None:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) else (str(f) if math.isinf(f) else f)
    if isinstance(v, np.bool_):
        return bool(v)
    if v is pd.NA:
        return None
    return v


def to_records(run: Run, *, top: int | None) -> list[dict]:
    """Top trials as plain dicts (every column; NaN -> None, inf -> "inf")."""
    df = run.top(top)
    varying = varying_params(run.trials)
    recs = []
    for _, r in df.iterrows():
        d = {k: _jsonable(v) for k, v in r.to_dict().items()}
        d["key_params"] = key_params(r, varying)
        recs.append(d)
    front = ["rank", "tie_group", "trial_id", "status", "quality", "quality_se", "decoder_quality", "param.model.family", "param.encoder.kind",
             "param.encoder.dim", "groups", "key_params", "epochs", "wall_time_s", "reason"]
    return [{**{k: d[k] for k in front if k in d}, **{k: v for k, v in d.items() if k not in front}} for d in recs]


def to_json(run: Run, *, top: int | None) -> str:
    doc = {"run": str(run.path), "finished": run.finished, "trials": len(run.trials), "counts": run.counts(),
           "top": to_records(run, top=top)}
    return json.dumps(doc, indent=2, default=str)


def to_csv(run: Run, *, top: int | None) -> str:
    recs = to_records(run, top=top)
    return pd.DataFrame(recs).to_csv(index=False) if recs else "rank,trial_id,status,score\n"
