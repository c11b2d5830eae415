"""GPU packing with fake GPUs: a real local Ray with 2 GPU resources, the synthetic torch task.

Trials rendezvous (each waits until ``n`` trials have started), so "n run at once" is checked
without timing thresholds; one trial more than fits must start only after another ended.
"""
from __future__ import annotations

from collections import Counter

import pytest

from genaudio.search.results import collect_results
from genaudio.search.layout import tune_dir
from genaudio.search.tuner import SearchConfig, TrialResources, run_tune

from .conftest import FAKE_GPUS
from .synthetic import SyntheticSpace, make_data, synthetic_trainable


def _max_overlap(intervals):
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


@pytest.mark.slow
@pytest.mark.parametrize("share,fits", [(1.0, FAKE_GPUS), (0.5, 2 * FAKE_GPUS)])
def test_trials_pack_onto_fake_gpus(ray_gpus, tmp_path, share, fits):
    from ray.tune import ExperimentAnalysis

    cfg = SearchConfig(trials=fits + 1, epochs=1, cpus_per_trial=1, gpus_per_trial=share, scheduler="fifo",
                       max_failures=0, seed=0)
    space = SyntheticSpace(fixed={"synth.rendezvous": str(tmp_path / "rv"), "synth.peers": fits,
                                  "synth.rendezvous_timeout_s": 400})
    run_tune(synthetic_trainable, space_fn=space, run_dir=tmp_path / "run", cfg=cfg,
             data={"data": make_data(256)}, resources=TrialResources(1, share), verbose=0)
    rows = collect_results(tmp_path / "run", epochs=1, resources=TrialResources(1, share))
    assert [r["status"] for r in rows] == ["completed"] * (fits + 1)
    assert all(r["gpus"] == share for r in rows)

    frames = ExperimentAnalysis(str(tune_dir(tmp_path / "run"))).trial_dataframes
    intervals = [(float(df["started_at"].iloc[0]), float(df["timestamp"].iloc[-1])) for df in frames.values()]
    # `fits` trials met at the rendezvous: they ran at the same time ...
    assert all(int(df["peers_seen"].iloc[0]) >= fits for df in frames.values())
    assert _max_overlap(intervals) == fits
    # ... and each saw its own GPU: one id per trial, each physical GPU shared by 1/share trials
    first = sorted(intervals)[:fits]
    ids = [r["gpu_ids"] for r in rows]
    assert all(i and "," not in i for i in ids)
    concurrent_ids = [str(df["gpu_ids"].iloc[0]) for df in frames.values()
                      if (float(df["started_at"].iloc[0]), float(df["timestamp"].iloc[-1])) in first]
    assert Counter(concurrent_ids) == {str(g): round(1 / share) for g in range(FAKE_GPUS)}
