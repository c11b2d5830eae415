"""Rate-distortion of every encoder on held-out audio: samples/ (split by file) + generated music;
with ``--real``, Griffin-Lim vs the learned decoder on real music.

    python benchmarks/rate_distortion.py [--quick] [--out benchmarks/out/rate_distortion]
    python benchmarks/rate_distortion.py --real [CORPUS] [--out DIR] [--figure docs/figures/...png]

Real-music mode (``--real``, default corpus ``~/.cache/genaudio-dev-corpus``, built by
``../shared/corpus/fetch.sh``): files are split by file (20 % held out, a hash of each file's
``label/name`` seeded by ``--split-seed``: the same files on every fetch of the corpus). Up to
``--train-seconds-per-file`` seconds of each training file (5-s windows spread over the file) train
PCA-on-log-mel encoders (uint8 codes: 32, 16, 8 dims = 16x, 32x, 64x) and, for each encoder, a
default vocoder trained on the frames its codes decode to (``Encoder.fit_decoder``; saved in
``OUT/vocoder-<encoder>`` and reused by a later run with the same configuration; ``--jobs`` of them
train at once). Every encoder is then decoded both ways on
4-s windows of the held-out files in the same run: Griffin-Lim (64 iterations) and the learned
decoder (and its magnitude with ``--fast-iters`` Griffin-Lim iterations, the ~100x setting);
plus the log-mel-128 frames themselves (2x, float16) to show what the decoder alone loses.
Metrics: LSD, spectral convergence, multi-resolution STFT, the frame comb (a buzz at the hop),
decoding speed on one CPU core (x real time) and, when ``genaudio.quality`` exists, the
judge's feature-space distance of the reconstructions to real music. The last line is one JSON
object with the targets at 32x.

Every encoder is fitted on the training part and measured on the held-out part in the same run:
bitrate = code_rate_hz * dim * bits at the stored precision; compression ratio vs 16-bit PCM at
22.05 kHz; log-spectral distance (dB, 80 dB range below the original's peak), spectral convergence,
multi-resolution STFT distance (and SNR for mu-law). Spectral encoders render with 64 Griffin-Lim
iterations (same for all).

Target: the best encoder's LSD at 32x is below log-mel-40 + Griffin-Lim's LSD at 6.4x.
The last line is one JSON object: per-encoder LSD at ~16x and ~32x, ``best_lsd_at_32x``,
``mel40_lsd_at_6x``, and ``target_met``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genaudio.encoders import make_encoder, split_by_file  # noqa: E402
from genaudio.encoders import sweep as sw  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _rate_distortion_real as real_music  # noqa: E402

SR = 22050


def generated_music(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """Synthetic music: a harmonic melody with decaying notes, sustained triads, kick/snare/hi-hat."""
    import librosa

    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    y = np.zeros(n, np.float64)
    beat = 60.0 / rng.uniform(90, 140)
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    root = int(rng.integers(45, 57))
    t = 0.0
    while t < seconds:  # melody
        dur = beat * float(rng.choice([0.5, 1, 1, 2]))
        f0 = librosa.midi_to_hz(root + 12 + scale[rng.integers(0, 7)])
        i0, i1 = int(t * sr), min(n, int((t + dur) * sr))
        tt = np.arange(i1 - i0) / sr
        env = np.minimum(1, tt / 0.01) * np.exp(-tt * rng.uniform(2, 6))
        y[i0:i1] += 0.25 * env * sum((0.6 / k) * np.sin(2 * np.pi * f0 * k * tt + rng.uniform(0, 6.28))
                                     for k in range(1, 8) if f0 * k < sr / 2)
        t += dur
    t = 0.0
    while t < seconds:  # chords
        i0, i1 = int(t * sr), min(n, int((t + 4 * beat) * sr))
        tt = np.arange(i1 - i0) / sr
        deg = int(rng.choice([0, 3, 4, 5]))
        for k in (0, 2, 4):
            f = librosa.midi_to_hz(root + scale[(deg + k) % 7])
            y[i0:i1] += 0.08 * np.exp(-tt * 0.8) * (np.sin(2 * np.pi * f * tt) + 0.3 * np.sin(4 * np.pi * f * tt))
        t += 4 * beat
    t, k = 0.0, 0
    while t < seconds:  # drums
        i0 = int(t * sr)
        L = min(int(0.2 * sr), n - i0)
        tt = np.arange(L) / sr
        if k % 2 == 0:
            y[i0:i0 + L] += 0.5 * np.sin(2 * np.pi * (50 + 100 * np.exp(-tt * 30)) * tt) * np.exp(-tt * 15)
        else:
            y[i0:i0 + L] += 0.2 * rng.standard_normal(L) * np.exp(-tt * 25)
        h = min(int(0.05 * sr), n - i0)
        y[i0:i0 + h] += 0.05 * np.diff(rng.standard_normal(h + 1)) * np.exp(-np.arange(h) / sr * 80)
        t += beat / 2
        k += 1
    y *= 0.8 / max(np.abs(y).max(), 1e-9)
    return y.astype(np.float32)


def sample_segments(seconds: float) -> tuple[list[str], list[np.ndarray]]:
    """Segments of samples/ at 22.05 kHz mono, with their file ids."""
    from genaudio.audio import iter_segments
    from genaudio.config import AudioConfig, SegmentConfig
    from genaudio.extract import discover

    folder = ROOT / "samples"
    if not folder.is_dir() or not any(folder.rglob("*.*")):
        return [], []
    ids, waves = [], []
    for af in discover([folder]):
        try:
            for _, y in iter_segments(af.path, audio=AudioConfig(sample_rate=SR),
                                      segment=SegmentConfig(seconds=seconds)):
                ids.append(af.file_id)
                waves.append(np.asarray(y, np.float32))
        except Exception as e:  # noqa: BLE001 - a bad sample must not stop the benchmark
            print(f"skip {af.path}: {e}", file=sys.stderr)
    return ids, waves


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer clips, fewer encoders, short autoencoder")
    ap.add_argument("--out", default=None, help="output folder (default benchmarks/out/rate_distortion[_real])")
    ap.add_argument("--epochs", type=int, default=None, help="autoencoder epochs")
    ap.add_argument("--max-test", type=int, default=None, help="at most this many held-out clips")
    ap.add_argument("--real", nargs="?", const=str(real_music.DEFAULT_CORPUS), default=None, metavar="CORPUS",
                    help="real-music mode: Griffin-Lim vs the learned decoder on held-out files of CORPUS")
    ap.add_argument("--train-seconds-per-file", type=float, default=150.0,
                    help="real mode: training audio per training file (s)")
    ap.add_argument("--test-clips-per-file", type=int, default=4, help="real mode: 4-s windows per held-out file")
    ap.add_argument("--vocoder-epochs", type=int, default=None,
                    help="real mode: vocoder epochs (default: VocoderConfig's)")
    ap.add_argument("--input-noise-db", type=float, default=None,
                    help="real mode: vocoder training input noise (dB; default: VocoderConfig's)")
    ap.add_argument("--vocoder-phase", choices=["learned", "griffinlim"], default=None,
                    help="real mode: the learned decoder's phase, its own or Griffin-Lim's from its magnitude "
                         "(default: VocoderConfig's)")
    ap.add_argument("--jobs", type=int, default=2,
                    help="real mode: vocoders trained at once, one torch thread each (default 2)")
    ap.add_argument("--rates", type=lambda v: [int(r) for r in v.split(",")], default=[2, 16, 32, 64],
                    help="real mode: compression ratios to measure, of 2 (the log-mel frames), 16, 32, 64 "
                         "(default all; 32 is needed for the targets); with 2, every PCA encoder is also "
                         "decoded by the frames' vocoder")
    ap.add_argument("--split-seed", type=int, default=0,
                    help="real mode: which files are held out (a seeded hash of each file's label/name; default 0)")
    ap.add_argument("--fast-iters", type=int, default=4,
                    help="real mode: also decode with the learned magnitude and this many Griffin-Lim iterations "
                         "(4: ~100x real time on one core; 0: skip)")
    ap.add_argument("--figure", default=None, help="real mode: also write the plot here (e.g. docs/figures/...)")
    args = ap.parse_args()
    if args.fast_iters < 0:
        ap.error(f"--fast-iters must be >= 0 (0 leaves the row out), got {args.fast_iters}")
    if args.real:
        real_music.main(args, ROOT)
        return
    args.out = args.out or str(ROOT / "benchmarks" / "out" / "rate_distortion")
    t_start = time.perf_counter()
    seg_s = 4.0
    n_gen_train, n_gen_test = (4, 2) if args.quick else (8, 3)

    ids, waves = sample_segments(seg_s)
    test_mask = split_by_file(ids, holdout=0.3, seed=0) if ids else np.zeros(0, bool)
    train = [w for w, m in zip(waves, test_mask) if not m]
    test = [w for w, m in zip(waves, test_mask) if m]
    max_test = args.max_test or (6 if args.quick else 24)
    test = test[: max(0, max_test - n_gen_test)]
    train += [generated_music(seg_s * 2, seed=s) for s in range(n_gen_train)]
    test += [generated_music(seg_s * 2, seed=1000 + s) for s in range(n_gen_test)]
    print(f"train: {len(train)} clips ({sum(map(len, train)) / SR:.0f} s), held out: {len(test)} clips "
          f"({sum(map(len, test)) / SR:.0f} s; {len(test) - n_gen_test} from samples/, split by file)",
          file=sys.stderr)

    base = make_encoder("pca", dim=8, n_fft=1024, hop_length=256, griffin_lim_iters=64).config
    epochs = args.epochs or (15 if args.quick else 40)

    def cfg(kind, dim, **kw):
        return make_encoder(kind, dim=dim, config=base, **kw).config

    # dims chosen to land exactly on 6.4x / 16x / 32x (ratio = 4096 * downsample / (dim * bits))
    configs = [cfg("mulaw", 256), cfg("mel", 40), cfg("mel", 8),
               cfg("pca", 8, core="log_mel"), cfg("pca", 8, core="log_stft"),
               cfg("pca", 16, core="log_stft", precision="uint8"), cfg("pca", 32, core="log_stft", precision="uint8"),
               cfg("pca", 32, core="log_stft", precision="uint8", downsample=2),
               cfg("autoencoder", 16, core="log_stft", precision="uint8",
                   autoencoder={"epochs": epochs, "hidden": 128})]
    if not args.quick:
        configs += [cfg("mel", 16), cfg("pca", 16, core="log_mel"), cfg("pca", 16, core="log_stft"),
                    cfg("pca", 64, core="log_stft", precision="uint8", downsample=2),
                    cfg("pca", 16, core="log_mel", precision="uint8"),
                    cfg("pca", 32, core="log_mel", precision="uint8"),
                    cfg("autoencoder", 32, core="log_stft", precision="uint8", downsample=2,
                        autoencoder={"epochs": epochs, "hidden": 128})]
    df = sw.rate_distortion(train, test, configs, progress=sys.stderr.isatty())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "rate_distortion.csv", index=False)
    sw.plot_rate_distortion(df, out / "rate_distortion.png",
                            title="Rate-distortion: held-out samples/ + generated music, 22.05 kHz")
    cols = ["label", "dim", "downsample", "bitrate", "compression_ratio", "sc", "lsd_db", "mrstft", "snr_db",
            "fit_s", "error"]
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"), file=sys.stderr)

    summ = sw.summary(df)
    mel40 = df[(df.encoder == "mel") & (df.dim == 40)]
    mel40_lsd = float(mel40.lsd_db.iloc[0])
    best32 = summ["best_at_32x"] or {}
    best16 = summ["best_at_16x"] or {}
    result = {
        "per_encoder": summ["per_encoder"],
        "best_lsd_at_32x": best32.get("lsd_db"),
        "best_at_32x": best32.get("label"),
        "best_lsd_at_16x": best16.get("lsd_db"),
        "best_at_16x": best16.get("label"),
        "mel40_lsd_at_6x": mel40_lsd,
        "mel40_ratio": float(mel40.compression_ratio.iloc[0]),
        "mel40_sc_at_6x": float(mel40.sc.iloc[0]),
        "mulaw_lsd_at_2x": float(df[df.encoder == "mulaw"].lsd_db.iloc[0]),
        "mulaw_snr_db": float(df[df.encoder == "mulaw"].snr_db.iloc[0]),
        "target_met": bool(best32.get("lsd_db") is not None and best32["lsd_db"] < mel40_lsd),
        "lsd_gain_db_vs_mel40": (mel40_lsd - best32["lsd_db"]) if best32.get("lsd_db") is not None else None,
        "held_out_clips": len(test),
        "quick": args.quick,
        "wall_s": time.perf_counter() - t_start,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
