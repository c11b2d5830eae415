"""GANs train without NaN and move towards the data; generated clips have the asked length and rate."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from genaudio.models import GANConfig, ScoreConfig, TrainConfig, load_run, train
from genaudio.models.gan import build_gan, generate_frames, gradient_penalty
from genaudio.models.generate import generate_clips, write_clips


def _cfg(**gan):
    base = dict(family="conv", latent=8, patch=16, channels=32, layers=2, loss="ns")
    base.update(gan)
    return TrainConfig(model="gan", gan=GANConfig(**base), epochs=4, batch_size=16, lr=1e-3, seed=0)


def test_conv_gan_trains_without_nan_and_frechet_distance_decreases(periodic):
    result = train(_cfg(), periodic, out_dir=None)
    assert result.status == "ok", result.message
    for h in result.history:
        assert all(math.isfinite(h[k]) for k in ("d_loss", "g_loss", "code_fd"))
    assert result.history[-1]["code_fd"] < 0.6 * result.init_metrics["code_fd"]


def test_rnn_gan_with_gradient_penalty_runs(periodic):
    cfg = _cfg(family="rnn", loss="wgan-gp", channels=8, layers=1, patch=8)
    cfg = TrainConfig(**{**cfg.__dict__, "epochs": 1, "steps_per_epoch": 2})
    result = train(cfg, periodic, out_dir=None)
    assert result.status == "ok", result.message
    assert math.isfinite(result.history[0]["gp"]) and result.history[0]["steps"] == 2


@pytest.mark.parametrize("family", ["conv", "rnn"])
def test_generators_make_any_length(family):
    g, d = build_gan(3, GANConfig(family=family, latent=4, patch=8, channels=8, layers=2))
    g.eval()
    x = generate_frames(g, 2, 21, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 21, 3)
    assert d(torch.randn(5, 8, 3)).shape == (5,)
    gp = gradient_penalty(d, torch.randn(4, 8, 3), torch.randn(4, 8, 3))
    assert gp.ndim == 0 and torch.isfinite(gp)


def test_nan_and_divergence_stop_with_a_clear_status(periodic, tmp_path):
    # an absurd learning rate: the generator's output explodes (diverged) or the losses overflow
    r = train(TrainConfig(**{**_cfg(loss="wgan-gp").__dict__, "lr": 1e4, "grad_clip": 0.0}), periodic,
              out_dir=tmp_path / "div")
    assert r.status == "diverged" and "diverged in epoch 1" in r.message
    r = train(TrainConfig(**{**_cfg(loss="wgan-gp").__dict__, "lr": 1e8, "grad_clip": 0.0}), periodic,
              out_dir=tmp_path / "nan")
    assert r.status == "nan" and "NaN" in r.message
    import json

    m = json.loads((tmp_path / "nan" / "metrics.json").read_text())
    assert m["status"] == "nan"
    assert not (tmp_path / "nan" / "checkpoints" / "last.pt").exists()  # nothing bad was saved


@pytest.mark.slow
def test_gan_on_real_codes_generates_clips_of_the_right_length_and_rate(encoded_store, tmp_path):
    cfg = TrainConfig(model="gan", gan=GANConfig(latent=8, patch=16, channels=32, layers=2), epochs=2,
                      batch_size=8, lr=1e-3, score=ScoreConfig(at_end=False))
    result = train(cfg, encoded_store, out_dir=tmp_path / "run")
    assert result.status == "ok"
    assert result.history[-1]["code_fd"] < result.init_metrics["code_fd"]
    clips, sr, codes = generate_clips(tmp_path / "run", n=2, seconds=1.5, seed=0)
    assert sr == 16000 and len(clips) == 2
    assert all(len(y) == int(1.5 * 16000) and np.isfinite(y).all() for y in clips)
    assert codes.shape[1] >= math.ceil(1.5 * 62.5)
    written = write_clips(load_run(tmp_path / "run"), tmp_path / "clips", n=1, seconds=1.0)
    info = sf.info(written[0]["wav"])
    assert info.samplerate == 16000 and info.frames == 16000
    assert (tmp_path / "clips" / "clip_00.png").stat().st_size > 10_000
