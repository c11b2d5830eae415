"""``genaudio pipeline``: extract -> analyze -> encode -> search -> review in one command."""
from __future__ import annotations

import click


@click.command("pipeline")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Run folder: features/, analysis/, encoded/, search/, review/ (rerunning continues).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="YAML with any of the sections extract, analyze, encode, search, review "
                   "(`genaudio config --print-defaults` prints them all).")
@click.option("--set", "sets", multiple=True, metavar="SECTION.FIELD=VALUE",
              help="Override one option of the config, e.g. --set search.trials=4 --set review.top=3. Repeatable.")
@click.option("--stages", default=",".join(("extract", "analyze", "encode", "search", "review")),
              show_default=True, help="Comma-separated stages to run, in pipeline order.")
@click.option("--address", envvar="RAY_ADDRESS", help="Ray cluster address (default: RAY_ADDRESS, "
              "else an embedded local Ray).")
@click.option("--num-cpus", type=click.IntRange(min=1), help="CPUs of the embedded local Ray (default: all).")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="GPU share of each extraction worker (as `genaudio extract --gpus-per-worker`).")
@click.option("-v", "--verbose", count=True,
              help="Also Ray Tune's own status tables during the search (default: one line per trial event "
                   "and a progress bar).")
def command(inputs, out, config_file, sets, stages, address, num_cpus, gpus_per_worker, verbose):
    """Run every stage on INPUT... (audio files, folders, globs or file lists) into OUT.

    Each stage skips work already done, so rerunning after an interruption continues where it
    stopped: extraction skips files it holds, a finished analysis or encoding with the same
    options is kept, an interrupted search is resumed. OUT/review/report.html is the result to
    open; OUT/search/best.yaml the configuration to train for real with `genaudio train`.
    """
    from genaudio.config import load
    from genaudio.pipeline import PipelineConfig, run_pipeline

    cfg = load(PipelineConfig, config_file, overrides=sets)
    chosen = [s.strip() for s in stages.split(",") if s.strip()]
    results = run_pipeline(inputs, out, cfg, address=address, num_cpus=num_cpus, stages=chosen,
                           log=lambda m: click.echo(m, err=True), gpus_per_worker=gpus_per_worker,
                           verbose=1 + verbose)
    click.echo("stages: " + ", ".join(f"{r.name} {r.status} ({r.seconds:.0f} s)" for r in results))
    if "review" in chosen:
        click.echo(f"open {out}/review/report.html")
