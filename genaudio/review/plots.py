"""Matplotlib figures of a search review (PNG files; every axis labelled, lower score is better)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

STATUS_COLORS = {"completed": "#1f77b4", "stopped": "#ff7f0e", "running": "#2ca02c", "pending": "#7f7f7f",
                 "nan": "#9467bd", "error": "#d62728"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return Path(path)


def history(trials: pd.DataFrame, times: pd.DataFrame, path: Path) -> Path:
    """Quality (the judge's score) of each trial vs trial number (start order) and vs wall time.

    ``times`` has ``trial_id``, ``start_s`` and ``end_s`` (seconds since the search started).
    """
    plt = _plt()
    df = trials.merge(times, on="trial_id", how="inner").sort_values("start_s")
    df = df[pd.to_numeric(df["quality"], errors="coerce").notna()]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    if df.empty:
        for ax in axes:
            ax.text(0.5, 0.5, "no trial has reported a score yet", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return _save(fig, path)
    y = df["quality"].astype(float).to_numpy()
    finite = np.isfinite(y)
    n = np.arange(1, len(df) + 1)
    t_min = df["end_s"].to_numpy(float) / 60.0
    for ax, x, xlabel in ((axes[0], n, "trial (in start order)"), (axes[1], t_min, "wall time since the search started (min)")):
        for st, grp in df.assign(_x=x, _y=y).groupby("status"):
            g = grp[np.isfinite(grp["_y"])]
            ax.scatter(g["_x"], g["_y"], s=18, color=STATUS_COLORS.get(st, "k"), label=f"{st} ({len(grp)})", zorder=3)
        order = np.argsort(x)
        best = np.minimum.accumulate(np.where(finite, y, np.inf)[order])
        ok = np.isfinite(best)
        ax.step(np.asarray(x)[order][ok], best[ok], where="post", color="k", lw=1.2, label="best so far")
        ax.set(xlabel=xlabel, ylabel="quality (KID vs held-out real clips,\nlower = better)")
        if np.isfinite(y).any() and np.nanmin(y[finite]) > 0 and np.nanmax(y[finite]) / np.nanmin(y[finite]) > 30:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_title("Optimisation history by trial")
    axes[1].set_title("Optimisation history by wall time")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def learning_curves(histories: dict[str, pd.DataFrame], trials: pd.DataFrame, top_ids: list[str], path: Path,
                    *, metric: str = "score") -> Path:
    """Per-epoch score of every trial: top trials in colour, the others grey, ASHA-stopped ones
    end with a cross."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(12, 4.5))
    status = dict(zip(trials["trial_id"].astype(str), trials["status"]))
    rank = dict(zip(trials["trial_id"].astype(str), trials["rank"]))
    drawn = stopped_label = False
    for tid, h in histories.items():
        if metric not in h or tid in top_ids or not len(h):
            continue
        y = pd.to_numeric(h[metric], errors="coerce").to_numpy(float)
        x = np.arange(1, len(y) + 1)
        ok = np.isfinite(y)
        ax.plot(x[ok], y[ok], color="0.75", lw=0.8, zorder=1)
        drawn = True
        if status.get(tid) == "stopped" and ok.any():
            ax.scatter(x[ok][-1:], y[ok][-1:], marker="x", color="#ff7f0e", s=30, zorder=2,
                       label=None if stopped_label else "stopped early (ASHA)")
            stopped_label = True
    cmap = plt.get_cmap("tab10")
    for i, tid in enumerate(top_ids):
        h = histories.get(tid)
        if h is None or metric not in h or not len(h):
            continue
        y = pd.to_numeric(h[metric], errors="coerce").to_numpy(float)
        x = np.arange(1, len(y) + 1)
        ok = np.isfinite(y)
        r = rank.get(tid)
        ax.plot(x[ok], y[ok], marker="o", ms=3, color=cmap(i % 10), lw=1.8, zorder=3,
                label=f"#{int(r) if r is not None and not pd.isna(r) else '-'} {tid} ({status.get(tid)})")
        drawn = True
        if status.get(tid) == "stopped" and ok.any():
            ax.scatter(x[ok][-1:], y[ok][-1:], marker="x", color="#ff7f0e", s=60, zorder=4,
                       label=None if stopped_label else "stopped early (ASHA)")
            stopped_label = True
    if not drawn:
        ax.text(0.5, 0.5, "no per-epoch history yet", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="epoch", ylabel="quality (KID, judged at ASHA rungs;\nlower = better)",
           title="Learning curves (top trials in colour, others grey)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def _axis_values(col: pd.Series):
    """Values of one parameter mapped to [0, 1], and tick (position, label) pairs."""
    vals = col.dropna()
    num = pd.to_numeric(vals, errors="coerce")
    if len(vals) and num.notna().all() and not all(isinstance(v, (bool, np.bool_)) for v in vals):
        x = pd.to_numeric(col, errors="coerce").astype(float)
        lo, hi = float(num.min()), float(num.max())
        log = lo > 0 and hi / lo > 20
        f = (lambda v: np.log10(v)) if log else (lambda v: v)
        span = (f(hi) - f(lo)) or 1.0
        pos = (f(x.where(x > 0 if log else x.notna())) - f(lo)) / span
        fmt = (lambda v: f"{v:.2g}") if (abs(lo) < 0.01 or abs(hi) < 0.01) else (lambda v: f"{v:.4g}")
        ticks = [(0.0, fmt(lo)), (1.0, fmt(hi))] if hi != lo else [(0.0, fmt(lo))]
        return pos.to_numpy(float), ticks
    cats = sorted({str(v) for v in vals})
    idx = {c: i for i, c in enumerate(cats)}
    den = max(1, len(cats) - 1)
    pos = np.array([idx[str(v)] / den if v is not None and not (isinstance(v, float) and math.isnan(v)) else np.nan
                    for v in col], float)
    return pos, [(i / den, c) for i, c in enumerate(cats)]


def parallel_coordinates(trials: pd.DataFrame, params: list[str], path: Path, *, top_ids: list[str]) -> Path:
    """Each ranked trial is a line through its parameter values; colour = quality (lower is better)."""
    plt = _plt()
    df = trials[trials["rank"].notna()].copy()
    score = pd.to_numeric(df["quality"], errors="coerce").replace([np.inf, -np.inf], np.nan)
    df = df[score.notna()]
    score = score[score.notna()]
    cols = [c for c in params if c in df and df[c].notna().any()]
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * (len(cols) + 1)), 5))
    if df.empty or not cols:
        ax.text(0.5, 0.5, "not enough scored trials for a parallel-coordinates plot", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return _save(fig, path)
    mats, ticks = [], []
    for c in cols:
        p, t = _axis_values(df[c])
        mats.append(p)
        ticks.append(t)
    sv = score.to_numpy(float)
    lo, hi = float(sv.min()), float(sv.max())
    mats.append((sv - lo) / ((hi - lo) or 1.0))
    ticks.append([(0.0, f"{lo:.3g}"), (1.0, f"{hi:.3g}")])
    M = np.vstack(mats).T  # (trials, axes)
    norm = plt.Normalize(lo, hi)
    cmap = plt.get_cmap("viridis_r")
    ids = df["trial_id"].astype(str).tolist()
    order = np.argsort(-sv)  # best drawn last (on top)
    x = np.arange(M.shape[1])
    for i in order:
        y = M[i]
        top = ids[i] in top_ids
        ok = np.isfinite(y)
        ax.plot(x[ok], y[ok], color=cmap(norm(sv[i])), lw=2.2 if top else 0.9, alpha=1.0 if top else 0.55,
                marker="o" if top else None, ms=3)
    labels = [c.replace("param.", "") for c in cols] + ["quality"]
    for j, t in enumerate(ticks):
        ax.axvline(j, color="0.4", lw=0.8)
        for pos, lab in t[:12]:
            ax.text(j + 0.03, pos, lab, fontsize=7, va="center", color="0.2")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Parameters vs quality (one line per trial; thick = top trials)")
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label="quality (lower is better)")
    return _save(fig, path)


def importance_bars(imps: dict[str, dict[str, float]], path: Path) -> Path:
    """Horizontal bars of each evaluator's normalised importances side by side."""
    plt = _plt()
    names = sorted({p for d in imps.values() for p in d}, key=lambda p: -max(d.get(p, 0) for d in imps.values()))
    fig, axes = plt.subplots(1, len(imps), figsize=(5.5 * len(imps), 0.35 * len(names) + 1.6), squeeze=False)
    for ax, (ev, d) in zip(axes[0], imps.items()):
        vals = [d.get(p, 0.0) for p in names]
        ax.barh(range(len(names)), vals, color="#4c72b0")
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set(xlabel="importance (normalised, sums to 1)", title=ev)
        ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def group_effects(table: pd.DataFrame, path: Path) -> Path:
    """Median quality of trials with vs without each feature group."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.5 * max(1, len(table)) + 1.6))
    y = np.arange(len(table))
    ax.barh(y - 0.2, table["median_with"], height=0.4, color="#2ca02c", label="with the group")
    ax.barh(y + 0.2, table["median_without"], height=0.4, color="#aaaaaa", label="without it")
    ax.set_yticks(y, table["group"])
    ax.invert_yaxis()
    ax.set(xlabel=f"median {table.attrs.get('score_label', 'score')} (lower is better)",
           title="Score with vs without each optional feature group")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
