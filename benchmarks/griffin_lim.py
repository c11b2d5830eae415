"""genaudio's Griffin-Lim (torch FFT) vs ``librosa.griffinlim``, side by side, one thread.

Every spectral encoder without a trained vocoder decodes through Griffin-Lim, and the judge decodes
every generated clip: it is most of the cost of judging a search trial. For 5-s excerpts of real
music (the development corpus, ``../shared/corpus/fetch.sh``; ``samples/`` when it is missing) at
the features store's analysis (n_fft 2048, hop 512) and the rate-distortion benchmark's (1024,
256), both decoders run 64 iterations from the same seeded start on the true magnitude, in
alternation (``--repeats`` rounds, the best time per clip). Reported: CPU seconds per clip,
``speedup`` (librosa / genaudio), the spectral convergence each reaches against the magnitude, and
the largest relative waveform difference between the two outputs. Last line: one JSON object.

Usage: ``python benchmarks/griffin_lim.py [--clips 6] [--repeats 3] [--corpus DIR]``
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from genaudio.encoders.framing import griffin_lim  # noqa: E402

import _rate_distortion_real as real_music  # noqa: E402  (benchmarks/ is the script's folder)

ROOT = Path(__file__).resolve().parents[1]


def clips(corpus: Path, n: int, seconds: float = 5.0) -> tuple[list[np.ndarray], str]:
    """One window of ``seconds`` from each of ``n`` files spread over the corpus (``samples/``
    when the corpus is missing), at 22,050 Hz."""
    import soundfile as sf

    from genaudio.extract import discover

    files, source = (discover([corpus]), str(corpus)) if corpus.is_dir() else ([], "")
    if not files:
        print(f"{corpus}: no audio there (../shared/corpus/fetch.sh builds it); measuring on samples/",
              file=sys.stderr, flush=True)
        files, source = discover([ROOT / "samples"]), "samples/"
    picks = files[:: max(1, len(files) // n)][:n]
    return [real_music.windows(f.path, 1, seconds, sf.info(f.path).duration)[0] for f in picks], source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iters", type=int, default=64)
    ap.add_argument("--corpus", type=Path, default=real_music.DEFAULT_CORPUS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ys, source = clips(args.corpus, args.clips)
    result: dict = {"source": source, "clips": len(ys), "iters": args.iters}
    for n_fft, hop in ((2048, 512), (1024, 256)):
        best = {"librosa": [np.inf] * len(ys), "genaudio": [np.inf] * len(ys)}
        sc = {"librosa": [], "genaudio": []}
        diff = 0.0
        for r in range(args.repeats):
            for i, y in enumerate(ys):
                S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)).astype(np.float32)
                out = {}
                for name in (("librosa", "genaudio") if r % 2 == 0 else ("genaudio", "librosa")):
                    t = time.process_time()
                    if name == "librosa":
                        out[name] = librosa.griffinlim(S, n_iter=args.iters, hop_length=hop, n_fft=n_fft,
                                                       length=len(y), init="random", random_state=0)
                    else:
                        out[name] = griffin_lim(S, n_fft=n_fft, hop_length=hop, n_iter=args.iters, length=len(y))
                    best[name][i] = min(best[name][i], time.process_time() - t)
                if r == 0:
                    for name, x in out.items():
                        X = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop))
                        sc[name].append(float(np.linalg.norm(X - S) / np.linalg.norm(S)))
                    diff = max(diff, float(np.linalg.norm(out["genaudio"] - out["librosa"])
                                           / np.linalg.norm(out["librosa"])))
        row = {f"{k}_s_per_clip": float(np.mean(v)) for k, v in best.items()}
        row.update({f"{k}_sc": float(np.mean(v)) for k, v in sc.items()})
        row["speedup"] = row["librosa_s_per_clip"] / row["genaudio_s_per_clip"]
        row["max_rel_waveform_diff"] = diff
        result[f"nfft{n_fft}_hop{hop}"] = row
        print(f"n_fft {n_fft} hop {hop}: librosa {row['librosa_s_per_clip']:.3f} s, genaudio "
              f"{row['genaudio_s_per_clip']:.3f} s per 5-s clip ({row['speedup']:.2f}x); SC {row['librosa_sc']:.4f} "
              f"vs {row['genaudio_sc']:.4f}; max waveform difference {diff:.1e}", flush=True)
    result["load_average"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
