"""genaudio's copy of librosa's beat tracker: the same beats, without importing librosa.beat."""
from __future__ import annotations

import subprocess
import sys

import librosa
import numpy as np
import pytest

from genaudio.features._beat import beat_frames


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_beats_equal_librosa_beat_track(dtype):
    import librosa.beat

    rng = np.random.default_rng(0)
    envelopes = [np.abs(rng.standard_normal(rng.integers(20, 1500))) ** 3 for _ in range(40)]
    envelopes.append(np.zeros(50))
    for e in envelopes:
        e = e.astype(dtype)
        bpm = np.array([rng.uniform(60, 180)])
        ours = beat_frames(e, bpm=bpm, frame_rate=22050 / 512)
        ref = librosa.beat.beat_track(onset_envelope=e, sr=22050, hop_length=512, bpm=bpm)[1]
        np.testing.assert_array_equal(ours, ref)


def test_beat_features_do_not_import_librosa_beat():
    code = ("import sys, numpy as np; from genaudio.features import compute; "
            "compute(np.random.default_rng(0).standard_normal(44100).astype(np.float32), 22050, features=['beats']); "
            "print('librosa.beat' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
