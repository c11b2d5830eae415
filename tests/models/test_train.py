"""The training loop: exact resume, run folder contents, callback hook, config checks."""
from __future__ import annotations

import json

import pytest
import torch

from genaudio.config import from_dict, load_yaml
from genaudio.errors import ConfigError, ModelError
from genaudio.models import GANConfig, LSTMConfig, StopTraining, TrainConfig, load_checkpoint, train

from .synth import periodic_codes


def _lstm(epochs, **kw):
    return TrainConfig(model="lstm", lstm=LSTMConfig(layers=1, hidden=16, context=12, dropout=0.2, head="mdn",
                                                     mixtures=2, input_noise=0.05),
                       epochs=epochs, batch_size=8, steps_per_epoch=4, lr=3e-3, seed=3, **kw)


def _gan(epochs):
    return TrainConfig(model="gan", gan=GANConfig(latent=8, patch=16, channels=16, layers=2), epochs=epochs,
                       batch_size=8, steps_per_epoch=4, lr=1e-3, seed=3)


def _assert_same_states(a: dict, b: dict):
    for name in a["models"]:
        for k, v in a["models"][name].items():
            assert torch.equal(v, b["models"][name][k]), f"{name}.{k} differs"


@pytest.mark.parametrize("make", [_lstm, _gan], ids=["lstm", "gan"])
def test_resume_from_checkpoint_equals_uninterrupted_run(periodic, tmp_path, make):
    full = train(make(3), periodic, out_dir=tmp_path / "full")
    part = train(make(1), periodic, out_dir=tmp_path / "part")
    assert len(part.history) == 1
    resumed = train(make(3), periodic, out_dir=tmp_path / "part", resume_from=tmp_path / "part")
    assert full.status == resumed.status == "ok"
    # dropout, input noise and GAN noise all come from checkpointed RNG states: bit-identical
    _assert_same_states(load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "part"))
    key = "val_loss" if make is _lstm else "code_fd"
    assert [h[key] for h in resumed.history] == [h[key] for h in full.history]


def test_run_folder_and_callback(periodic, tmp_path):
    seen = []

    def callback(epoch, metrics, checkpoint_dir):
        seen.append((epoch, metrics["val_loss"], checkpoint_dir))
        assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
        if epoch == 2:
            return False

    r = train(_lstm(5), periodic, out_dir=tmp_path / "run", callback=callback)
    assert r.status == "stopped" and "after epoch 2" in r.message
    assert [s[0] for s in seen] == [1, 2]
    assert seen[0][2] == str(tmp_path / "run" / "checkpoints")
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["status"] == "stopped" and len(m["history"]) == 2 and m["final"]["epoch"] == 2
    assert m["history"][0]["data_wait_fraction"] >= 0
    # config.yaml reproduces the config
    assert from_dict(TrainConfig, load_yaml(tmp_path / "run" / "config.yaml")) == _lstm(5)
    ck = load_checkpoint(tmp_path / "run")
    assert ck["epoch"] == 2 and ck["config"]["lstm"]["head"] == "mdn"
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()


def test_callback_can_raise_stop(periodic):
    def callback(epoch, metrics, checkpoint_dir):
        raise StopTraining("pruned")

    r = train(_lstm(3), periodic, out_dir=None, callback=callback)
    assert r.status == "stopped" and "pruned" in r.message and len(r.history) == 1


def test_resume_refuses_a_different_model(periodic, tmp_path):
    train(_lstm(1), periodic, out_dir=tmp_path / "run")
    other = TrainConfig(**{**_lstm(2).__dict__, "lr": 0.1})
    with pytest.raises(ModelError, match="config differs in lr"):
        train(other, periodic, out_dir=tmp_path / "run", resume_from=tmp_path / "run")
    with pytest.raises(ModelError, match="no checkpoint"):
        train(_lstm(2), periodic, out_dir=tmp_path / "x", resume_from=tmp_path / "missing.pt")
    # the same files and split, other codes (another encoder's of the same store): refused
    other_codes = periodic_codes(seed=1)
    assert list(other_codes.file_ids) == list(periodic.file_ids)
    with pytest.raises(ModelError, match="training data differ"):
        train(_lstm(2), other_codes, out_dir=tmp_path / "run", resume_from=tmp_path / "run")


def test_config_validation_and_dicts(periodic):
    with pytest.raises(ConfigError, match="lstm.head"):
        LSTMConfig(head="laplace")
    with pytest.raises(ConfigError, match="unknown option"):
        train({"model": "lstm", "lstm": {"hiden": 3}}, periodic, out_dir=None)
    with pytest.raises(ConfigError, match="gan.patch"):
        GANConfig(patch=4, layers=3)
    with pytest.raises(ModelError, match="training windows"):
        train(TrainConfig(batch_size=4096, lstm=LSTMConfig(context=8, hidden=8, layers=1)), periodic, out_dir=None)
