"""Tables, ``subset.yaml``, ``summary.json``, plots and the self-contained ``report.html``."""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from genaudio import __version__
from genaudio.analyze import plots
from genaudio.config import to_dict
from genaudio.store import atomic_write_bytes, atomic_write_json, parse_summary_column

IMPORTANCE_COLUMNS = ["feature", "catalog_feature", "group", "level", "method", "score", "std", "rank"]


def _rank(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["rank"] = (df.groupby(["level", "method"])["score"].rank(ascending=False, method="first")
                  .astype(int))
    return df.sort_values(["level", "method", "rank"], kind="stable").reset_index(drop=True)


def importance_table(a) -> pd.DataFrame:
    """One row per (feature, level, method); rank 1 is the most important within (level, method)."""
    t = a.table
    rows = []
    for j, c in enumerate(t.columns):
        rows.append((c, t.features[j], t.groups[j], "column", "variance", float(a.variance[j]), np.nan))
    sv = a.supervised
    if sv:
        pc = sv["perm_column"]
        for j, c in enumerate(t.columns):
            rows.append((c, t.features[j], t.groups[j], "column", "permutation", float(pc[j].mean()),
                         float(pc[j].std())))
            rows.append((c, t.features[j], t.groups[j], "column", "mutual_information", float(sv["mi"][j]), np.nan))
        fg = dict(zip(t.features, t.groups))
        blocks = t.block_indices("feature")
        for i, f in enumerate(sv["feature_order"]):
            pf = sv["perm_feature"][i]
            rows.append((f, f, fg[f], "feature", "permutation", float(pf.mean()), float(pf.std())))
            rows.append((f, f, fg[f], "feature", "mutual_information", float(sv["mi"][blocks[f]].max()), np.nan))
    df = pd.DataFrame(rows, columns=IMPORTANCE_COLUMNS[:-1])
    return _rank(df)[IMPORTANCE_COLUMNS]


def groups_table(a) -> pd.DataFrame:
    t = a.table
    blocks = t.block_indices("group")
    sv = a.supervised
    rows = []
    for i, g in enumerate(t.group_names):
        cols = blocks[g]
        r = {"group": g, "n_features": len({t.features[j] for j in cols}), "n_columns": len(cols)}
        if sv:
            gi = sv["group_order"].index(g)
            only, without = sv["only"][g], sv["without"][g]
            full = float(np.mean(sv["accuracy"]))
            r.update(accuracy_only=only.mean(), accuracy_only_std=only.std(),
                     accuracy_without=without.mean(), accuracy_without_std=without.std(),
                     accuracy_drop=full - without.mean(),
                     permutation=sv["perm_group"][gi].mean(), permutation_std=sv["perm_group"][gi].std(),
                     mutual_information_max=float(sv["mi"][cols].max()))
        r.update({f"dims_{int(lv * 100)}": n for lv, n in a.group_dims[g].items()})
        r["redundancy_clusters"] = len(set(a.clusters[cols].tolist()))
        r["in_subset"] = g in a.subset["groups"]
        rows.append(r)
    df = pd.DataFrame(rows)
    if sv:
        df = df.sort_values("accuracy_only", ascending=False, kind="stable").reset_index(drop=True)
    return df


def clusters_table(a) -> pd.DataFrame:
    t = a.table
    reps = set(int(r) for r in a.representatives)
    sizes = np.bincount(a.clusters)
    df = pd.DataFrame({"cluster": a.clusters, "cluster_size": sizes[a.clusters], "column": t.columns,
                       "catalog_feature": t.features, "group": t.groups,
                       "representative": [j in reps for j in range(len(t.columns))]})
    return df.sort_values(["cluster", "representative", "column"], ascending=[True, False, True],
                          kind="stable").reset_index(drop=True)


def _fmt_sizes(a) -> str:
    s = a.sample_sizes
    return json.dumps(s)


def subset_yaml(a, source: str) -> str:
    sub = a.subset
    head = ("# Recommended feature subset written by `genaudio analyze`.\n"
            "# `features` lists catalog feature names (for `genaudio extract --features`),\n"
            "# `groups` the feature groups they belong to (for `encode` / `search`).\n"
            "# Read it with genaudio.analyze.read_subset(path).\n")
    body = {"kind": "feature_subset", "source": source, "label_column": a.cfg.label_column or None,
            "seed": a.cfg.seed, **sub}
    return head + yaml.safe_dump(body, sort_keys=False)


def write_summary(a, out: Path, *, source: str) -> None:
    sv = a.supervised
    summary = {
        "kind": "analysis", "genaudio": __version__, "source": source,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": to_dict(a.cfg), "sample_sizes": a.sample_sizes,
        "pca_dims": {f"{int(k * 100)}%": v for k, v in a.dims.items()},
        "redundancy_clusters": int(a.clusters.max() + 1),
        "excluded_columns": len(a.table.excluded), "imputed_columns": len(a.table.imputed),
        "supervised": None if not sv else {
            "classes": sv["classes"], "class_counts": sv["class_counts"], "folds": sv["folds"],
            "classifier": a.cfg.classifier, "accuracy": float(np.mean(sv["accuracy"])),
            "accuracy_std": float(np.std(sv["accuracy"])), "accuracy_per_fold": sv["accuracy"].tolist(),
            "majority_baseline": sv["chance"],
        },
        "subset": a.subset, "embedding": a.embedding_method, "notes": a.notes,
        "timings_s": {k: round(v, 3) for k, v in a.timings.items()},
    }
    atomic_write_json(out / "summary.json", summary)


def _top_columns(a, imp: pd.DataFrame, k: int = 6) -> tuple[list[int], str]:
    t = a.table
    if a.supervised:
        top = imp[(imp.level == "column") & (imp.method == "permutation")].nsmallest(k, "rank").feature.tolist()
        why = f"Per-class distributions of the {len(top)} most important columns (box: quartiles, whiskers: 1.5 IQR)"
    else:
        sizes = np.bincount(a.clusters)
        reps = sorted(a.representatives.tolist(), key=lambda j: -sizes[a.clusters[j]])[:k]
        top = [t.columns[j] for j in reps]
        why = f"Distributions of the representatives of the {len(top)} largest correlation clusters"
    idx = {c: j for j, c in enumerate(t.columns)}
    return [idx[c] for c in top], why


def write_all(a, out: Path, *, source: str) -> None:
    t = a.table
    imp = importance_table(a)
    grp = groups_table(a)
    clu = clusters_table(a)
    exc = pd.DataFrame(t.excluded, columns=["column", "reason"])
    imp.to_csv(out / "importance.csv", index=False, float_format="%.6g")
    grp.to_csv(out / "groups.csv", index=False, float_format="%.6g")
    clu.to_csv(out / "clusters.csv", index=False)
    exc.to_csv(out / "excluded.csv", index=False)
    atomic_write_bytes(out / "subset.yaml", subset_yaml(a, source).encode())
    write_summary(a, out, source=source)

    sv = a.supervised
    images: list[tuple[str, str, Path]] = []
    if sv:
        full = float(np.mean(sv["accuracy"]))
        note = f"Full set accuracy {full * 100:.1f}%, majority baseline {sv['chance'] * 100:.1f}%."
        images.append(("importance", "Permutation importance",
                       plots.importance_bars(imp, t.group_names, out / "importance.png", top=a.cfg.top,
                                             chance_note=note)))
        images.append(("groups", "Group ablation",
                       plots.group_ablation(grp, out / "groups.png", full=full, full_std=float(np.std(sv["accuracy"])),
                                            chance=sv["chance"])))
    images.append(("correlation", "Correlation structure",
                   plots.correlation_heatmap(a.corr, a.order, t.columns, t.groups, t.group_names,
                                             out / "correlation.png", threshold=a.cfg.corr_threshold,
                                             n_clusters=int(a.clusters.max() + 1))))
    sizes = {g: len(ix) for g, ix in t.block_indices("group").items()}
    images.append(("pca", "PCA explained variance",
                   plots.pca_curve(a.ev_ratio, a.dims, a.group_dims, sizes, out / "pca.png")))
    labels = t.labels[a.embedding_rows] if t.labels is not None and sv else None
    images.append(("embedding", "2-D embedding",
                   plots.embedding(a.embedding, labels, a.embedding_method, out / "embedding.png")))
    cols, why = _top_columns(a, imp)
    units = [t.units.get(t.features[j], "feature units") for j in cols]
    dl = t.labels if (t.labels is not None and sv) else None
    images.append(("distributions", "Distributions of top features",
                   plots.distributions(t.X, dl, cols, [t.columns[j] for j in cols], units,
                                       out / "distributions.png", why=why)))
    atomic_write_bytes(out / "report.html", render_html(a, imp, grp, clu, exc, images, source).encode())


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;max-width:1150px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.86em;margin:.6em 0}td,th{border:1px solid #ddd;padding:3px 7px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em;margin:.3em 0}
.explain{color:#444;font-size:.93em}img{max-width:100%;border:1px solid #eee}
.kpi{display:inline-block;margin:.3em 1.2em .3em 0;padding:.5em .9em;background:#f5f7fb;border-radius:6px}
.kpi b{font-size:1.3em;display:block}pre{background:#f6f6f6;padding:.7em;overflow-x:auto;font-size:.85em}
"""


def _table(df: pd.DataFrame, max_rows: int | None = None, floatfmt: str = "{:.4g}") -> str:
    if max_rows is not None:
        df = df.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cells = []
        for v in r.tolist():
            if isinstance(v, (float, np.floating)):
                s = "" if np.isnan(v) else floatfmt.format(v)
            else:
                s = str(v)
            cells.append(f"<td>{html.escape(s)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


EXPLAIN = {
    "importance": (
        "<b>Permutation importance.</b> A {clf} is trained on the training folds; on the held-out fold the "
        "values of one column (left) or of all columns of one catalog feature (right) are shuffled across "
        "segments and the drop in accuracy is measured. A large drop means the classifier relies on it. "
        "Shuffling one of several redundant columns costs little because the others stand in, so also read "
        "the feature- and group-level numbers. Error bars: ±1 standard deviation over {folds} folds × "
        "{reps} shuffles."),
    "groups": (
        "<b>Group ablation.</b> Cross-validated accuracy when the classifier sees <i>only</i> one feature group "
        "(how much that group knows on its own) and when it sees every group <i>except</i> that one (how much "
        "is lost without it, i.e. what no other group replaces). Groups are what the search switches on and off."),
    "correlation": (
        "<b>Correlation structure.</b> Pearson correlation between standardized summary columns, ordered by "
        "hierarchical clustering (complete linkage on 1 − |r|). Columns in one cluster all correlate above "
        "|r| = {thr:g}: they carry nearly the same information and one representative per cluster suffices. "
        "The strip on the left shows each column's group."),
    "pca": (
        "<b>PCA.</b> Principal component analysis of the standardized columns: how many linear combinations "
        "hold 90 / 95 / 99 % of the total variance (the effective dimensionality of the features). Right: the "
        "same per group, against the number of columns it has."),
    "embedding": (
        "<b>2-D embedding.</b> Each point is a segment, placed by {method} of the standardized summary columns "
        "(after a 50-component PCA), coloured by label. Separated colours mean the features separate the "
        "classes without supervision. Axes have no physical unit."),
    "distributions": (
        "<b>Distributions.</b> How the values of the top columns differ between classes (boxes: quartiles, "
        "line: median, whiskers: 1.5 × interquartile range, outliers hidden)."),
}


def render_html(a, imp, grp, clu, exc, images, source: str) -> str:
    t = a.table
    sv = a.supervised
    cfg = a.cfg
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
             f"<title>Feature analysis: {html.escape(source)}</title><style>{_CSS}</style></head><body>"]
    parts.append(f"<h1>Which features matter</h1><p class='explain'>Features store <code>{html.escape(source)}</code>"
                 f" · genaudio {__version__} · seed {cfg.seed} · label column "
                 f"<code>{html.escape(str(cfg.label_column or '(none)'))}</code></p>")
    s = a.sample_sizes
    kpis = [("segments analysed", f"{s['rows_used']:,} of {s['rows_total']:,}"),
            ("summary columns", f"{s['columns']:,}"), ("catalog features", f"{s['features']}"),
            ("groups", f"{s['groups']}")]
    if sv:
        kpis += [("CV accuracy (all features)", f"{np.mean(sv['accuracy']) * 100:.1f}% ± {np.std(sv['accuracy']) * 100:.1f}"),
                 ("majority baseline", f"{sv['chance'] * 100:.1f}%"), ("classes", f"{len(sv['classes'])}")]
    kpis.append(("PCA dims for 95%", f"{a.dims[0.95]}"))
    parts.append("<div>" + "".join(f"<div class='kpi'><b>{html.escape(v)}</b>{html.escape(k)}</div>" for k, v in kpis)
                 + "</div>")
    if a.notes:
        parts.append("<h2>Notes</h2>" + "".join(f"<div class='note'>{html.escape(n)}</div>" for n in a.notes))

    parts.append("<h2>Recommended subset</h2>")
    sub = a.subset
    if sub["method"] == "greedy_groups":
        verdict = "reaches" if sub["reached"] else "does not reach (all groups are kept)"
        parts.append(f"<p>Smallest set of groups found by greedy forward selection (each step adds the group that "
                     f"raises cross-validated accuracy most) that keeps {cfg.target * 100:.0f}% of the full set's "
                     f"accuracy: <b>{html.escape(', '.join(sub['groups']))}</b>: {sub['subset_accuracy'] * 100:.1f}% vs "
                     f"{sub['full_accuracy'] * 100:.1f}% with everything; it {verdict} the target.</p>")
    else:
        parts.append(f"<p>Without labels the subset is the non-redundant set: the fewest catalog features whose "
                     f"columns cover every correlation cluster (|r| &gt; {cfg.corr_threshold:g}), chosen by greedy "
                     f"set cover: <b>{len(sub['features'])}</b> of {s['features']} features, "
                     f"{sub['clusters']} clusters.</p>")
    parts.append(f"<pre>{html.escape(subset_yaml(a, source))}</pre>")

    sec = {name: (title, path) for name, title, path in images}
    fmt = dict(clf={"logistic": "standardized logistic regression", "forest": "random forest"}[cfg.classifier],
               folds=sv["folds"] if sv else 0, reps=cfg.permutation_repeats, thr=cfg.corr_threshold,
               method="t-SNE" if a.embedding_method == "tsne" else "PCA")
    if sv:
        parts.append("<h2>Supervised: how well the features predict the label</h2>")
        parts.append(f"<p class='explain'>Classifier: {fmt['clf']}; {sv['folds']}-fold cross-validation grouped by "
                     f"file (segments of one recording never straddle train and test) and stratified by class; "
                     f"{s.get('supervised_rows', 0):,} labelled segments. Class counts: "
                     + html.escape(", ".join(f"{c}: {n}" for c, n in zip(sv["classes"], sv["class_counts"]))) + ".</p>")
        for name in ("importance", "groups"):
            parts.append(f"<h3>{sec[name][0]}</h3><p class='explain'>{EXPLAIN[name].format(**fmt)}</p>"
                         + _img(sec[name][1], sec[name][0]))
        parts.append("<h3>Groups</h3>" + _table(grp))
        parts.append(f"<h3>Top {cfg.top} summary columns</h3><p class='explain'><b>Mutual information</b> (nats, "
                     f"k-nearest-neighbour estimate on {s.get('mi_rows', 0):,} segments) measures any, also non-linear, "
                     "dependence of one column on the label, regardless of the classifier and of the other columns.</p>")
        col = imp[imp.level == "column"].pivot_table(index=["feature", "group"], columns="method", values="score")
        col = col.sort_values("permutation", ascending=False).reset_index().head(cfg.top)
        parts.append(_table(col))
        feat = imp[imp.level == "feature"].pivot_table(index=["feature", "group"], columns="method", values="score")
        feat = feat.sort_values("permutation", ascending=False).reset_index().head(cfg.top)
        parts.append("<h3>Catalog features (all columns of a feature shuffled together; MI: best column)</h3>"
                     + _table(feat))
        parts.append(f"<h3>{sec['distributions'][0]}</h3><p class='explain'>{EXPLAIN['distributions']}</p>"
                     + _img(sec["distributions"][1], "distributions"))
    else:
        parts.append("<h2>Supervised analyses</h2><p class='note'>Not run: see the notes above.</p>")
        parts.append("<h2>Groups</h2>" + _table(grp))

    parts.append("<h2>Unsupervised: variance, redundancy, dimensionality</h2>")
    for name in ("correlation", "pca", "embedding"):
        parts.append(f"<h3>{sec[name][0]}</h3><p class='explain'>{EXPLAIN[name].format(**fmt)}</p>"
                     + _img(sec[name][1], sec[name][0]))
    if not sv:
        parts.append(f"<h3>{sec['distributions'][0]}</h3>" + _img(sec["distributions"][1], "distributions"))
    big = clu[clu.cluster_size > 1]
    parts.append(f"<h3>Redundant clusters</h3><p class='explain'>{int(a.clusters.max() + 1)} clusters; "
                 f"{big.cluster.nunique()} hold more than one column. The largest (full list in clusters.csv):</p>")
    if len(big):
        summ = (big.groupby("cluster").agg(size=("cluster_size", "first"),
                                           representative=("column", "first"),
                                           members=("column", lambda c: ", ".join(list(c)[:8]) + (" …" if len(c) > 8 else "")))
                .reset_index().head(15))
        parts.append(_table(summ))
    var = imp[(imp.level == "column") & (imp.method == "variance")].head(cfg.top)
    parts.append("<h3>Variance</h3><p class='explain'>Variance of each raw column (in its own squared unit, so "
                 "compare only columns of one feature); near-zero variance means the column barely changes.</p>"
                 + _table(var[["feature", "group", "score", "rank"]]))
    if len(exc) or t.imputed:
        parts.append("<h2>Excluded and repaired columns</h2>")
        if len(exc):
            parts.append(_table(exc))
        if t.imputed:
            parts.append("<p class='explain'>Non-finite values replaced by the column median:</p>"
                         + _table(pd.DataFrame(t.imputed, columns=["column", "values replaced"])))
    timings = ", ".join(f"{k} {v:.1f}" for k, v in a.timings.items())
    parts.append(f"<h2>Run</h2><p class='explain'>Sample sizes: {html.escape(_fmt_sizes(a))}. Timings (s): "
                 f"{html.escape(timings)}. Files: importance.csv, groups.csv, clusters.csv, excluded.csv, "
                 "subset.yaml, summary.json.</p>")
    # Records on <body> how many embedded images decoded, so a headless browser test can check it.
    parts.append("<script>window.addEventListener('load',function(){var im=document.images,ok=0;"
                 "for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}"
                 "document.body.setAttribute('data-images-total',im.length);"
                 "document.body.setAttribute('data-images-loaded',ok);});</script>")
    parts.append("</body></html>")
    return "\n".join(parts)
