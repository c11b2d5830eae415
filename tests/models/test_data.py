"""Data for the models: split by file, window batches, data-parallel sharding, store adapter."""
from __future__ import annotations

import numpy as np
import pytest

from genaudio.errors import ModelError
from genaudio.models.data import SequenceData, WindowSet, as_sequence_data, make_loader, split_by_file
from genaudio.models.data import train_val_split


def test_split_is_by_file_never_by_segment():
    fids = np.repeat([f"f{i}" for i in range(10)], 5)  # 10 files x 5 segments
    tr, va = split_by_file(fids, val_fraction=0.3, seed=1)
    assert set(fids[tr]).isdisjoint(fids[va])
    assert len(set(fids[va])) == 3 and len(tr) + len(va) == len(fids)
    # every segment of a held-out file is held out
    for f in set(fids[va]):
        assert set(np.flatnonzero(fids == f)) <= set(va)
    tr2, va2 = split_by_file(fids, val_fraction=0.3, seed=1)
    assert np.array_equal(va, va2)  # seeded, reproducible


def test_split_needs_two_files():
    with pytest.raises(ModelError, match="at least 2 files"):
        split_by_file(["a", "a", "a"], val_fraction=0.2, seed=0)


def test_encoder_split_is_used_when_recorded(periodic):
    splits = np.where(np.isin(periodic.file_ids, ["file2", "file4"]), "test", "train")
    data = SequenceData(periodic.codes, periodic.file_ids, 20.0, splits=splits)
    tr, va = train_val_split(data, val_fraction=0.2, seed=0)
    assert set(data.file_ids[va]) == {"file2", "file4"}
    assert set(data.file_ids[tr]).isdisjoint({"file2", "file4"})


def test_windows_and_loader_shards_cover_the_global_batch():
    codes = [np.arange(20 * 2, dtype=np.float32).reshape(20, 2) + 1000 * i for i in range(3)]
    ds = WindowSet(codes, window=5, hop=3)
    assert len(ds) == 3 * 6  # starts 0,3,...,15 in each segment
    batch = ds[[0, 7]]
    assert batch.shape == (2, 5, 2)
    # windows are contiguous frames of one segment
    assert np.array_equal(batch[1].numpy(), codes[1][3:8])
    full = [b for b in make_loader(ds, batch_size=8, seed=0, epoch=0)]
    r0 = [b for b in make_loader(ds, batch_size=8, seed=0, epoch=0, rank=0, world=2)]
    r1 = [b for b in make_loader(ds, batch_size=8, seed=0, epoch=0, rank=1, world=2)]
    assert len(full) == len(r0) == len(r1) == 2  # drop_last: 18 windows -> 2 batches of 8
    for f, a, b in zip(full, r0, r1):
        assert np.array_equal(f.numpy(), np.concatenate([a.numpy(), b.numpy()]))
    other_epoch = next(iter(make_loader(ds, batch_size=8, seed=0, epoch=1)))
    assert not np.array_equal(other_epoch.numpy(), full[0].numpy())


def test_windows_longer_than_every_segment_are_refused():
    with pytest.raises(ModelError, match="no segment has 50 code frames"):
        WindowSet([np.zeros((10, 2), np.float32)], window=50, hop=1)


def test_a_validation_side_of_one_window_is_a_clear_error():
    """The code-space distance compares two sets of validation windows: one window is refused at
    the split, in words, not by the metric after the first epoch."""
    from genaudio.models.data import training_windows

    rng = np.random.default_rng(0)
    codes = [rng.standard_normal((40, 2)).astype(np.float32) for _ in range(4)] + [np.zeros((8, 2), np.float32)]
    splits = ["train"] * 4 + ["test"]   # the held-out file holds exactly one 8-frame window
    data = SequenceData(codes, np.array([f"f{i}" for i in range(5)]), 20.0, splits=np.array(splits))
    with pytest.raises(ModelError, match="validation files: only 1 window of 8 frames"):
        training_windows(data, window=8, hop=4, batch_size=4, val_fraction=0.2, seed=0)


def test_reads_a_real_encoded_store(encoded_store):
    data = as_sequence_data(encoded_store)
    assert data.dim == 8 and data.code_rate_hz == pytest.approx(62.5)
    assert data.enc_dir == str(encoded_store)
    assert set(data.splits) == {"train", "test"}
    assert all(c.shape[1] == 8 and c.dtype == np.float32 for c in data.codes)
