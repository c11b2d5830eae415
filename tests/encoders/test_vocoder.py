"""The learned decoder (vocoder): trains, renders, saves/loads without pickle, resumes exactly, and
gives way to Griffin-Lim when there is none; `genaudio encode --decoder-from/--decoder learned`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from genaudio.audio import load
from genaudio.cli import main
from genaudio.config import AudioConfig
from genaudio.encoders import add_code_noise, load_encoder, make_encoder
from genaudio.encoders.framing import GriffinLimDecoder, core_to_audio
from genaudio.encoders.vocoder import LearnedDecoder, VocoderNet, load_decoder, train_vocoder
from genaudio.errors import EncoderError

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SR = 22050
# a vocoder small enough to train in a second or two on a CPU; most tests here are of the learned
# phase (the magnitude-only default has its own, at the end)
TINY = dict(channels=32, intermediate=64, layers=2, epochs=4, steps_per_epoch=4, batch_size=4, crop_frames=16,
            learning_rate=3e-3, device="cpu", phase="learned")


class Interrupted(Exception):
    """A training stopped mid-way by its log callback (:func:`stop_after`)."""


def stop_after(epoch: int):
    """A ``log`` callback for train_vocoder that interrupts it once ``epoch`` is checkpointed."""
    def log(line):
        if line.startswith(f"epoch {epoch}/"):
            raise Interrupted
    return log


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: on a loaded 2-core machine two threads spin and run ~20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    """Two real sample clips, 3 s each at 22.05 kHz."""
    paths = [SAMPLES / "piano" / "piano_melody_c.wav", SAMPLES / "strings" / "strings_pad_am.ogg"]
    return [load(p, config=AudioConfig(sample_rate=SR), offset=1.0, duration=3.0)[0] for p in paths]


@pytest.fixture(scope="module")
def encoder(clips):
    enc = make_encoder("pca", dim=8, n_mels=64, device="cpu").fit(clips)
    return enc.fit_decoder(clips, config=enc.vocoder_config(**TINY))


def test_a_tiny_vocoder_learns_and_is_the_encoders_decoder(encoder, clips):
    dec = encoder.learned_decoder
    assert encoder.decoder is dec and encoder.decoder_name == "learned"
    hist = dec.history
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert {"loss", "mrstft", "mel_l1", "seconds"} <= set(hist[0])
    assert dec.training["steps"] == 16 and dec.training["audio_seconds"] == pytest.approx(6.0, abs=0.1)
    y = clips[0]
    y_hat = encoder.reconstruct(y)
    assert y_hat.shape == y.shape and y_hat.dtype == np.float32 and np.all(np.isfinite(y_hat))
    assert np.abs(y_hat).max() > 1e-4
    # decoded codes and arbitrary (even absurd) frames render: the input is clipped to a sane dB range
    frames = np.full((encoder.input_dims, 20), 500.0, np.float32)
    assert np.all(np.isfinite(encoder.to_audio(frames=frames)))
    assert len(encoder.to_audio(encoder.encode(y), length=1000)) == 1000


def test_saved_with_the_encoder_and_loaded_without_pickle(tmp_path, encoder, clips):
    encoder.save(tmp_path / "enc")
    assert (tmp_path / "enc" / "decoder" / "weights.pt").is_file()
    assert json.loads((tmp_path / "enc" / "config.json").read_text())["decoder"] == "learned"
    state = torch.load(tmp_path / "enc" / "decoder" / "weights.pt", weights_only=True)
    assert "in_mean" in state and "head.weight" in state
    back = load_encoder(tmp_path / "enc")
    assert back.decoder_name == "learned" and back.learned_decoder.config == encoder.learned_decoder.config
    assert back.learned_decoder.history == encoder.learned_decoder.history
    np.testing.assert_array_equal(back.reconstruct(clips[1]), encoder.reconstruct(clips[1]))
    # the vocoder alone is reusable from the encoder folder
    assert load_decoder(tmp_path / "enc").config == encoder.learned_decoder.config
    # damaged weights are one clear error, never an unpickling
    (tmp_path / "enc" / "decoder" / "weights.pt").write_bytes(b"not a torch file")
    with pytest.raises(EncoderError, match="weights.pt cannot be loaded"):
        load_encoder(tmp_path / "enc")
    with pytest.raises(EncoderError, match="holds no learned decoder"):
        load_decoder(tmp_path)


def test_checkpoint_resumes_an_interrupted_training_exactly(tmp_path, encoder, clips):
    cfg = encoder.vocoder_config(**TINY)
    frames = [encoder.input_frames(y)[:encoder.core_dims] for y in clips]
    full = train_vocoder(clips, frames, cfg)

    ck = tmp_path / "voc.pt"
    with pytest.raises(Interrupted):
        train_vocoder(clips, frames, cfg, checkpoint=ck, log=stop_after(2))
    assert torch.load(ck, weights_only=True)["epoch"] == 2
    resumed = train_vocoder(clips, frames, cfg, checkpoint=ck)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    for k, v in full.net.state_dict().items():
        assert torch.equal(v, resumed.net.state_dict()[k]), k
    with pytest.raises(EncoderError, match="another configuration.*channels"):
        train_vocoder(clips, frames, encoder.vocoder_config(**{**TINY, "channels": 16}), checkpoint=ck)


def test_griffin_lim_is_the_option_and_the_fallback(encoder, clips):
    plain = make_encoder("pca", dim=8, n_mels=64, device="cpu").fit(clips)
    assert plain.learned_decoder is None and plain.decoder_name == "griffinlim"
    assert isinstance(plain.decoder, GriffinLimDecoder)
    codes = plain.encode(clips[0])
    frames = plain.decode(codes)[:plain.core_dims]
    c = plain.config
    expected = core_to_audio(frames, sr=c.sample_rate, core=c.core, n_fft=c.n_fft, hop_length=c.hop_length,
                             n_iter=c.griffin_lim_iters, seed=c.seed)
    np.testing.assert_array_equal(plain.to_audio(codes), expected)
    # one vocoder serves any encoder on the same core and analysis; None goes back to Griffin-Lim
    plain.set_decoder(encoder.learned_decoder)
    assert plain.decoder_name == "learned"
    plain.set_decoder(None)
    np.testing.assert_array_equal(plain.to_audio(codes), expected)
    other = make_encoder("pca", dim=8, n_mels=40, device="cpu").fit(clips)
    with pytest.raises(EncoderError, match="n_mels: vocoder 64 vs encoder 40"):
        other.set_decoder(encoder.learned_decoder)
    mulaw = make_encoder("mulaw", dim=256).fit(clips)
    assert mulaw.decoder_name == "mulaw" and not mulaw.can_learn_decoder
    with pytest.raises(EncoderError, match="no learned decoder"):
        mulaw.fit_decoder(clips)
    no_core = make_encoder("pca", dim=4, core="none", groups=("mfcc",)).fit(clips)
    assert no_core.decoder_name == "none"
    with pytest.raises(EncoderError, match="nothing to vocode"):
        no_core.fit_decoder(clips)


def test_encode_cli_reuses_or_trains_a_learned_decoder(tmp_path, features_store, encoder):
    voc = encoder.learned_decoder.save(tmp_path / "voc")
    out = tmp_path / "enc"
    r = CliRunner().invoke(main, ["encode", str(features_store), "--dim", "8", "--holdout", "0.34",
                                  "--wav-pairs", "1", "--decoder-from", str(voc), "--out", str(out), "-q"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.splitlines()[0])["decoder"] == "learned"
    man = json.loads((out / "manifest.json").read_text())
    assert man["decoder"] == "learned" and (out / "encoder" / "decoder" / "weights.pt").is_file()
    assert load_encoder(out).decoder_name == "learned"
    # a vocoder of another analysis is refused with one line
    bad = make_encoder("pca", dim=8, n_mels=40, device="cpu")
    cfg40 = bad.vocoder_config(**TINY)
    LearnedDecoder(cfg40, VocoderNet(cfg40)).save(tmp_path / "voc40")
    r = CliRunner().invoke(main, ["encode", str(features_store), "--decoder-from", str(tmp_path / "voc40"),
                                  "--out", str(tmp_path / "enc2"), "-q"])
    assert r.exit_code != 0 and "error:" in r.output and "n_mels" in r.output and "Traceback" not in r.output
    # --decoder griffinlim writes no vocoder
    r = CliRunner().invoke(main, ["encode", str(features_store), "--dim", "8", "--decoder", "griffinlim",
                                  "--wav-pairs", "0", "--out", str(tmp_path / "enc3"), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "enc3" / "manifest.json").read_text())["decoder"] == "griffinlim"
    assert not (tmp_path / "enc3" / "encoder" / "decoder").exists()


@pytest.mark.slow
def test_encode_cli_trains_a_learned_decoder(tmp_path, features_store):
    out = tmp_path / "enc"
    # the default: a learned decoder, magnitude only (Griffin-Lim's phase)
    r = CliRunner().invoke(main, ["encode", str(features_store), "--dim", "8", "--decoder-epochs", "1",
                                  "--decoder-code-noise", "0.3", "--griffin-lim-iters", "16", "--device", "cpu",
                                  "--wav-pairs", "1", "--out", str(out), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["decoder"] == "learned" and len(metrics["decoder_history"]) == 1
    assert not (out / "decoder_checkpoint.pt").exists()
    enc = load_encoder(out)
    assert enc.decoder_name == "learned" and enc.learned_decoder.config.epochs == 1
    assert enc.learned_decoder.config.phase == enc.config.decoder_phase == "griffinlim"
    assert enc.learned_decoder.config.griffin_lim_iters == enc.config.griffin_lim_iters == 16
    assert enc.learned_decoder.config.code_noise == enc.config.decoder_code_noise == 0.3


def test_the_adversarial_option_trains_and_checkpoints_its_discriminator(tmp_path, encoder, clips):
    cfg = encoder.vocoder_config(**{**TINY, "epochs": 1, "steps_per_epoch": 2, "adversarial": True})
    frames = [encoder.input_frames(y)[:encoder.core_dims] for y in clips]
    dec = train_vocoder(clips, frames, cfg, checkpoint=tmp_path / "adv.pt")
    state = torch.load(tmp_path / "adv.pt", weights_only=True)
    assert "discriminator" in state and "optimizer_d" in state
    assert np.isfinite(dec.history[0]["loss"]) and np.all(np.isfinite(dec.render(frames[0])))


def test_the_magnitude_prior_starts_from_the_magnitude_the_frames_imply(encoder, clips):
    """An untrained head (zero output) renders the mel interpolation of the input: the network only
    learns a correction. The interpolation is exact for a flat spectrum."""
    import librosa

    from genaudio.encoders.vocoder import VocoderConfig, mel_interpolation

    W = mel_interpolation(sr=SR, n_fft=1024, n_mels=64)
    M = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=64)
    assert W.shape == (513, 64) and W.min() >= 0
    np.testing.assert_allclose(W @ (M @ np.full(513, 2.5)), 2.5, rtol=1e-5)
    net = VocoderNet(VocoderConfig(n_mels=64, **{k: v for k, v in TINY.items() if k != "device"}))
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
    frames = encoder.input_frames(clips[0])[:encoder.core_dims]
    with torch.no_grad():
        mag = net.spectrum(torch.from_numpy(frames)[None]).abs()[0].numpy()
    expected = np.sqrt(np.maximum(W @ librosa.db_to_power(frames), 1e-10))
    np.testing.assert_allclose(mag, expected, rtol=1e-3)


def test_the_phase_prior_advances_each_bin_at_its_centre_frequency(encoder, clips):
    """An untrained head (zero phase) with ``phase_prior`` gives bin k at frame t the phase
    2 pi k hop t / n_fft; without it, phase 0 everywhere: every frame's overlap-add adds up in step,
    a buzz that frame_comb sees."""
    from genaudio.encoders.metrics import frame_comb
    from genaudio.encoders.vocoder import VocoderConfig

    frames = torch.from_numpy(encoder.input_frames(clips[0])[:encoder.core_dims])[None]
    spectra, audio = {}, {}
    for prior in (False, True):
        net = VocoderNet(VocoderConfig(n_mels=64, phase_prior=prior, **{k: v for k, v in TINY.items() if k != "device"}))
        with torch.no_grad():
            net.head.weight.zero_()
            net.head.bias.zero_()
            spectra[prior] = net.spectrum(frames)[0]
            audio[prior] = net(frames)[0].numpy()
    k, t = np.meshgrid(np.arange(513), np.arange(frames.shape[-1]), indexing="ij")
    expected = np.exp(1j * 2 * np.pi * k * 256 * t / 1024)
    np.testing.assert_allclose(spectra[True].numpy() / spectra[True].abs().numpy(), expected, atol=1e-3)
    assert torch.allclose(spectra[False].angle(), torch.zeros(()), atol=1e-6)
    assert frame_comb(audio[False], hop_length=256) > 100


def test_it_trains_on_the_encoders_decoded_codes_by_default(encoder, clips):
    assert encoder.learned_decoder.training["frames"] == "decoded codes of this pca encoder (dim 8, float16)"
    clean = make_encoder("pca", dim=8, n_mels=64, device="cpu").fit(clips)
    clean.fit_decoder(clips, config=clean.vocoder_config(**TINY), from_codes=False)
    assert clean.learned_decoder.training["frames"] == "clean core frames"
    # same seed and config, different input frames: a different vocoder
    assert not torch.equal(clean.learned_decoder.net.head.weight, encoder.learned_decoder.net.head.weight)
    unfitted = make_encoder("pca", dim=8, n_mels=64, device="cpu")
    with pytest.raises(EncoderError, match="not fitted"):
        unfitted.fit_decoder(clips, config=unfitted.vocoder_config(**TINY), from_codes=True)


def test_code_noise_trains_on_noisy_codes_of_the_stated_size(encoder, clips):
    codes = [encoder.encode(y) for y in clips]
    noisy = add_code_noise(codes, 0.5, seed=3)
    std = np.concatenate(codes).std(axis=0)
    added = np.concatenate([n - c for n, c in zip(noisy, codes)])
    np.testing.assert_allclose(added.std(axis=0) / std, 0.5, rtol=0.25)
    assert all(n.shape == c.shape and n.dtype == c.dtype for n, c in zip(noisy, codes))
    np.testing.assert_array_equal(np.concatenate(add_code_noise(codes, 0.5, seed=3)), np.concatenate(noisy))

    enc = make_encoder("pca", dim=8, n_mels=64, device="cpu").fit(clips)
    enc.fit_decoder(clips, config=enc.vocoder_config(**TINY, code_noise=0.5))
    assert enc.learned_decoder.config.code_noise == 0.5
    # same seed and config but the noise: other training frames, another vocoder
    assert not torch.equal(enc.learned_decoder.net.head.weight, encoder.learned_decoder.net.head.weight)
    with pytest.raises(EncoderError, match="code_noise needs"):
        enc.fit_decoder(clips, config=enc.vocoder_config(**TINY, code_noise=0.5), from_codes=False)
    # the encoder's own setting is the default, and it is validated once, in the config
    assert make_encoder("pca", dim=8, decoder_code_noise=0.3).vocoder_config().code_noise == 0.3
    with pytest.raises(EncoderError, match="decoder_code_noise"):
        make_encoder("pca", dim=8, decoder_code_noise=-1)


@pytest.mark.parametrize("version, lacks", [(1, ("magnitude_prior", "phase_prior", "integrated_phase", "phase_weight")),
                                             (2, ("phase_prior", "integrated_phase", "phase_weight")),
                                             (3, ())])
def test_older_vocoders_load_as_they_were_trained(tmp_path, clips, version, lacks):
    """A version-1 config lacks the magnitude prior, version 2 the phase options, version 3 the
    phase's source: their absence means what it meant then (off; a learned phase), whatever
    today's defaults are."""
    enc = make_encoder("pca", dim=8, n_mels=64, device="cpu").fit(clips)
    enc.fit_decoder(clips, config=enc.vocoder_config(**TINY, magnitude_prior=version > 1, phase_prior=False,
                                                     integrated_phase=False))
    folder = enc.learned_decoder.save(tmp_path / "old")
    meta = json.loads((folder / "config.json").read_text())
    for field in (*lacks, "phase", "griffin_lim_iters"):
        del meta["config"][field]
    meta["format_version"] = version
    (folder / "config.json").write_text(json.dumps(meta))
    back = LearnedDecoder.load(folder)
    assert back.config.phase == "learned" and back.config.magnitude_prior is (version > 1)
    assert not back.config.phase_prior and not back.config.integrated_phase
    frames = enc.decode(enc.encode(clips[0]))[:enc.core_dims]
    np.testing.assert_array_equal(back.render(frames), enc.learned_decoder.render(frames))


def test_the_phase_loss_measures_group_delay_and_frequency_not_absolute_phase():
    """0 for the audio's own spectrum and for it turned by a constant angle, ~pi/2 for random
    phases; bins without energy do not count."""
    import math

    from genaudio.encoders.vocoder import phase_loss

    gen = torch.Generator().manual_seed(0)
    window = torch.hann_window(1024)
    y = torch.randn(2, 40 * 256, generator=gen)
    S = torch.stft(y, 1024, hop_length=256, window=window, center=True, return_complex=True)[..., :40]

    def loss(spec, audio=y):
        return float(phase_loss(spec, audio, n_fft=1024, hop_length=256, window=window))

    assert loss(S) == pytest.approx(0, abs=1e-5)
    assert loss(S * torch.polar(torch.ones(()), torch.tensor(2.0))) == pytest.approx(0, abs=1e-5)
    random_phase = torch.polar(S.abs(), 2 * math.pi * torch.rand(S.shape, generator=gen))
    assert loss(random_phase) == pytest.approx(math.pi / 2, abs=0.05)
    # a tone at bin 64: its phase there is all that counts; the silent bins' phase may be anything
    tone = torch.sin(2 * math.pi * 64 / 1024 * torch.arange(40 * 256))[None]
    T = torch.stft(tone, 1024, hop_length=256, window=window, center=True, return_complex=True)[..., :40]
    elsewhere = T.clone()
    elsewhere[:, 80:] = torch.polar(torch.full_like(T[:, 80:].real, 1e-6), torch.rand(T[:, 80:].shape, generator=gen))
    assert loss(elsewhere, tone) < 1e-3
    with pytest.raises(EncoderError, match="more than 5 frames"):
        phase_loss(S[..., :5], y, n_fft=1024, hop_length=256, window=window)


def test_integrated_phase_sums_the_predicted_advance_over_frames(tmp_path, encoder, clips):
    """A head that predicts a constant advance d and no offset gives frame t the phase (t + 1) d,
    over any number of frames; with the phase term it trains, records it, and saves and loads."""
    from genaudio.encoders.vocoder import VocoderConfig

    frames = torch.from_numpy(encoder.input_frames(clips[0])[:encoder.core_dims])[None]
    net = VocoderNet(VocoderConfig(n_mels=64, integrated_phase=True, phase_prior=False, **{k: v for k, v in TINY.items() if k != "device"}))
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
        net.head.bias[2 * 513:] = 0.3
        phase = net.spectrum(frames)[0].angle().numpy()
    t = np.arange(frames.shape[-1])
    expected = np.angle(np.exp(1j * 0.3 * (t + 1)))
    np.testing.assert_allclose(np.angle(np.exp(1j * (phase - expected[None]))), 0, atol=1e-4)

    enc = make_encoder("pca", dim=8, n_mels=64, device="cpu").fit(clips)
    enc.fit_decoder(clips, config=enc.vocoder_config(**TINY, integrated_phase=True, phase_weight=1.0))
    dec = enc.learned_decoder
    assert all(np.isfinite(h["phase"]) for h in dec.history)
    back = LearnedDecoder.load(dec.save(tmp_path / "v"))
    assert back.config.integrated_phase and back.config.phase_weight == 1.0
    f = enc.decode(enc.encode(clips[0]))[:enc.core_dims]
    np.testing.assert_array_equal(back.render(f), dec.render(f))
    with pytest.raises(EncoderError, match="crop_frames 5 is too short"):
        enc.vocoder_config(**{**TINY, "crop_frames": 5}, phase_weight=1.0)


def test_a_magnitude_only_vocoder_learns_the_magnitude_and_griffin_lim_its_phase(tmp_path, encoder, clips):
    """``phase="griffinlim"``: untrained it is the prior exactly; it trains on the magnitude alone
    (spectral convergence falls), renders Griffin-Lim of its magnitude, saves and loads, resumes."""
    from genaudio.encoders.framing import griffin_lim
    from genaudio.encoders.vocoder import DB_RANGE, VocoderConfig

    frames = encoder.input_frames(clips[0])[:encoder.core_dims]
    x = torch.from_numpy(frames)[None]
    net = VocoderNet(VocoderConfig(n_mels=64, **{**TINY, "phase": "griffinlim", "device": "cpu"}))
    with torch.no_grad():
        torch.testing.assert_close(net.log_magnitude(x), net.prior(x))
    with pytest.raises(EncoderError, match="magnitude only"):
        net.spectrum(x)

    cfg = encoder.vocoder_config(**{**TINY, "phase": "griffinlim", "griffin_lim_iters": 8})
    enc = make_encoder("pca", dim=8, n_mels=64, device="cpu").fit(clips)
    enc.fit_decoder(clips, config=cfg)
    dec = enc.learned_decoder
    assert [set(h) for h in dec.history] == [{"epoch", "loss", "sc", "log_l1", "seconds"}] * 4
    assert dec.history[-1]["sc"] < dec.history[0]["sc"]
    decoded = np.clip(enc.decode(enc.encode(clips[0]))[:enc.core_dims], *DB_RANGE)  # as render clips them
    with torch.no_grad():
        mag = torch.exp(dec.net.log_magnitude(torch.from_numpy(decoded)[None]))[0].numpy()
    y = dec.render(decoded, length=len(clips[0]))
    # (float rounding of the network's convolutions differs from call to call by ~1e-6)
    np.testing.assert_allclose(y, griffin_lim(mag, n_fft=1024, hop_length=256, n_iter=8, length=len(clips[0])),
                               atol=1e-4)
    np.testing.assert_array_equal(enc.reconstruct(clips[0]), y)

    back = load_encoder(enc.save(tmp_path / "enc"))
    assert back.learned_decoder.config == cfg
    np.testing.assert_array_equal(back.reconstruct(clips[0]), y)

    ck = tmp_path / "mag.pt"
    f = [enc.decode(enc.encode(c))[:enc.core_dims] for c in clips]
    full = train_vocoder(clips, f, cfg)

    with pytest.raises(Interrupted):
        train_vocoder(clips, f, cfg, checkpoint=ck, log=stop_after(1))
    resumed = train_vocoder(clips, f, cfg, checkpoint=ck)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    torch.testing.assert_close(resumed.net.head.weight, full.net.head.weight, rtol=0, atol=0)


def test_the_phase_source_is_validated_once_in_the_config(encoder):
    """The defaults: a learned decoder, magnitude only. A wrong phase is one config error."""
    from genaudio.encoders.vocoder import VocoderConfig

    assert VocoderConfig().phase == "griffinlim" and make_encoder("pca").config.decoder == "learned"
    with pytest.raises(EncoderError, match="phase must be one of learned, griffinlim"):
        encoder.vocoder_config(phase="vocos")
    with pytest.raises(EncoderError, match="adversarial term .* needs phase 'learned'"):
        encoder.vocoder_config(phase="griffinlim", adversarial=True)
    with pytest.raises(EncoderError, match="magnitude term leaves out 2 frames"):
        encoder.vocoder_config(phase="griffinlim", crop_frames=5)
    assert make_encoder("pca", dim=8, griffin_lim_iters=16).vocoder_config().griffin_lim_iters == 16


def test_the_magnitude_loss_is_not_swamped_by_a_silent_crop():
    """Spectral convergence over the batch: a near-silent crop (a file's silent start) adds its
    tiny error, not its own huge relative one (a crop's own SC was ~1e4 and blew up training)."""
    from genaudio.encoders.vocoder import magnitude_loss

    gen = torch.Generator().manual_seed(0)
    mag = torch.rand(2, 513, 20, generator=gen) + 0.1
    mag[1] = 1e-9
    too_loud = torch.log(mag.clamp_min(1e-5)) + 0.1  # 10 % too loud everywhere
    loss, parts = magnitude_loss(too_loud, mag)
    assert parts["sc"] == pytest.approx(0.105, abs=0.01)
    assert parts["log_l1"] == pytest.approx((0.1 + 0.1) / 2, abs=0.01)  # the silent crop sits at the floor
    assert float(loss) == pytest.approx(parts["sc"] + parts["log_l1"], rel=1e-5)
