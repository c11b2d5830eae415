"""``genaudio score``: how far folders of clips (or trained models) are from real music."""
from __future__ import annotations

import json

import click


@click.command("score")
@click.argument("real", nargs=1, type=click.Path(exists=True))
@click.argument("candidates", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--n", "n", type=click.IntRange(min=5), default=32, show_default=True,
              help="Clips per set: each half of the real reference, and each candidate (at most).")
@click.option("--seconds", type=click.FloatRange(min=0.5), default=5.0, show_default=True,
              help="Length of every judged clip (the first SECONDS of a candidate clip).")
@click.option("--sample-rate", type=click.IntRange(min=4000), default=22050, show_default=True,
              help="Rate clips are judged at (candidates at other rates are resampled).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the choice of clips and generation.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def command(real, candidates, n, seconds, sample_rate, seed, fmt):
    """Judge CANDIDATE sets of audio against REAL music (lower is better).

    REAL is an audio file, a folder or a file list (as for `genaudio extract`); it is cut into
    SECONDS-long clips and split by file into two halves of N clips. Each CANDIDATE is a folder of
    audio clips (e.g. `genaudio generate` output) or a trained model run (`genaudio train`
    output; N clips are generated on the fly).

    \b
    The score is KID: the unbiased squared maximum mean discrepancy (cubic polynomial kernel)
    between genaudio's summary features of the candidate clips and of one real half, in a space
    standardised on the real clips; +- is its jackknife standard error. The other real half scored
    the same way is printed as "real vs real": a candidate near it sounds, to these features, like
    the real music. It is the score `genaudio search` ranks trials on. See docs/quality.md.

    \b
    Examples:
      genaudio score ~/corpus runs/lstm1/clips runs/gan1/clips
      genaudio score ~/corpus runs/lstm1 --n 64 --format json > scores.json
    """
    from genaudio.models.score import score_paths

    say = (lambda m: click.echo(m, err=True)) if fmt == "text" else None
    res = score_paths(list((real,)), list(candidates), n=n, seconds=seconds, sample_rate=sample_rate, seed=seed,
                      progress=say)
    if fmt == "json":
        click.echo(json.dumps(res, indent=2))
        return
    ref = res["reference"]
    click.echo(f"reference: {ref['n']} + {ref['n']} real clips of {ref['seconds']:g} s from "
               f"{ref['files']['anchor']} + {ref['files']['other']} files"
               + (f" ({len(ref['skipped'])} file(s) skipped)" if ref["skipped"] else ""))
    width = max([len("real vs real")] + [len(c["path"]) for c in res["candidates"]])
    click.echo(f"{'set':<{width}}  {'score':>10}  {'+- se':>8}  {'clips':>5}")
    click.echo(f"{'real vs real':<{width}}  {ref['score']:>10.4g}  {ref['score_se']:>8.2g}  {ref['n']:>5}")
    for c in res["candidates"]:
        warn = f"  ({c['n_nonfinite']} with non-finite features)" if c["n_nonfinite"] else ""
        click.echo(f"{c['path']:<{width}}  {c['score']:>10.4g}  {c['score_se']:>8.2g}  {c['n']:>5}{warn}")
