"""A finished search's best models heard through their learned decoders and through Griffin-Lim.

    python benchmarks/search_decoders.py RUN [--top 5]

For each of the ``--top`` ranked trials of the search in RUN (``genaudio search`` output): the
model of its best checkpoint generates the judge's clips, decoded once by the trial's encoder as
the search left it (its learned decoder, when it has one) and once by the same encoder with
Griffin-Lim (``set_decoder(None)``); both are judged against the search's own reference (rebuilt
from the saved options: the same held-out clips and seed), beside that decoder's reconstructions
of real clips (the ceiling) and the clips' frame comb (a buzz at the hop, which the judge does not
hear). The learned column reproduces the search's ``quality``. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genaudio.config import from_dict  # noqa: E402
from genaudio.models.run import load_run, load_run_encoder  # noqa: E402
from genaudio.models.score import decoder_ceiling, frame_comb_of, judge_generated  # noqa: E402
from genaudio.search.layout import read_state  # noqa: E402
from genaudio.search.run import prepare_space  # noqa: E402
from genaudio.search.trainable import judge_data, store_data  # noqa: E402
from genaudio.search.tuner import SearchConfig  # noqa: E402


def judge_both(model, enc, reference, seed: int) -> dict:
    """The model's clips and the ceiling through ``enc``'s own decoder, then through Griffin-Lim."""
    out = {}
    for name in ("as searched", "griffinlim"):
        if name == "griffinlim":
            enc.set_decoder(None)
        t0 = time.perf_counter()
        j, clips = judge_generated(model, enc, reference, n=reference.n, seed=seed)
        c = decoder_ceiling(enc, reference)
        out[name] = {"decoder": enc.decoder_name, "generated": j.score, "generated_se": j.score_se,
                     "ceiling": c.score, "ceiling_se": c.score_se, "ratio": j.score / c.score,
                     "frame_comb": frame_comb_of(clips, enc), "seconds": time.perf_counter() - t0}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a finished `genaudio search` folder")
    ap.add_argument("--top", type=int, default=5, help="ranked trials to judge (default 5)")
    args = ap.parse_args(argv)
    state = read_state(args.run)
    cfg = from_dict(SearchConfig, {k: v for k, v in state["config"].items() if k != "config_hash"})
    store = Path(state["store"])
    manifest, frames, space = prepare_space(store, cfg)
    data = store_data(store, manifest, [space.core], frames, args.run)
    with tempfile.TemporaryDirectory() as tmp:   # judge_data writes a reference summary
        reference = judge_data(data["frames"], store, manifest, cfg, Path(tmp))["reference"]
    print(f"real vs real {reference.real_vs_real.score:.3g} ± {reference.real_vs_real.score_se:.2g}", flush=True)
    rows = pd.read_parquet(args.run / "results.parquet").dropna(subset=["rank"]).sort_values("rank")
    trials = []
    for _, r in rows.head(args.top).iterrows():
        model = load_run(Path(r["checkpoint"]) / "last.pt")
        row = {"rank": int(r["rank"]), "trial": r["trial_id"], "search_quality": r["quality"],
               **judge_both(model, load_run_encoder(model), reference, cfg.seed)}
        trials.append(row)
        a, g = row["as searched"], row["griffinlim"]
        print(f"#{row['rank']} {row['trial']}: {a['decoder']} {a['generated']:.3g} ± {a['generated_se']:.2g} "
              f"(ceiling {a['ceiling']:.3g}, {a['ratio']:.2f}x) | griffinlim {g['generated']:.3g} ± "
              f"{g['generated_se']:.2g} (ceiling {g['ceiling']:.3g}, {g['ratio']:.2f}x)", flush=True)
    result = {"benchmark": "search_decoders", "run": str(args.run),
              "real_vs_real": [reference.real_vs_real.score, reference.real_vs_real.score_se], "trials": trials}
    print(json.dumps(result, default=float))
    return result


if __name__ == "__main__":
    main()
