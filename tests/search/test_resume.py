"""Kill-and-resume: the `genaudio search` driver is SIGKILLed mid-search, then `--resume` finishes
the search without redoing finished trials; interrupted trials continue from their checkpoints.

What Tune guarantees, and so what is tested: a resume starts from the experiment state Tune last
saved (at most every 10 s). A trial that state records as finished is not run again; a trial
killed after reporting an epoch but before the next save redoes the epochs since the checkpoint
the state knows (result.json then repeats them), never the whole trial.

Ctrl-C is the other way a search stops early: Tune catches it, saves the experiment and returns
as if it had ended, so the driver must tell an interrupted search from a finished one. Resuming
on a store that changed since the search started is refused."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from genaudio.review.table import read_history, tune_statuses

ROOT = Path(__file__).resolve().parents[2]


def _results(exp: Path) -> dict[str, list[int]]:
    """{trial id: [epoch of every result row]} from Tune's result.json files, or progress.csv where
    result.json is empty: the driver writes both in a staging folder and copies them to the run
    folder in the background, so a kill during that copy can leave one of them empty."""
    out = {}
    for folder in exp.glob("*/"):
        rows = []
        if (folder / "result.json").is_file():
            rows = [json.loads(x) for x in (folder / "result.json").read_text().splitlines() if x.strip()]
        if not rows and (folder / "progress.csv").is_file():
            with open(folder / "progress.csv", newline="") as f:
                rows = list(csv.DictReader(f))
        if rows:
            out[rows[0]["trial_id"]] = [int(r["epoch"]) for r in rows]
    return out


def _checkpoints(exp: Path) -> dict[str, set[str]]:
    """{trial folder: names of its checkpoint folders}."""
    return {d.name: {c.name for c in d.glob("checkpoint_*")} for d in exp.glob("*/") if d.is_dir()}


def _folder(exp: Path, trial_id: str) -> str:
    return next(f.parent.name for f in exp.glob(f"*{trial_id}*/result.json"))


def _saved_epochs(run: Path) -> dict[str, int]:
    """{trial id: the last epoch} in the experiment state Tune last saved (what a resume starts
    from: every epoch's report carries its checkpoint)."""
    state = json.loads(sorted((run / "tune" / "search").glob("experiment_state-*.json"))[-1].read_text())
    out = {}
    for trial, meta in state["trial_data"]:
        trial, meta = json.loads(trial), json.loads(meta)
        out[trial["trial_id"]] = int((meta.get("last_result") or {}).get("epoch") or 0)
    return out


def _saved_epochs_so_far(run: Path) -> dict[str, int]:
    """:func:`_saved_epochs` while the search runs: ``{}`` before Tune's first save (or while a
    save is being replaced)."""
    try:
        return _saved_epochs(run)
    except (IndexError, OSError, ValueError):
        return {}


def _saved_finished(run: Path) -> set[str]:
    """Trials the experiment state Tune last saved records as finished."""
    return {t for t, s in tune_statuses(run).items() if s == "TERMINATED"}


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the driver, then whatever is left of its own process group (its local Ray)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    time.sleep(2)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.slow
def test_killed_search_resumes_without_redoing_finished_trials(small_store, tiny_config, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "genaudio", "search", str(small_store), "--out", str(run), "--num-cpus", "2", "-q"]
    # Tune saves its experiment state every second (default: at most every 10 s), so that the
    # state shows a finished trial while the search is still running, even on an idle machine
    env = {**os.environ, "TQDM_DISABLE": "1", "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    proc = subprocess.Popen(cmd + ["--config", str(tiny_config(trials=4, epochs=3))], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    exp = run / "tune" / "search"
    try:
        # kill once Tune's saved state has a finished trial and another one is under way; with 4
        # trials on 2 slots at least two are unfinished then, even on an idle machine
        deadline = time.time() + 900
        while time.time() < deadline:
            res = _results(exp) if exp.exists() else {}
            finished = _saved_finished(run)
            if finished and set(res) - finished:
                break
            assert proc.poll() is None, "the search ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("no trial finished within 15 minutes")
    finally:
        _kill_tree(proc)
    before, checkpoints = _results(exp), _checkpoints(exp)
    finished, saved = _saved_finished(run), _saved_epochs(run)
    assert finished and not (run / "results.parquet").exists()

    done = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
                          start_new_session=True)
    assert done.returncode == 0, done.stderr[-3000:]
    after = _results(exp)
    for name in finished:                       # finished trials were not run again
        assert after.get(name) == before.get(name), (name, before.get(name), after.get(name))
        folder = next(f for f in checkpoints if name in f)
        assert _checkpoints(exp)[folder] == checkpoints[folder]
    for name, epochs in after.items():          # the others went on from the saved checkpoint
        kept = before.get(name, [])
        new = epochs[len(kept):]
        assert epochs[:len(kept)] == kept, (name, kept, epochs)
        if new:
            # the epoch after the saved one (or that one again: Tune registers an epoch's
            # checkpoint just after its result, and the state may fall in between)
            start = saved.get(name, 0)
            assert new == list(range(new[0], new[-1] + 1)) and new[0] in (start, start + 1), \
                (name, start, kept, epochs)
        # a redone epoch's report replaces the earlier one in the history the review reads
        assert read_history(exp / _folder(exp, name))["epoch"].tolist() == list(range(1, epochs[-1] + 1))
    table = pq.read_table(run / "results.parquet").to_pandas()
    assert len(table) == 4
    assert set(table["status"]) <= {"completed", "stopped"}
    assert (run / "best.yaml").is_file()
    assert "4 trials" in done.stdout


@pytest.mark.slow
def test_ctrl_c_leaves_the_search_unfinished_and_says_how_to_resume(small_store, tiny_config, tmp_path):
    """Ctrl-C: Tune saves the experiment and returns as if it had ended; the search must not be
    taken for finished: exit 130, a line saying how to continue, the table as it stood, no best.yaml."""
    from genaudio.review import load_run
    from genaudio.search.results import UNFINISHED

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "genaudio", "search", str(small_store), "--out", str(run), "--num-cpus", "2", "-q"]
    # Tune's experiment state saved every second: the trial folders reach RUN only in the
    # background (on a fast machine, at the end), the state as the search goes
    env = {**os.environ, "TQDM_DISABLE": "1", "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    # 3 trials of 5 epochs on 2 slots: when the saved state shows a first epoch, every trial has
    # epochs to go (the state lags by about one) and the third has not started
    proc = subprocess.Popen(cmd + ["--config", str(tiny_config(trials=3, epochs=5))], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    exp = run / "tune" / "search"
    try:
        deadline = time.time() + 600
        while time.time() < deadline and not any(e >= 1 for e in _saved_epochs_so_far(run).values()):
            assert proc.poll() is None, "the search ended before it could be interrupted"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)   # as Ctrl-C in a terminal: the driver's whole process group
        out, err = proc.communicate(timeout=300)
    finally:
        _kill_tree(proc)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted: the search stopped with" in err and "--resume" in err
    assert not (run / "best.yaml").exists()
    table = pq.read_table(run / "results.parquet").to_pandas()   # the table as it stood
    assert len(table) < 3 or set(table["status"]) & set(UNFINISHED)
    assert not load_run(run).finished
    # what `--resume` then does is the test above's (Tune's saved state, as after a kill)


def test_resume_on_a_changed_store_is_refused(small_store, tmp_path):
    """The held-out files, the judge and the cached codes follow from the store: a store extracted
    again or with other files since the search started cannot continue it."""
    from genaudio.config import to_dict
    from genaudio.errors import SearchError
    from genaudio.search.layout import write_state
    from genaudio.search.run import run_search
    from genaudio.search.tuner import SearchConfig

    run = tmp_path / "run"
    run.mkdir()
    write_state(run, {"store": str(Path(small_store).resolve()), "config": to_dict(SearchConfig()), "subset": None,
                      "store_key": "0" * 12})
    with pytest.raises(SearchError, match="changed since this search started"):
        run_search(small_store, run, resume=True)
