"""Kill-and-resume: the `genaudio search` driver is SIGKILLed mid-search, then `--resume` finishes
the search without redoing finished trials; interrupted trials continue from their checkpoints."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _results(exp: Path) -> dict[str, list[int]]:
    """{trial folder: [epoch of every result row]} from Tune's result.json files."""
    out = {}
    for f in exp.glob("*/result.json"):
        out[f.parent.name] = [json.loads(x)["epoch"] for x in f.read_text().splitlines() if x.strip()]
    return out


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the driver, then whatever is left of its own process group (its local Ray)."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    time.sleep(2)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.slow
def test_killed_search_resumes_without_redoing_finished_trials(search_store, tiny_config, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "genaudio", "search", str(search_store), "--out", str(run), "--num-cpus", "2", "-q"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(cmd + ["--config", str(tiny_config(trials=8, epochs=3))], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    exp = run / "tune" / "search"
    try:
        # kill once a trial has finished all 3 epochs and another one is under way; with 8 trials
        # on 2 slots most of the search is still ahead then, even on an idle machine
        deadline = time.time() + 900
        while time.time() < deadline:
            res = _results(exp) if exp.exists() else {}
            if any(e and e[-1] == 3 for e in res.values()) and len(res) >= 2:
                break
            assert proc.poll() is None, "the search ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("no trial finished within 15 minutes")
    finally:
        _kill_tree(proc)
    before = _results(exp)
    finished = {k for k, e in before.items() if e and e[-1] == 3}
    assert finished and not (run / "results.parquet").exists()

    done = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
                          start_new_session=True)
    assert done.returncode == 0, done.stderr[-3000:]
    after = _results(exp)
    for name in finished:                       # finished trials were not run again
        assert after[name] == before[name]
    for name, epochs in after.items():          # nothing restarted from scratch: each epoch once, in order
        assert epochs == sorted(set(epochs)), (name, epochs)
    table = pq.read_table(run / "results.parquet").to_pandas()
    assert len(table) == 8
    assert set(table["status"]) <= {"completed", "stopped"}
    assert (run / "best.yaml").is_file()
    assert "8 trials" in done.stdout
