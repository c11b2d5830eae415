"""``genaudio encode``: fit an encoder, write the encoded dataset; or sweep rate-distortion."""
from __future__ import annotations

import json

import click

from genaudio.config import ConfigError

#: genaudio.encoders.KINDS, spelled out so that ``genaudio --help`` does not import librosa
#: (tests/encoders check that the two agree)
KINDS = ("mel", "pca", "autoencoder", "mulaw")


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


@click.command("encode")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "-o", required=True, type=click.Path(), help="Output folder ENC (must be new or empty).")
@click.option("--encoder", "kind", default="pca", show_default=True,
              type=click.Choice(list(KINDS)), help="Encoder kind.")
@click.option("--dim", default=16, show_default=True, type=int,
              help="Values per code frame (mel: mel bands; mulaw: samples per frame).")
@click.option("--core", default="log_mel", show_default=True, type=click.Choice(["log_mel", "log_stft", "none"]),
              help="Spectral core of the input frames (what is rendered back to audio).")
@click.option("--groups", default="", help="Extra frame features or groups joined to the core, comma-separated "
              "(e.g. mfcc,chroma_stft or cepstral,tonal).")
@click.option("--precision", default="float16", show_default=True,
              type=click.Choice(["float16", "float32", "uint8"]),
              help="Stored precision of the codes (uint8: per-dimension 8-bit quantisation).")
@click.option("--downsample", default=1, show_default=True, type=int, help="Input frames per code frame.")
@click.option("--whiten/--no-whiten", default=False, show_default=True, help="PCA: unit-variance codes.")
@click.option("--epochs", default=30, show_default=True, type=int, help="Autoencoder training epochs.")
@click.option("--hidden", default=128, show_default=True, type=int, help="Autoencoder hidden channels.")
@click.option("--device", default="auto", show_default=True,
              help="Autoencoder and learned-decoder device: auto, cpu, cuda[:N].")
@click.option("--decoder", default=None, type=click.Choice(["learned", "griffinlim"]),
              help="Audio decoder of spectral encoders: learned trains a vocoder (core frames -> audio) on "
                   "the training audio; griffinlim guesses the phase from the codes' own magnitude (no "
                   "training). Without a trained vocoder an encoder always falls back to Griffin-Lim. "
                   "[default: learned]")
@click.option("--decoder-epochs", default=None, type=click.IntRange(min=1),
              help="Learned decoder: training epochs (50 steps each). [default: 12]")
@click.option("--decoder-phase", default=None, type=click.Choice(["griffinlim", "learned"]),
              help="Learned decoder: where its phase comes from. griffinlim: it learns the magnitude only and "
                   "Griffin-Lim finds the phase (best spectral convergence and LSD; Griffin-Lim's speed); "
                   "learned: it predicts the phase too (~20x faster to decode, behind on both). "
                   "[default: griffinlim]")
@click.option("--griffin-lim-iters", default=None, type=click.IntRange(min=0),
              help="Griffin-Lim iterations, of the griffinlim decoder and of the learned magnitude's phase (16 "
                   "with the learned magnitude still beat 64 plain ones on real music, decoding 4x faster; "
                   "docs/encoders.md). [default: 64]")
@click.option("--decoder-code-noise", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Learned decoder: train it on codes with this much Gaussian noise (x each code dimension's "
                   "std), so that it decodes a model's generated codes, which carry the model's sampling "
                   "noise (an LSTM's: about sqrt of its val_mse). Experimental: a PCA LSTM's clips were "
                   "judged level with its decoder's reconstructions (one model); see docs/encoders.md.")
@click.option("--decoder-from", default=None, type=click.Path(exists=True, file_okay=False),
              help="Reuse the learned decoder of an encoded store, encoder or vocoder folder (same core and "
                   "analysis) instead of training one.")
@click.option("--sample-rate", default=22050, show_default=True, type=int,
              help="Audio inputs: analysis rate in Hz (a features store sets its own).")
@click.option("--n-fft", default=1024, show_default=True, type=int, help="Audio inputs: STFT size.")
@click.option("--hop", "hop_length", default=256, show_default=True, type=int, help="Audio inputs: STFT hop.")
@click.option("--n-mels", default=128, show_default=True, type=int, help="Audio inputs: mel bands of log_mel.")
@click.option("--segment-seconds", default=5.0, show_default=True, type=float,
              help="Audio inputs: segment length in seconds.")
@click.option("--holdout", default=0.2, show_default=True, type=float,
              help="Fraction of files held out for metrics (split by file).")
@click.option("--max-segments", default=None, type=int, help="Use at most this many segments (spread over files).")
@click.option("--wav-pairs", default=3, show_default=True, type=int,
              help="Original / reconstruction WAV pairs written to ENC/audio.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--sweep", "sweep_spec", default=None,
              help="Rate-distortion sweep instead of one encoder, e.g. 'dims=4,8,16,32,64' "
                   "(keys: dims, precisions, downsample; separate with ';').")
@click.option("--encoders", default="mel,pca,autoencoder", show_default=True,
              help="Encoders of the sweep, comma-separated.")
@click.option("--overwrite", is_flag=True, help="Replace an existing ENC folder (only genaudio encode output).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def command(inputs, out, kind, dim, core, groups, precision, downsample, whiten, epochs, hidden, device,
            decoder, decoder_epochs, decoder_phase, griffin_lim_iters, decoder_code_noise, decoder_from, sample_rate,
            n_fft, hop_length, n_mels, segment_seconds, holdout, max_segments, wav_pairs, seed, sweep_spec, encoders, overwrite, quiet):
    """Encode audio into compact codes with a decoder back to sound.

    INPUTS is a features store (`genaudio extract` output; its analysis settings are used and
    its stored frames are the input when they match) or audio files/folders.

    \b
    One encoder:
      genaudio encode STORE --encoder pca --dim 16 --out ENC
    writes ENC/manifest.json, ENC/encoder/, ENC/codes/*.parquet (codes per segment, as --precision),
    ENC/metrics.json (bitrate, compression ratio, spectral convergence, log-spectral distance,
    multi-resolution STFT distance on held-out files) and ENC/audio/ (WAV pairs to listen to).

    \b
    Rate-distortion sweep:
      genaudio encode STORE --sweep dims=4,8,16,32,64 --encoders mel,pca,autoencoder --out RD
    writes RD/rate_distortion.csv, .png (distortion vs compression ratio) and .json.
    """
    from genaudio.encoders import make_encoder
    from genaudio.encoders.run import run_encode, run_sweep
    from genaudio.encoders.sweep import parse_sweep
    from genaudio.errors import EncoderError

    if kind == "mel" and core != "log_mel":
        raise ConfigError("--encoder mel uses --core log_mel")
    opts = dict(core=core, groups=_csv(groups), precision=precision, downsample=downsample,
                pca={"whiten": whiten}, autoencoder={"epochs": epochs, "hidden": hidden},
                device=device, decoder_code_noise=decoder_code_noise, sample_rate=sample_rate, n_fft=n_fft,
                hop_length=hop_length, n_mels=n_mels if kind != "mel" else dim, seed=seed,
                **{k: v for k, v in (("decoder", decoder), ("decoder_epochs", decoder_epochs),
                                     ("decoder_phase", decoder_phase), ("griffin_lim_iters", griffin_lim_iters))
                   if v is not None})
    cfg = make_encoder(kind, dim=dim, **opts).config
    log = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
    if sweep_spec:
        kinds = _csv(encoders)
        bad = [k for k in kinds if k not in KINDS]
        if not kinds or bad:
            raise EncoderError(f"--encoders: unknown {', '.join(bad) or '(none given)'}; "
                               f"choose from {', '.join(KINDS)}")
        df = run_sweep(inputs, out, cfg, encoders=kinds, sweep=parse_sweep(sweep_spec), holdout=holdout,
                       max_segments=max_segments if max_segments is not None else 400,
                       segment_seconds=segment_seconds, overwrite=overwrite, progress=not quiet, log=log)
        shown = df[["label", "dim", "compression_ratio", "sc", "lsd_db", "mrstft", "error"]]
        click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        click.echo(f"wrote {out}/rate_distortion.csv, rate_distortion.png, rate_distortion.json")
        return
    man = run_encode(inputs, out, cfg, holdout=holdout, max_segments=max_segments, wav_pairs=wav_pairs,
                     segment_seconds=segment_seconds, overwrite=overwrite, progress=not quiet,
                     decoder_from=decoder_from, log=log)
    m = man["metrics"]
    keys = ("encoder", "decoder", "dim", "precision", "bitrate", "compression_ratio", "sc", "lsd_db", "mrstft",
            "snr_db", "frame_rmse")
    click.echo(json.dumps({k: (round(m[k], 4) if isinstance(m[k], float) else m[k]) for k in keys if k in m}))
    click.echo(f"wrote {out}: {man['counts']['segments']} segments, codes ({man['counts']['time_max']}, "
               f"{man['dim']}) each at {man['code_rate_hz']:.2f} Hz, {man['bitrate']:.0f} bit/s")
