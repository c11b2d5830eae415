"""Load the summary columns of a features store into one clean numeric matrix.

Only identity and summary columns are read (never the frame matrices). Rows are subsampled
with a seeded generator when the store is larger than ``max_rows``. Columns that are entirely
non-finite or constant are excluded (and reported); columns with some non-finite values have
those values replaced by the column median (and reported), so every later method sees a finite
matrix.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from genaudio.errors import ConfigError, StoreError
from genaudio.store import parse_summary_column, read_manifest, read_segments, segments_schema


@dataclasses.dataclass(frozen=True)
class AnalyzeConfig:
    """Options of :func:`genaudio.analyze.analyze`.

    Attributes
    ----------
    label_column : str or None
        Segment column holding the class of each row; ``None`` or ``""`` runs the unsupervised
        analyses only.
    features : tuple of str
        Catalog feature names and/or group names to analyse; empty means every summary column.
    max_rows : int
        Rows used by the unsupervised methods (variance, correlation, PCA); larger stores are
        subsampled uniformly at random.
    supervised_rows : int
        Rows used by the cross-validated classifier, permutation importance and ablations
        (a subsample of the ``max_rows`` sample).
    supervised_cells : int
        Cap on rows x columns of the supervised matrix: with many columns fewer rows are used
        (never fewer than 2,000), so the cost of the ~100 classifier fits of the ablations and
        the greedy subset stays bounded.
    mi_rows : int
        Rows used by the mutual-information estimator (equal-frequency bins, all columns at once).
    embed_rows : int
        Points in the 2-D embedding plot.
    folds : int
        Cross-validation folds (grouped by ``file_id``; fewer when there are fewer files).
    classifier : {"logistic", "forest"}
        Standardised multinomial logistic regression (fast, default) or a random forest.
    permutation_repeats : int
        Shuffles per column and held-out fold in permutation importance.
    corr_threshold : float
        Columns whose absolute Pearson correlation exceeds this are called redundant
        (complete-linkage clusters, so every pair inside a cluster exceeds it).
    target : float
        Fraction of the full feature set's accuracy the recommended subset must keep.
    embedding : {"tsne", "pca"}
        Method of the 2-D embedding plot.
    top : int
        Bars in the top-N importance plot and rows in the report's tables.
    seed : int
        Seed of every random choice (subsampling, folds, shuffles, estimators).
    """

    label_column: str | None = "label"
    features: tuple[str, ...] = ()
    max_rows: int = 50_000
    supervised_rows: int = 10_000
    supervised_cells: int = 4_000_000
    mi_rows: int = 5_000
    embed_rows: int = 1_500
    folds: int = 5
    classifier: str = "logistic"
    permutation_repeats: int = 5
    corr_threshold: float = 0.9
    target: float = 0.95
    embedding: str = "tsne"
    top: int = 20
    seed: int = 0

    def __post_init__(self):
        for name in ("max_rows", "supervised_rows", "supervised_cells", "mi_rows", "embed_rows", "top"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.folds < 2:
            raise ConfigError(f"folds must be at least 2, got {self.folds}")
        if self.permutation_repeats < 1:
            raise ConfigError("permutation_repeats must be at least 1")
        if self.classifier not in ("logistic", "forest"):
            raise ConfigError(f"classifier must be 'logistic' or 'forest', got {self.classifier!r}")
        if self.embedding not in ("tsne", "pca"):
            raise ConfigError(f"embedding must be 'tsne' or 'pca', got {self.embedding!r}")
        if not 0.0 < self.corr_threshold < 1.0:
            raise ConfigError(f"corr_threshold must be between 0 and 1, got {self.corr_threshold}")
        if not 0.0 < self.target <= 1.0:
            raise ConfigError(f"target must be in (0, 1], got {self.target}")


@dataclasses.dataclass
class FeatureTable:
    """The analysed matrix and what each row and column is.

    Attributes
    ----------
    X : np.ndarray, shape (n_rows, n_columns), float32
        Finite summary values (NaN/inf imputed by the column median).
    columns : list of str
        Summary column names, e.g. ``mfcc_03_mean``.
    features : list of str
        Catalog feature of each column (``mfcc``).
    groups : list of str
        Feature group of each column (``mfcc``, ``chroma``, ``spectral``, ...).
    labels : np.ndarray of str or None, shape (n_rows,)
        Label of each row (``""`` where missing), ``None`` without a label column.
    file_ids : np.ndarray of str, shape (n_rows,)
        File of each row: cross-validation never splits one file across train and test.
    n_rows_total : int
        Segment rows in the store before subsampling.
    excluded : list of (column, reason)
        Columns left out of every analysis.
    imputed : list of (column, n_values)
        Columns in which non-finite values were replaced by the median.
    notes : list of str
        Plain-language remarks for the report (subsampling, missing labels, ...).
    """

    X: np.ndarray
    columns: list[str]
    features: list[str]
    groups: list[str]
    labels: np.ndarray | None
    file_ids: np.ndarray
    n_rows_total: int
    excluded: list[tuple[str, str]]
    imputed: list[tuple[str, int]]
    notes: list[str]
    units: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def group_names(self) -> list[str]:
        """Groups in first-appearance order."""
        return list(dict.fromkeys(self.groups))

    @property
    def feature_names(self) -> list[str]:
        return list(dict.fromkeys(self.features))

    def block_indices(self, level: str) -> dict[str, np.ndarray]:
        """Column indices of each ``"feature"`` or ``"group"``."""
        keys = self.features if level == "feature" else self.groups
        out: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            out.setdefault(k, []).append(i)
        return {k: np.asarray(v) for k, v in out.items()}


def _catalog_info() -> dict[str, tuple[str | None, str | None]]:
    """``{feature: (group, unit)}`` from the feature catalog when it can be imported.

    The manifest is the primary source of groups; the catalog only fills gaps (and units).
    Analysis must not fail because the catalog module is unavailable, hence the broad except.
    """
    try:
        from genaudio.features import CATALOG  # noqa: PLC0415
    except Exception:  # pragma: no cover - depends on the catalog being importable
        return {}
    out = {}
    for name, entry in dict(CATALOG).items():
        group = getattr(entry, "group", None) or (entry.get("group") if isinstance(entry, dict) else None)
        unit = None
        for attr in ("unit", "units"):
            unit = unit or getattr(entry, attr, None) or (entry.get(attr) if isinstance(entry, dict) else None)
        out[name] = (group, unit)
    return out


def summary_columns(schema: pa.Schema) -> list[tuple[str, str]]:
    """``[(column, feature)]`` of the float summary columns of a segments schema."""
    out = []
    for field in schema:
        parsed = parse_summary_column(field.name)
        if parsed is None:
            continue
        if not (pa.types.is_floating(field.type) or pa.types.is_integer(field.type)):
            continue
        out.append((field.name, parsed[0]))
    return out


def _select(columns: list[tuple[str, str]], groups: dict[str, str], wanted: tuple[str, ...]):
    if not wanted:
        return columns
    names = {f for _, f in columns}
    group_names = {groups[f] for f in names}
    unknown = [w for w in wanted if w not in names and w not in group_names]
    if unknown:
        raise ConfigError(
            f"unknown feature or group {', '.join(unknown)}; this store has features "
            f"{', '.join(sorted(names))} and groups {', '.join(sorted(group_names))}"
        )
    keep = set(wanted)
    return [(c, f) for c, f in columns if f in keep or groups[f] in keep]


def load_table(store_dir: str | Path, cfg: AnalyzeConfig) -> FeatureTable:
    """Read, subsample and clean the summary columns of a features store.

    Raises
    ------
    StoreError
        DIR is not a features store, or it has no summary columns / rows.
    ConfigError
        The label column or a requested feature/group does not exist.
    """
    store_dir = Path(store_dir)
    manifest = read_manifest(store_dir)
    if manifest.get("kind", "features") != "features":
        raise StoreError(f"{store_dir} is a {manifest.get('kind')!r} store, not a features store "
                         "(`genaudio extract` output)")
    schema = segments_schema(store_dir)
    cols = summary_columns(schema)
    if not cols:
        raise StoreError(f"{store_dir}: the segments table has no summary columns "
                         "(<feature>_<dim>_<stat>); was it written by `genaudio extract`?")
    groups, units = _groups_and_units(manifest, [f for _, f in cols])
    cols = _select(cols, groups, tuple(cfg.features))
    names = schema.names
    label_col = cfg.label_column or None
    if label_col is not None and label_col not in names:
        text_cols = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                     or pa.types.is_integer(f.type) and parse_summary_column(f.name) is None]
        raise ConfigError(
            f"no label column {label_col!r} in {store_dir}/segments; candidate columns: "
            f"{', '.join(text_cols) or 'none'} (use --label-column NAME, or --label-column '' for "
            "unsupervised analysis only)"
        )
    id_cols = [c for c in ("file_id", "path") if c in names]
    read_cols = list(dict.fromkeys(id_cols + ([label_col] if label_col else []) + [c for c, _ in cols]))
    table = read_segments(store_dir, columns=read_cols)
    n_total = table.num_rows
    if n_total == 0:
        raise StoreError(f"{store_dir} has no segment rows to analyse")

    notes: list[str] = []
    rng = np.random.default_rng(cfg.seed)
    if n_total > cfg.max_rows:
        idx = np.sort(rng.choice(n_total, size=cfg.max_rows, replace=False))
        table = table.take(pa.array(idx))
        notes.append(f"Subsampled {cfg.max_rows:,} of {n_total:,} segments uniformly at random "
                     f"(seed {cfg.seed}) for all analyses.")
    n = table.num_rows

    if "file_id" in names:
        file_ids = np.asarray(table.column("file_id").to_pylist(), dtype=object).astype(str)
    elif "path" in names:
        file_ids = np.asarray(table.column("path").to_pylist(), dtype=object).astype(str)
    else:
        file_ids = np.arange(n).astype(str)
        notes.append("No file_id column: cross-validation treats every segment as its own file.")

    labels = None
    if label_col:
        raw = table.column(label_col)
        if not (pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type)):
            raw = pc.cast(raw, pa.string())
        labels = np.asarray(pc.fill_null(raw, "").to_pylist(), dtype=object).astype(str)

    X = np.empty((n, len(cols)), dtype=np.float32)
    for j, (c, _) in enumerate(cols):
        X[:, j] = table.column(c).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    del table
    X, cols, excluded, imputed = _clean(X, cols, notes)
    if not cols:
        raise StoreError(f"{store_dir}: every summary column is constant or non-finite; nothing to analyse")
    feats = [f for _, f in cols]
    return FeatureTable(
        X=X, columns=[c for c, _ in cols], features=feats, groups=[groups[f] for f in feats],
        labels=labels, file_ids=file_ids, n_rows_total=n_total, excluded=excluded, imputed=imputed,
        notes=notes, units={f: u for f, u in units.items() if f in set(feats)},
    )


def _groups_and_units(manifest: dict, features: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Each feature's group and unit: the store's manifest first, then genaudio's catalog."""
    catalog = _catalog_info()
    mfeat = manifest.get("features") or {}
    groups: dict[str, str] = {}
    units: dict[str, str] = {}
    for f in features:
        info = mfeat.get(f) if isinstance(mfeat, dict) else None
        info = info if isinstance(info, dict) else {}
        groups[f] = info.get("group") or catalog.get(f, (None, None))[0] or "other"
        unit = info.get("unit") or catalog.get(f, (None, None))[1]
        if unit:
            units[f] = str(unit)
    return groups, units


def _clean(X: np.ndarray, cols: list, notes: list[str]):
    """Drop the constant and all-non-finite columns, replace other non-finite values by the
    column median (in place), and say so in ``notes``. Returns ``(X, cols, excluded, imputed)``."""
    n = X.shape[0]
    excluded: list[tuple[str, str]] = []
    imputed: list[tuple[str, int]] = []
    keep = np.ones(len(cols), dtype=bool)
    finite = np.isfinite(X)
    n_bad = n - finite.sum(axis=0)
    for j, (c, _) in enumerate(cols):
        col = X[:, j]
        if n_bad[j] == n:
            keep[j] = False
            excluded.append((c, "no finite values (all NaN/inf)"))
            continue
        if n_bad[j]:
            col[~finite[:, j]] = np.median(col[finite[:, j]])
            imputed.append((c, int(n_bad[j])))
        lo, hi = float(col.min()), float(col.max())
        if hi - lo <= 1e-9 * max(1.0, abs(lo), abs(hi)):
            keep[j] = False
            excluded.append((c, f"constant (value {lo:.6g})"))
    del finite
    if excluded:
        notes.append(f"Excluded {len(excluded)} column(s) that are constant or have no finite values "
                     "(listed in excluded.csv).")
    if imputed:
        notes.append(f"Replaced non-finite values by the column median in {len(imputed)} column(s) "
                     f"({sum(k for _, k in imputed):,} values).")
    return np.ascontiguousarray(X[:, keep]), [c for c, k in zip(cols, keep) if k], excluded, imputed
