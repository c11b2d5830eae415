"""``genaudio review``: the best trials of a search in the terminal, as JSON/CSV, or as an HTML report."""
from __future__ import annotations

import click


@click.command("review")
@click.argument("run_dir", metavar="RUN", type=click.Path(path_type=str))
@click.option("--top", "top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Trials listed (table/json/csv) and shown in detail in the report (cards, clips, curves; "
                   "the report uses at most 5 unless --top is given).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="Terminal table, or the top trials as JSON / CSV on stdout (every column).")
@click.option("--report", "report", type=click.Path(file_okay=False, path_type=str), metavar="OUT",
              help="Write a self-contained HTML report to OUT/report.html (plots, configs, audio clips).")
@click.option("--analyze", "analyze", type=click.Path(path_type=str), metavar="REPORT_DIR",
              help="A `genaudio analyze` --out folder: its per-group answer is shown next to the search's.")
@click.option("--clips", type=click.IntRange(min=0), default=2, show_default=True,
              help="Generated clips per top trial in the report (and as many held-out real clips); 0 = none.")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=4.0, show_default=True,
              help="Length of each clip in the report (s).")
@click.pass_context
def command(ctx, run_dir, top, fmt, report, analyze, clips, seconds):
    """Rank the trials of a search RUN (`genaudio search --out RUN`), finished or still running.

    \b
    Prints rank, score, model family, encoder and dim, feature groups, key parameters, epochs,
    wall time and status of the top trials, and the status counts of the whole run.
    Score: Frechet distance of generated vs held-out clips (finished trials); trials that did not
    finish rank after them by their best per-epoch code score (marked *). Lower is better.

    \b
    --report OUT writes OUT/report.html (opens from disk, no server): best configurations side by
    side with a `genaudio train --config ...` line each (YAML in OUT/configs/), optimisation history,
    learning curves (ASHA-stopped trials marked), parameters vs score, PED-ANOVA and fANOVA
    importance from the Optuna study, score with vs without each feature group (next to analyze's
    answer with --analyze), generated clips with spectrograms next to held-out real clips
    (cached in OUT/clips/: rebuilding is quick), and failed trials with their reasons.
    """
    from genaudio.review.table import load_run, render_table, to_csv, to_json

    run = load_run(run_dir)
    if fmt == "json":
        click.echo(to_json(run, top=top))
    elif fmt == "csv":
        click.echo(to_csv(run, top=top), nl=False)
    else:
        render_table(run, top=top)
    if report:
        from genaudio.review.report import build_report

        k = top if ctx.get_parameter_source("top").name != "DEFAULT" else 5
        say = (lambda m: click.echo(m, err=True)) if fmt == "table" else (lambda m: click.echo(m, err=True))
        path = build_report(run, report, top=k, clips=clips, seconds=seconds, analyze=analyze, progress=say)
        click.echo(f"report: {path}", err=fmt != "table")
