"""The torch path of the frame features against the numpy/librosa path, side by side.

On 30-s clips cut into 5-s segments (the extraction's default), from decoded audio, in one
process on one thread (``torch.set_num_threads(1)``):

* numpy : ``genaudio.features.compute`` per segment (the CPU path of ``genaudio extract``);
* torch : ``genaudio.features.torch_frames.analyses`` over the clip's segments as one batch, then
          ``analysis.compute`` for the rest of the default set on the CPU (the GPU path of
          ``genaudio extract --gpus-per-worker``), here with torch on the CPU;
* frames: the torch features alone, both ways (``TORCH_FEATURES``), to separate the batched
          part from what stays on the CPU (tuning, tempo, beats) and the CQT (torch too).

Every torch output is compared with the numpy one (max |a - b| / max |b| per feature and
segment; spectral_rolloff, a bin frequency, as the fraction of frames that moved by one bin; the
CQT's features apart, ``cqt_max_rel_err`` against their own tolerance).
With CUDA, the same torch path also runs on the GPU (``realtime_factor_gpu``: audio seconds per
second, end to end from decoded audio); without one the JSON says it was not measured.

Clips: the development corpus (``--corpus``, 30-s excerpts of real tracks) and generated mixes of
``samples/``. Last line: one JSON object with ``max_rel_err``, ``cpu_speedup_vs_numpy``,
``frames_cpu_speedup_vs_numpy``, ``rolloff_moved_fraction``, ``realtime_factor_*``.

Usage: ``python benchmarks/features_torch.py [--clips 4] [--real 4] [--repeats 2] [--quick]``
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from features_vs_librosa import make_clips, real_clips  # noqa: E402
from naive import rel_err  # noqa: E402

from genaudio.audio import load  # noqa: E402
from genaudio.config import AudioConfig, FeatureConfig  # noqa: E402
from genaudio.features import compute, default_features  # noqa: E402
from genaudio.features import torch_frames as tf  # noqa: E402


def segments_of(path: Path, seconds: float = 5.0) -> tuple[np.ndarray, int]:
    y, sr = load(path, config=AudioConfig())
    n = int(seconds * sr)
    return y[: len(y) // n * n].reshape(-1, n), sr


def best_of(repeats: int, fn, clock=time.process_time) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeats):
        t = clock()
        out = fn()
        best = min(best, clock() - t)
    return best, out


def compare(ours: list[dict], ref: list[dict], sr: int, cfg: FeatureConfig) -> tuple[float, str, float, float]:
    """(worst error and its feature outside the CQT's, the fraction of rolloff frames moved,
    the worst error of the CQT's features: they have their own tolerance)."""
    worst, where, moved, cqt = 0.0, "", [], 0.0
    for o, r in zip(ours, ref):
        for name in r:
            if name == "spectral_rolloff":
                moved.append(float(np.mean(np.abs(o[name] - r[name]) > 1e-3)))
                continue
            e = rel_err(o[name], r[name])
            if name in tf.CQT_FEATURES:
                cqt = max(cqt, e)
            elif e > worst:
                worst, where = e, name
    return worst, where, max(moved or [0.0]), cqt


def run_clip(path: Path, names: list[str], frames: list[str], repeats: int, cfg: FeatureConfig) -> dict:
    ys, sr = segments_of(path)
    t_np, ref = best_of(repeats, lambda: [compute(y, sr, config=cfg, features=names) for y in ys])
    t_t, ours = best_of(repeats, lambda: [a.compute(names) for a in tf.analyses(ys, sr, config=cfg, features=names)])
    f_np, _ = best_of(repeats, lambda: [compute(y, sr, config=cfg, features=frames) for y in ys])
    f_t, _ = best_of(repeats, lambda: [a.compute(frames) for a in tf.analyses(ys, sr, config=cfg, features=frames)])
    err, worst, moved, cqt_err = compare(ours, ref, sr, cfg)
    out = {"audio_s": ys.size / sr, "numpy": t_np, "torch": t_t, "frames_numpy": f_np, "frames_torch": f_t,
           "err": err, "worst": worst, "moved": moved, "cqt_err": cqt_err}
    if torch.cuda.is_available():
        def on_gpu():
            res = [a.compute(names) for a in tf.analyses(ys, sr, config=cfg, features=names, device="cuda")]
            torch.cuda.synchronize()
            return res
        on_gpu()  # warm-up (kernels, cuFFT plans)
        out["gpu_wall"], _ = best_of(repeats, on_gpu, clock=time.perf_counter)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=2, help="generated 30-s mixes of samples/")
    ap.add_argument("--real", type=int, default=4, help="30-s excerpts of real tracks")
    ap.add_argument("--corpus", type=Path, default=Path.home() / ".cache" / "genaudio-dev-corpus")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="1 generated + 1 real clip of 30 s, 1 repeat")
    args = ap.parse_args(argv)
    if args.quick:
        args.clips, args.real, args.repeats = 1, 1, 1
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    cfg = FeatureConfig()
    names = list(default_features(cfg))
    frames = [n for n in tf.TORCH_FEATURES if n in names]
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_clips(Path(tmp), args.clips, 30.0)
        if args.real and args.corpus.is_dir():
            paths += real_clips(Path(tmp), args.corpus, args.real, 30.0)
        warm, sr = segments_of(paths[0])
        compute(warm[0], sr, config=cfg, features=names)
        [a.compute(names) for a in tf.analyses(warm[:2], sr, config=cfg, features=names)]
        rows = {p.name: run_clip(p, names, frames, args.repeats, cfg) for p in paths}
    for name, r in rows.items():
        print(f"{name:<28} numpy {r['numpy']:.3f} s  torch {r['torch']:.3f} s  frames numpy {r['frames_numpy']:.3f} "
              f"torch {r['frames_torch']:.3f}  max rel err {r['err']:.1e} ({r['worst']}), CQT's {r['cqt_err']:.1e}",
              file=sys.stderr)
    tot = {k: sum(r[k] for r in rows.values()) for k in ("audio_s", "numpy", "torch", "frames_numpy", "frames_torch")}
    worst = max(rows.values(), key=lambda r: r["err"])
    out = {
        "max_rel_err": float(f"{worst['err']:.3g}"), "worst_feature": worst["worst"],
        "cpu_speedup_vs_numpy": round(tot["numpy"] / tot["torch"], 3),
        "frames_cpu_speedup_vs_numpy": round(tot["frames_numpy"] / tot["frames_torch"], 3),
        "rolloff_moved_fraction": round(max(r["moved"] for r in rows.values()), 4),
        "tolerance": tf.TOLERANCE,
        "cqt_max_rel_err": float(f"{max(r['cqt_err'] for r in rows.values()):.3g}"), "cqt_tolerance": tf.CQT_TOLERANCE,
        "realtime_factor_numpy_per_core": round(tot["audio_s"] / tot["numpy"], 1),
        "realtime_factor_torch_cpu_per_core": round(tot["audio_s"] / tot["torch"], 1),
        "realtime_factor_gpu": (round(tot["audio_s"] / sum(r["gpu_wall"] for r in rows.values()), 1)
                                if torch.cuda.is_available() else "not measured: no GPU was available"),
        "clips": len(rows), "segment_s": 5.0, "features": len(names), "torch_features": frames,
        "loadavg_start_end": [round(load0, 1), round(os.getloadavg()[0], 1)],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
