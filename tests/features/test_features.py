"""The feature catalog and the shared analysis against the documented librosa calls, on samples/."""
from __future__ import annotations

import dataclasses
import warnings

import librosa
import numpy as np
import pytest
import scipy.stats

from genaudio.audio import load
from genaudio.config import DEFAULT_STATS, FeatureConfig, from_dict
from genaudio.errors import AudioError, ConfigError, GenaudioError
from genaudio.features import (CATALOG, GROUPS, INTERMEDIATES, LIBROSA_COVERAGE, LIBROSA_EXCLUDED, Analysis,
                               compute, default_features, feature_table, summarize)
from genaudio.store import parse_summary_column

from naive import reference, rel_err  # tests/ is on sys.path under pytest

SLOW = {"pyin_f0", "pyin_voiced_prob"}  # pYIN: checked on a shorter clip
CLIPS = ["piano/piano_melody_c.wav", "drums/drums_rock_120.flac", "strings/strings_pad_am.ogg"]
SECONDS = 3.0


@pytest.fixture(scope="module")
def clips(samples_dir):
    out = {}
    for rel in CLIPS:
        y, sr = load(samples_dir / rel, duration=SECONDS)
        out[rel] = (y, sr)
    return out


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


# ---------------------------------------------------------------------------------------------
# Catalog


def test_catalog_covers_every_librosa_feature_function():
    public = {n for n in librosa.feature.__all__}
    covered = set(LIBROSA_COVERAGE) | set(LIBROSA_EXCLUDED)
    assert public <= covered, f"librosa.feature functions not in the catalog: {sorted(public - covered)}"
    assert not set(LIBROSA_COVERAGE) & set(LIBROSA_EXCLUDED)
    for fn, name in LIBROSA_COVERAGE.items():
        assert name in CATALOG, f"{fn} maps to missing catalog entry {name}"
    for fn, why in LIBROSA_EXCLUDED.items():
        assert len(why) > 20, f"exclusion of {fn} needs a reason"


def test_catalog_entries_are_complete_and_consistent():
    cfg = FeatureConfig()
    required = {"stft_db", "cqt", "onset_strength", "beats", "beat_count", "ltas", "peak", "rms_db",
                "crest_factor_db", "dc_offset", "clipping_ratio", "hp_ratio_db", "mfcc_delta", "pyin_f0",
                "log_mel", "melspectrogram"}
    assert required <= set(CATALOG)
    for name, spec in CATALOG.items():
        assert spec.name == name
        assert spec.group in GROUPS
        assert spec.dims(cfg) >= 1
        assert 1 <= spec.cost <= 5
        assert spec.description and spec.reference
        assert set(spec.needs) <= set(INTERMEDIATES), (name, spec.needs)
        assert dataclasses.is_dataclass(spec)
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.name = "x"  # type: ignore[misc]
    # slow pitch tracking is opt-in, and the catalog says so
    assert not CATALOG["pyin_f0"].default and "opt-in" in CATALOG["pyin_f0"].description


def test_default_set_and_frame_feature_defaults():
    defaults = set(default_features())
    must = {"log_mel", "mfcc", "chroma_stft", "chroma_cqt", "chroma_cens", "tonnetz", "spectral_centroid",
            "spectral_bandwidth", "spectral_rolloff", "spectral_flatness", "spectral_contrast", "rms",
            "zero_crossing_rate", "onset_strength", "tempo", "tempogram"}
    assert must <= defaults
    for name in FeatureConfig().frame_features:
        assert name in CATALOG and CATALOG[name].frame_level, name
    table = feature_table()
    assert table["mfcc"] == {"group": "cepstral", "dims": 20, "frame": True}
    assert table["tempo"]["frame"] is False


def test_unknown_feature_name_is_a_config_error_listing_valid_names(clips):
    y, sr = clips[CLIPS[0]]
    with pytest.raises(ConfigError) as e:
        compute(y, sr, features=["mfcc", "mfccs"])
    assert "mfccs" in str(e.value) and "spectral_centroid" in str(e.value)
    assert isinstance(e.value, GenaudioError)


@pytest.mark.parametrize("bad, err", [
    (np.zeros((2, 1000), np.float32), AudioError),
    (np.zeros(0, np.float32), AudioError),
    (np.array([0.0, np.nan, 0.1] * 1000, np.float32), AudioError),
    (np.array([0.0, np.inf, 0.1] * 1000, np.float32), AudioError),
    (np.zeros(1000, np.int16), AudioError),
])
def test_bad_signals_raise_typed_errors(bad, err):
    with pytest.raises(err):
        compute(bad, 22050, features=["rms"])


# ---------------------------------------------------------------------------------------------
# Correctness against the documented librosa calls


def _check(name, ours, ref, tol=1e-5):
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64).reshape(ours.shape)
    scale = max(float(np.max(np.abs(ref))), 1e-12)
    # elementwise rtol 1e-4, with an absolute floor relative to the feature's scale for zeros
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=tol * scale, err_msg=name)
    assert rel_err(ours, ref) <= tol, name


@pytest.mark.parametrize("name", [n for n in CATALOG if n not in SLOW])
def test_every_feature_equals_the_documented_librosa_call(name, clips):
    spec = CATALOG[name]
    for rel, (y, sr) in clips.items():
        ours = compute(y, sr, features=[name])[name]
        assert ours.dtype == np.float32
        n_frames = 1 + len(y) // FeatureConfig().hop_length
        assert ours.shape == ((spec.dims(), n_frames) if spec.frame_level else (spec.dims(),)), (name, rel)
        _check(f"{name} on {rel}", ours, reference(name, y, sr))


def test_features_from_one_shared_analysis_equal_separate_calls(clips):
    """Computing everything together (shared intermediates) gives the same as one by one."""
    y, sr = clips[CLIPS[1]]
    names = [n for n in CATALOG if n not in SLOW]
    together = compute(y, sr, features=names)
    assert list(together) == names
    for n in names:
        np.testing.assert_array_equal(together[n], compute(y, sr, features=[n])[n], err_msg=n)


def test_pyin_equals_librosa(clips):
    y, sr = clips[CLIPS[2]]
    y = y[: sr]  # pYIN is slow: one second
    out = compute(y, sr, features=["pyin_f0", "pyin_voiced_prob"])
    for name in out:
        assert np.all(np.isfinite(out[name]))
        _check(name, out[name], reference(name, y, sr))


def test_non_default_parameters_follow_the_config(clips):
    cfg = from_dict(FeatureConfig, {"n_fft": 1024, "hop_length": 256, "n_mels": 64, "n_mfcc": 13,
                                    "n_bands": 4, "bins_per_octave": 24, "n_octaves": 6,
                                    "tempogram_win_length": 200, "poly_order": 2})
    y, sr = clips[CLIPS[0]]
    names = ["log_mel", "mfcc", "spectral_contrast", "chroma_stft", "chroma_cqt", "chroma_cens", "tonnetz",
             "cqt", "onset_strength", "tempogram", "poly_features", "rms", "ltas"]
    out = compute(y, sr, config=cfg, features=names)
    for name in names:
        assert out[name].shape[0] == CATALOG[name].dims(cfg), name
        if CATALOG[name].frame_level:
            assert out[name].shape[1] == 1 + len(y) // 256
        _check(name, out[name], reference(name, y, sr, cfg))


# ---------------------------------------------------------------------------------------------
# One shared analysis: only what is needed, each intermediate once


def test_mfcc_alone_does_not_build_the_cqt_or_rhythm(clips):
    y, sr = clips[CLIPS[0]]
    a = Analysis(y, sr)
    a.compute(["mfcc"])
    assert a.computed == ["stft", "magnitude", "power", "mel", "log_mel", "mfcc"]
    b = Analysis(y, sr)
    b.compute(["rms", "zero_crossing_rate", "peak"])
    assert b.computed == []  # waveform features need no transform at all


@pytest.mark.parametrize("name", [n for n in CATALOG if n not in SLOW])
def test_each_feature_builds_only_the_intermediates_it_declares(name, clips):
    y, sr = clips[CLIPS[1]]
    a = Analysis(y[: sr], sr)
    a.compute([name])
    # exactly the declared chain, in order: nothing more (and the catalog does not lie)
    assert tuple(a.computed) == CATALOG[name].needs, (name, a.computed)


def test_default_set_builds_one_stft_one_cqt_one_onset_envelope(clips, monkeypatch):
    import genaudio.features.analysis as analysis

    calls = {"cqt_magnitude": 0, "onset_strength": 0, "melspectrogram": 0, "stft": 0}
    mods = {"cqt_magnitude": analysis, "onset_strength": librosa.onset, "melspectrogram": librosa.feature,
            "stft": librosa}
    for fn in calls:
        mod = mods[fn]
        orig = getattr(mod, fn)

        def spy(*args, _orig=orig, _fn=fn, **kw):
            calls[_fn] += 1
            return _orig(*args, **kw)
        monkeypatch.setattr(mod, fn, spy)
    y, sr = clips[CLIPS[0]]
    a = Analysis(y, sr)
    out = a.compute(default_features())
    assert set(out) == set(default_features())
    assert calls["cqt_magnitude"] == 1
    assert calls["stft"] == 1  # the analysis STFT (the CQT's per-octave transforms live in librosa.core)
    assert calls["melspectrogram"] == 1
    # the mean envelope (tempo, tempogram, onsets) and the median one (beat tracking)
    assert calls["onset_strength"] == 2
    assert len(a.computed) == len(set(a.computed))
    assert "hpss" not in a.computed and "pyin" not in a.computed


# ---------------------------------------------------------------------------------------------
# Summaries


def test_summary_names_and_values():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 50)).astype(np.float32)
    s = summarize({"mfcc": x, "tempo": np.array([120.0], np.float32)})
    assert len(s) == 20 * len(DEFAULT_STATS) + 1
    assert parse_summary_column("mfcc_03_mean") == ("mfcc", 3, "mean")
    for col in s:
        assert parse_summary_column(col) is not None, col
    row = x[3].astype(np.float64)
    assert s["mfcc_03_mean"] == pytest.approx(row.mean())
    assert s["mfcc_03_std"] == pytest.approx(row.std())
    assert s["mfcc_03_min"] == pytest.approx(row.min())
    assert s["mfcc_03_max"] == pytest.approx(row.max())
    assert s["mfcc_03_median"] == pytest.approx(np.median(row))
    assert s["mfcc_03_skew"] == pytest.approx(scipy.stats.skew(row))
    assert s["mfcc_03_kurtosis"] == pytest.approx(scipy.stats.kurtosis(row))
    assert s["mfcc_03_delta_mean"] == pytest.approx(np.diff(row).mean())
    assert s["mfcc_03_delta_std"] == pytest.approx(np.diff(row).std())
    assert s["tempo_00_value"] == 120.0
    only = summarize({"rms": x[:1]}, config=FeatureConfig(stats=("mean", "max")))
    assert list(only) == ["rms_00_mean", "rms_00_max"]


@pytest.mark.parametrize("t", [1, 2, 3, 50, 51])
def test_frame_stats_order_statistics_are_numpys_exactly(t):
    """median (from one sort), min and max are the very floats numpy gives, odd and even lengths,
    ties, wide ranges; non-finite values count as 0 (the store's values must not move)."""
    from genaudio.features.summary import frame_stats

    rng = np.random.default_rng(t)
    x = rng.normal(size=(40, t)) * 10.0 ** rng.integers(-6, 6, size=(40, 1))
    x[::4] = np.round(x[::4], 1)
    x[1::4] = 0.0
    for name, ref in (("median", np.median(x, axis=1)), ("min", x.min(axis=1)), ("max", x.max(axis=1))):
        np.testing.assert_array_equal(frame_stats(x)[name], ref, err_msg=name)
    x[2, 0], x[3, -1] = np.nan, -np.inf
    got = frame_stats(x)
    np.testing.assert_array_equal(got["median"], np.median(np.nan_to_num(x, nan=0.0, neginf=0.0), axis=1))
    assert all(np.isfinite(v).all() for v in got.values())


@pytest.mark.parametrize("signal", ["silence", "short_noise", "one_frame", "dc"])
def test_summary_is_finite_on_degenerate_input(signal):
    sr = 22050
    rng = np.random.default_rng(1)
    y = {
        "silence": np.zeros(sr * 2, np.float32),
        "short_noise": (0.1 * rng.normal(size=int(0.05 * sr))).astype(np.float32),
        "one_frame": (0.1 * rng.normal(size=300)).astype(np.float32),
        "dc": np.full(sr, 0.5, np.float32),
    }[signal]
    names = [n for n in CATALOG if n not in SLOW]
    out = compute(y, sr, features=names)
    for name, arr in out.items():
        assert np.all(np.isfinite(arr)), (signal, name)
    s = summarize(out)
    bad = [k for k, v in s.items() if not np.isfinite(v)]
    assert not bad, bad[:10]
    if signal == "silence":
        assert s["rms_db_00_value"] == -120.0
        assert s["crest_factor_db_00_value"] == 0.0
        assert s["mfcc_00_std"] == 0.0 and s["mfcc_00_skew"] == 0.0 and s["mfcc_00_kurtosis"] == 0.0
        assert s["beat_count_00_value"] == 0.0


def test_wide_features_have_parseable_summary_columns():
    """ltas / stft_db have 1 + n_fft/2 = 1025 dims: 4-digit dims must round-trip through the store."""
    s = summarize({"ltas": np.zeros(1025, np.float32)})
    assert "ltas_1024_value" in s
    assert parse_summary_column("ltas_1024_value") == ("ltas", 1024, "value")
