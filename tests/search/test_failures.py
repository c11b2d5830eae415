"""A crashing trial and a NaN trial are recorded with status and reason; the search goes on.

Real local Ray (2 CPUs), the synthetic torch task; Optuna's study is opened with optuna itself.
"""
from __future__ import annotations

import optuna
import pyarrow.parquet as pq
import pytest

from genaudio.search.results import collect_results, write_results
from genaudio.search.layout import STUDY_FILE, STUDY_NAME
from genaudio.search.tuner import SearchConfig, TrialResources, run_tune

from .synthetic import SyntheticSpace, make_data, synthetic_trainable


@pytest.mark.slow
def test_failing_and_nan_trials_are_recorded_and_the_search_goes_on(ray_local, tmp_path, capsys):
    cfg = SearchConfig(trials=4, epochs=3, cpus_per_trial=1, gpus_per_trial=0, scheduler="fifo",
                       max_failures=1, seed=0)
    # trial 1 crashes at epoch 2 (twice: once more after its retry), trial 2 blows up to NaN
    space = SyntheticSpace(lr=(1e-3, 3e-2), by_number={1: {"synth.fail_epoch": 2}, 2: {"train.lr": 1e4}})
    run_tune(synthetic_trainable, space_fn=space, run_dir=tmp_path, cfg=cfg, data={"data": make_data(256)},
             resources=TrialResources(1, 0), verbose=1)
    # the terminal: one line per trial event, not Tune's per-trial configuration tables
    out = capsys.readouterr().out
    assert out.count(" started: ") >= 4 and "lr=" in out
    assert out.count(" finished 3 epochs: quality ") == 2
    assert out.count(" went non-finite at epoch 1") == 1 and out.count(" failed after ") == 1
    assert "Trial status" not in out and "configuration" not in out
    rows = collect_results(tmp_path, epochs=3, resources=TrialResources(1, 0))
    write_results(tmp_path, rows)
    by_lr = {r["param.train.lr"]: r for r in rows}
    nan = by_lr[1e4]
    assert nan["status"] == "nan" and "non-finite" in nan["reason"] and nan["epochs"] == 1
    failed = [r for r in rows if r.get("param.synth.fail_epoch") == 2]
    assert len(failed) == 1
    assert failed[0]["status"] == "error"
    assert "synthetic failure at epoch 2" in failed[0]["reason"]
    assert failed[0]["num_failures"] == 2          # the first run and its retry from the checkpoint
    assert failed[0]["epochs"] == 1                # the retry resumed after epoch 1, not from scratch
    ok = [r for r in rows if r["status"] == "completed"]
    assert len(ok) == 2 and all(r["epochs"] == 3 and r["quality"] < 1.0 for r in ok)
    assert rows[0]["rank"] == 1 and rows[0]["status"] == "completed"

    table = pq.read_table(tmp_path / "results.parquet")
    assert table.num_rows == 4 and {"status", "reason", "quality", "wall_time_s", "cpus"} <= set(table.column_names)
    assert (tmp_path / "results.csv").read_text().count("\n") == 5

    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{tmp_path / STUDY_FILE}")
    states = sorted(t.state.name for t in study.trials)
    assert len(study.trials) == 4 and states.count("COMPLETE") >= 2 and "FAIL" in states
