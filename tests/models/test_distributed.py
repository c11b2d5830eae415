"""Ray Train data-parallel training matches single-process training (CPU, gloo, 2 workers)."""
from __future__ import annotations

import pytest
import torch

from genaudio.models import LSTMConfig, TrainConfig, load_checkpoint, train
from genaudio.models.distributed import train_distributed


@pytest.mark.slow
def test_two_gloo_workers_match_one_process(ray_local, periodic, tmp_path):
    # dropout 0 and the mse head: no per-rank randomness, so the runs must agree up to float
    # summation order (same seed, same global batch of 8 = 2 workers x 4)
    cfg = TrainConfig(model="lstm", lstm=LSTMConfig(layers=1, hidden=16, context=12, dropout=0.0, head="mse"),
                      epochs=2, batch_size=8, lr=3e-3, seed=0)
    single = train(cfg, periodic, out_dir=tmp_path / "single")
    multi = train_distributed(cfg, periodic, out_dir=tmp_path / "multi", workers=2, verbose=False)
    assert multi.status == "ok" and len(multi.history) == 2
    for a, b in zip(single.history, multi.history):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_mse"] == pytest.approx(a["val_mse"], rel=1e-4)
    sa, sb = load_checkpoint(tmp_path / "single")["models"]["lstm"], load_checkpoint(tmp_path / "multi")["models"]["lstm"]
    for k in sa:
        assert torch.allclose(sa[k], sb[k], atol=1e-5), k
    # the untrained model differs: the match is not an accident of nothing being learnt
    assert single.history[-1]["val_mse"] < 0.8 * single.init_metrics["val_mse"]


@pytest.mark.slow
def test_batch_must_split_evenly(ray_local, periodic, tmp_path):
    from genaudio.errors import ModelError

    with pytest.raises(ModelError, match="divisible"):
        train_distributed(TrainConfig(batch_size=9), periodic, out_dir=tmp_path, workers=2)
