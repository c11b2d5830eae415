"""Training throughput of the models on CPU, time to score a model, and whether data loading stalls.

    python benchmarks/train_throughput.py [--quick] [--threads N]

For the LSTM and the conv GAN (plus the recurrent GAN at the small size), at two model sizes,
trains a few epochs on synthetic codes (dim 16) and reports training frames per second (code frames
consumed by optimiser steps; the second epoch, after warm-up) and ``data_wait_fraction`` (share of
step time spent waiting for the next batch; target < 0.10). Then trains a tiny LSTM on a real
encoded store built from ``samples/`` and times :func:`genaudio.models.score.score_model` (the judge: generate, decode, reference, KID)
(generate, Griffin-Lim decode, summary features, Frechet distance + NDB).

The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genaudio.models import GANConfig, LSTMConfig, TrainConfig, train  # noqa: E402
from genaudio.models.data import SequenceData  # noqa: E402


def synthetic(n_files=40, per_file=4, frames=256, dim=16, seed=0) -> SequenceData:
    rng = np.random.default_rng(seed)
    codes, fids = [], []
    for f in range(n_files):
        for _ in range(per_file):
            t = np.arange(frames)[:, None]
            freqs = rng.uniform(0.02, 0.3, dim)
            codes.append(np.sin(t * freqs + rng.uniform(0, 6, dim)) + 0.1 * rng.standard_normal((frames, dim)))
            fids.append(f"f{f}")
    return SequenceData(codes, np.array(fids), 43.07)


def bench_model(name: str, cfg: TrainConfig, data: SequenceData) -> dict:
    t0 = time.perf_counter()
    r = train(cfg, data, out_dir=None)
    wall = time.perf_counter() - t0
    if r.status != "ok":
        raise SystemExit(f"{name}: training ended with {r.status}: {r.message}")
    h = r.history[-1]  # after the first (warm-up) epoch
    out = {"frames_per_s": round(h["frames_per_s"], 1), "data_wait_fraction": round(h["data_wait_fraction"], 4),
           "steps": h["steps"], "epoch_seconds": round(h["seconds"], 2), "wall_seconds": round(wall, 2),
           "params": None}
    from genaudio.models.families import build_family

    out["params"] = int(sum(p.numel() for m in build_family(cfg, data.dim).modules.values() for p in m.parameters()))
    print(f"{name:18s} {out['frames_per_s']:>10.0f} frames/s   wait {100 * out['data_wait_fraction']:5.2f}%   "
          f"{out['params']:>9d} params   epoch {out['epoch_seconds']:.2f}s", flush=True)
    return out


def bench_score(quick: bool) -> dict:
    """Train a tiny LSTM on a real encoded store of the samples and time score_model."""
    from genaudio.models.score import score_model

    sys.path.insert(0, str(ROOT / "tests"))
    from models.synth import build_encoded_store  # the tests' small real store (PCA + Griffin-Lim)

    files = sorted(p for p in (ROOT / "samples").rglob("*") if p.suffix.lower() in {".wav", ".flac", ".ogg", ".mp3"})
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        enc = build_encoded_store(Path(tmp) / "ENC", files)
        build_s = time.perf_counter() - t0
        cfg = TrainConfig(model="lstm", lstm=LSTMConfig(layers=1, hidden=32, context=16), epochs=1, batch_size=8)
        train(cfg, enc, out_dir=Path(tmp) / "run")
        n = 8 if quick else 16
        score_model(Path(tmp) / "run", n_clips=5, seed=0)  # warm-up: librosa/numba caches
        t0 = time.perf_counter()
        s = score_model(Path(tmp) / "run", n_clips=n, seed=0)
        score_s = time.perf_counter() - t0
    print(f"score_model: {n} generated + 2 x {s['n_real']} real clips of {s['seconds']:g} s: {score_s:.1f}s "
          f"(quality {s['quality']:.3g} +- {s['quality_se']:.2g}, real vs real {s['reference_quality']:.3g})", flush=True)
    return {"score_seconds": round(score_s, 2), "score_n_clips": n, "score_n_real": s["n_real"],
            "score_clip_seconds": s["seconds"],
            "encoded_store_build_seconds": round(build_s, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and clips")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = 4 if args.quick else 30
    data = synthetic()
    common = dict(epochs=2, steps_per_epoch=steps, batch_size=32, seed=0, device="cpu")
    cases = {
        "lstm_small": TrainConfig(model="lstm", lstm=LSTMConfig(layers=1, hidden=64, context=64, dropout=0.0), **common),
        "lstm_large": TrainConfig(model="lstm", lstm=LSTMConfig(layers=2, hidden=256, context=64), **common),
        "gan_conv_small": TrainConfig(model="gan", gan=GANConfig(channels=32, layers=3, patch=32, latent=32), **common),
        "gan_conv_large": TrainConfig(model="gan", gan=GANConfig(channels=256, layers=3, patch=32, latent=128), **common),
        "gan_rnn_small": TrainConfig(model="gan", gan=GANConfig(family="rnn", channels=64, layers=1, patch=32,
                                                                latent=16), **common),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(data)} segments x 256 frames, "
          f"dim 16; batch 32; {steps} steps/epoch", flush=True)
    results = {name: bench_model(name, cfg, data) for name, cfg in cases.items()}
    score = bench_score(args.quick)
    waits = [r["data_wait_fraction"] for r in results.values()]
    summary = {
        "benchmark": "train_throughput", "quick": args.quick, "threads": torch.get_num_threads(),
        "models": results,
        "lstm_large_vs_small_speed": round(results["lstm_large"]["frames_per_s"] / results["lstm_small"]["frames_per_s"], 3),
        "gan_large_vs_small_speed": round(results["gan_conv_large"]["frames_per_s"]
                                          / results["gan_conv_small"]["frames_per_s"], 3),
        "data_wait_fraction": round(max(waits), 4),
        "data_wait_ok": max(waits) < 0.10,
        **score,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
