"""The features store's write protocol and readers (no Ray: plain Arrow tables and files)."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genaudio import store
from genaudio.errors import StoreError


def _segments(file_ids, n_seg=2):
    rows = {"file_id": [], "path": [], "label": [], "segment": [], "start_s": [], "duration_s": [],
            "rms_00_mean": []}
    for fid in file_ids:
        for i in range(n_seg):
            rows["file_id"].append(fid)
            rows["path"].append(f"/data/{fid}.wav")
            rows["label"].append("x")
            rows["segment"].append(i)
            rows["start_s"].append(5.0 * i)
            rows["duration_s"].append(5.0)
            rows["rms_00_mean"].append(0.1 * i)
    t = pa.table(rows).cast(pa.schema([("file_id", pa.string()), ("path", pa.string()),
                                       ("label", pa.string()), ("segment", pa.int32()),
                                       ("start_s", pa.float64()), ("duration_s", pa.float64()),
                                       ("rms_00_mean", pa.float32())]))
    frames = np.arange(len(t) * 3 * 4, dtype=np.float32).reshape(len(t), 3, 4)
    col = pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(pa.array(frames.ravel()), 4), 3)
    return t.append_column("frames_mfcc", col), frames


def _status(file_ids, gid, failed=()):
    rows = []
    for fid in file_ids:
        bad = fid in failed
        rows.append({"file_id": fid, "path": f"/data/{fid}.wav", "label": "x", "size": 10, "mtime": 1.0,
                     "status": "failed" if bad else "ok", "segments": 0 if bad else 2,
                     "audio_seconds": 0.0 if bad else 10.0, "stage": "decode" if bad else None,
                     "error_type": "NotAudioError" if bad else None, "reason": "not_audio" if bad else None,
                     "message": "not audio" if bad else None, "gid": gid, "node_id": "n",
                     "worker_pid": 1, "worker_maxrss_mb": 1.0, "elapsed_s": 0.1})
    return pa.Table.from_pylist(rows, schema=store.STATUS_SCHEMA)


def _commit(out, gid, ok, failed=()):
    seg = store.table_to_parquet_bytes(_segments(ok)[0]) if ok else None
    store.commit_group(out, gid, seg, store.table_to_parquet_bytes(_status(list(ok) + list(failed), gid, failed)))


def test_commit_finalize_and_read_back(tmp_path):
    out = tmp_path / "store"
    assert store.open_for_write(out, "h1", {"a": 1}) is False
    _commit(out, "g1", ["a", "b"], failed=["c"])
    _commit(out, "g2", ["d"])
    st = store.read_status(out)
    assert sorted(st.column("file_id").to_pylist()) == ["a", "b", "c", "d"]
    with pytest.raises(StoreError, match="not a genaudio features store"):
        store.read_segments(out)  # no manifest yet: incomplete stores are not readable
    store.finalize(out, st, {"kind": "features", "config_hash": "h1"})
    seg = store.read_segments(out)
    assert len(seg) == 6 and sorted(set(seg.column("file_id").to_pylist())) == ["a", "b", "d"]
    ids, frames = store.read_frames(out, "mfcc")
    assert frames.shape == (6, 3, 4) and frames.dtype == np.float32
    assert "frames_mfcc" not in store.read_segments(out, summary_only=True).column_names
    errs = store.read_errors(out)
    assert errs.column("file_id").to_pylist() == ["c"]
    assert errs.column("stage").to_pylist() == ["decode"]
    files = store.read_files(out)
    assert sorted(files.column("status").to_pylist()) == ["failed", "ok", "ok", "ok"]
    # the whole store is readable by permission bits for other users of a shared machine
    mask = os.umask(0)
    os.umask(mask)
    for p in [out / store.MANIFEST, out / store.FILES, *(out / store.SEGMENTS).glob("*.parquet")]:
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o666 & ~mask


def test_same_config_keeps_work_other_config_clears(tmp_path):
    out = tmp_path / "store"
    store.open_for_write(out, "h1", {})
    _commit(out, "g1", ["a"])
    store.finalize(out, store.read_status(out), {"kind": "features"})
    assert store.open_for_write(out, "h1", {}) is True
    assert len(store.read_status(out)) == 1
    assert store.open_for_write(out, "h2", {}) is False  # changed config: recompute everything
    assert len(store.read_status(out)) == 0
    assert not list((out / store.SEGMENTS).glob("*.parquet"))
    assert not (out / store.MANIFEST).exists()
    assert json.loads((out / store.STATE / store.STATE_CONFIG).read_text())["config_hash"] == "h2"


def test_orphan_parts_and_temporaries_are_removed(tmp_path):
    out = tmp_path / "store"
    store.open_for_write(out, "h1", {})
    _commit(out, "g1", ["a"])
    # a killed run: a part renamed into place but its status never committed, and a temporary
    orphan = store.part_path(out, "g9")
    orphan.write_bytes(store.table_to_parquet_bytes(_segments(["z"])[0]))
    tmp = out / store.SEGMENTS / ".part-g8.parquet.abc.tmp"
    tmp.write_bytes(b"half")
    store.open_for_write(out, "h1", {})
    assert not orphan.exists() and not tmp.exists()
    assert store.part_path(out, "g1").exists()


def test_drop_files_rewrites_groups(tmp_path):
    out = tmp_path / "store"
    store.open_for_write(out, "h1", {})
    _commit(out, "g1", ["a", "b"])
    _commit(out, "g2", ["c"])
    assert store.drop_files(out, ["b", "c"]) == 2
    assert store.read_status(out).column("file_id").to_pylist() == ["a"]
    assert not store.part_path(out, "g2").exists() and not store.status_path(out, "g2").exists()
    assert set(pq.read_table(store.part_path(out, "g1")).column("file_id").to_pylist()) == {"a"}


def test_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(StoreError, match="not a genaudio features store"):
        store.open_for_write(tmp_path, "h1", {})
    assert (tmp_path / "mine.txt").read_text() == "precious"
    with pytest.raises(StoreError, match="no manifest.json|not a genaudio features store"):
        store.read_manifest(tmp_path)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "t.parquet"

    with pytest.raises(Exception):
        store.atomic_write_table(target, "not a table")  # type: ignore[arg-type]
    assert not target.exists() and not list(tmp_path.glob(".*.tmp"))
