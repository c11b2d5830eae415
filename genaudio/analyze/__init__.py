"""Which features matter: importance scores, redundancy, plots, ``report.html``, a recommended subset.

``analyze(store_dir, out_dir, cfg)`` reads the summary columns of a features store (never the
frame matrices) and writes::

    OUT/
      report.html      one self-contained page: every table and plot, with explanations
      importance.csv   feature, catalog_feature, group, level, method, score, std, rank
      groups.csv       per feature group: accuracy with only / without it, importance, dimensionality
      clusters.csv     correlation clusters of redundant columns and their representatives
      excluded.csv     columns left out (constant, no finite values) and why
      subset.yaml      the recommended subset: ``features:`` (catalog names) and ``groups:``
      summary.json     every headline number, sample sizes, notes, timings
      *.png            the plots embedded in the report

Supervised methods run when the label column has at least two classes (and two files);
unsupervised methods always run. Everything random is seeded by ``cfg.seed``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import numpy as np
import yaml

from genaudio.analyze.data import AnalyzeConfig, FeatureTable, load_table
from genaudio.analyze import stats, supervised as sup
from genaudio.errors import ConfigError
from genaudio.infra import progress

__all__ = ["AnalyzeConfig", "FeatureTable", "Analysis", "analyze", "compute", "load_table", "read_subset",
           "write_outputs"]


@dataclasses.dataclass
class Analysis:
    """Everything :func:`compute` measured (arrays indexed like ``table.columns``)."""

    cfg: AnalyzeConfig
    table: FeatureTable
    variance: np.ndarray
    corr: np.ndarray
    clusters: np.ndarray
    order: np.ndarray
    representatives: np.ndarray
    ev_ratio: np.ndarray
    dims: dict
    group_dims: dict
    supervised: dict | None
    subset: dict
    embedding: np.ndarray
    embedding_rows: np.ndarray
    embedding_method: str
    notes: list[str]
    timings: dict
    sample_sizes: dict


def _subsample(n: int, k: int, rng: np.random.Generator, y: np.ndarray | None = None) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    return np.sort(rng.choice(n, size=k, replace=False))


@contextlib.contextmanager
def _step(name: str, timings: dict, bar):
    """Time one analysis step into ``timings[name]`` and advance the progress bar by one."""
    t = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - t
    bar.update(1)


def _labelled_rows(table: FeatureTable, cfg: AnalyzeConfig, rng: np.random.Generator, notes: list[str]):
    """``(rows, classes, counts)`` of the labelled segments the supervised analyses use (a random
    subsample where the table is large), or ``None`` (with a note) when they do not apply."""
    if table.labels is None:
        notes.append("No label column: supervised analyses skipped (unsupervised only).")
        return None
    has = table.labels != ""
    if not has.all():
        notes.append(f"{int((~has).sum()):,} segment(s) without a label are left out of the supervised analyses.")
    classes, counts = np.unique(table.labels[has], return_counts=True)
    if len(classes) < 2:
        which = f"only one class ({str(classes[0])!r})" if len(classes) else "no labels"
        notes.append(f"The label column {cfg.label_column!r} has {which}: supervised analyses "
                     "(accuracy, permutation importance, mutual information, group ablation) need at "
                     "least two classes and were skipped; the results are unsupervised only.")
        return None
    idx = np.nonzero(has)[0]
    d = table.X.shape[1]
    limit = min(cfg.supervised_rows, max(2_000, cfg.supervised_cells // max(d, 1)))
    if len(idx) > limit:
        idx = np.sort(rng.choice(idx, size=limit, replace=False))
        why = (f"supervised_rows={cfg.supervised_rows:,}" if limit == cfg.supervised_rows else
               f"supervised_cells={cfg.supervised_cells:,} / {d:,} columns")
        notes.append(f"Supervised analyses use a random subsample of {len(idx):,} labelled segments ({why}).")
    return idx, classes, counts


def _supervised(table: FeatureTable, cfg: AnalyzeConfig, rng: np.random.Generator, notes: list[str],
                sizes: dict, timings: dict, bar) -> dict | None:
    """Grouped-CV accuracy, permutation importance, MI, group ablations, greedy group subset."""
    labelled = _labelled_rows(table, cfg, rng, notes)
    if labelled is None:
        return None
    idx, classes, counts = labelled
    X, y, files = table.X[idx].astype(np.float64), table.labels[idx], table.file_ids[idx]
    sizes["supervised_rows"] = int(len(idx))
    splits = sup.grouped_folds(y, files, folds=cfg.folds, seed=cfg.seed)
    if not splits:
        notes.append("Supervised analyses skipped: grouped cross-validation needs labelled segments from "
                     "at least two files and a training part with two classes.")
        return None
    if len(splits) < cfg.folds:
        notes.append(f"Only {len(splits)} cross-validation fold(s) are possible "
                     f"({len(np.unique(files))} files).")
    model = sup.make_classifier(cfg.classifier, seed=cfg.seed)
    feat_blocks, group_blocks = table.block_indices("feature"), table.block_indices("group")
    blocks = {"column": [np.array([j]) for j in range(table.X.shape[1])], "feature": list(feat_blocks.values()),
              "group": list(group_blocks.values())}

    with _step("cv_permutation_s", timings, bar):
        accs, perm, fitted = [], {k: [] for k in blocks}, []
        for tr, te in splits:
            m = sup.fit(model, X[tr], y[tr])
            fitted.append(m)
            accs.append(float(np.mean(m.predict(X[te]) == y[te])))
            for k, cols in blocks.items():
                perm[k].append(sup.permutation_importance(m, X[te], y[te], cols, repeats=cfg.permutation_repeats,
                                                          rng=rng))
    with _step("mutual_information_s", timings, bar):
        mi_idx = _subsample(len(y), cfg.mi_rows, rng)
        if len(mi_idx) < len(y):
            notes.append(f"Mutual information is estimated on {len(mi_idx):,} of those segments (mi_rows).")
        sizes["mi_rows"] = int(len(mi_idx))
        mi = stats.binned_mutual_information(X[mi_idx], y[mi_idx])

    groups = list(group_blocks)
    # cross-validated accuracy of a set of groups, each set computed once (ablations, greedy path)
    cache: dict[frozenset, float] = {frozenset(groups): float(np.mean(accs))}

    def accuracy_of(gs) -> np.ndarray:
        cols = np.sort(np.concatenate([group_blocks[h] for h in gs]))
        folds = sup.cv_accuracy(model, X, y, splits, cols, warm=fitted)
        cache[frozenset(gs)] = float(folds.mean())
        return folds

    with _step("group_ablation_s", timings, bar):
        only = {g: accuracy_of([g]) for g in groups}
        without = {g: (accuracy_of([h for h in groups if h != g]) if len(groups) > 1
                       else np.full(len(splits), np.nan)) for g in groups}
    with _step("greedy_subset_s", timings, bar):
        goal = cfg.target * float(np.mean(accs))
        path = sup.greedy_groups(lambda gs: cache[frozenset(gs)] if frozenset(gs) in cache else
                                 float(accuracy_of(gs).mean()),
                                 groups, goal=goal, first={g: cache[frozenset([g])] for g in groups})

    return {
        "classes": classes.tolist(), "class_counts": counts.tolist(), "chance": float(counts.max() / counts.sum()),
        "folds": len(splits), "accuracy": np.asarray(accs),
        "perm_column": np.concatenate(perm["column"], axis=1), "perm_feature": np.concatenate(perm["feature"], axis=1),
        "perm_group": np.concatenate(perm["group"], axis=1), "feature_order": list(feat_blocks),
        "group_order": groups, "mi": mi, "only": only, "without": without, "path": path, "goal": goal,
        "rows": idx,
    }


def _embedding(table: FeatureTable, Z: np.ndarray, cfg: AnalyzeConfig, rng, notes, sizes):
    rows = _subsample(Z.shape[0], cfg.embed_rows, rng)
    Zs = Z[rows]
    sizes["embedding_rows"] = int(len(rows))
    from sklearn.decomposition import PCA  # noqa: PLC0415

    k = min(50, Zs.shape[1], Zs.shape[0])
    P = PCA(n_components=k, random_state=cfg.seed).fit_transform(Zs) if k >= 2 else np.c_[Zs, np.zeros(len(Zs))]
    method = cfg.embedding
    if method == "tsne" and len(rows) >= 10 and P.shape[1] >= 2:
        from sklearn.manifold import TSNE  # noqa: PLC0415
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        perplexity = float(min(30.0, max(2.0, (len(rows) - 1) / 3)))
        # one OpenMP thread: t-SNE's spin-waiting threads run ~10x slower on a shared, loaded machine
        with threadpool_limits(1, user_api="openmp"):
            E = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=cfg.seed,
                     max_iter=500).fit_transform(P)
    else:
        method = "pca"
        E = P[:, :2]
    return E, rows, method


def compute(table: FeatureTable, cfg: AnalyzeConfig) -> Analysis:
    """Run every analysis on a loaded :class:`FeatureTable` (no files written)."""
    rng = np.random.default_rng(cfg.seed + 1)
    notes = list(table.notes)
    timings: dict[str, float] = {}
    sizes = {"rows_total": int(table.n_rows_total), "rows_used": int(table.X.shape[0]),
             "columns": int(table.X.shape[1]), "features": len(table.feature_names),
             "groups": len(table.group_names)}
    bar = progress(total=7, desc="analyze", unit="step", leave=False)
    try:
        t = time.perf_counter()
        variance = table.X.astype(np.float64).var(axis=0)
        Z = stats.standardize(table.X)
        R = stats.correlation(Z)
        ev = stats.explained_variance(R, Z)
        dims = stats.dims_for(ev)
        group_dims = {}
        for g, cols in table.block_indices("group").items():
            gev = stats.explained_variance(R[np.ix_(cols, cols)], Z[:, cols] if len(cols) > Z.shape[0] else None)
            group_dims[g] = stats.dims_for(gev)
        timings["variance_correlation_pca_s"] = time.perf_counter() - t
        bar.update(1)

        sv = _supervised(table, cfg, rng, notes, sizes, timings, bar)
        if sv is None:
            bar.update(4)

        t = time.perf_counter()
        clusters, order = stats.correlation_clusters(R, threshold=cfg.corr_threshold)
        score = sv["perm_column"].mean(axis=1) if sv else None
        reps = stats.cluster_representatives(R, clusters, score)
        timings["clustering_s"] = time.perf_counter() - t
        bar.update(1)

        subset = _recommend(table, cfg, sv, clusters, reps)

        t = time.perf_counter()
        E, erows, emethod = _embedding(table, Z, cfg, rng, notes, sizes)
        timings["embedding_s"] = time.perf_counter() - t
        bar.update(1)
    finally:
        bar.close()
    return Analysis(cfg=cfg, table=table, variance=variance, corr=R, clusters=clusters, order=order,
                    representatives=reps, ev_ratio=ev, dims=dims, group_dims=group_dims, supervised=sv,
                    subset=subset, embedding=E, embedding_rows=erows, embedding_method=emethod,
                    notes=notes, timings=timings, sample_sizes=sizes)


def _recommend(table: FeatureTable, cfg: AnalyzeConfig, sv: dict | None, clusters: np.ndarray,
               reps: np.ndarray) -> dict:
    """The recommended subset (see docs/analyze.md for the file format)."""
    feats_of_group = {}
    for f, g in zip(table.features, table.groups):
        feats_of_group.setdefault(g, [])
        if f not in feats_of_group[g]:
            feats_of_group[g].append(f)
    if sv is not None:
        chosen, acc = sv["path"][-1]
        full = float(np.mean(sv["accuracy"]))
        reached = acc >= sv["goal"]
        groups = [g for g in table.group_names if g in chosen]  # store order, stable
        feats = [f for g in groups for f in feats_of_group[g]]
        return {
            "method": "greedy_groups", "target": cfg.target, "full_accuracy": round(full, 6),
            "subset_accuracy": round(float(acc), 6), "reached": bool(reached),
            "selection_order": list(chosen), "groups": groups, "features": feats,
        }
    # Unsupervised: fewest catalog features whose columns represent every correlation cluster.
    sets: dict[str, set[int]] = {}
    for j, f in enumerate(table.features):
        sets.setdefault(f, set()).add(int(clusters[j]))
    chosen_f = stats.greedy_cover(sets, set(int(c) for c in clusters), table.feature_names)
    feats = [f for f in table.feature_names if f in set(chosen_f)]
    groups = [g for g in table.group_names if any(table.groups[table.features.index(f)] == g for f in feats)]
    return {
        "method": "non_redundant", "corr_threshold": cfg.corr_threshold,
        "clusters": int(clusters.max() + 1), "groups": groups, "features": feats,
        "columns": [table.columns[j] for j in sorted(int(r) for r in reps)],
    }


def read_subset(path: str | Path) -> dict:
    """Read a ``subset.yaml`` written by ``genaudio analyze``: ``{"features": [...], "groups": [...]}``.

    Other keys are kept. Raises :class:`~genaudio.errors.ConfigError` when the file is not a subset.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"subset file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise ConfigError(f"{path}: not a feature subset (expected a `features:` list of catalog names)")
    data.setdefault("groups", [])
    if not all(isinstance(x, str) for x in data["features"] + list(data["groups"])):
        raise ConfigError(f"{path}: `features` and `groups` must be lists of names")
    return data


def analyze(store_dir: str | Path, out_dir: str | Path, cfg: AnalyzeConfig | None = None) -> Analysis:
    """Analyse a features store and write the report folder ``out_dir`` (see module docstring)."""
    cfg = cfg or AnalyzeConfig()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} exists and is not a folder")
    t0 = time.perf_counter()
    table = load_table(store_dir, cfg)
    t_load = time.perf_counter() - t0
    result = compute(table, cfg)
    result.timings = {"load_s": t_load, **result.timings}
    write_outputs(result, out_dir, source=str(store_dir))
    result.timings["total_s"] = time.perf_counter() - t0
    # rewrite summary.json with the final total (cheap)
    from genaudio.analyze.report import write_summary  # noqa: PLC0415

    write_summary(result, out_dir, source=str(store_dir))
    return result


def write_outputs(result: Analysis, out_dir: str | Path, *, source: str) -> None:
    from genaudio.analyze.report import write_all  # noqa: PLC0415

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_all(result, out_dir, source=source)
