"""The torch path of the frame features against the numpy/librosa path, on CPU torch."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from genaudio.audio import load
from genaudio.config import FeatureConfig
from genaudio.features import compute, default_features
from genaudio.features import torch_frames as tf
from naive import rel_err  # tests/ is on sys.path under pytest

CLIPS = ["piano/piano_melody_c.wav", "drums/drums_rock_120.flac", "strings/strings_pad_am.ogg"]
NAMES = list(dict.fromkeys(default_features() + tf.TORCH_FEATURES + ("tempogram_ratio",)))


@pytest.fixture(scope="module")
def segments(samples_dir):
    """Three 2-s segments of each clip: a batch of equal-length rows."""
    out = []
    for rel in CLIPS:
        y, sr = load(samples_dir / rel, duration=6.0)
        out += [y[i * 2 * sr:(i + 1) * 2 * sr] for i in range(3)]
    return np.stack(out), sr


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _check(name, ours, ref, sr, config=FeatureConfig()):
    if name == "spectral_rolloff":  # a bin frequency: one bin off where the threshold is a tie
        moved = np.abs(ours - ref) > 1e-3
        assert np.all(np.abs(ours - ref)[moved] <= sr / config.n_fft * 1.001), name
        assert moved.mean() <= tf.ROLLOFF_BIN_FRACTION, (name, moved.mean())
        return
    assert rel_err(ours, ref) <= tf.TOLERANCE, (name, rel_err(ours, ref))


def test_torch_batch_equals_the_numpy_path_within_the_documented_tolerance(segments):
    ys, sr = segments
    batch = tf.analyses(ys, sr, features=NAMES, device="cpu")
    assert len(batch) == len(ys)
    for y, analysis in zip(ys, batch):
        ours, ref = analysis.compute(NAMES), compute(y, sr, features=NAMES)
        assert list(ours) == list(ref)
        for name in NAMES:
            assert ours[name].shape == ref[name].shape and ours[name].dtype == np.float32, name
            _check(name, ours[name], ref[name], sr)


def test_torch_features_are_the_ones_computed_in_torch(segments):
    ys, sr = segments
    a = tf.analyses(ys[:2], sr, features=NAMES)[0]
    # the torch results are in place before anything is asked; the CQT is left to the CPU
    assert {f"feature:{n}" for n in tf.TORCH_FEATURES} <= set(a._cache)
    assert {"mel", "log_mel", "onset", "onset_median", "tempogram"} <= set(a.computed)
    assert "cqt" not in a.computed
    a.compute(["chroma_cqt"])
    assert "cqt" in a.computed


def test_silence_and_a_custom_config_stay_equal():
    sr = 22050
    cfg = FeatureConfig(n_fft=1024, hop_length=256, n_mels=64, n_mfcc=13)
    rng = np.random.default_rng(0)
    ys = np.stack([np.zeros(sr, np.float32), (0.1 * rng.standard_normal(sr)).astype(np.float32)])
    names = [n for n in tf.TORCH_FEATURES if n != "chroma_stft"] + ["chroma_stft"]
    for y, a in zip(ys, tf.analyses(ys, sr, config=cfg, features=names)):
        ours, ref = a.compute(names), compute(y, sr, config=cfg, features=names)
        for name in names:
            assert np.isfinite(ours[name]).all(), name
            _check(name, ours[name], ref[name], sr, cfg)
