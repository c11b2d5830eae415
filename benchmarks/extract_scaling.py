"""How `genaudio extract` scales, against the per-file function in a plain loop.

Side by side in one run, on the same generated corpora:

- ``loop``:   :func:`genaudio.extract.process_group` file by file in this process (decode, analyse,
              serialise Parquet, write), after warm-up: the cost of the work itself;
- ``ray1``:   :func:`genaudio.extract.run_extract` on an embedded Ray with 1 CPU (one actor);
- ``ray2``:   the same with all cores (``--cpus``, default ``os.cpu_count()``).

Each is timed on N and 3N files; the steady-state cost per file is the slope
``(T(3N) - T(N)) / 2N``, and the intercept ``T(N) - N * slope`` is the fixed start-up (actor
start, librosa/numba warm-up), reported separately; ``ray.init`` is timed apart and left out of T. A second corpus of short clips
(1 s each, segmented at 1 s) measures small-file overhead (loop vs ray1).

The last line is one JSON object::

    {"parallel_efficiency": slope_ray1 / (cpus * slope_raycpus),
     "ray_overhead_vs_loop": slope_ray1 / slope_loop - 1,
     "small_files_overhead_vs_loop": small slope_ray1 / small slope_loop - 1,
     "realtime_factor_per_core": audio seconds per file / slope_ray1, ...}

Usage: ``python benchmarks/extract_scaling.py [--quick] [--n N] [--small-n N] [--cpus C]``.
Other processes on the machine distort the figures (the load average is reported).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# One BLAS/OpenMP thread, as Ray gives each 1-CPU actor: the loop must not use (or spin) more cores.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genaudio import extract as ex  # noqa: E402
from genaudio import store  # noqa: E402
from genaudio.config import SegmentConfig  # noqa: E402
from genaudio.infra import connect_ray  # noqa: E402


def make_clip(path: Path, seconds: float, sr: int, channels: int, seed: int) -> None:
    """A music-like clip: a few notes of a chord progression with harmonics, decay and noise."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    y = np.zeros(n)
    note_len = 0.5
    for k in range(int(np.ceil(seconds / note_len))):
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        s, e = int(k * note_len * sr), min(n, int((k + 1) * note_len * sr))
        tt = t[s:e] - t[s]
        env = np.exp(-3 * tt)
        y[s:e] += sum(0.2 / h * np.sin(2 * np.pi * f0 * h * tt) for h in (1, 2, 3)) * env
    y += 0.01 * rng.standard_normal(n)
    data = np.stack([y * (1 - 0.1 * c) for c in range(channels)], 1).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, subtype="PCM_16")


def make_corpus(root: Path, n: int, seconds: float, sr: int, channels: int, offset: int = 0) -> list[Path]:
    return [_mk(root / f"c{(i + offset) % 4}" / f"clip{i + offset:05d}.wav", seconds, sr, channels, i + offset)
            for i in range(n)]


def _mk(p, seconds, sr, channels, seed):
    make_clip(p, seconds, sr, channels, seed)
    return p


def _cpu(proc) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def time_loop(files: list[Path], cfg: ex.ExtractConfig, out: Path) -> tuple[float, float]:
    """The per-file function in a plain loop, writing one Parquet file per input (warm already).
    Returns (wall seconds, CPU seconds)."""
    manifest = ex.discover(files)
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    for af in manifest:
        seg, status = ex.process_group([af], cfg, gid=af.file_id)
        if seg:
            store.atomic_write_bytes(out / f"{af.file_id}.parquet", seg)
    return time.perf_counter() - t0, time.process_time() - c0


def time_ray(files: list[Path], cfg: ex.ExtractConfig, out: Path, cpus: int
             ) -> tuple[float, float, float, ex.ExtractResult]:
    """`run_extract` on a fresh embedded Ray of ``cpus`` CPUs, started and stopped inside the timing.

    Returns (wall s, CPU s of this process and every Ray process it started, Ray init s, result).
    CPU time does not grow when other jobs share the machine, wall time does.
    """
    import psutil
    import ray

    shutil.rmtree(out, ignore_errors=True)
    me = psutil.Process()
    t0, c0 = time.perf_counter(), _cpu(me)
    connect_ray(None, num_cpus=cpus)  # the same embedded start run_extract does, so it can be timed apart
    t_init = time.perf_counter() - t0
    res = ex.run_extract(files, out, config=cfg, num_cpus=cpus, progress=False)
    cpu = _cpu(me) - c0
    for p in me.children(recursive=True):  # raylet, gcs, workers, actors (still alive here)
        try:
            cpu += _cpu(p)
        except psutil.Error:
            pass
    ray.shutdown()
    wall = time.perf_counter() - t0
    assert res.files_ok == len(files) and res.processed == len(files), res.summary()
    return wall, cpu, t_init, res


def slope(t1: float, t3: float, n: int) -> tuple[float, float]:
    s = (t3 - t1) / (2 * n)
    return s, t1 - n * s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small corpora (a smoke run, noisy figures)")
    ap.add_argument("--n", type=int, default=30, help="N normal clips (the second size is 3N; 30 gives a slope over 60 files, 8 was too few to beat the noise)")
    ap.add_argument("--seconds", type=float, default=15.0, help="length of a normal clip (s)")
    ap.add_argument("--small-n", type=int, default=100, help="N one-second clips (second size 3N)")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--keep", help="keep corpora and stores in this folder")
    args = ap.parse_args()
    if args.quick:
        args.n, args.small_n, args.seconds = 3, 30, 10.0
    import psutil

    work = Path(args.keep or tempfile.mkdtemp(prefix="genaudio-bench-"))
    load0 = os.getloadavg()
    t_all = time.perf_counter()

    cfg = ex.ExtractConfig()  # the default feature set and frame matrices: what users run
    cfg_small = ex.ExtractConfig(segment=SegmentConfig(seconds=1.0))
    normal = {k: make_corpus(work / f"normal{k}", k * args.n, args.seconds, 44100, 2) for k in (1, 3)}
    small = {k: make_corpus(work / f"small{k}", k * args.small_n, 1.0, 22050, 1, offset=10_000)
             for k in (1, 3)}
    # warm this process up (JIT) so the loop measures steady state only
    ex.segment_schema(cfg)
    ex.segment_schema(cfg_small)

    res: dict = {}
    cpu: dict = {}
    inits = []
    for name, corpus, c in (("normal", normal, cfg), ("small", small, cfg_small)):
        for k in (1, 3):
            res[(name, "loop", k)], cpu[(name, "loop", k)] = time_loop(corpus[k], c, work / f"loop-{name}{k}")
            print(f"{name} x{k} loop: {res[(name, 'loop', k)]:.1f} s (cpu {cpu[(name, 'loop', k)]:.1f} s)",
                  file=sys.stderr, flush=True)
        cpu_list = (1, args.cpus) if name == "normal" else (1,)
        for cpus in cpu_list:
            for k in (1, 3):
                wall, c_s, t_init, r = time_ray(corpus[k], c, work / f"ray{cpus}-{name}{k}", cpus)
                # Ray's init is timed apart (it varies by tens of seconds on a busy machine) and
                # reported as start-up; the slope is taken on the time after Ray is up.
                res[(name, f"ray{cpus}", k)] = wall - t_init
                cpu[(name, f"ray{cpus}", k)] = c_s
                res[(name, f"ray{cpus}", k, "res")] = r
                inits.append(t_init)
                print(f"{name} x{k} ray {cpus} cpu: {wall:.1f} s (cpu {c_s:.1f} s, ray init {t_init:.1f} s)",
                      file=sys.stderr, flush=True)

    n, sn = args.n, args.small_n
    loop_s, _ = slope(res[("normal", "loop", 1)], res[("normal", "loop", 3)], n)
    r1_s, r1_i = slope(res[("normal", "ray1", 1)], res[("normal", "ray1", 3)], n)
    rc_s, rc_i = slope(res[("normal", f"ray{args.cpus}", 1)], res[("normal", f"ray{args.cpus}", 3)], n)
    sl_s, _ = slope(res[("small", "loop", 1)], res[("small", "loop", 3)], sn)
    s1_s, s1_i = slope(res[("small", "ray1", 1)], res[("small", "ray1", 3)], sn)
    # the same slopes in CPU seconds (immune to other jobs on the machine)
    cl, _ = slope(cpu[("normal", "loop", 1)], cpu[("normal", "loop", 3)], n)
    c1, c1_i = slope(cpu[("normal", "ray1", 1)], cpu[("normal", "ray1", 3)], n)
    cc, cc_i = slope(cpu[("normal", f"ray{args.cpus}", 1)], cpu[("normal", f"ray{args.cpus}", 3)], n)
    csl, _ = slope(cpu[("small", "loop", 1)], cpu[("small", "loop", 3)], sn)
    cs1, cs1_i = slope(cpu[("small", "ray1", 1)], cpu[("small", "ray1", 3)], sn)

    def maxrss(key):
        files = store.read_files(res[key].out)
        return float(max(files.column("worker_maxrss_mb").to_pylist()))

    out = {
        "parallel_efficiency": round(r1_s / (args.cpus * rc_s), 3),
        "ray_overhead_vs_loop": round(r1_s / loop_s - 1, 3),
        "small_files_overhead_vs_loop": round(s1_s / sl_s - 1, 3),
        "realtime_factor_per_core": round(args.seconds / r1_s, 2),
        "cpus": args.cpus,
        "normal_clip_s": args.seconds, "n": n, "small_n": sn,
        "per_file_s": {"loop": round(loop_s, 3), "ray1": round(r1_s, 3), f"ray{args.cpus}": round(rc_s, 3)},
        "per_small_file_s": {"loop": round(sl_s, 4), "ray1": round(s1_s, 4)},
        "startup_s": {"ray1": round(r1_i, 1), f"ray{args.cpus}": round(rc_i, 1), "small_ray1": round(s1_i, 1),
                      "ray_init_median": round(float(np.median(inits)), 1),
                      "ray_init_all": [round(x, 1) for x in inits]},
        "cpu_s_per_file": {"loop": round(cl, 3), "ray1": round(c1, 3), f"ray{args.cpus}": round(cc, 3),
                           "small_loop": round(csl, 4), "small_ray1": round(cs1, 4)},
        "startup_cpu_s": {"ray1": round(c1_i, 1), f"ray{args.cpus}": round(cc_i, 1)},
        "ray_cpu_overhead_vs_loop": round(c1 / cl - 1, 3),
        "ray_cpu_overhead_vs_loop_all_cores": round(cc / cl - 1, 3),
        "small_files_cpu_overhead_vs_loop": round(cs1 / csl - 1, 3),
        "worker_maxrss_mb": {"normal": round(maxrss(("normal", "ray1", 3, "res")), 0),
                             "small": round(maxrss(("small", "ray1", 3, "res")), 0)},
        "driver_maxrss_mb": round(psutil.Process().memory_info().rss / 2**20, 0),
        "store_mb_per_audio_hour": round(
            sum(p.stat().st_size for p in (Path(res[("normal", "ray1", 3, "res")].out) / "segments").glob("*"))
            / 2**20 / (3 * n * args.seconds / 3600), 0),
        "loadavg_start_end": [round(load0[0], 1), round(os.getloadavg()[0], 1)],
        "total_s": round(time.perf_counter() - t_all, 0),
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
