"""genaudio.infra: atomic writes and folders leave nothing half-written; the progress bar."""
from __future__ import annotations

import json

import pytest

from genaudio import infra


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    infra.atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with infra.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert not list(target.parent.glob(".*.tmp"))
    infra.atomic_write_json(target, {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}


def test_atomic_dir_swaps_the_whole_folder(tmp_path):
    out = tmp_path / "out"
    with infra.atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError):
        with infra.atomic_dir(out) as tmp:
            (tmp / "b").write_text("2")
            raise ValueError
    assert sorted(p.name for p in out.iterdir()) == ["a"]
    with infra.atomic_dir(out) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["c"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary or old folder left


def test_file_lock_excludes_a_second_holder(tmp_path):
    from filelock import Timeout

    lock = tmp_path / "k.lock"
    with infra.file_lock(lock):
        # a second lock object on the same file (as another process would hold) cannot get it
        with pytest.raises(Timeout):
            infra.file_lock(lock, timeout=0.05).acquire()
    with infra.file_lock(lock, timeout=1):
        pass


def test_disabled_progress_bar_takes_the_same_calls(capsys):
    bar = infra.progress(total=3, enabled=False, desc="x")
    bar.update(2)
    bar.close()
    assert list(infra.progress(range(3), enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""
