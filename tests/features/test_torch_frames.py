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
    if name in tf.CQT_FEATURES:
        assert rel_err(ours, ref) <= tf.CQT_TOLERANCE, (name, rel_err(ours, ref))
        return
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
    # the torch results are in place before anything is asked, the CQT magnitude among them
    assert {f"feature:{n}" for n in tf.TORCH_FEATURES} <= set(a._cache)
    assert {"mel", "log_mel", "onset", "onset_median", "tempogram", "cqt"} <= set(a.computed)
    cqt = a._cache["cqt"]
    a.compute(["chroma_cqt"])
    assert a._cache["cqt"] is cqt
    # without a CQT feature asked for, none is computed
    b = tf.analyses(ys[:2], sr, features=["mfcc"])[0]
    assert "cqt" not in b.computed


def test_torch_cqt_follows_librosa_octave_by_octave(segments):
    """The CQT magnitude itself against np.abs(librosa.cqt): the same filters, octave by octave;
    only the resampler between octaves differs (an ideal low-pass for soxr)."""
    import librosa

    ys, sr = segments
    c = FeatureConfig()
    # at 44.1 kHz librosa first resamples the whole signal by 2 (its "early downsampling")
    hi = librosa.resample(ys[::3], orig_sr=sr, target_sr=44100).astype(np.float32)
    for batch, rate in ((ys[::3], sr), (hi, 44100)):
        for a in tf.analyses(batch, rate, features=["cqt"]):
            ref = np.abs(librosa.cqt(a.y, sr=rate, hop_length=c.hop_length, fmin=c.fmin,
                                     n_bins=c.n_octaves * c.bins_per_octave, bins_per_octave=c.bins_per_octave,
                                     tuning=a.cqt_tuning))
            assert a.cqt.shape == ref.shape
            # the magnitude itself: soxr's filter, the same bases -> float32 rounding only
            assert rel_err(a.cqt, ref) <= 1e-5, (rate, rel_err(a.cqt, ref))


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


def test_a_segment_with_silent_frames_gets_the_cpu_cqt(segments):
    """Chroma normalises each frame by its own peak: in digital silence the CQT's rounding is all
    there is, so such a segment's CQT comes from the CPU and its chroma equals the numpy path's."""
    ys, sr = segments
    tail = ys[0].copy()
    tail[len(tail) // 2:] = 0.0
    names = ["chroma_cqt", "chroma_cens", "tonnetz", "cqt"]
    silent, loud = tf.analyses(np.stack([tail, ys[1]]), sr, features=names)
    assert "cqt" not in silent.computed and "cqt" in loud.computed
    ours, ref = silent.compute(names), compute(tail, sr, features=names)
    for name in names:
        assert np.array_equal(ours[name], ref[name]), name
