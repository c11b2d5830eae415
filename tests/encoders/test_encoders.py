"""Encoders: reconstruction, rates, persistence, bad input. Real librosa/numpy, short clips."""
from __future__ import annotations

import json

import librosa
import numpy as np
import pytest

from genaudio.encoders import load_encoder, make_encoder
from genaudio.encoders.metrics import (buzzes, frame_comb, log_spectral_distance, multi_resolution_stft_distance,
                                       snr_db, spectral_convergence)
from genaudio.errors import EncoderError, GenaudioError

from .conftest import SR, tone


def _peak_hz(y: np.ndarray, sr: int = SR) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spec) * sr / len(y))


@pytest.fixture(scope="module")
def tones():
    return [tone(f, 1.0) for f in (220.0, 330.0, 440.0, 550.0, 660.0)]


@pytest.mark.parametrize("kind,options", [
    ("mel", {"dim": 64}),
    ("pca", {"dim": 8}),
    ("pca", {"dim": 8, "core": "log_stft", "precision": "uint8", "downsample": 2}),
    ("mulaw", {"dim": 256}),
])
def test_every_encoder_reconstructs_a_tone(tones, kind, options):
    enc = make_encoder(kind, **options).fit(tones)
    y = tone(440.0, 1.0)
    y_hat = enc.reconstruct(y)
    assert y_hat.shape == y.shape and y_hat.dtype == np.float32
    # the pitch survives, the level is right, and the magnitude spectrogram is close
    assert abs(_peak_hz(y_hat) - 440.0) < 20.0  # within a semitone (mel bands are ~40 Hz wide here)
    assert 0.5 < np.sqrt(np.mean(y_hat ** 2)) / np.sqrt(np.mean(y ** 2)) < 2.0
    assert spectral_convergence(y, y_hat) < 0.6


def test_codes_shape_rate_bitrate_and_stored_precision(clips):
    enc = make_encoder("pca", dim=16, core="log_stft", precision="uint8", downsample=2).fit(clips)
    y = clips[0]
    codes = enc.encode(y)
    n_frames = 1 + len(y) // 256
    assert codes.shape == ((n_frames + 1) // 2, 16) and codes.dtype == np.float32
    assert enc.code_rate_hz == pytest.approx(SR / 256 / 2)
    assert enc.bitrate == pytest.approx(enc.code_rate_hz * 16 * 8)
    assert enc.compression_ratio == pytest.approx(16 * SR / enc.bitrate) == pytest.approx(64.0)
    # what encode returns is exactly what the store keeps
    stored = enc.quantize(codes)
    assert stored.dtype == np.uint8
    np.testing.assert_array_equal(enc.dequantize(stored), codes)
    f16 = make_encoder("pca", dim=4, precision="float16").fit(clips)
    c = f16.encode(y)
    np.testing.assert_array_equal(c.astype(np.float16).astype(np.float32), c)
    assert f16.bits_per_value == 16 and f16.bitrate == pytest.approx(SR / 256 * 4 * 16)


def test_more_dims_and_8bit_codes_spend_bits_better(clips):
    """At a fixed bitrate, 16 x 8-bit PCA codes reconstruct frames better than 8 x float16."""
    train, test = clips[:3], clips[3]
    a = make_encoder("pca", dim=8, precision="float16").fit(train)
    b = make_encoder("pca", dim=16, precision="uint8").fit(train)
    assert a.bitrate == pytest.approx(b.bitrate)
    x = a.input_frames(test)

    def err(e):
        return float(np.sqrt(np.mean((e.decode(e.encode(test)) - x) ** 2)))

    assert err(b) < err(a)


@pytest.mark.parametrize("kind,options", [
    ("pca", {"dim": 6, "pca": {"whiten": True}, "precision": "uint8"}),
    ("mel", {"dim": 32, "downsample": 2}),
    ("mulaw", {"dim": 128}),
])
def test_save_load_round_trip(tmp_path, clips, kind, options):
    enc = make_encoder(kind, **options).fit(clips[:2])
    enc.save(tmp_path / "enc")
    again = load_encoder(tmp_path / "enc")
    assert type(again) is type(enc) and again.config == enc.config
    assert again.bitrate == enc.bitrate and again.dim == enc.dim
    np.testing.assert_array_equal(again.encode(clips[3]), enc.encode(clips[3]))
    c = enc.encode(clips[3])
    np.testing.assert_allclose(again.to_audio(c, length=4000), enc.to_audio(c, length=4000), atol=1e-6)
    # saving again over an encoder replaces it
    enc.save(tmp_path / "enc")
    assert load_encoder(tmp_path / "enc").config == enc.config


def test_feature_groups_join_the_core_and_decode_back(clips):
    enc = make_encoder("pca", dim=12, core="log_mel", n_mels=64, groups=("mfcc", "rms")).fit(clips[:3])
    assert [b.name for b in enc.blocks] == ["log_mel", "mfcc", "rms"]
    assert enc.input_dims == 64 + 20 + 1
    parts = enc.split_frames(enc.decode(enc.encode(clips[3])))
    assert parts["log_mel"].shape[0] == 64 and parts["mfcc"].shape[0] == 20 and parts["rms"].shape[0] == 1
    assert enc.has_audio_decoder
    assert enc.to_audio(enc.encode(clips[3])).ndim == 1


def test_without_a_spectral_core_there_is_no_audio_decoder(clips):
    enc = make_encoder("pca", dim=4, core="none", groups=("mfcc", "chroma_stft")).fit(clips[:3])
    assert not enc.has_audio_decoder
    codes = enc.encode(clips[3])
    assert enc.decode(codes).shape[0] == 20 + 12
    with pytest.raises(EncoderError, match="no audio decoder"):
        enc.to_audio(codes)


def test_dims_larger_than_the_data_allows(clips):
    with pytest.raises(EncoderError, match="larger than the input frame size"):
        make_encoder("pca", dim=200, n_mels=64).fit(clips[:1])
    with pytest.raises(EncoderError, match="larger than the number of training frames"):
        make_encoder("pca", dim=100, core="log_stft").fit([clips[0][:4000]])
    with pytest.raises(EncoderError, match="dim is its input size"):
        make_encoder("mel", dim=40, n_mels=64).fit(clips[:1])


def test_empty_inputs_and_wrong_codes(clips):
    with pytest.raises(EncoderError, match="no training data"):
        make_encoder("pca", dim=4).fit([])
    with pytest.raises(EncoderError, match="empty waveform"):
        make_encoder("pca", dim=4).fit([np.zeros(0, np.float32)])
    enc = make_encoder("pca", dim=4).fit(clips[:2])
    with pytest.raises(EncoderError, match="empty waveform"):
        enc.encode(np.zeros(0, np.float32))
    with pytest.raises(EncoderError, match="NaN"):
        enc.encode(np.full(4000, np.nan, np.float32))
    for bad in (np.zeros((10, 5)), np.zeros((0, 4)), np.zeros(4), np.full((3, 4), np.inf)):
        with pytest.raises(EncoderError, match="codes"):
            enc.decode(bad)
    with pytest.raises(EncoderError, match="not fitted"):
        make_encoder("pca", dim=4).encode(clips[0])
    with pytest.raises(GenaudioError, match="unknown encoder"):
        make_encoder("wavelet", dim=4)
    with pytest.raises(GenaudioError, match="precision"):
        make_encoder("pca", dim=4, precision="int4")


def test_corrupt_or_foreign_encoder_files(tmp_path, clips):
    enc = make_encoder("pca", dim=4).fit(clips[:2])
    good = enc.save(tmp_path / "good")
    with pytest.raises(EncoderError, match="not a saved genaudio encoder"):
        load_encoder(tmp_path)  # no config.json
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"model": "resnet"}))
    with pytest.raises(EncoderError, match="not a genaudio encoder"):
        load_encoder(foreign)
    (foreign / "config.json").write_text("{not json")
    with pytest.raises(EncoderError, match="corrupt"):
        load_encoder(foreign)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((good / "config.json").read_text())
    (broken / "arrays.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(EncoderError, match="corrupt"):
        load_encoder(broken)
    # a pickled object array is refused, never unpickled
    np.savez(broken / "arrays.npz", std_mean=np.array([object()], dtype=object))
    with pytest.raises(EncoderError):
        load_encoder(broken)
    # saving never overwrites a folder that is not an encoder
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(EncoderError, match="not overwriting"):
        enc.save(other)
    assert (other / "notes.txt").read_text() == "keep me" and len(list(other.iterdir())) == 1


def test_metrics_behave():
    y = tone(440.0, 1.0)
    assert spectral_convergence(y, y) == pytest.approx(0.0, abs=1e-6)
    assert log_spectral_distance(y, y) == pytest.approx(0.0, abs=1e-6)
    assert multi_resolution_stft_distance(y, y) == pytest.approx(0.0, abs=1e-6)
    assert spectral_convergence(y, np.zeros_like(y)) == pytest.approx(1.0)
    noise = np.random.default_rng(0).standard_normal(len(y)).astype(np.float32)
    # twice the amplitude is +6.02 dB in every bin (white noise: no bin at the floor)
    assert log_spectral_distance(0.1 * noise, 0.2 * noise) == pytest.approx(6.02, abs=0.05)
    lsd = [log_spectral_distance(y, y + a * noise) for a in (1e-4, 1e-3, 1e-2)]
    mr = [multi_resolution_stft_distance(y, y + a * noise) for a in (1e-4, 1e-3, 1e-2)]
    assert lsd[0] < lsd[1] < lsd[2] and mr[0] < mr[1] < mr[2]
    assert 25 < snr_db(y, y + 0.01 * noise) < 40
    mu = make_encoder("mulaw", dim=256).fit(None)
    assert mu.compression_ratio == pytest.approx(2.0)
    assert snr_db(y, mu.reconstruct(y)) > 30


def test_a_silent_held_out_clip_is_left_out_of_the_means(clips):
    """Spectral convergence is relative to the original's energy: a silent clip decoded to a
    decoder's faint noise scored ~1e9 and swamped the mean of every other clip."""
    from genaudio.encoders.metrics import evaluate

    enc = make_encoder("pca", dim=8, griffin_lim_iters=4).fit(clips[:2])
    base = evaluate(enc, clips[2:4])
    with_silence = evaluate(enc, [*clips[2:4], np.zeros_like(clips[3])])
    assert (with_silence["n_clips"], with_silence["n_silent"]) == (2, 1)
    assert with_silence["sc"] == pytest.approx(base["sc"]) and base["sc"] < 2
    with pytest.raises(EncoderError, match="silent"):
        evaluate(enc, [np.zeros_like(clips[3])])


def test_frame_comb_finds_a_buzz_at_the_hop():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(3 * SR).astype(np.float32)
    pulses = 0.01 * noise
    pulses[::256] += 1.0                       # a click every hop: an 86 Hz buzz at 22.05 kHz
    assert frame_comb(pulses, hop_length=256) > 100
    for every in (2, 4):                       # every second or fourth hop: 43, 21.5 Hz
        sparse = 0.01 * noise
        sparse[::256 * every] += 1.0
        assert frame_comb(sparse, hop_length=256) > 100
    for clean in (noise, tone(440.0, 3.0), tone(440.0, 3.0) + 0.1 * noise):
        assert frame_comb(clean, hop_length=256) < 20
    assert frame_comb(noise[:1000], hop_length=256) == 0.0
    real = frame_comb(tone(440.0, 3.0) + 0.1 * noise, hop_length=256)
    assert buzzes(frame_comb(pulses, hop_length=256), real=real) and not buzzes(2 * real, real=real)
    # a longer hop takes a longer FFT by default (8192 at 512); one too short is refused
    wide = 0.01 * noise
    wide[::512] += 1.0
    assert frame_comb(wide, hop_length=512) > 100 and frame_comb(noise, hop_length=512) < 20
    with pytest.raises(EncoderError, match="frame_comb"):
        frame_comb(noise, hop_length=512, n_fft=4096)


def test_what_a_kind_needs_lives_in_its_class(clips):
    """Callers ask the class (what encode takes, stored precision, what it codes, which configs
    it accepts) instead of checking kind names; the CLI's list of kinds is the registry's."""
    from genaudio.cli.encode import KINDS as CLI_KINDS
    from genaudio.config import ConfigError
    from genaudio.encoders import KINDS, EncoderConfig, encoder_class

    assert tuple(CLI_KINDS) == tuple(KINDS)
    mulaw = make_encoder("mulaw", dim=256, precision="float16").fit()
    assert mulaw.takes_waveform and mulaw.precision == "uint8" and mulaw.bits_per_value == 8
    assert encoder_class("mulaw").core_of(mulaw.config) == "waveform"
    pca = make_encoder("pca", dim=4, precision="float16").fit(clips[:2])
    assert not pca.takes_waveform and pca.precision == "float16" and pca.bits_per_value == 16
    assert pca.item_of(clips[0], {"log_mel": None}) == {"log_mel": None}
    assert mulaw.item_of(clips[0], {"log_mel": None}) is clips[0]
    # each kind's own rules, checked by the config itself
    with pytest.raises(ConfigError, match="mel encoder's core is log_mel"):
        EncoderConfig(kind="mel", core="log_stft")
    with pytest.raises(ConfigError, match="needs at least one feature group"):
        EncoderConfig(kind="pca", core="none")
    EncoderConfig(kind="mulaw", core="none")   # a waveform coder has no frames to need


def test_an_encoder_saved_before_the_kind_sections_still_loads(tmp_path, clips):
    """Saved encoders of an older genaudio have the kind options at the top level of config.json."""
    enc = make_encoder("pca", dim=4, pca={"whiten": True}).fit(clips[:2])
    folder = enc.save(tmp_path / "enc")
    meta = json.loads((folder / "config.json").read_text())
    assert meta["config"]["pca"] == {"whiten": True} and meta["config"]["autoencoder"]["epochs"] == 30
    cfg = {k: v for k, v in meta["config"].items() if k not in ("pca", "autoencoder")}
    meta["config"] = {**cfg, "whiten": True, "epochs": 12, "hidden": 64, "batch_size": 16, "learning_rate": 2e-3}
    (folder / "config.json").write_text(json.dumps(meta))
    old = load_encoder(folder)
    assert old.config.pca.whiten and old.config.autoencoder.epochs == 12 and old.config.autoencoder.hidden == 64
    np.testing.assert_array_equal(old.encode(clips[0]), enc.encode(clips[0]))


@pytest.mark.parametrize("n_fft,hop", [(2048, 512), (1024, 256), (1024, 384)])
def test_griffin_lim_is_librosas(sample_files, n_fft, hop):
    from genaudio.encoders.framing import griffin_lim

    y, _ = librosa.load(sample_files[0], sr=22050, duration=3.0)
    S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)).astype(np.float32)
    for n_iter in (0, 8, 32):
        ours = griffin_lim(S, n_fft=n_fft, hop_length=hop, n_iter=n_iter, length=len(y), seed=3)
        ref = librosa.griffinlim(S, n_iter=n_iter, hop_length=hop, n_fft=n_fft, length=len(y), init="random",
                                 random_state=3)
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < 1e-3, n_iter
    assert griffin_lim(S[:, :1], n_fft=n_fft, hop_length=hop, n_iter=2).shape == (0,)


def test_griffin_lim_refuses_a_magnitude_that_does_not_fit():
    from genaudio.encoders.framing import griffin_lim

    S = np.ones((513, 20), np.float32)
    with pytest.raises(EncoderError, match="not an STFT of n_fft 2048"):
        griffin_lim(S, n_fft=2048, hop_length=512)
    with pytest.raises(EncoderError, match="20 frames of hop 256 cannot make 5120 samples"):
        griffin_lim(S, n_fft=1024, hop_length=256, length=20 * 256)


def test_mel_to_linear_power_fits_the_mel_power_closer_than_librosa(sample_files):
    from genaudio.encoders.framing import mel_to_linear_power

    y, _ = librosa.load(sample_files[0], sr=22050, duration=3.0)
    M = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=128)
    X = M @ np.abs(librosa.stft(y, n_fft=1024, hop_length=256)) ** 2
    ours = mel_to_linear_power(X, sr=22050, n_fft=1024)
    ref = librosa.feature.inverse.mel_to_stft(X, sr=22050, n_fft=1024, power=1.0)
    residual = lambda S: np.linalg.norm(M @ S - X) / np.linalg.norm(X)   # noqa: E731
    assert ours.shape == ref.shape and (ours >= 0).all()
    assert residual(ours) < 0.5 * residual(ref)
    # the cached filterbank serves other analyses too
    assert mel_to_linear_power(X[:40], sr=16000, n_fft=512).shape == (257, X.shape[1])
