"""genaudio extract: discovery, the per-file function, and the Ray Data pipeline end to end.

Real files, real librosa, real Ray (the module's ``ray_local``, a killed driver in a subprocess,
and a ``ray.cluster_utils.Cluster`` at the end of the module, after ``ray_local`` is shut down).
Most runs use a small feature set so that actor warm-up and analysis stay short.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import soundfile as sf
import yaml
from click.testing import CliRunner

from genaudio import extract as ex
from genaudio import store
from genaudio.cli import main
from genaudio.config import FeatureConfig, SegmentConfig, load
from genaudio.errors import ConfigError

from badfiles import BAD_CORPUS_CONFIG, LONG_LIMIT_S, make_bad_corpus

ROOT = Path(__file__).resolve().parents[1]
SMALL_FEATURES = {"features": ["rms", "zero_crossing_rate", "spectral_centroid", "mfcc"],
                  "frame_features": ["mfcc", "rms"]}


def _tone(path: Path, seconds: float, sr: int = 22050, freq: float = 220.0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    y = 0.2 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), sr, subtype="PCM_16")
    return path


def _config_file(tmp_path: Path, **sections) -> Path:
    data = {"features": dict(SMALL_FEATURES)}
    for k, v in sections.items():
        data[k] = v
    p = tmp_path / f"cfg-{abs(hash(repr(sorted(data.items())))) % 10**8}.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _small_config(**segment) -> ex.ExtractConfig:
    return ex.ExtractConfig(features=FeatureConfig(features=tuple(SMALL_FEATURES["features"]),
                                                   frame_features=tuple(SMALL_FEATURES["frame_features"])),
                            segment=SegmentConfig(**segment) if segment else SegmentConfig())


def _check_exactly_once(out: Path, paths: list[str]) -> tuple[set, set]:
    """Every input is in files.parquet once, ok files have segments, failed ones an error row."""
    files = store.read_files(out)
    seg = store.read_segments(out, summary_only=True)
    errs = store.read_errors(out)
    assert sorted(files.column("path").to_pylist()) == sorted(paths)
    ok = {r["file_id"] for r in files.to_pylist() if r["status"] == "ok"}
    failed = {r["file_id"] for r in files.to_pylist() if r["status"] == "failed"}
    assert ok.isdisjoint(failed) and len(ok) + len(failed) == len(paths)
    assert set(seg.column("file_id").to_pylist()) == ok
    assert sorted(errs.column("file_id").to_pylist()) == sorted(failed)
    keys = list(zip(seg.column("file_id").to_pylist(), seg.column("segment").to_pylist()))
    assert len(keys) == len(set(keys)), "duplicate segment rows"
    return ok, failed


# ---------------------------------------------------------------------------------------------
# Discovery (no Ray)


def test_discover_folders_globs_and_lists(tmp_path):
    a = _tone(tmp_path / "corpus" / "piano" / "a.wav", 0.5)
    b = _tone(tmp_path / "corpus" / "drums" / "deep" / "b.wav", 0.5)
    (tmp_path / "corpus" / "README.md").write_text("about this corpus")
    (tmp_path / "corpus" / ".hidden.wav").write_bytes(b"x")
    odd = tmp_path / "corpus" / "piano" / "take.bin"
    odd.write_bytes(b"\0" * 100)
    skipped: list[str] = []
    files = ex.discover([tmp_path / "corpus"], skipped=skipped)
    assert [Path(f.path).name for f in files] == ["b.wav", "a.wav", "take.bin"]  # sorted by path
    labels = {Path(f.path).name: f.label for f in files}
    assert labels == {"a.wav": "piano", "b.wav": "deep", "take.bin": "piano"}  # parent folder
    assert [Path(s).name for s in skipped] == ["README.md"]
    assert len(ex.discover([tmp_path / "corpus"], all_files=True)) == 4
    assert [f.path for f in ex.discover([tmp_path / "corpus"], extensions=["WAV"])] \
        == [str(b.resolve()), str(a.resolve())]
    # globs; the same file twice is one input
    g = ex.discover([str(tmp_path / "corpus" / "**" / "*.wav"), str(a)])
    assert sorted(Path(f.path).name for f in g) == ["a.wav", "b.wav"]
    # CSV list with labels, relative to the list; plain text list
    (tmp_path / "list.csv").write_text("path,label\ncorpus/piano/a.wav,keys\ncorpus/drums/deep/b.wav,\n")
    c = {Path(f.path).name: f.label for f in ex.discover([tmp_path / "list.csv"])}
    assert c == {"a.wav": "keys", "b.wav": "deep"}
    (tmp_path / "list.txt").write_text(f"# my files\n{b}\n")
    assert [f.path for f in ex.discover([tmp_path / "list.txt"])] == [str(b.resolve())]
    with pytest.raises(ConfigError, match="no such file"):
        ex.discover([tmp_path / "nope"])
    (tmp_path / "bad.csv").write_text("path\nmissing.wav\n")
    with pytest.raises(ConfigError, match="missing"):
        ex.discover([tmp_path / "bad.csv"])


def test_file_id_is_stable_and_changes_with_the_file(tmp_path):
    p = _tone(tmp_path / "x" / "a.wav", 0.5)
    first = ex.discover([p])[0].file_id
    assert ex.discover([p])[0].file_id == first
    _tone(p, 0.7)
    os.utime(p, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert ex.discover([p])[0].file_id != first


# ---------------------------------------------------------------------------------------------
# The per-file function (no Ray)


def test_extract_file_rows_and_errors_never_raise(tmp_path):
    expected = make_bad_corpus(tmp_path / "bad")
    cfg = ex.ExtractConfig(audio=BAD_CORPUS_CONFIG, features=_small_config().features)
    schema, shapes = ex.segment_schema(cfg)
    assert shapes == {"mfcc": (20, 216), "rms": (1, 216)}  # 5 s at 22050 Hz, hop 512
    for f in ex.discover([tmp_path / "bad"], all_files=True):
        name = Path(f.path).name
        rows, err = ex.extract_file(f, cfg)
        if expected[name] == "ok":
            assert err is None, (name, err)
            assert rows.schema == schema and len(rows) >= 1
            assert rows.column("segment").to_pylist() == list(range(len(rows)))
            m = rows.column("frames_mfcc").combine_chunks()
            assert (m.type.list_size, m.type.value_type.list_size) == (20, 216)
        else:
            assert rows is None, name
            assert err["error_type"] == expected[name].__name__, (name, err)
            assert err["stage"] in ("probe", "decode") and err["path"] == f.path and err["message"]
    long = next(f for f in ex.discover([tmp_path / "bad"]) if f.path.endswith("too_long.wav"))
    assert ex.extract_file(long, cfg)[1]["stage"] == "probe"  # refused from the header alone
    # --float16 halves the frame matrices; summary columns stay float32
    silence = next(f for f in ex.discover([tmp_path / "bad"]) if f.path.endswith("silence.wav"))
    rows, err = ex.extract_file(silence, dataclasses.replace(cfg, float16=True))
    assert err is None
    assert rows.schema.field("frames_mfcc").type.value_type.value_type == pa.float16()
    assert rows.schema.field("mfcc_00_mean").type == pa.float32()


def test_a_group_is_one_table_and_a_file_that_cannot_be_written_is_a_failed_row(samples_dir):
    """The actors build one table per group (the per-table cost of 5,447 columns paid once); rows
    equal extract_file's; a file whose rows cannot become a table is a failed status row
    (stage write), the others are kept."""
    cfg = ex.ExtractConfig(features=_small_config().features)
    files = ex.discover([samples_dir / "piano", samples_dir / "drums"])[:3]
    analysed = [(af, ex.analyse_file(af, cfg)[0]) for af in files]
    group = ex.rows_table([r for _, r in analysed], cfg)
    single = pa.concat_tables([ex.rows_table([r], cfg) for _, r in analysed])   # what extract_file returns
    assert group.equals(single)
    assert single.slice(0, len(analysed[0][1])).equals(ex.extract_file(files[0], cfg)[0])
    broken = analysed[1][1]
    broken.summaries[0] = broken.summaries[0][:-1]            # one value short: no table can hold it
    status = [{"path": af.path, "status": "ok", "segments": len(r), "audio_seconds": 1.0} for af, r in analysed]
    table = ex._group_table(analysed, cfg, status)
    assert set(table.column("path").to_pylist()) == {files[0].path, files[2].path}
    assert status[1]["status"] == "failed" and status[1]["stage"] == "write" and status[1]["segments"] == 0
    assert status[0]["status"] == status[2]["status"] == "ok"


@pytest.mark.parametrize("sr,usable", [(12000, False), (12900, True)])
def test_a_sample_rate_too_low_for_a_feature_is_refused_up_front_as_the_features_would(sr, usable):
    """librosa refuses bands above the Nyquist frequency (the CQT, spectral contrast) file by file;
    the config check refuses the same rates before the run, and only those."""
    from genaudio.features import compute

    cfg = load(ex.ExtractConfig, {"audio": {"sample_rate": sr}})
    y = np.random.default_rng(0).standard_normal(2 * sr).astype(np.float32) * 0.1
    if usable:
        ex.check_features(cfg)
        compute(y, sr, features=list(cfg.summary_features), config=cfg.features)
    else:
        with pytest.raises(ConfigError, match=f"sample_rate {sr} Hz is too low.*spectral_contrast"):
            ex.check_features(cfg)
        with pytest.raises(Exception, match="Nyquist"):   # librosa's ParameterError
            compute(y, sr, features=list(cfg.summary_features), config=cfg.features)


def test_config_sections_and_feature_subset_file(tmp_path):
    from genaudio.cli.extract import _features_option

    cfg = load(ex.ExtractConfig, {"segment": {"seconds": 2}, "float16": True})
    assert cfg.segment.seconds == 2 and cfg.float16
    assert cfg.hash() != load(ex.ExtractConfig, {"segment": {"seconds": 2}}).hash()
    with pytest.raises(ConfigError, match="unknown option.*audoi"):
        load(ex.ExtractConfig, {"audoi": {}})
    with pytest.raises(ConfigError, match="mono"):
        load(ex.ExtractConfig, {"audio": {"mono": False}})
    # the subset file `genaudio analyze` writes: a `features:` list (YAML or JSON)
    sub = tmp_path / "subset.yaml"
    sub.write_text("features: [mfcc, rms]\nscores: {mfcc: 0.5}\n")
    assert _features_option((str(sub),)) == {"features": ["mfcc", "rms"]}
    (tmp_path / "s.json").write_text('{"features": ["rms"], "frame_features": ["rms"]}')
    assert _features_option((str(tmp_path / "s.json"), "mfcc")) == {
        "features": ["rms", "mfcc"], "frame_features": ["rms"]}
    with pytest.raises(ConfigError, match="unknown feature"):
        ex.check_features(load(ex.ExtractConfig, {"features": {"features": ["nope"]}}))


# ---------------------------------------------------------------------------------------------
# Ray Data pipeline on the module's local Ray


@pytest.mark.slow
def test_samples_end_to_end_and_rerun_is_a_noop(sample_files, samples_dir, ray_local, tmp_path):
    import duckdb
    import pandas as pd
    import polars as pl

    out = tmp_path / "store"
    r = CliRunner().invoke(main, ["extract", str(samples_dir), "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert "files ok 12, failed 0" in r.output and "sidecar" in r.output
    m = store.read_manifest(out)
    assert m["kind"] == "features" and m["counts"]["files_ok"] == len(sample_files)
    assert m["counts"]["segments"] > len(sample_files)
    assert set(m["features"]) >= set(FeatureConfig().frame_features)
    seg_dir = str(out / "segments" / "*.parquet")
    # every table readable without Ray or genaudio
    pdf = pd.read_parquet(out / "segments")
    assert len(pdf) == m["counts"]["segments"]
    assert {"file_id", "path", "label", "segment", "start_s", "duration_s", "mfcc_03_mean"} <= set(pdf)
    assert set(pdf["label"]) == {"bells", "drums", "noise", "piano", "strings"}
    plf = pl.read_parquet(seg_dir)
    assert plf.height == len(pdf)
    assert duckdb.sql(f"select count(*) from read_parquet('{seg_dir}')").fetchall()[0][0] == len(pdf)
    for t in (store.FILES, store.ERRORS):
        assert len(pd.read_parquet(out / t)) == len(pl.read_parquet(out / t)) == \
            duckdb.sql(f"select count(*) from read_parquet('{out / t}')").fetchall()[0][0]
    assert len(pd.read_parquet(out / store.FILES)) == len(sample_files)
    # frame matrices: one fixed shape per feature, as the manifest says
    for name, (dims, t) in m["frame_shapes"].items():
        _, frames = store.read_frames(out, name)
        assert frames.shape == (len(pdf), dims, t) and frames.dtype == np.float32
        assert np.isfinite(frames).all()
    assert tuple(plf.schema["frames_log_mel"].shape) == tuple(m["frame_shapes"]["log_mel"])
    before = store.read_segments(out, summary_only=True).sort_by([("path", "ascending"), ("segment", "ascending")])
    parts = sorted((out / "segments").iterdir())
    r2 = CliRunner().invoke(main, ["extract", str(samples_dir), "--out", str(out), "-q"])
    assert r2.exit_code == 0 and "0 processed, 12 already done" in r2.output, r2.output
    assert sorted((out / "segments").iterdir()) == parts
    after = store.read_segments(out, summary_only=True).sort_by([("path", "ascending"), ("segment", "ascending")])
    assert after.equals(before)


def test_bad_corpus_every_file_once_strict_and_changed_config(ray_local, tmp_path):
    expected = make_bad_corpus(tmp_path / "corpus" / "bad")
    good = [_tone(tmp_path / "corpus" / "good" / f"g{i}.wav", 6.0, freq=200 + 40 * i, seed=i) for i in range(3)]
    cfg = _config_file(tmp_path, audio={"max_duration_s": LONG_LIMIT_S})
    out = tmp_path / "store"
    args = ["extract", str(tmp_path / "corpus"), "--out", str(out), "--config", str(cfg), "--all-files", "-q"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output  # failures are reported, not fatal
    paths = sorted(ex.discover([tmp_path / "corpus"], all_files=True), key=lambda f: f.path)
    ok, failed = _check_exactly_once(out, [f.path for f in paths])
    by_name = {Path(f.path).name: f.file_id for f in paths}
    for name, outcome in expected.items():
        assert (by_name[name] in ok) == (outcome == "ok"), name
    assert {by_name[g.name] for g in good} <= ok
    errs = {Path(e["path"]).name: e for e in store.read_errors(out).to_pylist()}
    for name, outcome in expected.items():
        if outcome != "ok":
            assert errs[name]["error_type"] == outcome.__name__, errs[name]
    n_failed = sum(1 for v in expected.values() if v != "ok")
    assert f"failed {n_failed}" in r.output and "errors.parquet" in r.output
    # frame matrices keep one shape even for 6-channel, 8 kHz and 96 kHz files
    _, frames = store.read_frames(out, "mfcc")
    assert frames.shape[1:] == (20, 216)

    # --strict: same store (a no-op rerun), now a failing exit code
    r = CliRunner().invoke(main, args + ["--strict"])
    assert r.exit_code == 1 and "0 processed" in r.output, r.output

    # a changed config recomputes every file
    h1 = store.read_manifest(out)["config_hash"]
    n1 = store.read_manifest(out)["counts"]["segments"]
    r = CliRunner().invoke(main, args + ["--segment-seconds", "2"])
    assert r.exit_code == 0 and f"{len(paths)} processed, 0 already done" in r.output, r.output
    m = store.read_manifest(out)
    assert m["config_hash"] != h1 and m["config"]["segment"]["seconds"] == 2.0
    assert m["counts"]["segments"] > n1
    _check_exactly_once(out, [f.path for f in paths])
    _, frames = store.read_frames(out, "mfcc")
    assert frames.shape[1:] == (20, 87)  # 2 s at 22050 Hz, hop 512

    # nothing succeeded -> non-zero exit
    r = CliRunner().invoke(main, ["extract", str(tmp_path / "corpus" / "bad" / "tune.mid"),
                                  "--out", str(tmp_path / "none"), "--config", str(cfg), "-q"])
    assert r.exit_code == 1 and "no file succeeded" in r.output


def test_inputs_that_change_are_recomputed_and_vanished_ones_dropped(ray_local, tmp_path):
    files = [_tone(tmp_path / "c" / "x" / f"f{i}.wav", 3.0, seed=i) for i in range(3)]
    cfg = _small_config()
    out = tmp_path / "store"
    res = ex.run_extract([tmp_path / "c"], out, config=cfg, progress=False)
    assert res.files_ok == 3 and res.processed == 3
    files[0].unlink()
    _tone(files[1], 4.0, seed=9)  # modified: new identity
    os.utime(files[1], ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    res = ex.run_extract([tmp_path / "c"], out, config=cfg, progress=False)
    assert res.files == 2 and res.processed == 1 and res.skipped == 1
    _check_exactly_once(out, [str(files[1].resolve()), str(files[2].resolve())])
    seg = store.read_segments(out, summary_only=True)
    mine = seg.filter(pc.equal(seg.column("path"), str(files[1].resolve())))
    assert mine.column("duration_s").to_pylist() == [4.0]


def test_a_rerun_retries_files_whose_worker_died_and_keeps_other_failures(ray_local, tmp_path):
    """A crash row (the worker died on every attempt: an OOM kill, a lost cluster) is not the
    file's fault for good: the next run tries it again; a decode failure stays."""
    from tqdm import tqdm

    files = [_tone(tmp_path / "c" / "x" / f"f{i}.wav", 3.0, seed=i) for i in range(2)]
    (tmp_path / "c" / "x" / "broken.wav").write_bytes(b"RIFF\x00\x00not audio")
    cfg = _small_config()
    out = tmp_path / "store"
    res = ex.run_extract([tmp_path / "c"], out, config=cfg, progress=False)
    assert (res.files_ok, res.files_failed) == (2, 1)
    # as a run whose workers kept dying on f0 leaves it: a worker-stage error row instead of its segments
    f0 = next(a for a in ex.discover([tmp_path / "c"]) if a.path == str(files[0].resolve()))
    store.drop_files(out, [f0.file_id])
    ex._commit_crashed(out, [f0], cfg.hash(), tqdm(disable=True))
    assert store.read_status(out).to_pandas().set_index("file_id").loc[f0.file_id, "stage"] == ex.CRASH_STAGE
    res = ex.run_extract([tmp_path / "c"], out, config=cfg, progress=False)
    assert (res.processed, res.skipped, res.files_ok, res.files_failed) == (1, 2, 2, 1)
    _check_exactly_once(out, [str(f.resolve()) for f in files] + [str((tmp_path / "c" / "x" / "broken.wav").resolve())])


@pytest.mark.slow
def test_driver_killed_mid_run_then_rerun_completes(ray_local, tmp_path):
    files = [_tone(tmp_path / "c" / "k" / f"f{i:02d}.wav", 6.0, freq=150 + 20 * i, seed=i) for i in range(16)]
    cfg = _config_file(tmp_path)
    out = tmp_path / "store"
    cmd = [sys.executable, "-m", "genaudio", "extract", str(tmp_path / "c"), "--out", str(out),
           "--config", str(cfg), "--segment-seconds", "2", "--num-cpus", "1", "-q"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own embedded Ray
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status_dir = out / store.STATE / store.STATUS
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if status_dir.is_dir() and len(list(status_dir.glob("*.parquet"))) >= 1:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        committed = len(list(status_dir.glob("*.parquet")))
        assert committed >= 1
    finally:
        # SIGKILL the driver and the Ray it started (its own session): nothing can clean up
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / store.MANIFEST).exists()  # an interrupted store is not readable as complete
    done_before = len(store.read_status(out))
    assert 0 < done_before < len(files)
    res = ex.run_extract([tmp_path / "c"], out, config=load(ex.ExtractConfig, cfg, {"segment.seconds": 2}),
                         progress=False)
    assert res.skipped == done_before and res.processed == len(files) - done_before
    ok, failed = _check_exactly_once(out, [str(f.resolve()) for f in files])
    assert len(ok) == len(files) and not failed
    assert store.read_manifest(out)["counts"]["segments"] == 3 * len(files)


# ---------------------------------------------------------------------------------------------
# Multi-node: a real Ray cluster of separate raylets (after the module's local Ray is shut down)


@pytest.fixture
def cluster(ray_local):
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()  # one Ray per process: ray_local's own teardown then finds nothing to do
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [c.add_node(num_cpus=1), c.add_node(num_cpus=1)]
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, configure_logging=False)
    try:
        yield c, workers
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.mark.slow
def test_cluster_work_lands_on_both_workers_and_survives_losing_one(cluster, tmp_path):
    c, workers = cluster
    # enough work that both workers' actors are warm and busy before a node goes away
    files = [_tone(tmp_path / "c" / "n" / f"f{i:02d}.wav", 16.0, freq=150 + 20 * i, seed=i) for i in range(20)]
    cfg = ex.ExtractConfig(features=FeatureConfig(features=("rms", "mfcc"), frame_features=("mfcc",)),
                           segment=SegmentConfig(seconds=2.0))
    out = tmp_path / "store"
    result: dict = {}

    def run():
        try:
            result["res"] = ex.run_extract([tmp_path / "c"], out, config=cfg, progress=False)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            result["error"] = e

    def nodes_so_far() -> set:
        return set(store.read_status(out).column("node_id").to_pylist()) if out.is_dir() else set()

    t = threading.Thread(target=run)
    t.start()
    deadline = time.time() + 400
    while time.time() < deadline and t.is_alive() and len(nodes_so_far()) < 2:
        time.sleep(0.2)
    assert t.is_alive(), "the run ended before both workers committed work"
    assert nodes_so_far() == {w.node_id for w in workers}  # head has no CPU: only workers extract
    # remove a worker node while its actor has work in flight: Ray restarts the task elsewhere
    c.remove_node(workers[1])
    t.join(timeout=400)
    assert not t.is_alive(), "extraction did not finish after a node was removed"
    assert "error" not in result, result.get("error")
    ok, failed = _check_exactly_once(out, [str(f.resolve()) for f in files])
    assert len(ok) == len(files) and not failed
    assert result["res"].segments == store.read_manifest(out)["counts"]["segments"] == 8 * len(files)
    assert set(store.read_files(out).column("node_id").to_pylist()) == {w.node_id for w in workers}
