"""Tables, ``subset.yaml``, ``summary.json``, plots and the self-contained ``report.html``."""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from genaudio import __version__, html_report
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
# HTML (markup and prose in genaudio/templates/analyze.html.j2)


def render_html(a, imp, grp, clu, exc, images, source: str) -> str:
    """``report.html``: the numbers and tables of the analysis for ``templates/analyze.html.j2``."""
    t = a.table
    sv = a.supervised
    cfg = a.cfg
    s = a.sample_sizes
    kpis = [("segments analysed", f"{s['rows_used']:,} of {s['rows_total']:,}"),
            ("summary columns", f"{s['columns']:,}"), ("catalog features", f"{s['features']}"),
            ("groups", f"{s['groups']}")]
    ctx = dict(source=source, version=__version__, cfg=cfg, sv=sv, sizes=s, notes=a.notes, subset=a.subset,
               subset_yaml=subset_yaml(a, source), groups=grp,
               images={name: {"title": title, "path": path} for name, title, path in images},
               classifier={"logistic": "standardized logistic regression", "forest": "random forest"}[cfg.classifier],
               embedding_method="t-SNE" if a.embedding_method == "tsne" else "PCA")
    if sv:
        kpis += [("CV accuracy (all features)",
                  f"{np.mean(sv['accuracy']) * 100:.1f}% ± {np.std(sv['accuracy']) * 100:.1f}"),
                 ("majority baseline", f"{sv['chance'] * 100:.1f}%"), ("classes", f"{len(sv['classes'])}")]
        ctx["class_counts"] = ", ".join(f"{c}: {n}" for c, n in zip(sv["classes"], sv["class_counts"]))
        for key, level in (("top_columns", "column"), ("top_features", "feature")):
            piv = imp[imp.level == level].pivot_table(index=["feature", "group"], columns="method", values="score")
            ctx[key] = piv.sort_values("permutation", ascending=False).reset_index().head(cfg.top)
    kpis.append(("PCA dims for 95%", f"{a.dims[0.95]}"))
    big = clu[clu.cluster_size > 1]
    summ = None
    if len(big):
        summ = (big.groupby("cluster").agg(size=("cluster_size", "first"),
                                           representative=("column", "first"),
                                           members=("column", lambda c: ", ".join(list(c)[:8]) + (" …" if len(c) > 8 else "")))
                .reset_index().head(15))
    var = imp[(imp.level == "column") & (imp.method == "variance")].head(cfg.top)
    ctx.update(kpis=kpis, n_clusters=int(a.clusters.max() + 1), n_big_clusters=big.cluster.nunique(),
               big_clusters=summ, variance=var[["feature", "group", "score", "rank"]],
               excluded=exc if len(exc) else None,
               imputed=pd.DataFrame(t.imputed, columns=["column", "values replaced"]) if t.imputed else None,
               sample_sizes_json=_fmt_sizes(a), timings=", ".join(f"{k} {v:.1f}" for k, v in a.timings.items()))
    return html_report.render("analyze.html.j2", **ctx)
