"""``genaudio train``: an LSTM or GAN on an encoded store -> a run folder (checkpoints, metrics)."""
from __future__ import annotations

from pathlib import Path

import click

from genaudio.errors import ModelError

# CLI option -> (TrainConfig section or None for top level, field)
_OPTION_FIELDS = {
    "hidden": ("lstm", "hidden"), "layers": (None, "layers"), "dropout": ("lstm", "dropout"),
    "context": ("lstm", "context"), "head": ("lstm", "head"), "family": ("gan", "family"),
    "latent": ("gan", "latent"), "loss": ("gan", "loss"), "patch": ("gan", "patch"),
    "channels": ("gan", "channels"), "lr": (None, "lr"), "batch_size": (None, "batch_size"),
    "epochs": (None, "epochs"), "seed": (None, "seed"), "device": (None, "device"),
    "steps_per_epoch": (None, "steps_per_epoch"),
}


def build_config(config_file: str | None, model: str | None, options: dict, sets: tuple[str, ...]):
    """TrainConfig from (in increasing priority) defaults, ``--config`` YAML, options, ``--set``."""
    from genaudio.config import load, load_yaml
    from genaudio.models.config import TrainConfig

    data = load_yaml(config_file) if config_file else {}
    fam = model or data.get("model", "lstm")
    dotted: dict = {"model": model} if model else {}
    for opt, value in options.items():
        if value is None:
            continue
        section, field = _OPTION_FIELDS[opt]
        if opt == "layers":  # --layers applies to the chosen model family
            section = fam
        dotted[f"{section}.{field}" if section else field] = value
    return load(TrainConfig, data, dotted, overrides=sets)


@click.command("train")
@click.argument("enc", type=click.Path(file_okay=False))
@click.option("--model", "-m", type=click.Choice(["lstm", "gan"]), help="Model family (default lstm, or the config's).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Run folder to create.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TrainConfig YAML (e.g. a run's config.yaml or a search's best.yaml); options override it.")
@click.option("--hidden", type=int, help="LSTM hidden size.")
@click.option("--layers", type=int, help="LSTM layers, or GAN up/down-sampling stages (conv) / LSTM layers (rnn).")
@click.option("--dropout", type=float, help="LSTM dropout.")
@click.option("--context", type=int, help="LSTM training context in code frames.")
@click.option("--head", type=click.Choice(["mse", "gaussian", "mdn"]), help="LSTM output head.")
@click.option("--family", type=click.Choice(["conv", "rnn"]), help="GAN family: conv (DCGAN/WaveGAN) or rnn (C-RNN-GAN).")
@click.option("--latent", type=int, help="GAN noise dimension.")
@click.option("--loss", type=click.Choice(["ns", "wgan-gp"]), help="GAN loss.")
@click.option("--patch", type=int, help="GAN patch length in code frames.")
@click.option("--channels", type=int, help="GAN width (conv channels / LSTM hidden).")
@click.option("--lr", type=float, help="Learning rate.")
@click.option("--batch-size", type=int, help="Global batch size (windows).")
@click.option("--epochs", type=int, help="Epochs.")
@click.option("--steps-per-epoch", type=int, help="Cap on optimiser steps per epoch.")
@click.option("--seed", type=int, help="Random seed.")
@click.option("--device", help="auto (CUDA when present), cpu, cuda, cuda:N.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Any TrainConfig field, e.g. --set lstm.mixtures=8 --set score.n_clips=16. Repeatable.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Data-parallel training on N Ray Train workers (TorchTrainer, DDP-style gradient averaging).")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="GPUs per worker with --workers (0: CPU workers, gloo backend).")
@click.option("--address", envvar="RAY_ADDRESS", help="Ray cluster for --workers (default: RAY_ADDRESS, else local).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--no-score", is_flag=True, help="Skip the final quality score (the judge: see `genaudio score --help`).")
def command(enc, model, out, config_file, hidden, layers, dropout, context, head, family, latent, loss, patch,
            channels, lr, batch_size, epochs, steps_per_epoch, seed, device, sets, workers, gpus_per_worker,
            address, resume, no_score):
    """Train an LSTM or a GAN on the codes of encoded store ENC (`genaudio encode` output).

    \b
    Prints one line per epoch; writes to --out:
      config.yaml         the full TrainConfig (repeat the run with --config)
      checkpoints/        last.pt (every epoch; resumes exactly), best.pt (best validation)
      metrics.json        status, per-epoch history, final scores
    Validation files are held out by file (the encoder's own held-out files when ENC records
    them). At the end the model is judged: KID of genaudio summary features of generated vs
    held-out real clips, with its standard error, beside real-vs-real and the decoder alone
    (comparable across encoders and models; see `genaudio score --help`).

    \b
    Examples:
      genaudio train enc/ --model lstm --hidden 256 --epochs 30 --out runs/lstm1
      genaudio train enc/ --model gan --family rnn --loss wgan-gp --out runs/gan1
      genaudio train enc/ --config search/best.yaml --out runs/best
      genaudio train enc/ --model lstm --workers 4 --gpus-per-worker 1 --out runs/big
    """
    from genaudio.config import replace
    from genaudio.models import as_sequence_data, score_at_end, train
    from genaudio.models.run import has_checkpoint

    options = dict(hidden=hidden, layers=layers, dropout=dropout, context=context, head=head, family=family,
                   latent=latent, loss=loss, patch=patch, channels=channels, lr=lr, batch_size=batch_size,
                   epochs=epochs, seed=seed, device=device, steps_per_epoch=steps_per_epoch)
    cfg = build_config(config_file, model, options, sets)
    if no_score:
        cfg = replace(cfg, score=replace(cfg.score, at_end=False))
    out_dir = Path(out)
    has_run = has_checkpoint(out_dir)
    if has_run and not resume:
        raise ModelError(f"{out_dir} already holds a trained run; pass --resume to continue it or choose another --out")
    if resume and not has_run:
        raise ModelError(f"--resume: {out_dir} has no checkpoints/last.pt to continue")
    data = as_sequence_data(enc)
    click.echo(f"training {cfg.model} on {len(data)} segments ({data.dim}-dim codes at {data.code_rate_hz:g} Hz) "
               f"from {enc} -> {out_dir}")
    resume_from = out_dir if resume else None
    if workers:
        from genaudio.infra import connect_ray
        from genaudio.models.distributed import train_distributed

        connect_ray(address, log_to_driver=True)
        result = train_distributed(cfg, data, out_dir=out_dir, workers=workers, gpus_per_worker=gpus_per_worker,
                                   resume_from=resume_from)
    else:
        result = train(cfg, data, out_dir=out_dir, resume_from=resume_from, progress=click.echo)
    result = score_at_end(result, cfg.score, progress=click.echo)
    final = result.metrics
    if "quality" in final:
        from genaudio.models.score import describe

        click.echo(f"score: {describe(final)}")
    elif "score_error" in final:
        click.secho(f"score failed: {final['score_error']}", fg="yellow", err=True)
    click.echo(f"{result.status}: {result.message}; run in {out_dir} (metrics.json, checkpoints/)")
    if result.status in ("nan", "diverged"):
        raise SystemExit(1)
