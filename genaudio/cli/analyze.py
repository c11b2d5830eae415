"""``genaudio analyze``: which features matter (importance, redundancy, plots, report.html)."""
from __future__ import annotations

import click


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for v in values:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return tuple(dict.fromkeys(out))


@click.command("analyze")
@click.argument("store", metavar="DIR", type=click.Path(file_okay=True, dir_okay=True))
@click.option("--out", "out", required=True, type=click.Path(), metavar="REPORT",
              help="Folder for report.html, importance.csv, groups.csv, subset.yaml and the plots.")
@click.option("--label-column", default="label", show_default=True,
              help="Segment column with the class of each row; '' for unsupervised analysis only.")
@click.option("--features", multiple=True, metavar="NAMES",
              help="Catalog features and/or groups to analyse (comma-separated or repeated); default all.")
@click.option("--max-rows", type=int, default=50_000, show_default=True,
              help="Segments used at most (uniform random subsample beyond, reported).")
@click.option("--supervised-rows", type=int, default=10_000, show_default=True,
              help="Segments used by the cross-validated classifier and ablations (subsample of --max-rows).")
@click.option("--folds", type=int, default=5, show_default=True, help="Cross-validation folds, grouped by file.")
@click.option("--classifier", type=click.Choice(["logistic", "forest"]), default="logistic", show_default=True,
              help="Standardized logistic regression (fast) or random forest.")
@click.option("--corr-threshold", type=float, default=0.9, show_default=True,
              help="|r| above which columns count as redundant.")
@click.option("--target", type=float, default=0.95, show_default=True,
              help="Fraction of the full set's accuracy the recommended subset must keep.")
@click.option("--embedding", type=click.Choice(["tsne", "pca"]), default="tsne", show_default=True,
              help="2-D embedding method of the segments plot.")
@click.option("--top", type=int, default=20, show_default=True, help="Bars in the top-N importance plot.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")
def command(store, out, label_column, features, max_rows, supervised_rows, folds, classifier, corr_threshold,
            target, embedding, top, seed):
    """Rank features of an extract output DIR and write a report folder REPORT.

    \b
    Supervised (label column with >= 2 classes): grouped-by-file cross-validated accuracy,
    permutation importance on held-out folds, mutual information, per-group ablation, and the
    smallest set of groups keeping --target of the full accuracy.
    Unsupervised (always): variance, correlation clusters of redundant columns, PCA
    dimensionality overall and per group, 2-D embedding.

    \b
    Writes REPORT/report.html (self-contained), importance.csv, groups.csv, clusters.csv,
    excluded.csv, subset.yaml (`features:` + `groups:`), summary.json and the PNG plots.
    """
    from genaudio.analyze import AnalyzeConfig, analyze  # noqa: PLC0415
    from genaudio.config import from_dict  # noqa: PLC0415

    cfg = from_dict(AnalyzeConfig, {
        "label_column": label_column or None, "features": list(_split(features)), "max_rows": max_rows,
        "supervised_rows": supervised_rows, "folds": folds, "classifier": classifier,
        "corr_threshold": corr_threshold, "target": target, "embedding": embedding, "top": top, "seed": seed,
    })
    result = analyze(store, out, cfg)
    s = result.sample_sizes
    sv = result.supervised
    click.echo(f"analysed {s['rows_used']:,} of {s['rows_total']:,} segments, {s['columns']:,} columns "
               f"({s['features']} features, {s['groups']} groups)")
    if sv:
        import numpy as np  # noqa: PLC0415

        click.echo(f"cross-validated accuracy {np.mean(sv['accuracy']) * 100:.1f}% "
                   f"(majority baseline {sv['chance'] * 100:.1f}%, {sv['folds']} folds, {len(sv['classes'])} classes)")
    for n in result.notes:
        click.echo(f"note: {n}")
    click.echo(f"recommended groups: {', '.join(result.subset['groups'])}")
    click.echo(f"report: {out}/report.html")
