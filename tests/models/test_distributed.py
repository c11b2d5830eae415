"""Data-parallel training: Ray Train workers match single-process training (CPU, gloo, 2 workers);
ranks draw their own noise."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genaudio.models import GANConfig, LSTMConfig, TrainConfig, load_checkpoint, train
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


def _one_rank(rank: int, world: int, init_file: str, results: str) -> None:
    """A data-parallel worker without Ray: the same loop on a gloo group of ``world`` processes;
    writes what its global RNG draws next, after one epoch of a tiny GAN."""
    import torch.distributed as tdist

    from genaudio.models.parallel import DistContext

    from .synth import periodic_codes

    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cfg = TrainConfig(model="gan", gan=GANConfig(latent=4, channels=8, layers=1, patch=8), epochs=1,
                          batch_size=8, steps_per_epoch=2, seed=0)
        train(cfg, periodic_codes(), out_dir=None, dist=DistContext(rank=rank, world=world, device=torch.device("cpu")))
        Path(results, f"rank{rank}").write_text(repr(torch.randn(4).tolist()))
    finally:
        tdist.destroy_process_group()


def test_ranks_draw_their_own_gan_noise(tmp_path):
    """Every rank starts from the same seed (the same initial weights); GAN noise and dropout must
    still differ between ranks, or a 4-GPU GAN sees a quarter of the fakes it should."""
    import torch.multiprocessing as mp

    mp.spawn(_one_rank, args=(2, str(tmp_path / "group"), str(tmp_path)), nprocs=2, join=True)
    draws = [(tmp_path / f"rank{r}").read_text() for r in range(2)]
    assert draws[0] != draws[1]
