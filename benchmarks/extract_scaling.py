"""How `genaudio extract` scales, where its time goes, and how close it stays to the feature compute.

Side by side in one run, on the same corpora (generated music-like clips, and 30-s excerpts of
real tracks of the development corpus re-encoded as Ogg Vorbis, ``--real``):

- ``stages``:  one pass over the N-file corpus in this process, timing each stage of the per-file
               work apart (CPU seconds): decode + resample (``iter_segments``), the feature
               compute alone (``features.compute`` per segment), the summary functionals, the
               Arrow table, the Parquet encoding; ``compute`` is the reference the pipeline is
               held to;
- ``loop``:    the best plain loop a user would write: :func:`genaudio.extract.analyse_file` per
               file, one table per ``--row-group`` segments (:func:`genaudio.extract.rows_table`)
               into ONE ``ParquetWriter``, after warm-up;
- ``ray1``:    :func:`genaudio.extract.run_extract` on an embedded Ray with 1 CPU (one actor);
- ``rayC``:    the same with all cores (``--cpus``, default ``os.cpu_count()``).

Each is timed on N and 3N files; the steady-state cost per file is the slope
``(T(3N) - T(N)) / 2N``, the intercept ``T(N) - N * slope`` the fixed start-up (actor start,
librosa/numba warm-up), reported apart; ``ray.init`` is timed apart and left out of T. A corpus of
short clips (1 s each, segmented at 1 s) measures small-file overhead (loop vs ray1). The
generated-clip measurements (stages, loop, ray1, rayC on N and 3N files) are repeated ``--repeat``
times, interleaved: each repetition's ratios come from its own adjacent measurements
(``generated.runs``, the spread), the headline is their median.

The last line is one JSON object::

    {"pipeline_vs_compute": (decode + compute) CPU s per file / ray1 CPU s per file (generated
         clips; "pipeline_vs_compute_only" leaves decode out of the numerator),
     "parallel_efficiency": slope_ray1 / (cpus * slope_raycpus),
     "ray_overhead_vs_loop": slope_ray1 / slope_loop - 1,
     "real": {the same three on the real excerpts}, "stages_cpu_s_per_file": {...}, ...}

CPU seconds (this process and every Ray process it started) do not grow when other jobs share
the machine, wall seconds do; the load average is reported.

Usage: ``python benchmarks/extract_scaling.py [--quick] [--n N] [--repeat R] [--real N] [--small-n N] [--cpus C]``.
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

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from genaudio import audio as ga  # noqa: E402
from genaudio import extract as ex  # noqa: E402
from genaudio import features as gf  # noqa: E402
from genaudio import store  # noqa: E402
from genaudio.config import AudioConfig, SegmentConfig  # noqa: E402
from genaudio.infra import connect_ray  # noqa: E402

CORPUS = Path.home() / ".cache" / "genaudio-dev-corpus"  # ../shared/corpus/fetch.sh


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


def real_excerpts(root: Path, n: int, seconds: float, offset: int = 0) -> list[Path]:
    """``n`` excerpts of ``seconds`` from the real tracks of :data:`CORPUS` (labels in turn, several
    excerpts per track when needed), re-encoded as 44.1 kHz stereo Ogg Vorbis so decoding is real."""
    labels = [sorted(p for p in d.iterdir() if p.is_file()) for d in sorted(CORPUS.iterdir()) if d.is_dir()]
    cfg = AudioConfig(sample_rate=44100, mono=False)
    out = []
    for i in range(offset, offset + n):
        tracks = labels[i % len(labels)]
        src = tracks[(i // len(labels)) % len(tracks)]  # then later excerpts of the same tracks
        duration = ga.probe(src).duration_s
        start = (20.0 + seconds * (i // len(labels))) % max(duration - seconds, 1.0)
        y, _ = ga.load(src, config=cfg, offset=start, duration=seconds)
        y = np.atleast_2d(y)
        y = np.vstack([y, y]) if y.shape[0] == 1 else y[:2]
        path = root / src.parent.name / f"x{i:04d}.ogg"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, y.T.astype(np.float32), 44100, format="OGG", subtype="VORBIS")
        out.append(path)
    return out


def _cpu(proc) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def time_stages(files: list[Path], cfg: ex.ExtractConfig) -> dict[str, float]:
    """CPU seconds per file of each stage of the per-file work, timed apart (warm already)."""
    names = list(dict.fromkeys(cfg.summary_features + cfg.frame_features))
    schema, shapes = ex.segment_schema(cfg)
    t = dict.fromkeys(("decode", "compute", "summary", "table", "parquet"), 0.0)
    for af in ex.discover(files):
        c0 = time.process_time()
        segs = list(ga.iter_segments(af.path, audio=cfg.audio, segment=cfg.segment))
        t["decode"] += time.process_time() - c0
        cols = {f.name: [] for f in schema if f.name in store.IDENTITY_COLUMNS or f.name.startswith(store.FRAME_PREFIX)}
        summaries = []
        for seg, y in segs:
            c0 = time.process_time()
            computed = gf.compute(y, cfg.audio.sample_rate, config=cfg.features, features=names)
            c1 = time.process_time()
            summaries.append(gf.summary_vector({k: computed[k] for k in cfg.summary_features}, config=cfg.features))
            t["compute"] += c1 - c0
            t["summary"] += time.process_time() - c1
            for k, v in (("file_id", af.file_id), ("path", af.path), ("label", af.label), ("segment", seg.index),
                         ("start_s", seg.start_s), ("duration_s", seg.duration_s)):
                cols[k].append(v)
            for name in shapes:
                cols[store.FRAME_PREFIX + name].append(np.asarray(computed[name], np.float32).reshape(shapes[name]))
        c0 = time.process_time()
        table = ex._rows_table(cols, summaries, schema, shapes, cfg.float16)
        c1 = time.process_time()
        store.table_to_parquet_bytes(table)
        t["table"] += c1 - c0
        t["parquet"] += time.process_time() - c1
    return {k: v / len(files) for k, v in t.items()}


def time_loop(files: list[Path], cfg: ex.ExtractConfig, out: Path, row_group: int) -> tuple[float, float]:
    """The best plain loop: the per-file analysis (``analyse_file``), one table and one row group
    per ``row_group`` segments (``rows_table``, as the actors build one per group), one Parquet
    writer (warm already). Returns (wall seconds, CPU seconds)."""
    manifest = ex.discover(files)
    schema, _ = ex.segment_schema(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    pending: list = []
    with pq.ParquetWriter(out, schema, **store.parquet_options(schema)) as writer:
        for af in manifest:
            rows, err = ex.analyse_file(af, cfg)
            assert err is None, err
            pending.append(rows)
            if sum(len(r) for r in pending) >= row_group:
                writer.write_table(ex.rows_table(pending, cfg))
                pending = []
        if pending:
            writer.write_table(ex.rows_table(pending, cfg))
    return time.perf_counter() - t0, time.process_time() - c0


def time_ray(files: list[Path], cfg: ex.ExtractConfig, out: Path, cpus: int
             ) -> tuple[float, float, float, ex.ExtractResult]:
    """`run_extract` on a fresh embedded Ray of ``cpus`` CPUs, started and stopped inside the timing.

    Returns (wall s, CPU s of this process and every Ray process it started, Ray init s, result).
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


def measure(name: str, corpus: dict, cfg: ex.ExtractConfig, n: int, cpus_list, work: Path, row_group: int,
            inits: list, repeat: int = 1, stages: bool = True) -> dict:
    """Wall and CPU slopes (s per file) and intercepts of loop and Ray runs on one corpus, and the
    stages of the per-file work (``stages``).

    With ``repeat`` > 1 every measurement is taken ``repeat`` times, interleaved (loop, stages,
    ray1, rayC, then again): CPU seconds here move 10-15 % with what else runs on the shared
    cores (the same work took 0.13-0.16 CPU s per clip minutes apart), so each repetition's
    ratios are taken from its own, adjacent measurements (``runs``) and :func:`ratios` reports
    their median; the slopes of the median times are reported beside them.
    """
    wall, cpu, res, st_runs = {}, {}, {}, []
    for r in range(repeat):
        for k in (1, 3):
            w, c = time_loop(corpus[k], cfg, work / f"loop-{name}{k}.parquet", row_group)
            wall.setdefault(("loop", k), []).append(w)
            cpu.setdefault(("loop", k), []).append(c)
            log(f"{name} x{k} loop: {w:.1f} s (cpu {c:.1f} s)")
        if stages:  # between the loop and ray1, the two it is compared with
            st_runs.append(time_stages(corpus[1], cfg))
            log(f"{name} stages (CPU s per file): " + ", ".join(f"{k} {v:.3f}" for k, v in st_runs[-1].items()))
        for cpus in cpus_list:
            for k in (1, 3):
                w, c, t_init, res[(f"ray{cpus}", k)] = time_ray(corpus[k], cfg, work / f"ray{cpus}-{name}{k}", cpus)
                wall.setdefault((f"ray{cpus}", k), []).append(w - t_init)
                cpu.setdefault((f"ray{cpus}", k), []).append(c)
                inits.append(t_init)
                log(f"{name} x{k} ray {cpus} cpu: {w:.1f} s (cpu {c:.1f} s, ray init {t_init:.1f} s)")
    methods = ["loop"] + [f"ray{c}" for c in cpus_list]
    out = {"wall": {}, "cpu": {}, "startup": {}, "res": res, "runs": [],
           "stages": {k: float(np.median([s[k] for s in st_runs])) for k in st_runs[0]} if stages else None}
    for m in methods:
        out["wall"][m], out["startup"][m] = slope(float(np.median(wall[(m, 1)])), float(np.median(wall[(m, 3)])), n)
        out["cpu"][m], _ = slope(float(np.median(cpu[(m, 1)])), float(np.median(cpu[(m, 3)])), n)
    for r in range(repeat):  # each repetition on its own, for the spread
        out["runs"].append({"wall": {m: slope(wall[(m, 1)][r], wall[(m, 3)][r], n)[0] for m in methods},
                            "cpu": {m: slope(cpu[(m, 1)][r], cpu[(m, 3)][r], n)[0] for m in methods},
                            "stages": st_runs[r] if stages else None})
    return out


def log(msg: str) -> None:
    print(f"{msg}  [load {os.getloadavg()[0]:.1f}]", file=sys.stderr, flush=True)


def ratios(m: dict, cpus: int) -> dict:
    """The headline ratios of one corpus. ``pipeline_vs_compute`` holds the pipeline to the
    feature compute from the file (decode + ``features.compute``: what features_vs_librosa.py's
    real-time factor measures); ``pipeline_vs_compute_only`` to ``features.compute`` alone.
    With repetitions, the three headline ratios are the medians of each repetition's own (``runs``:
    a ratio of measurements minutes apart would carry the load's drift); the rest, and
    ``*_of_median_times``, come from the median times."""
    w, c, stages = m["wall"], m["cpu"], m["stages"]

    def main3(w, c, st):
        return {"pipeline_vs_compute": round((st["decode"] + st["compute"]) / c["ray1"], 3),
                "parallel_efficiency": round(w["ray1"] / (cpus * w[f"ray{cpus}"]), 3),
                "ray_overhead_vs_loop": round(w["ray1"] / w["loop"] - 1, 3)}

    out = main3(w, c, stages)
    out.update({"pipeline_vs_compute_only": round(stages["compute"] / c["ray1"], 3),
                "loop_vs_compute": round((stages["decode"] + stages["compute"]) / c["loop"], 3),
                "ray_cpu_overhead_vs_loop": round(c["ray1"] / c["loop"] - 1, 3),
                "per_file_s": {k: round(v, 3) for k, v in w.items()},
                "cpu_s_per_file": {k: round(v, 3) for k, v in c.items()},
                "startup_s": {k: round(v, 1) for k, v in m["startup"].items()}})
    if len(m["runs"]) > 1:
        runs = [main3(r["wall"], r["cpu"], r["stages"]) for r in m["runs"]]
        for k in list(runs[0]):
            out[f"{k}_of_median_times"] = out[k]
            out[k] = round(float(np.median([r[k] for r in runs])), 3)
        out["runs"] = {k: [r[k] for r in runs] for k in runs[0]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small corpora (a smoke run, noisy figures)")
    ap.add_argument("--n", type=int, default=40, help="N generated clips (the second size is 3N)")
    ap.add_argument("--seconds", type=float, default=15.0, help="length of a generated clip (s)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="repetitions of the generated-clip measurements (interleaved; medians, with the spread)")
    ap.add_argument("--real", type=int, default=6, help="N real 30-s excerpts (second size 3N; 0: none)")
    ap.add_argument("--small-n", type=int, default=100, help="N one-second clips (second size 3N)")
    ap.add_argument("--row-group", type=int, default=128, help="segments per row group of the loop's writer")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--keep", help="keep corpora and stores in this folder")
    args = ap.parse_args()
    if args.quick:
        args.n, args.small_n, args.seconds, args.real, args.repeat = 3, 30, 10.0, 2, 1
    import psutil

    work = Path(args.keep or tempfile.mkdtemp(prefix="genaudio-bench-"))
    load0 = os.getloadavg()
    t_all = time.perf_counter()
    cfg = ex.ExtractConfig()  # the default feature set and frame matrices: what users run
    cfg_small = ex.ExtractConfig(segment=SegmentConfig(seconds=1.0))
    corpora = {"generated": ({k: make_corpus(work / f"gen{k}", k * args.n, args.seconds, 44100, 2) for k in (1, 3)},
                             cfg, args.n, (1, args.cpus))}
    if args.real and CORPUS.is_dir():
        corpora["real"] = ({k: real_excerpts(work / f"real{k}", k * args.real, 30.0, offset=100 * k) for k in (1, 3)},
                           cfg, args.real, (1, args.cpus))
    corpora["small"] = ({k: make_corpus(work / f"small{k}", k * args.small_n, 1.0, 22050, 1, offset=10_000)
                         for k in (1, 3)}, cfg_small, args.small_n, (1,))
    ex.segment_schema(cfg)  # warm this process up (JIT) so the loop measures steady state only
    ex.segment_schema(cfg_small)

    inits: list[float] = []
    meas = {}
    for name, (corpus, c, n, cpus_list) in corpora.items():
        meas[name] = measure(name, corpus, c, n, cpus_list, work, args.row_group, inits,
                             repeat=args.repeat if name == "generated" else 1, stages=name != "small")
    stages = {k: m["stages"] for k, m in meas.items() if m["stages"]}

    gen = ratios(meas["generated"], args.cpus)
    out = {k: gen[k] for k in ("pipeline_vs_compute", "parallel_efficiency", "ray_overhead_vs_loop")}
    sm = meas["small"]
    out.update({
        "small_files_overhead_vs_loop": round(sm["wall"]["ray1"] / sm["wall"]["loop"] - 1, 3),
        "realtime_factor_per_core": round(args.seconds / gen["per_file_s"]["ray1"], 2),
        "compute_realtime_factor": round(args.seconds / (stages["generated"]["decode"]
                                                          + stages["generated"]["compute"]), 2),
        "generated": gen,
        "stages_cpu_s_per_file": {k: {s: round(v, 4) for s, v in st.items()} for k, st in stages.items()},
        "cpus": args.cpus, "generated_clip_s": args.seconds, "n": args.n, "repeat": args.repeat, "real_n": args.real,
        "small_n": args.small_n, "row_group": args.row_group,
        "per_small_file_s": {k: round(v, 4) for k, v in sm["wall"].items()},
        "ray_init_median_s": round(float(np.median(inits)), 1),
        "worker_maxrss_mb": round(max(store.read_files(meas["generated"]["res"][("ray1", 3)].out)
                                      .column("worker_maxrss_mb").to_pylist()), 0),
        "driver_maxrss_mb": round(psutil.Process().memory_info().rss / 2**20, 0),
        "loadavg_start_end": [round(load0[0], 1), round(os.getloadavg()[0], 1)],
        "total_s": round(time.perf_counter() - t_all, 0),
    })
    if "real" in meas:
        real = ratios(meas["real"], args.cpus)
        real["realtime_factor_per_core"] = round(30.0 / real["per_file_s"]["ray1"], 2)
        out["real"] = real
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
