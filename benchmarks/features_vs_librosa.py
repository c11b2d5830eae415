"""genaudio's shared-analysis feature extraction vs the naive librosa way, side by side.

For several 30 s musical clips (mixes of the synthesised clips in ``samples/``: an instrument over
a drum pattern; and 30-s excerpts of real tracks of the development corpus, ``--real``; all
written as 44.1 kHz stereo FLAC so decoding and resampling are real), in one process on one
thread:

* naive   : ``genaudio.audio.load`` then every feature of the default set by its documented
            librosa call straight from ``y`` (``tests/naive.py``; each call does its own
            STFT / CQT / onset envelope, as librosa's documentation shows);
* genaudio: the same load then ``genaudio.features.compute`` (one STFT, one CQT, one onset envelope);
* floor   : the same load then one ``librosa.stft`` (decode + resample + one STFT).

Times are CPU seconds of this process (``time.process_time``; robust to other load on a shared
machine), the best of ``--repeats`` runs per clip. Every output of genaudio is compared with the
naive one (max |a - b| / max |b| per feature). Last line: one JSON object with
``speedup_vs_naive`` (naive / genaudio), ``max_rel_err``, ``realtime_factor`` (audio seconds /
genaudio seconds) and ``cost_vs_floor`` (genaudio / floor).

Usage: ``python benchmarks/features_vs_librosa.py [--clips 4] [--seconds 30] [--repeats 2] [--quick]``
"""
from __future__ import annotations

import os

# one thread everywhere, before numpy / numba / scipy are imported
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
           "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import librosa  # noqa: E402
import soundfile as sf  # noqa: E402

from genaudio.audio import load  # noqa: E402
from genaudio.config import AudioConfig, FeatureConfig  # noqa: E402
from genaudio.features import compute, default_features  # noqa: E402
sys.path.insert(0, str(ROOT / "tests"))  # the naive reference lives with the tests that check it
from naive import reference, rel_err  # noqa: E402

INSTRUMENTS = ["piano/piano_melody_c.wav", "strings/strings_melody_dm.flac", "bells/bells_pentatonic.flac",
               "piano/piano_arpeggio_g.mp3", "strings/strings_pad_am.ogg", "bells/bells_chords.mp3"]
DRUMS = ["drums/drums_rock_120.flac", "drums/drums_funk_96.ogg", "drums/drums_halftime_140.mp3"]


def make_clips(out_dir: Path, n: int, seconds: float) -> list[Path]:
    """Mix an instrument over a drum pattern (each tiled to ``seconds``), 44.1 kHz stereo FLAC."""
    sr = 44100
    cfg = AudioConfig(sample_rate=sr, mono=False)
    paths = []
    for i in range(n):
        inst, _ = load(ROOT / "samples" / INSTRUMENTS[i % len(INSTRUMENTS)], config=cfg)
        drum, _ = load(ROOT / "samples" / DRUMS[i % len(DRUMS)], config=cfg)
        length = int(seconds * sr)

        def stereo_tile(x):
            x = np.atleast_2d(x)
            x = np.vstack([x, x]) if x.shape[0] == 1 else x[:2]
            return np.resize(x, (2, length)) if x.shape[1] >= length else np.tile(x, (1, length // x.shape[1] + 1))[:, :length]

        mix = 0.6 * stereo_tile(inst) + 0.4 * stereo_tile(drum)
        mix /= max(1.0, float(np.max(np.abs(mix))) / 0.95)
        path = out_dir / f"clip{i:02d}.flac"
        sf.write(path, mix.T.astype(np.float32), sr, subtype="PCM_16")
        paths.append(path)
    return paths


def real_clips(out_dir: Path, corpus: Path, n: int, seconds: float) -> list[Path]:
    """30-s excerpts (from 30 s in) of ``n`` real tracks of the development corpus, one per label
    in turn, written as 44.1 kHz stereo FLAC like the synthetic mixes."""
    by_label = [sorted(p for p in d.iterdir() if p.is_file()) for d in sorted(corpus.iterdir()) if d.is_dir()]
    picks = [tracks[i // len(by_label)] for i in range(n) for tracks in [by_label[i % len(by_label)]]
             if i // len(by_label) < len(tracks)]
    cfg = AudioConfig(sample_rate=44100, mono=False)
    paths = []
    for i, src in enumerate(picks):
        y, _ = load(src, config=cfg, offset=30.0, duration=seconds)
        y = np.atleast_2d(y)
        y = np.vstack([y, y]) if y.shape[0] == 1 else y[:2]
        path = out_dir / f"real{i:02d}_{src.parent.name}.flac"
        sf.write(path, y.T.astype(np.float32), 44100, subtype="PCM_16")
        paths.append(path)
    return paths


def cpu(f):
    t = time.process_time()
    out = f()
    return time.process_time() - t, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=2, help="runs per clip and method; the best counts")
    ap.add_argument("--real", type=int, default=4, help="real tracks of the corpus (30-s excerpts)")
    ap.add_argument("--corpus", type=Path, default=Path.home() / ".cache" / "genaudio-dev-corpus",
                    help="the development corpus (../shared/corpus/fetch.sh); skipped if absent")
    ap.add_argument("--quick", action="store_true", help="2 clips of 10 s, 1 repeat")
    args = ap.parse_args(argv)
    if args.quick:
        args.clips, args.seconds, args.repeats = 2, 10.0, 1
    warnings.simplefilter("ignore")
    fcfg = FeatureConfig()
    acfg = AudioConfig()  # 22.05 kHz mono, soxr_hq
    names = default_features(fcfg)
    print(f"default set ({len(names)}): {', '.join(names)}")

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_clips(Path(tmp), args.clips, args.seconds)
        if args.real and args.corpus.is_dir():
            paths += real_clips(Path(tmp), args.corpus, args.real, args.seconds)

        # warm-up (numba JIT, FFT plans) on a short excerpt, not timed
        y, sr = load(paths[0], config=acfg, duration=3.0)
        compute(y, sr, config=fcfg, features=names)
        for n in names:
            reference(n, y, sr, fcfg)

        def naive(p):
            y, sr = load(p, config=acfg)
            return {n: reference(n, y, sr, fcfg) for n in names}

        def ours(p):
            y, sr = load(p, config=acfg)
            return compute(y, sr, config=fcfg, features=names)

        def floor(p):
            y, sr = load(p, config=acfg)
            return librosa.stft(y, n_fft=fcfg.n_fft, hop_length=fcfg.hop_length)

        tot = {"naive": 0.0, "genaudio": 0.0, "floor": 0.0}
        kinds: dict = {}
        load0 = os.getloadavg()[0]
        max_err, worst = 0.0, None
        audio_s = 0.0
        print(f"{'clip':<12}{'naive s':>10}{'genaudio s':>12}{'floor s':>10}{'speedup':>9}{'max rel err':>13}")
        for p in paths:
            best = {}
            res = {}
            for _ in range(args.repeats):
                # interleaved so that load changes on the machine hit all three alike
                for key, fn in (("naive", naive), ("genaudio", ours), ("floor", floor)):
                    t, out = cpu(lambda: fn(p))
                    best[key] = min(best.get(key, np.inf), t)
                    res[key] = out
            clip_err = 0.0
            for n in names:
                e = rel_err(res["genaudio"][n], res["naive"][n])
                if e > clip_err:
                    clip_err = e
                if e > max_err:
                    max_err, worst = e, f"{n} on {p.name}"
            kind = kinds.setdefault("real" if p.name.startswith("real") else "synthetic",
                                    {"naive": 0.0, "genaudio": 0.0, "err": 0.0})
            kind["naive"] += best["naive"]
            kind["genaudio"] += best["genaudio"]
            kind["err"] = max(kind["err"], clip_err)
            for k in tot:
                tot[k] += best[k]
            audio_s += sf.info(p).duration
            print(f"{p.name:<12}{best['naive']:>10.3f}{best['genaudio']:>12.3f}{best['floor']:>10.3f}"
                  f"{best['naive'] / best['genaudio']:>9.2f}{clip_err:>13.2e}")

    result = {
        "speedup_vs_naive": round(tot["naive"] / tot["genaudio"], 3),
        "max_rel_err": float(f"{max_err:.3g}"),
        "realtime_factor": round(audio_s / tot["genaudio"], 2),
        "cost_vs_floor": round(tot["genaudio"] / tot["floor"], 2),
        "naive_s_per_clip": round(tot["naive"] / len(paths), 3),
        "genaudio_s_per_clip": round(tot["genaudio"] / len(paths), 3),
        "floor_s_per_clip": round(tot["floor"] / len(paths), 3),
        "by_kind": {k: {"speedup_vs_naive": round(v["naive"] / v["genaudio"], 3),
                        "max_rel_err": float(f"{v['err']:.3g}")} for k, v in kinds.items()},
        "clips": len(paths), "clip_seconds": args.seconds, "features": len(names),
        "loadavg_start_end": [round(load0, 1), round(os.getloadavg()[0], 1)],
        "worst_feature": worst,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
