"""The torch autoencoder: learns, is seeded, checkpoints and resumes, saves with weights_only."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genaudio.encoders import load_encoder, make_encoder
from genaudio.encoders.metrics import spectral_convergence
from genaudio.errors import EncoderError

from .conftest import tone

TINY = dict(n_mels=64, device="cpu")


def tiny(epochs: int) -> dict:
    """A small, fast autoencoder's options."""
    return {"autoencoder": {"hidden": 32, "batch_size": 8, "learning_rate": 3e-3, "epochs": epochs}}


@pytest.fixture(scope="module")
def tones():
    return [tone(f, 1.0) for f in (220.0, 330.0, 440.0, 550.0, 660.0)]


@pytest.fixture(scope="module")
def trained(tones):
    return make_encoder("autoencoder", dim=8, **tiny(25), downsample=2, **TINY).fit(tones)


def test_learns_and_reconstructs_a_tone(trained):
    enc = trained
    assert enc.history[-1]["loss"] < 0.5 * enc.history[0]["loss"]
    y = tone(440.0, 1.0)
    codes = enc.encode(y)
    assert codes.shape == ((1 + len(y) // 256 + 1) // 2, 8)
    assert enc.code_rate_hz == pytest.approx(22050 / 256 / 2)
    y_hat = enc.reconstruct(y)
    spec = np.abs(np.fft.rfft(y_hat * np.hanning(len(y_hat))))
    assert abs(np.argmax(spec) * 22050 / len(y_hat) - 440.0) < 30.0  # about a semitone
    assert spectral_convergence(y, y_hat) < 0.8


def test_seeded_and_saved_without_pickle(tmp_path, tones, trained):
    again = make_encoder("autoencoder", dim=8, **tiny(25), downsample=2, **TINY).fit(tones)
    np.testing.assert_allclose(again.encode(tones[0]), trained.encode(tones[0]), atol=1e-4)
    trained.save(tmp_path / "ae")
    state = torch.load(tmp_path / "ae" / "weights.pt", weights_only=True)  # plain tensors only
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    loaded = load_encoder(tmp_path / "ae")
    np.testing.assert_array_equal(loaded.encode(tones[1]), trained.encode(tones[1]))
    (tmp_path / "ae" / "weights.pt").write_bytes(b"garbage")
    with pytest.raises(EncoderError, match="weights.pt cannot be loaded"):
        load_encoder(tmp_path / "ae")


def test_checkpoint_resumes_an_interrupted_fit_exactly(tmp_path, tones):
    from genaudio.encoders.autoencoder import AutoencoderEncoder

    class Interrupted(Exception):
        pass

    class StopsInEpochThree(AutoencoderEncoder):
        """The real encoder, killed at the start of its third epoch (after two checkpoints)."""

        def _train_epoch(self, epoch, **kw):
            if epoch == 2:
                raise Interrupted
            return super()._train_epoch(epoch, **kw)

    ck = tmp_path / "ck.pt"
    full = make_encoder("autoencoder", dim=4, **tiny(4), **TINY).fit(tones)
    cfg = full.config
    with pytest.raises(Interrupted):
        StopsInEpochThree(cfg).fit(tones, checkpoint=ck)
    assert torch.load(ck, weights_only=True)["epoch"] == 2
    resumed = make_encoder(config=cfg).fit(tones, checkpoint=ck)
    loss = [h["loss"] for h in full.history]
    assert [h["loss"] for h in resumed.history] == loss   # the same crops, the same steps
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    np.testing.assert_array_equal(resumed.encode(tones[0]), full.encode(tones[0]))
    with pytest.raises(EncoderError, match="another configuration"):
        make_encoder("autoencoder", dim=5, **tiny(4), **TINY).fit(tones, checkpoint=ck)
