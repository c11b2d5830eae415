"""The judge (genaudio.quality): KID and its standard error, the fixed space, the real reference,
and `genaudio score` on real files of samples/ and clips made here."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from genaudio.cli import main
from genaudio.errors import QualityError
from genaudio.quality import (Z_CLIP, FeatureSpace, Window, build_reference, file_windows, kid, prepare_clips,
                              split_halves)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    values = [kid(rng.standard_normal((40, 50)), rng.standard_normal((40, 50)))[0] for _ in range(30)]
    _, se = kid(rng.standard_normal((40, 50)), rng.standard_normal((40, 50)))
    # unbiased: the mean over repeats is within a few standard errors of the mean of 0
    assert abs(np.mean(values)) < 3 * se / np.sqrt(len(values)) + 1e-3
    small, se_small = kid(rng.standard_normal((40, 50)), rng.standard_normal((40, 50)) + 0.3)
    large, _ = kid(rng.standard_normal((40, 50)), rng.standard_normal((40, 50)) + 1.0)
    assert small > 3 * se_small and large > small


def test_kid_standard_error_matches_the_spread_over_repeats():
    rng = np.random.default_rng(1)
    draws = [kid(rng.standard_normal((32, 20)), rng.standard_normal((32, 20)) + 0.5) for _ in range(60)]
    spread = np.std([v for v, _ in draws])
    mean_se = np.mean([s for _, s in draws])
    # the jackknife SE estimates the sampling spread (within a factor that 60 repeats can resolve)
    assert 0.6 < mean_se / spread < 1.6


def test_kid_needs_three_clips_per_side():
    with pytest.raises(QualityError, match="at least 3"):
        kid(np.zeros((2, 4)), np.zeros((5, 4)))


def test_space_standardises_fixes_near_constant_columns_and_scores_nonfinite_as_maximally_off():
    rng = np.random.default_rng(2)
    real = rng.standard_normal((50, 3)) * [1.0, 100.0, 1.0] + [0.0, 500.0, 0.0]
    real[:, 2] = 1e-9 * rng.standard_normal(50)       # e.g. a DC offset: spread ~1e-9
    space = FeatureSpace.fit(real, ["a", "b", "c"])
    z, bad = space.transform(real)
    assert np.allclose(z[:, :2].mean(0), 0, atol=1e-9) and np.allclose(z[:, :2].std(0), 1)
    assert bad == 0 and np.abs(z[:, 2]).max() < 1e-6   # scale 1: a near-constant column counts by its difference
    fake = np.array([[0.0, 500.0, 0.5], [np.nan, 500.0, 0.0], [1e30, 500.0, 0.0]])
    z, bad = space.transform(fake[:, [2, 0, 1]], ["c", "a", "b"])   # aligned by name
    assert bad == 1 and z[1, 0] == Z_CLIP and z[2, 0] == Z_CLIP and np.abs(z).max() <= Z_CLIP
    with pytest.raises(QualityError, match="lack 1 column"):
        space.transform(fake[:, :2], ["a", "b"])


def test_halves_never_share_a_file_and_spread_over_files():
    windows = [Window(f"f{i}", f"/x/f{i}.wav", 5.0 * k) for i in range(6) for k in range(4 + i)]
    a, b = split_halves(windows, n=8, seed=0)
    assert len(a) == len(b) == 8
    fa, fb = {w.file_id for w in a}, {w.file_id for w in b}
    assert not fa & fb and len(fa) >= 2 and len(fb) >= 2
    with pytest.raises(QualityError, match="at least 2 files"):
        split_halves([w for w in windows if w.file_id == "f0"], n=4, seed=0)


def test_prepare_clips_resamples_cuts_and_refuses_short_clips():
    y = np.zeros(48000, np.float32)
    out = prepare_clips([y], 48000, seconds=0.5, sample_rate=22050)
    assert len(out[0]) == 11025
    with pytest.raises(QualityError, match="shorter than the judged 2 s"):
        prepare_clips([y], 48000, seconds=2.0, sample_rate=22050)


def _pink(n: int, rng) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=float)
    f[0] = 1.0
    return (np.fft.irfft(spec / np.sqrt(f), n) * 0.05).astype(np.float32)


def _shuffled(y: np.ndarray, rng, frame: int = 1024) -> np.ndarray:
    k = len(y) // frame
    return np.concatenate([y[:k * frame].reshape(k, frame)[rng.permutation(k)].ravel(), y[k * frame:]])


@pytest.fixture(scope="module")
def sample_reference(sample_files):
    windows, skipped = file_windows([str(p) for p in sample_files if p.parent.name != "noise"], seconds=1.5)
    assert not skipped
    return build_reference(windows, n=18, seconds=1.5, sample_rate=16000, seed=0)


def test_reference_of_real_files_discriminates_real_shuffled_and_noise(sample_reference):
    ref = sample_reference
    assert ref.n == 18 and not set(ref.files["anchor"]) & set(ref.files["other"])
    rng = np.random.default_rng(3)
    shuffled = ref.score([_shuffled(y, rng) for y in ref.other_audio], ref.sample_rate)
    noise = ref.score([_pink(len(ref.other_audio[0]), rng) for _ in range(18)], ref.sample_rate)
    real = ref.real_vs_real
    # real < frame-shuffled real < pink noise, each step beyond 2 combined standard errors (18 short
    # clips of a few synthetic files; benchmarks/score_discrimination.py shows 3 SE at 64 real clips)
    assert shuffled.differs_from(real) and shuffled.score > real.score
    assert noise.differs_from(shuffled) and noise.score > shuffled.score
    assert noise.n == 18 and noise.n_nonfinite == 0


def test_score_command_json_and_bad_candidates(samples_dir, tmp_path):
    rng = np.random.default_rng(4)
    noise, short, empty = tmp_path / "noise", tmp_path / "short", tmp_path / "empty"
    for d in (noise, short, empty):
        d.mkdir()
    for i in range(6):
        sf.write(noise / f"n{i}.wav", _pink(16000 * 2, rng), 16000)
        sf.write(short / f"s{i}.wav", _pink(8000, rng), 16000)
    real = [str(samples_dir / "piano"), str(samples_dir / "drums"), str(samples_dir / "strings")]
    listing = tmp_path / "real.txt"
    listing.write_text("\n".join(str(p) for d in real for p in sorted(__import__("pathlib").Path(d).iterdir())) + "\n")
    args = ["score", str(listing), "--n", "6", "--seconds", "1.5", "--sample-rate", "16000"]
    r = CliRunner().invoke(main, [*args, str(noise), "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output[r.output.index("{"):])
    ref, (cand,) = doc["reference"], doc["candidates"]
    assert ref["n"] == 6 and ref["score_se"] > 0 and cand["n"] == 6 and cand["kind"] == "clips"
    assert cand["score"] > ref["score"] + 3 * np.hypot(cand["score_se"], ref["score_se"])
    r = CliRunner().invoke(main, [*args, str(noise)])
    assert r.exit_code == 0 and "real vs real" in r.output and str(noise) in r.output
    for bad, msg in ((short, "shorter than the judged 1.5 s"), (empty, "no audio clips")):
        r = CliRunner().invoke(main, [*args, str(bad)])
        assert r.exit_code == 2 and msg in r.output and "Traceback" not in r.output, r.output
    (noise / "broken.wav").write_bytes(b"RIFF0000WAVEfmt garbage")
    r = CliRunner().invoke(main, [*args, str(noise), "--n", "7"])
    assert r.exit_code == 2 and "broken.wav" in r.output and "Traceback" not in r.output, r.output


def test_a_feature_weighs_as_the_square_root_of_its_size():
    from genaudio.quality import feature_weights

    cols = [f"mfcc_{i:02d}_mean" for i in range(16)] + ["tempo"]
    w = feature_weights(cols)
    assert np.mean(w ** 2) == pytest.approx(1.0)
    # total squared weight per feature: 16 * (16^-1/4)^2 = 4 for MFCC vs 1 for tempo -> ratio sqrt(16)
    assert (w[:16] ** 2).sum() / w[16] ** 2 == pytest.approx(4.0)
