"""The search RUN folder: the one module that knows where everything in it lives.

::

    RUN/
      search.json            STATE_FILE: store, options, space, subset (read by --resume)
      study.db               STUDY_FILE: the Optuna study (SQLite, name STUDY_NAME), written by the driver
      tune/search/           tune_dir(): Tune's experiment, one folder per trial:
        <trial>/checkpoint_NNNNNN/   Tune's copy of an epoch's model checkpoints (trial_checkpoint())
        <trial>/model/               TRIAL_MODEL_DIR: the trial's model run (genaudio.models.run)
      cache/encoders/<key>/  cache_dir(): a fitted encoder + its codes (an encoded store), shared by
                             trials; <key>/judge.json (CEILING_FILE): that encoder's decoder ceiling
      judge/reference.json   REFERENCE_FILE: the judge's real reference (real-vs-real score, files)
      results.parquet/.csv   RESULTS_PARQUET / RESULTS_CSV: one row per trial (search.results)
      best.yaml              BEST_FILE: the best trial's TrainConfig

Writers and readers (search, review, pipeline, jobs) take paths from here, never from literals.
"""
from __future__ import annotations

import json
from pathlib import Path

from genaudio.errors import SearchError

EXPERIMENT = "search"
STATE_FILE = "search.json"
STUDY_FILE = "study.db"
STUDY_NAME = "genaudio-search"
CACHE_DIR = "cache/encoders"
CEILING_FILE = "judge.json"
REFERENCE_FILE = "judge/reference.json"
RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"
BEST_FILE = "best.yaml"
TRIAL_MODEL_DIR = "model"


def tune_dir(run_dir: str | Path) -> Path:
    """``RUN/tune/search``: Tune's experiment folder."""
    return Path(run_dir).resolve() / "tune" / EXPERIMENT


def cache_dir(run_dir: str | Path) -> Path:
    """``RUN/cache/encoders``: one encoded store per (features store, encoder config)."""
    return Path(run_dir) / CACHE_DIR


def tune_checkpoints(trial_dir: str | Path) -> list[Path]:
    """Tune's ``checkpoint_NNNNNN`` folders of one trial, oldest first."""
    return sorted(Path(trial_dir).glob("checkpoint_*"), key=lambda p: p.name)


def trial_checkpoint(trial_dir: str | Path, recorded: str | Path | None = None) -> Path | None:
    """The model checkpoint file of one trial folder: in the checkpoint folder Tune recorded
    (``recorded``, looked up beside the trial when the RUN folder moved), else the newest
    ``checkpoint_*`` folder, else the trial's own model run; the last epoch's file, else the best's.
    ``None`` when the trial saved none."""
    from genaudio.models.run import BEST, CHECKPOINTS, LAST

    trial_dir = Path(trial_dir)
    folders = []
    if recorded:
        folders += [Path(recorded), trial_dir / Path(recorded).name]
    folders += tune_checkpoints(trial_dir)[::-1]
    folders.append(trial_dir / TRIAL_MODEL_DIR / CHECKPOINTS)
    for folder in folders:
        for name in (LAST, BEST):
            if (folder / name).is_file():
                return folder / name
    return None


def holds_search(run_dir: str | Path) -> bool:
    """Whether a search was started in ``run_dir`` (its experiment or its study exists)."""
    return tune_dir(run_dir).exists() or (Path(run_dir) / STUDY_FILE).exists()


def write_state(run_dir: str | Path, state: dict) -> None:
    """``RUN/search.json`` (atomic)."""
    from genaudio.store import atomic_write_json

    atomic_write_json(Path(run_dir) / STATE_FILE, state)


def read_state(run_dir: str | Path) -> dict:
    """``RUN/search.json``; :class:`SearchError` when there is none (nothing to resume)."""
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        raise SearchError(f"{run_dir} holds no search to resume (no {STATE_FILE})")
    return json.loads(path.read_text())
