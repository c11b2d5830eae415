"""genaudio's feature compute beside its peers on the same real 30-s clips, one thread, CPU seconds.

* genaudio        : ``genaudio.audio.load`` (22.05 kHz mono) + the default feature set
                    (``features.compute``) + its summary functionals (the store's 5,429 columns);
* naive librosa   : the same load + every default feature by its documented librosa call
                    (``tests/naive.py``);
* essentia        : ``essentia.standard.MusicExtractor()(path)`` with its defaults (decodes the
                    file itself, low-level, rhythm and tonal descriptors with their statistics);
* openSMILE       : ``opensmile.Smile(ComParE_2016, Functionals).process_file(path)`` (6,373
                    functionals of 65 low-level descriptors).

The clips are 30-s excerpts of real tracks of the development corpus (``--corpus``), written as
44.1 kHz stereo FLAC. essentia and openSMILE are not project dependencies: they run in a
throwaway venv, in a child process on the same clips in the same run::

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install essentia opensmile soundfile
    python benchmarks/peers.py --peers-python /tmp/peers/bin/python

Times are the best of ``--repeats`` per clip (``time.process_time`` of the process doing the
work, after a warm-up call). Last line: one JSON object with CPU seconds per clip for each and
genaudio's speedup over each.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def best_cpu(fn, repeats: int) -> float:
    fn()  # warm-up (JIT, plans, model set-up)
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def peer_times(paths: list[str], repeats: int) -> dict:
    """Run in the peers' venv: essentia's MusicExtractor and openSMILE ComParE_2016 per clip."""
    import essentia
    import essentia.standard as es
    import opensmile

    essentia.log.infoActive = False
    essentia.log.warningActive = False
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016,
                            feature_level=opensmile.FeatureLevel.Functionals, num_workers=1)
    extractor = es.MusicExtractor()
    out = {"essentia": 0.0, "opensmile": 0.0, "essentia_version": essentia.__version__,
           "opensmile_version": opensmile.__version__}
    for p in paths:
        out["essentia"] += best_cpu(lambda: extractor(p), repeats)
        out["opensmile"] += best_cpu(lambda: smile.process_file(p), repeats)
    return out


def own_times(paths: list[Path], repeats: int) -> dict:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    from naive import reference

    from genaudio.audio import load
    from genaudio.features import compute, default_features, summarize

    names = default_features()

    def ours(p):
        y, sr = load(p)
        return summarize(compute(y, sr, features=names))

    def naive(p):
        y, sr = load(p)
        return {n: reference(n, y, sr) for n in names}

    return {"genaudio": sum(best_cpu(lambda: ours(p), repeats) for p in paths),
            "naive_librosa": sum(best_cpu(lambda: naive(p), repeats) for p in paths)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers-python", default="/tmp/peers/bin/python",
                    help="python of the venv holding essentia and opensmile")
    ap.add_argument("--real", type=int, default=4, help="30-s excerpts of real tracks")
    ap.add_argument("--corpus", type=Path, default=Path.home() / ".cache" / "genaudio-dev-corpus")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--peer-worker", nargs="+", help=argparse.SUPPRESS)  # child mode: clip paths
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.peer_worker:
        print(json.dumps(peer_times(args.peer_worker, args.repeats)))
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT))
    from features_vs_librosa import real_clips

    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        paths = real_clips(Path(tmp), args.corpus, args.real, 30.0)
        peers = subprocess.run([args.peers_python, __file__, "--repeats", str(args.repeats),
                                "--peer-worker", *map(str, paths)], check=True, capture_output=True, text=True)
        theirs = json.loads(peers.stdout.strip().splitlines()[-1])
        ours = own_times(paths, args.repeats)
    n = len(paths)
    per_clip = {k: round(v / n, 3) for k, v in {**ours, "essentia": theirs["essentia"],
                                                "opensmile": theirs["opensmile"]}.items()}
    out = {"cpu_s_per_30s_clip": per_clip,
           "genaudio_speedup_vs": {k: round(v / per_clip["genaudio"], 2) for k, v in per_clip.items() if k != "genaudio"},
           "versions": {"essentia": theirs["essentia_version"], "opensmile": theirs["opensmile_version"]},
           "clips": n, "loadavg_start_end": [round(load0, 1), round(os.getloadavg()[0], 1)]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
