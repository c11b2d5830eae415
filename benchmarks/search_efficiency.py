"""Search efficiency: OptunaSearch (TPE) + ASHA vs random search without early stopping.

Both searches run in this one process on the same local Ray, with the same trial budget, the same
epochs per trial, the same seed and the same objective: genaudio's synthetic task (a real torch MLP
fitted to a fixed nonlinear regression, validation MSE per epoch; see tests/search/synthetic.py),
through the same Tuner wiring as `genaudio search` (run_tune: OptunaSearch with a SQLite study,
ASHA, checkpoints every epoch).

Figures (last line, JSON):

- ``epochs_random``: epochs the random search trained in total (trials x epochs);
- ``epochs_to_match_random_best``: epochs the Optuna+ASHA search had trained in total (over all
  its trials, in time order) when it first reached a validation score at least as good as the
  random search's best; ``null`` if it never did;
- ``speedup``: ``epochs_random / epochs_to_match_random_best`` (target >= 2);
- ``overhead_per_trial_s``, ``overhead_fraction``: wall time of the Optuna+ASHA run not spent
  inside trials (``wall - sum(trial time) / concurrent slots``), per trial and as a fraction of
  the wall time (target < 0.2).

Usage: ``python benchmarks/search_efficiency.py [--quick] [--trials N] [--epochs E] [--seed S]``
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
# the synthetic task is test support: tests/search/synthetic.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "search"))


def run_one(kind: str, root: Path, *, trials: int, epochs: int, seed: int, slots: int, data: dict,
            grace_period: int = 1):
    from ray.tune import ExperimentAnalysis

    from synthetic import SyntheticSpace, synthetic_trainable
    from genaudio.search.layout import tune_dir
    from genaudio.search.tuner import SearchConfig, TrialResources, run_tune

    cfg = SearchConfig(trials=trials, epochs=epochs, cpus_per_trial=1, gpus_per_trial=0, seed=seed,
                       searcher="optuna" if kind == "asha" else "random",
                       scheduler="asha" if kind == "asha" else "fifo", grace_period=grace_period, reduction_factor=3,
                       max_concurrent=slots, max_failures=0)
    run_dir = root / kind
    t0 = time.perf_counter()
    run_tune(synthetic_trainable, space_fn=SyntheticSpace(fixed={"seed": seed}), run_dir=run_dir, cfg=cfg,
             data={"data": data}, resources=TrialResources(1, 0), verbose=0)
    wall = time.perf_counter() - t0
    frames = ExperimentAnalysis(str(tune_dir(run_dir))).trial_dataframes
    events, busy = [], 0.0
    for df in frames.values():
        if len(df) == 0:
            continue
        busy += float(df["time_total_s"].iloc[-1])
        for ts, sc in zip(df["timestamp"].tolist(), df["score"].tolist()):
            events.append((float(ts), float(sc)))
    events.sort()
    return {"wall_s": wall, "busy_s": busy, "events": events, "trials": len(frames)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller budget (12 trials x 6 epochs)")
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--samples", type=int, default=65536,
                    help="rows of the synthetic regression: sets the epoch length (real trials' epochs "
                         "take minutes; Ray's fixed per-trial cost is what the overhead figure measures)")
    ap.add_argument("--grace-period", type=int, default=2,
                    help="epochs every trial runs before ASHA may stop it (genaudio search's grace_period)")
    args = ap.parse_args(argv)
    trials = args.trials or (12 if args.quick else 24)
    epochs = args.epochs or (6 if args.quick else 10)

    import ray

    from genaudio.infra import connect_ray
    from synthetic import make_data

    connect_ray("local", num_cpus=args.num_cpus)
    slots = args.num_cpus
    data = make_data(args.samples, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="search_eff_") as tmp:
        rnd = run_one("random", Path(tmp), trials=trials, epochs=epochs, seed=args.seed, slots=slots, data=data)
        asha = run_one("asha", Path(tmp), trials=trials, epochs=epochs, seed=args.seed, slots=slots, data=data,
                       grace_period=args.grace_period)
    ray.shutdown()

    finite = lambda evs: [s for _, s in evs if math.isfinite(s)]  # noqa: E731
    random_best = min(finite(rnd["events"]))
    epochs_random = len(rnd["events"])
    to_match = None
    for i, (_, s) in enumerate(asha["events"], 1):
        if math.isfinite(s) and s <= random_best:
            to_match = i
            break
    overhead = max(0.0, asha["wall_s"] - asha["busy_s"] / slots)
    out = {
        "epochs_to_match_random_best": to_match,
        "epochs_random": epochs_random,
        "speedup": (epochs_random / to_match) if to_match else None,
        "overhead_per_trial_s": overhead / max(1, asha["trials"]),
        "overhead_fraction": overhead / asha["wall_s"],
        "trials": trials, "epochs_per_trial": epochs, "samples": args.samples, "seed": args.seed,
        "grace_period": args.grace_period, "concurrent": slots,
        "random_best_score": random_best, "asha_best_score": min(finite(asha["events"])),
        "epochs_asha_total": len(asha["events"]),
        "wall_s_random": rnd["wall_s"], "wall_s_asha": asha["wall_s"],
        "overhead_fraction_random": max(0.0, rnd["wall_s"] - rnd["busy_s"] / slots) / rnd["wall_s"],
    }
    print(f"random search: {epochs_random} epochs, best {random_best:.4g}, wall {rnd['wall_s']:.1f} s", file=sys.stderr)
    print(f"optuna + asha: {len(asha['events'])} epochs, best {out['asha_best_score']:.4g}, "
          f"matched random's best after {to_match} epochs, wall {asha['wall_s']:.1f} s", file=sys.stderr)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
