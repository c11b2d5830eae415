"""Supervised feature importance: grouped cross-validation, permutation importance, ablations.

Every score is measured on held-out segments of files the classifier never saw in training
(folds are grouped by file), so segments of one recording cannot leak between train and test.
"""
from __future__ import annotations

import warnings
from typing import Callable, Iterable

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def make_classifier(name: str, *, seed: int):
    """The scikit-learn classifier used for every supervised score.

    ``"logistic"``: standardisation + multinomial L2 logistic regression (C=1); fast, and its
    permutation importance has an exact cheap path. ``"forest"``: 200-tree random forest.
    """
    if name == "logistic":
        return Pipeline([("scale", StandardScaler()),
                         ("clf", LogisticRegression(C=1.0, max_iter=300, tol=1e-3, random_state=seed))])
    if name == "forest":
        return RandomForestClassifier(n_estimators=200, min_samples_leaf=2, n_jobs=2, random_state=seed)
    raise ValueError(f"unknown classifier {name!r}")


def grouped_folds(y: np.ndarray, groups: np.ndarray, *, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds that never split one group (file) between train and test.

    Uses ``min(folds, number of files)`` folds; folds whose training part holds a single class
    are dropped (nothing to learn there).
    """
    n_groups = len(np.unique(groups))
    k = min(folds, n_groups)
    if k < 2:
        return []
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only N members"
        for tr, te in cv.split(np.zeros(len(y)), y, groups):
            if len(np.unique(y[tr])) >= 2 and len(te):
                out.append((tr, te))
    return out


def fit(model, X: np.ndarray, y: np.ndarray, *, warm=None, cols: np.ndarray | None = None):
    """Fit a fresh copy of ``model``.

    ``warm`` (a fitted scaler + logistic regression on all columns of the same training rows)
    starts the solver from its coefficients restricted to ``cols``. The problem is convex, so
    the optimum is the same; ablation fits on 90% of the columns converge in a few iterations
    instead of from zero.
    """
    m = clone(model)
    if warm is not None and isinstance(m, Pipeline) and isinstance(m.named_steps.get("clf"), LogisticRegression):
        clf = m.named_steps["clf"]
        src = warm.named_steps["clf"]
        clf.set_params(warm_start=True)
        clf.coef_ = np.array(src.coef_[:, cols] if cols is not None else src.coef_, copy=True)
        clf.intercept_ = np.array(src.intercept_, copy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return m.fit(X, y)


# values (shuffled columns or decision values) the linear shortcut holds at once: 32 MiB of float64
_CHUNK = 1 << 22


class _LinearScorer:
    """Exact, fast held-out accuracy of a fitted scaler + logistic regression under permutation.

    Permuting the columns ``B`` changes the decision values by ``(Xp_B - X_B) @ W_B.T`` where
    ``W = coef / scale``; updating ``D`` this way costs O(n |B| k) instead of a full predict.
    """

    def __init__(self, model: Pipeline, X: np.ndarray, y: np.ndarray):
        scaler, clf = model.named_steps["scale"], model.named_steps["clf"]
        self.W = (clf.coef_ / scaler.scale_).astype(np.float64)  # (k, d) or (1, d) for binary
        self.D = clf.decision_function(scaler.transform(X))
        if self.D.ndim == 1:
            self.D = self.D[:, None]
        # the label as the index of its class (-1: a class the model never saw, always wrong)
        classes = clf.classes_
        at = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
        self.y = np.where(classes[at] == y, at, -1)

    def accuracy(self, D: np.ndarray) -> np.ndarray:
        """Accuracy of decision values ``D`` ``(..., n, k)``: shape ``(...)``."""
        pred = (D[..., 0] > 0).astype(int) if D.shape[-1] == 1 else np.argmax(D, axis=-1)
        return np.mean(pred == self.y, axis=-1)

    def base(self) -> float:
        return float(self.accuracy(self.D))

    def permuted(self, X: np.ndarray, cols: np.ndarray, perms: np.ndarray) -> np.ndarray:
        """Accuracy with the columns ``cols`` shuffled by each row permutation of ``perms``
        ``(repeats, n)``: shape ``(repeats,)``. All repeats at once (one Python call per block,
        not per shuffle), in chunks of at most ``_CHUNK`` values."""
        Xb, Wb = X[:, cols], self.W[:, cols].T           # (n, |B|), (|B|, k)
        out = np.empty(len(perms))
        step = max(1, _CHUNK // (len(X) * max(len(cols), self.D.shape[1])))
        for s in range(0, len(perms), step):
            diff = Xb[perms[s:s + step]] - Xb              # (r, n, |B|): only the shuffled columns
            out[s:s + step] = self.accuracy(self.D + diff @ Wb)
        return out


def permutation_importance(model, X: np.ndarray, y: np.ndarray, blocks: Iterable[np.ndarray], *,
                           repeats: int, rng: np.random.Generator, fast: bool = True) -> np.ndarray:
    """Drop in held-out accuracy when the columns of each block are shuffled together.

    Parameters
    ----------
    model : fitted classifier
    X : np.ndarray, shape (n_rows, n_columns)
        Held-out rows.
    y : np.ndarray, shape (n_rows,)
    blocks : iterable of np.ndarray of int
        Column indices shuffled jointly (one column, one catalog feature, or one group). All
        columns of a block are shuffled by the same row permutation, which keeps their joint
        distribution and breaks only their link to the label.
    repeats : int
        Shuffles per block.
    fast : bool
        Use the exact linear shortcut when the model is a scaler + logistic regression.

    Returns
    -------
    np.ndarray, shape (n_blocks, repeats)
        Accuracy drops (fraction; positive = the block carries information the model uses).
    """
    blocks = list(blocks)
    n = len(y)
    perms = [rng.permutation(n) for _ in range(repeats)]
    out = np.empty((len(blocks), repeats))
    linear = fast and isinstance(model, Pipeline) and isinstance(model.named_steps.get("clf"), LogisticRegression)
    if linear:
        scorer = _LinearScorer(model, X, y)
        base, perms = scorer.base(), np.stack(perms)
        for b, cols in enumerate(blocks):
            out[b] = base - scorer.permuted(X, cols, perms)
        return out
    base = float(np.mean(model.predict(X) == y))
    Xp = np.array(X, copy=True)
    for b, cols in enumerate(blocks):
        saved = Xp[:, cols].copy()
        for r, p in enumerate(perms):
            Xp[:, cols] = saved[p]
            out[b, r] = base - float(np.mean(model.predict(Xp) == y))
        Xp[:, cols] = saved
    return out


def cv_accuracy(model, X: np.ndarray, y: np.ndarray, splits, cols: np.ndarray | None = None,
                warm: list | None = None) -> np.ndarray:
    """Held-out accuracy of each fold, using only columns ``cols`` (all when ``None``).

    ``warm``: per fold, the model fitted on all columns (see :func:`fit`).
    """
    Xc = X if cols is None else X[:, cols]
    accs = []
    for i, (tr, te) in enumerate(splits):
        m = fit(model, Xc[tr], y[tr], warm=warm[i] if warm else None, cols=cols)
        accs.append(float(np.mean(m.predict(Xc[te]) == y[te])))
    return np.asarray(accs)


def greedy_groups(evaluate: Callable[[tuple[str, ...]], float], groups: list[str], *, goal: float,
                  first: dict[str, float] | None = None) -> list[tuple[tuple[str, ...], float]]:
    """Forward selection of groups until the accuracy reaches ``goal``.

    Each step adds the group that raises the cross-validated accuracy most (ties: earlier in
    ``groups``). ``first`` may hold already-known single-group accuracies.

    Returns
    -------
    list of (groups, accuracy)
        The path; its last entry is the recommended set (or all groups if the goal is never met).
    """
    path: list[tuple[tuple[str, ...], float]] = []
    chosen: tuple[str, ...] = ()
    while len(chosen) < len(groups):
        best, best_acc = None, -1.0
        for g in groups:
            if g in chosen:
                continue
            cand = chosen + (g,)
            acc = first[g] if (not chosen and first and g in first) else evaluate(cand)
            if acc > best_acc + 1e-12:
                best, best_acc = g, acc
        chosen = chosen + (best,)
        path.append((chosen, best_acc))
        if best_acc >= goal:
            break
    return path
