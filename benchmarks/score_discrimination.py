"""Does the judge tell good audio from bad? Real music against four degradations of it.

    python benchmarks/score_discrimination.py [--corpus DIR] [--n 64] [--seconds 5] [--seeds 0 1 2]

On the real-music development corpus (``../shared/corpus/fetch.sh``; its folder is the default), for
each seed: the judge's reference is two halves of ``n`` real clips, split by file
(:func:`genaudio.quality.build_reference`). The candidates are all made from the ``other`` half, so
only the degradation differs:

1. ``real``: the other half itself (real clips of other files: the real-vs-real score);
2. ``reconstruction``: its reconstruction by an encoder fitted on the anchor files' clips (PCA-16
   on a 128-band log-mel, Griffin-Lim with 64 iterations: the decoder every model of such a
   search is heard through);
3. ``shuffled``: its 1024-sample frames permuted (same spectra, no musical time);
4. ``pink_noise``: pink noise at a similar level.

Target (issue "A judge that tells good audio from bad"): real < reconstruction < shuffled <
pink_noise, each step beyond 3 combined standard errors, for every seed. The last line is one JSON
object with every score, its SE, the per-step margins in SE units, the seconds per candidate set,
and ``target_met``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genaudio.encoders import make_encoder  # noqa: E402
from genaudio.extract import discover  # noqa: E402
from genaudio.quality import build_reference, file_windows, read_window, split_halves  # noqa: E402

ORDER = ("real", "reconstruction", "shuffled", "pink_noise")
SR = 22050


def pink_noise(n: int, rng: np.random.Generator, rms: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=float)
    f[0] = 1.0
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return (y / (np.sqrt(np.mean(y ** 2)) + 1e-12) * rms).astype(np.float32)


def frame_shuffled(y: np.ndarray, rng: np.random.Generator, frame: int = 1024) -> np.ndarray:
    k = len(y) // frame
    return np.concatenate([y[:k * frame].reshape(k, frame)[rng.permutation(k)].ravel(), y[k * frame:]])


def run_seed(windows, *, n: int, seconds: float, seed: int) -> dict:
    t0 = time.perf_counter()
    ref = build_reference(windows, n=n, seconds=seconds, sample_rate=SR, seed=seed)
    out = {"reference_s": time.perf_counter() - t0, "files": {k: len(v) for k, v in ref.files.items()}}
    rng = np.random.default_rng(seed)
    # the encoder learns from the anchor half's clips only; it reconstructs the other half
    anchor_w, _ = split_halves(windows, n=n, seed=seed)
    anchor_clips = [read_window(w, seconds=seconds, sample_rate=SR) for w in anchor_w]
    enc = make_encoder("pca", dim=16, core="log_mel", sample_rate=SR).fit(anchor_clips)
    rms = float(np.sqrt(np.mean(np.concatenate(ref.other_audio) ** 2)))
    sets = {"reconstruction": lambda: [enc.reconstruct(y) for y in ref.other_audio],
            "shuffled": lambda: [frame_shuffled(y, rng) for y in ref.other_audio],
            "pink_noise": lambda: [pink_noise(len(y), rng, rms) for y in ref.other_audio]}
    scores = {"real": ref.real_vs_real.to_dict()}
    seconds_per_set = []
    for name, make in sets.items():
        clips = make()
        t1 = time.perf_counter()
        scores[name] = ref.score(clips, SR).to_dict()
        seconds_per_set.append(time.perf_counter() - t1)
    margins = {}
    for lo, hi in zip(ORDER, ORDER[1:]):
        a, b = scores[lo], scores[hi]
        margins[f"{hi}-{lo}"] = (b["score"] - a["score"]) / math.hypot(a["score_se"], b["score_se"])
    out.update(scores=scores, margins_se=margins, judge_s_per_set=float(np.mean(seconds_per_set)),
               ordered_3se=all(m > 3 for m in margins.values()))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=os.path.expanduser("~/.cache/genaudio-dev-corpus"))
    p.add_argument("--n", type=int, default=64, help="clips per set")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args()
    files = [f.path for f in discover([args.corpus])]
    windows, skipped = file_windows(files, seconds=args.seconds)
    print(f"{len(files)} files, {len(windows)} windows of {args.seconds:g} s, {len(skipped)} skipped", flush=True)
    runs = {}
    for seed in args.seeds:
        t0 = time.perf_counter()
        r = run_seed(windows, n=args.n, seconds=args.seconds, seed=seed)
        runs[seed] = r
        line = "  ".join(f"{k} {v['score']:.3g}±{v['score_se']:.2g}" for k, v in r["scores"].items())
        print(f"seed {seed}: {line}  margins (SE) "
              + ", ".join(f"{k} {v:.1f}" for k, v in r["margins_se"].items())
              + f"  [{time.perf_counter() - t0:.0f} s; judge {r['judge_s_per_set']:.1f} s per set of {args.n}]",
              flush=True)
    result = {"benchmark": "score_discrimination", "corpus": args.corpus, "n": args.n, "seconds": args.seconds,
              "seeds": args.seeds, "load_avg_1m": os.getloadavg()[0], "runs": runs,
              "min_margin_se": min(min(r["margins_se"].values()) for r in runs.values()),
              "judge_s_per_set": float(np.mean([r["judge_s_per_set"] for r in runs.values()])),
              "target_met": all(r["ordered_3se"] for r in runs.values())}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
