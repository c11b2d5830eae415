"""``genaudio generate``: sample a trained run -> WAV files plus a spectrogram PNG per clip."""
from __future__ import annotations

import click


@click.command("generate")
@click.argument("run", type=click.Path(exists=True))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Folder for the clips.")
@click.option("--n", "n", type=click.IntRange(min=1), default=4, show_default=True, help="Number of clips.")
@click.option("--seconds", type=click.FloatRange(min=0.05), default=10.0, show_default=True, help="Length of each clip.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed (same seed, same clips).")
@click.option("--temperature", type=click.FloatRange(min=0), help="LSTM sampling temperature (default: the run's).")
@click.option("--checkpoint", "which", type=click.Choice(["last", "best"]), default="last", show_default=True,
              help="Which checkpoint of RUN to sample.")
@click.option("--encoder", type=click.Path(exists=True, file_okay=False),
              help="Encoded store (or its encoder/ folder) that decodes the codes (default: the run's).")
@click.option("--score", "do_score", is_flag=True, help="Also judge the run (genaudio score's quality vs its held-out files) on these settings.")
def command(run, out, n, seconds, seed, temperature, which, encoder, do_score):
    """Generate N clips from the trained model in RUN (`genaudio train` output).

    \b
    Writes to --out, per clip:
      clip_00.wav   the decoded audio (16-bit PCM at the encoder's sample rate)
      clip_00.png   its spectrogram (time in s, log frequency in Hz, dB)
    With an encoder that has no audio decoder (feature-subset codes) it writes clip_00.npy
    (codes, time x dim) and a heat map of the codes instead.

    \b
    Example:
      genaudio generate runs/lstm1 --n 4 --seconds 10 --out runs/lstm1/clips
    """
    from genaudio.models.generate import load_run, write_clips

    model = load_run(run, which=which)
    click.echo(f"{model.config.model} from {model.path} (epoch {model.epoch}): {n} clip(s) of {seconds:g} s")
    written = write_clips(model, out, n=n, seconds=seconds, seed=seed, encoder=encoder, temperature=temperature,
                          progress=click.echo)
    if written and "npy" in written[0]:
        click.echo(f"this encoder has no audio decoder: wrote {len(written)} code arrays (.npy) and heat maps to {out}")
    else:
        click.echo(f"wrote {len(written)} WAV + spectrogram PNG pairs to {out}")
    if do_score:
        from genaudio.models.score import describe, score_model

        click.echo(f"score: {describe(score_model(model, encoder=encoder, n_clips=max(n, 5), seconds=seconds, seed=seed))}")
