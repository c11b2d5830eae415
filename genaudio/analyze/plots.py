"""The analysis plots (PNG). Each function draws one figure from an :class:`Analysis` and saves it.

Readable at a glance: titles say what is shown, axes carry units, error bars say what they are.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 110


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _group_colors(groups: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    return {g: cmap(i % cmap.N) for i, g in enumerate(groups)}


def importance_bars(imp: pd.DataFrame, groups: list[str], path: Path, *, top: int, chance_note: str) -> Path:
    """Top-N permutation importance of summary columns and of whole catalog features."""
    colors = _group_colors(groups)
    col = imp[(imp.level == "column") & (imp.method == "permutation")].nsmallest(top, "rank")
    feat = imp[(imp.level == "feature") & (imp.method == "permutation")].nsmallest(top, "rank")
    h = max(4.5, 0.28 * max(len(col), len(feat)) + 1.5)
    fig, axes = plt.subplots(1, 2, figsize=(13, h))
    for ax, df, what in ((axes[0], col, "summary column"), (axes[1], feat, "catalog feature (columns shuffled together)")):
        df = df.iloc[::-1]
        ax.barh(df.feature, df.score * 100, xerr=df["std"] * 100, color=[colors[g] for g in df.group],
                ecolor="0.25", capsize=2)
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_xlabel("drop in held-out accuracy when shuffled (percentage points)")
        ax.set_title(f"Top {len(df)} by permutation importance: {what}", fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[g]) for g in groups]
    fig.legend(handles, groups, title="group", loc="lower center", ncol=min(len(groups), 8),
               bbox_to_anchor=(0.5, -0.02 - 0.03 * (len(groups) // 8)), fontsize=8)
    fig.suptitle(f"Permutation importance (bars: mean, error bars: ±1 SD over folds × repeats). {chance_note}",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return _save(fig, path)


def group_ablation(groups_df: pd.DataFrame, path: Path, *, full: float, full_std: float, chance: float) -> Path:
    """Accuracy with only each group, and with each group dropped, against the full set."""
    df = groups_df.sort_values("accuracy_only", ascending=False)
    x = np.arange(len(df))
    w = 0.38
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(df) + 3), 4.5))
    ax.bar(x - w / 2, df.accuracy_only * 100, w, yerr=df.accuracy_only_std * 100, capsize=3,
           label="only this group", color="#4c72b0")
    ax.bar(x + w / 2, df.accuracy_without * 100, w, yerr=df.accuracy_without_std * 100, capsize=3,
           label="all groups except this one", color="#dd8452")
    ax.axhline(full * 100, color="k", lw=1.2, label=f"all groups: {full * 100:.1f}% (±{full_std * 100:.1f})")
    ax.axhspan((full - full_std) * 100, (full + full_std) * 100, color="k", alpha=0.08)
    ax.axhline(chance * 100, color="0.5", ls="--", lw=1, label=f"majority-class baseline: {chance * 100:.1f}%")
    ax.set_xticks(x, df.group, rotation=30, ha="right")
    ax.set_ylabel("cross-validated accuracy (%)")
    ax.set_xlabel("feature group")
    ax.set_ylim(0, 105)
    ax.set_title("Group ablation (grouped CV by file; error bars: ±1 SD over folds)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, path)


def correlation_heatmap(R: np.ndarray, order: np.ndarray, columns: list[str], groups: list[str],
                        group_names: list[str], path: Path, *, threshold: float, n_clusters: int) -> Path:
    """Correlation matrix in dendrogram order, with a group colour strip above it."""
    colors = _group_colors(group_names)
    d = len(order)
    Ro = R[np.ix_(order, order)]
    labelled = d <= 60
    fig = plt.figure(figsize=(10.5, 9.5))
    gs = fig.add_gridspec(2, 2, height_ratios=[0.025, 1], width_ratios=[1, 0.03], hspace=0.02, wspace=0.03,
                          left=0.2 if labelled else 0.06, right=0.9, bottom=0.2 if labelled else 0.1, top=0.9)
    strip = fig.add_subplot(gs[0, 0])
    ax = fig.add_subplot(gs[1, 0])
    cax = fig.add_subplot(gs[1, 1])
    # "nearest" picks the same cells whether it runs before or after the colour mapping; before
    # ("data") maps ~1 M pixels instead of all d x d cells: the same PNG, 2.6-3.5x sooner at d=5000
    im = ax.imshow(Ro, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest", interpolation_stage="data",
                   aspect="auto")
    gidx = {g: i for i, g in enumerate(group_names)}
    strip.imshow(np.array([[gidx[groups[j]] for j in order]]), aspect="auto", interpolation="nearest",
                 cmap=matplotlib.colors.ListedColormap([colors[g] for g in group_names]),
                 vmin=-0.5, vmax=len(group_names) - 0.5)
    strip.set_xticks([])
    strip.set_yticks([])
    if labelled:
        ax.set_xticks(range(d), [columns[j] for j in order], rotation=90, fontsize=6)
        ax.set_yticks(range(d), [columns[j] for j in order], fontsize=6)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{d} summary columns in clustering order (names and clusters in clusters.csv)")
    fig.colorbar(im, cax=cax, label="Pearson correlation r (unitless)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[g]) for g in group_names]
    fig.legend(handles, group_names, title="group (colour strip above the matrix)", fontsize=8,
               loc="lower center", ncol=min(len(group_names), 8), frameon=False)
    strip.set_title(f"Correlation of summary columns, hierarchically clustered: "
                    f"{n_clusters} clusters with all pairs |r| > {threshold:g} (complete linkage)", fontsize=10)
    return _save(fig, path)


def pca_curve(ev: np.ndarray, dims: dict, group_dims: dict, group_sizes: dict, path: Path) -> Path:
    """Cumulative explained variance of the standardized columns, and per-group dimensionality."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1.3, 1]})
    ax = axes[0]
    cum = np.cumsum(ev) * 100
    k = np.arange(1, len(ev) + 1)
    ax.plot(k, cum, color="#4c72b0", lw=1.8)
    for (lv, n), c in zip(dims.items(), ("#55a868", "#dd8452", "#c44e52")):
        ax.axhline(lv * 100, color=c, ls=":", lw=1)
        ax.axvline(n, color=c, ls="--", lw=1, label=f"{lv * 100:.0f}% of variance: {n} components")
    ax.set_xscale("log" if len(ev) > 50 else "linear")
    ax.set_xlabel("number of principal components" + (" (log scale)" if len(ev) > 50 else ""))
    ax.set_ylabel("cumulative explained variance (%)")
    ax.set_ylim(0, 101)
    ax.set_title(f"PCA of {len(ev)} standardized summary columns", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[1]
    gs = list(group_dims)
    x = np.arange(len(gs))
    ax.bar(x - 0.2, [group_sizes[g] for g in gs], 0.4, color="0.75", label="columns in group")
    ax.bar(x + 0.2, [group_dims[g][0.95] for g in gs], 0.4, color="#4c72b0",
           label="components for 95% of its variance")
    ax.set_xticks(x, gs, rotation=30, ha="right")
    ax.set_ylabel("count (columns / components)")
    ax.set_xlabel("feature group")
    ax.set_yscale("log" if max(group_sizes.values()) > 50 else "linear")
    ax.set_title("Per-group dimensionality", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def embedding(E: np.ndarray, labels: np.ndarray | None, method: str, path: Path) -> Path:
    """2-D embedding of segments coloured by label."""
    fig, ax = plt.subplots(figsize=(7.5, 6))
    if labels is None:
        ax.scatter(E[:, 0], E[:, 1], s=6, alpha=0.6, color="#4c72b0", label="segments (no labels)")
        ax.legend(fontsize=8)
    else:
        classes = sorted(set(labels.tolist()))
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, c in enumerate(classes):
            m = labels == c
            ax.scatter(E[m, 0], E[m, 1], s=6, alpha=0.7, color=cmap(i % cmap.N), label=c or "(no label)")
        if len(classes) <= 20:
            ax.legend(title="label", fontsize=8, markerscale=2.5, loc="best")
    name = "t-SNE" if method == "tsne" else "PCA"
    ax.set_xlabel(f"{name} dimension 1 (arbitrary units)")
    ax.set_ylabel(f"{name} dimension 2 (arbitrary units)")
    ax.set_title(f"{name} embedding of {len(E):,} segments (standardized summary columns)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def distributions(X: np.ndarray, labels: np.ndarray | None, cols: list[int], names: list[str],
                  units: list[str], path: Path, *, why: str) -> Path:
    """Per-class box plots of the given columns (overall histograms without labels)."""
    n = len(cols)
    ncols = min(3, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    classes = sorted(set(labels.tolist())) if labels is not None else None
    for k, (j, name, unit) in enumerate(zip(cols, names, units)):
        ax = axes[k // ncols][k % ncols]
        if classes:
            data = [X[labels == c, j] for c in classes]
            ax.boxplot(data, showfliers=False)
            ax.set_xticks(range(1, len(classes) + 1), classes, rotation=30, ha="right", fontsize=7)
            ax.set_xlabel("label")
        else:
            ax.hist(X[:, j], bins=40, color="#4c72b0")
            ax.set_xlabel(f"value ({unit})")
            ax.set_ylabel("segments")
        if classes:
            ax.set_ylabel(f"value ({unit})")
        ax.set_title(name, fontsize=9)
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    fig.suptitle(why, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
