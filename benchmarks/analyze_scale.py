"""Scale benchmark of `genaudio analyze`: a generated features store of 100,000 segments x 1,000
summary columns, full analysis (supervised + unsupervised + plots + report) in a child process.

Reports wall time and the child's peak RSS, per-stage timings, and the sample sizes the analysis
used (large inputs are subsampled per method, see docs/analyze.md). Target: < 5 min, < 8 GB on a
2-core machine.

    python benchmarks/analyze_scale.py            # 100,000 x 1,000
    python benchmarks/analyze_scale.py --quick    # 10,000 x 200

Last line: one JSON object {"rows", "features", "seconds", "peak_rss_mb", ...}.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GROUPS = ["mfcc", "chroma", "spectral", "rhythm", "energy", "tonal", "mel", "contrast", "pitch", "timbre"]
STATS = ["mean", "std", "min", "max", "median"]


def generate(root: Path, *, rows: int, columns: int, classes: int = 8, seg_per_file: int = 50, seed: int = 0) -> dict:
    """A features store with latent low-rank structure, redundant columns and a class signal.

    Each group holds columns driven by a few group-level latent factors (so columns are
    correlated, as summary statistics of one feature are); classes shift the factors of the first
    three groups only, so those are the informative ones.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "segments").mkdir(exist_ok=True)
    n_files = max(2, rows // seg_per_file)
    file_of_row = np.repeat(np.arange(n_files), seg_per_file)[:rows]
    if len(file_of_row) < rows:
        file_of_row = np.concatenate([file_of_row, np.full(rows - len(file_of_row), n_files - 1)])
    y_file = rng.integers(0, classes, n_files)
    y = y_file[file_of_row]
    per_group = columns // len(GROUPS)
    names, groups_of = [], {}
    meta = {}
    for gi, g in enumerate(GROUPS):
        n_here = per_group + (1 if gi < columns % len(GROUPS) else 0)
        # two catalog features per group; names like mfcc_a_03_mean
        for k in range(n_here):
            feat = f"{g}_{'ab'[k % 2]}"
            dim, stat = divmod(k // 2, len(STATS))
            names.append(f"{feat}_{dim:02d}_{STATS[stat]}")
            meta.setdefault(feat, {"group": g, "dims": 0, "frame": False})
            meta[feat]["dims"] = max(meta[feat]["dims"], dim + 1)
            groups_of[names[-1]] = gi
    col_group = np.array([groups_of[c] for c in names])
    data: dict[str, pa.Array] = {
        "file_id": pa.array([f"file{f:05d}" for f in file_of_row]),
        "path": pa.array([f"/audio/file{f:05d}.wav" for f in file_of_row]),
        "label": pa.array([f"class{c}" for c in y]),
        "segment": pa.array(np.zeros(rows, np.int32)), "start_s": pa.array(np.zeros(rows)),
        "duration_s": pa.array(np.full(rows, 5.0)),
    }
    class_shift = rng.standard_normal((classes, len(GROUPS), 4)) * 0.6
    class_shift[:, 3:, :] = 0.0  # groups 3.. carry no class information
    for gi in range(len(GROUPS)):
        factors = rng.standard_normal((rows, 4)).astype(np.float32) + class_shift[y, gi, :]
        cols = np.nonzero(col_group == gi)[0]
        load = rng.standard_normal((4, len(cols))).astype(np.float32)
        block = factors @ load + rng.standard_normal((rows, len(cols))).astype(np.float32) * 0.7
        for j, c in enumerate(cols):
            data[names[c]] = pa.array(block[:, j])
        del block
    pq.write_table(pa.table(data), root / "segments" / "part-0.parquet", row_group_size=20_000)
    fids = sorted(set(f"file{f:05d}" for f in range(n_files)))
    pq.write_table(pa.table({"file_id": fids}), root / "files.parquet")
    (root / "manifest.json").write_text(json.dumps({"kind": "features", "features": meta,
                                                    "counts": {"segments": rows, "files_ok": n_files}}))
    return {"files": n_files, "classes": classes, "informative_groups": GROUPS[:3]}


CHILD = """
import json, sys, time
from genaudio.analyze import AnalyzeConfig, analyze
t = time.perf_counter()
r = analyze(sys.argv[1], sys.argv[2], AnalyzeConfig(seed=0))
print(json.dumps({"seconds": time.perf_counter() - t, "timings": r.timings, "sizes": r.sample_sizes,
                  "accuracy": float(sum(r.supervised["accuracy"]) / len(r.supervised["accuracy"])),
                  "subset": r.subset["groups"], "notes": r.notes}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=1_000)
    ap.add_argument("--quick", action="store_true", help="10,000 x 200 (a minute)")
    ap.add_argument("--keep", action="store_true", help="keep the generated store and report")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.features = 10_000, 200
    work = Path(tempfile.mkdtemp(prefix="analyze_scale_"))
    try:
        t = time.perf_counter()
        info = generate(work / "store", rows=args.rows, columns=args.features)
        gen_s = time.perf_counter() - t
        print(f"generated {args.rows:,} x {args.features:,} store in {gen_s:.1f} s ({info['files']} files)",
              file=sys.stderr)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(work / "store"), str(work / "report")],
                              capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"analysis failed (exit {proc.returncode})")
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mb = ru.ru_maxrss / 1024  # KiB on Linux
        cpu_s = ru.ru_utime + ru.ru_stime  # CPU time: a fairer figure than wall time on a shared machine
        import os  # noqa: PLC0415

        load = os.getloadavg()[0]
        for k, v in child["timings"].items():
            print(f"  {k:32s} {v:8.1f}", file=sys.stderr)
        for n in child["notes"]:
            print(f"  note: {n}", file=sys.stderr)
        print(f"  accuracy {child['accuracy']:.3f}; recommended groups {child['subset']} "
              f"(informative by construction: {info['informative_groups']})", file=sys.stderr)
        result = {
            "rows": args.rows, "features": args.features, "seconds": round(wall, 1),
            "peak_rss_mb": round(peak_mb, 1),
            "analysis_seconds": round(child["seconds"], 1), "cpu_seconds": round(cpu_s, 1),
            "load_average_1min": round(load, 1), "generate_seconds": round(gen_s, 1),
            "sample_sizes": child["sizes"], "stage_seconds": {k: round(v, 1) for k, v in child["timings"].items()},
            "accuracy": round(child["accuracy"], 4), "recommended_groups": child["subset"],
            "within_target": bool(wall < 300 and peak_mb < 8192),
        }
        print(json.dumps(result))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
