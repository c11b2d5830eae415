"""genaudio analyze: importance on planted signal, grouped CV, redundancy, bad input, report rendering.

Stores are written in the documented features-store layout (segments/part-0.parquet,
manifest.json, files.parquet) with known structure, so the expected answers are known.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from genaudio.analyze import AnalyzeConfig, analyze, load_table, read_subset
from genaudio.analyze import stats
from genaudio.analyze import supervised as sup
from genaudio.errors import ConfigError, StoreError

FAST = dict(embedding="pca", permutation_repeats=3)


# ---------------------------------------------------------------------------------------------
# Synthetic stores


def write_store(root: Path, cols: dict[str, np.ndarray], *, labels, file_ids, features_meta: dict,
                kind: str = "features") -> Path:
    """A features store in the layout of genaudio/store.py holding the given summary columns."""
    root = Path(root)
    (root / "segments").mkdir(parents=True, exist_ok=True)
    n = len(file_ids)
    seg = np.zeros(n, np.int32)
    for f in set(file_ids):
        idx = [i for i, x in enumerate(file_ids) if x == f]
        seg[idx] = np.arange(len(idx))
    data = {"file_id": pa.array(list(file_ids)), "path": pa.array([f"/audio/{f}.wav" for f in file_ids]),
            "label": pa.array(list(labels)), "segment": pa.array(seg),
            "start_s": pa.array(seg * 5.0), "duration_s": pa.array(np.full(n, 5.0))}
    for k, v in cols.items():
        data[k] = pa.array(np.asarray(v, np.float32))
    pq.write_table(pa.table(data), root / "segments" / "part-0.parquet")
    fids = sorted(set(file_ids))
    pq.write_table(pa.table({"file_id": fids, "path": [f"/audio/{f}.wav" for f in fids]}), root / "files.parquet")
    (root / "manifest.json").write_text(json.dumps({
        "kind": kind, "features": features_meta,
        "counts": {"files_ok": len(fids), "files_failed": 0, "segments": n, "audio_seconds": 5.0 * n}}))
    return root


PLANTED_META = {
    "mfcc": {"group": "mfcc", "dims": 3, "frame": True},
    "chroma_stft": {"group": "chroma", "dims": 2, "frame": True},
    "spectral_centroid": {"group": "spectral", "dims": 1, "frame": True},
    "spectral_flatness": {"group": "spectral", "dims": 1, "frame": True},
    "noise": {"group": "noise", "dims": 2, "frame": False},
}


def planted_store(root: Path, *, n_files: int = 48, seg: int = 8, seed: int = 0) -> Path:
    """3 classes; mfcc dims 0-1 (means) carry strong signal, chroma and spectral weak, noise none.

    Each file has its own offset (segments of one recording resemble each other), as in real audio.
    """
    rng = np.random.default_rng(seed)
    n = n_files * seg
    fid = np.repeat([f"f{i:03d}" for i in range(n_files)], seg)
    y = np.repeat(np.arange(n_files) % 3, seg)
    file_off = lambda: np.repeat(rng.standard_normal(n_files) * 0.3, seg)  # noqa: E731
    cols = {}
    for d in range(3):
        for s in ("mean", "std"):
            v = rng.standard_normal(n) + file_off()
            if d < 2 and s == "mean":
                v += 1.6 * (y == d) - 1.6 * (y == 2)
            cols[f"mfcc_{d:02d}_{s}"] = v
    for d in range(2):
        cols[f"chroma_stft_{d:02d}_mean"] = rng.standard_normal(n) + file_off() + 0.8 * (y == d)
        cols[f"chroma_stft_{d:02d}_std"] = rng.standard_normal(n) + file_off()
    cen = 2000 + 300 * (rng.standard_normal(n) + file_off() + 0.8 * (y == 2))
    cols["spectral_centroid_00_mean"] = cen
    cols["spectral_flatness_00_mean"] = 0.1 + 0.02 * (rng.standard_normal(n) + file_off() + 0.8 * (y == 1))
    for d in range(2):
        for s in ("mean", "std"):
            cols[f"noise_{d:02d}_{s}"] = rng.standard_normal(n)
    labels = np.array(["rock", "jazz", "folk"])[y]
    return write_store(root, cols, labels=labels, file_ids=fid, features_meta=PLANTED_META)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    base = tmp_path_factory.mktemp("planted")
    store = planted_store(base / "store")
    out = base / "report"
    result = analyze(store, out, AnalyzeConfig(seed=3, embedding="tsne", permutation_repeats=5))
    return store, out, result


def _imp(out: Path, level: str, method: str) -> pd.DataFrame:
    df = pd.read_csv(out / "importance.csv")
    return df[(df.level == level) & (df.method == method)].sort_values("rank").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Planted signal


def test_planted_signal_ranks_known_features_first_and_noise_last(planted):
    _, out, result = planted
    perm = _imp(out, "column", "permutation")
    assert set(perm.feature[:2]) == {"mfcc_00_mean", "mfcc_01_mean"}
    assert perm.loc[:1, "score"].min() > 5 * perm.loc[2:, "score"].max()
    mi = _imp(out, "column", "mutual_information")
    assert set(mi.feature[:2]) == {"mfcc_00_mean", "mfcc_01_mean"}

    feat = _imp(out, "feature", "permutation")
    assert feat.feature.iloc[0] == "mfcc"
    assert feat.feature.iloc[-1] == "noise", feat
    # the binned MI of a pure-noise column is ~0 after the bias correction
    feat_mi = _imp(out, "feature", "mutual_information").set_index("feature").score
    assert feat_mi.idxmax() == "mfcc" and feat_mi["noise"] < 0.1 * feat_mi["mfcc"]

    groups = pd.read_csv(out / "groups.csv")
    assert groups.group.iloc[0] == "mfcc"  # sorted by accuracy with only that group
    g = groups.set_index("group")
    assert g.accuracy_drop.idxmax() == "mfcc"
    assert g.permutation.idxmax() == "mfcc"
    assert g.permutation.idxmin() == "noise" and g.accuracy_drop.idxmin() == "noise"
    assert g.loc["noise", "accuracy_only"] < g.loc["mfcc", "accuracy_only"] - 0.3
    sv = result.supervised
    assert np.mean(sv["accuracy"]) > 0.8 and sv["chance"] == pytest.approx(1 / 3)


def test_planted_signal_outputs_and_subset(planted):
    store, out, result = planted
    for name in ("report.html", "importance.csv", "groups.csv", "clusters.csv", "excluded.csv", "subset.yaml",
                 "summary.json", "importance.png", "groups.png", "correlation.png", "pca.png", "embedding.png",
                 "distributions.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    imp = pd.read_csv(out / "importance.csv")
    assert list(imp.columns) == ["feature", "catalog_feature", "group", "level", "method", "score", "std", "rank"]
    # ranks are 1..n within each (level, method)
    for _, df in imp.groupby(["level", "method"]):
        assert sorted(df["rank"]) == list(range(1, len(df) + 1))
    sub = read_subset(out / "subset.yaml")
    assert sub["method"] == "greedy_groups"
    assert sub["groups"][0] == "mfcc" and "noise" not in sub["groups"]
    assert set(sub["features"]) <= set(PLANTED_META)
    assert sub["subset_accuracy"] >= 0.95 * sub["full_accuracy"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["supervised"]["folds"] == 5
    assert summary["sample_sizes"]["rows_used"] == 48 * 8
    assert summary["embedding"] == "tsne"


def test_analysis_is_deterministic_with_a_seed(tmp_path):
    store = planted_store(tmp_path / "store", n_files=24, seg=6)
    a = analyze(store, tmp_path / "a", AnalyzeConfig(seed=7, **FAST))
    b = analyze(store, tmp_path / "b", AnalyzeConfig(seed=7, **FAST))
    assert (tmp_path / "a" / "importance.csv").read_text() == (tmp_path / "b" / "importance.csv").read_text()
    assert (tmp_path / "a" / "groups.csv").read_text() == (tmp_path / "b" / "groups.csv").read_text()
    assert np.array_equal(a.embedding, b.embedding)


# ---------------------------------------------------------------------------------------------
# Methods


def test_grouped_cv_keeps_files_whole_and_prevents_leakage(tmp_path):
    """Labels are per file and the features only fingerprint the file (no class signal):
    with grouped CV accuracy must stay near chance; an ungrouped split would score far above it."""
    rng = np.random.default_rng(0)
    n_files, seg = 40, 10
    fid = np.repeat([f"f{i:02d}" for i in range(n_files)], seg)
    y = np.repeat(rng.permutation(np.arange(n_files) % 2), seg)
    fp = rng.standard_normal((n_files, 6)) * 3
    X = np.repeat(fp, seg, axis=0) + 0.05 * rng.standard_normal((n_files * seg, 6))
    splits = sup.grouped_folds(y, fid, folds=5, seed=0)
    assert len(splits) == 5
    for tr, te in splits:
        assert not set(fid[tr]) & set(fid[te])
    model = sup.make_classifier("forest", seed=0)
    grouped = sup.cv_accuracy(model, X, y, splits).mean()
    from sklearn.model_selection import StratifiedKFold

    leaky = sup.cv_accuracy(model, X, y, list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))).mean()
    assert leaky > 0.9
    assert grouped < 0.75


def test_fast_linear_permutation_equals_generic_path():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 8)) * [1, 10, 100, 1, 1, 1, 1, 1]
    y = np.array(["a", "b", "c"])[(X[:, 0] + X[:, 1] / 10 + rng.standard_normal(300) > 0).astype(int)
                                  + (X[:, 2] > 50)]
    m = sup.fit(sup.make_classifier("logistic", seed=0), X[:200], y[:200])
    blocks = [np.array([j]) for j in range(8)] + [np.array([0, 1]), np.array([2, 3, 4])]
    fast = sup.permutation_importance(m, X[200:], y[200:], blocks, repeats=4, rng=np.random.default_rng(5))
    slow = sup.permutation_importance(m, X[200:], y[200:], blocks, repeats=4, rng=np.random.default_rng(5),
                                      fast=False)
    assert np.allclose(fast, slow)
    assert fast[0].mean() > 0.05  # informative column matters
    # binary case (decision_function is 1-D)
    yb = (X[:, 0] > 0).astype(str)
    mb = sup.fit(sup.make_classifier("logistic", seed=0), X[:200], yb[:200])
    f2 = sup.permutation_importance(mb, X[200:], yb[200:], blocks, repeats=3, rng=np.random.default_rng(2))
    s2 = sup.permutation_importance(mb, X[200:], yb[200:], blocks, repeats=3, rng=np.random.default_rng(2), fast=False)
    assert np.allclose(f2, s2)
    # held-out rows of a class the model never saw count as wrong on both paths
    yz = y[200:].copy()
    yz[::7] = "z"
    fz = sup.permutation_importance(m, X[200:], yz, blocks, repeats=4, rng=np.random.default_rng(5))
    sz = sup.permutation_importance(m, X[200:], yz, blocks, repeats=4, rng=np.random.default_rng(5), fast=False)
    assert np.allclose(fz, sz)


def test_pca_of_wide_data_uses_the_small_side_exactly():


    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 200))
    X[:, 100:] = 2 * X[:, :100] + 0.01 * rng.standard_normal((30, 100))  # 200 columns, rank <= 30
    Z = stats.standardize(X)
    R = stats.correlation(Z)
    assert np.allclose(stats.explained_variance(R), stats.explained_variance(R, Z), atol=1e-12)
    assert stats.dims_for(stats.explained_variance(R, Z))[0.99] <= 30


def test_redundant_features_cluster_and_unsupervised_subset_drops_duplicates(tmp_path):
    rng = np.random.default_rng(2)
    n = 300
    base = rng.standard_normal((n, 3))
    cols = {}
    for d in range(3):
        cols[f"mfcc_{d:02d}_mean"] = base[:, d]
        # a near-copy in another feature: redundant with mfcc
        cols[f"mfcc_delta_{d:02d}_mean"] = 2 * base[:, d] + 0.01 * rng.standard_normal(n)
    cols["rms_00_mean"] = rng.standard_normal(n)
    meta = {"mfcc": {"group": "mfcc", "dims": 3}, "mfcc_delta": {"group": "mfcc", "dims": 3},
            "rms": {"group": "energy", "dims": 1}}
    fid = [f"f{i // 10}" for i in range(n)]
    store = write_store(tmp_path / "s", cols, labels=[""] * n, file_ids=fid, features_meta=meta)
    result = analyze(store, tmp_path / "r", AnalyzeConfig(**FAST))
    assert result.supervised is None
    clu = pd.read_csv(tmp_path / "r" / "clusters.csv")
    assert clu.cluster.nunique() == 4
    for d in range(3):
        pair = clu[clu.column.isin([f"mfcc_{d:02d}_mean", f"mfcc_delta_{d:02d}_mean"])]
        assert pair.cluster.nunique() == 1 and pair.representative.sum() == 1
    sub = read_subset(tmp_path / "r" / "subset.yaml")
    assert sub["method"] == "non_redundant"
    assert "rms" in sub["features"] and len({"mfcc", "mfcc_delta"} & set(sub["features"])) == 1
    assert sub["groups"] == ["mfcc", "energy"]
    assert result.dims[0.99] == 4  # 3 independent directions + rms
    g = pd.read_csv(tmp_path / "r" / "groups.csv").set_index("group")
    assert g.loc["mfcc", "dims_95"] == 3 and g.loc["mfcc", "n_columns"] == 6
    assert "No label" in " ".join(result.notes) or "one class" in " ".join(result.notes) or \
        "no labels" in " ".join(result.notes)


def test_feature_and_group_selection(tmp_path):
    store = planted_store(tmp_path / "s", n_files=12, seg=4)
    t = load_table(store, AnalyzeConfig(features=("mfcc", "noise")))
    assert set(t.features) == {"mfcc", "noise"}
    t = load_table(store, AnalyzeConfig(features=("spectral",)))  # a group name
    assert set(t.features) == {"spectral_centroid", "spectral_flatness"}
    with pytest.raises(ConfigError, match="unknown feature or group tempo"):
        load_table(store, AnalyzeConfig(features=("tempo",)))


def test_subsampling_is_reported(tmp_path):
    store = planted_store(tmp_path / "s", n_files=30, seg=10)
    r = analyze(store, tmp_path / "r", AnalyzeConfig(max_rows=120, supervised_rows=100, **FAST))
    assert r.sample_sizes["rows_total"] == 300 and r.sample_sizes["rows_used"] == 120
    assert r.sample_sizes["supervised_rows"] == 100
    notes = " ".join(r.notes)
    assert "Subsampled 120 of 300 segments" in notes and "100 labelled segments" in notes
    assert "Subsampled 120 of 300" in (tmp_path / "r" / "report.html").read_text()


# ---------------------------------------------------------------------------------------------
# Bad input


def test_single_class_runs_unsupervised_with_a_clear_note(tmp_path):
    store = planted_store(tmp_path / "s", n_files=12, seg=4)
    tbl = pq.read_table(store / "segments" / "part-0.parquet")
    tbl = tbl.set_column(tbl.schema.get_field_index("label"), "label", pa.array(["rock"] * tbl.num_rows))
    pq.write_table(tbl, store / "segments" / "part-0.parquet")
    r = analyze(store, tmp_path / "r", AnalyzeConfig(**FAST))
    assert r.supervised is None
    assert any("only one class ('rock')" in n for n in r.notes)
    assert set(pd.read_csv(tmp_path / "r" / "importance.csv").method) == {"variance"}
    assert not (tmp_path / "r" / "groups.png").exists()
    html = (tmp_path / "r" / "report.html").read_text()
    assert "only one class" in html and "Not run" in html


def test_constant_and_nan_columns_are_reported_and_excluded(tmp_path):
    rng = np.random.default_rng(3)
    n = 120
    y = np.arange(n) % 2
    partial = rng.standard_normal(n) + y
    partial[:7] = np.nan
    partial[7] = np.inf
    cols = {"mfcc_00_mean": rng.standard_normal(n) + 2 * y, "mfcc_01_mean": np.full(n, 3.5),
            "mfcc_02_mean": np.full(n, np.nan), "rms_00_mean": partial}
    meta = {"mfcc": {"group": "mfcc", "dims": 3}, "rms": {"group": "energy", "dims": 1}}
    store = write_store(tmp_path / "s", cols, labels=np.array(["a", "b"])[y], file_ids=[f"f{i // 4}" for i in range(n)],
                        features_meta=meta)
    r = analyze(store, tmp_path / "r", AnalyzeConfig(**FAST))
    exc = pd.read_csv(tmp_path / "r" / "excluded.csv").set_index("column")
    assert set(exc.index) == {"mfcc_01_mean", "mfcc_02_mean"}
    assert "constant" in exc.loc["mfcc_01_mean", "reason"] and "NaN" in exc.loc["mfcc_02_mean", "reason"]
    assert r.table.columns == ["mfcc_00_mean", "rms_00_mean"]
    assert ("rms_00_mean", 8) in r.table.imputed
    assert np.isfinite(r.table.X).all()
    assert r.supervised is not None and np.mean(r.supervised["accuracy"]) > 0.8
    html = (tmp_path / "r" / "report.html").read_text()
    assert "mfcc_02_mean" in html and "Excluded" in html


def test_store_with_only_bad_columns_is_a_clear_error(tmp_path):
    n = 20
    store = write_store(tmp_path / "s", {"mfcc_00_mean": np.full(n, 1.0), "rms_00_mean": np.full(n, np.nan)},
                        labels=["a", "b"] * 10, file_ids=[f"f{i}" for i in range(n)],
                        features_meta={"mfcc": {"group": "mfcc"}, "rms": {"group": "energy"}})
    with pytest.raises(StoreError, match="every summary column is constant or non-finite"):
        analyze(store, tmp_path / "r")


def _cli(*args):
    from genaudio.cli import main

    return CliRunner().invoke(main, ["analyze", *map(str, args)])


def test_cli_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ((empty, "--out", tmp_path / "r"), "is not a genaudio features store"),
        ((tmp_path / "nope", "--out", tmp_path / "r"), "no such folder"),
    ]
    store = planted_store(tmp_path / "s", n_files=12, seg=4)
    cases += [
        ((store, "--out", tmp_path / "r", "--label-column", "genre"), "no label column 'genre'"),
        ((store, "--out", tmp_path / "r", "--features", "mfcc,tempo"), "unknown feature or group tempo"),
        ((store, "--out", tmp_path / "r", "--max-rows", "0"), "max_rows must be at least 1"),
    ]
    enc = write_store(tmp_path / "enc", {"mfcc_00_mean": np.arange(4.0)}, labels=["a"] * 4, file_ids=["f"] * 4,
                      features_meta={}, kind="encoded")
    cases.append(((enc, "--out", tmp_path / "r"), "not a features store"))
    (tmp_path / "afile").write_text("x")
    cases.append(((store, "--out", tmp_path / "afile"), "exists and is not a folder"))
    for args, msg in cases:
        res = _cli(*args)
        assert res.exit_code == 2, (args, res.output)
        lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and msg in lines[0], (args, res.output)
        assert "Traceback" not in res.output


def test_cli_runs_unsupervised_with_empty_label_column(tmp_path):
    store = planted_store(tmp_path / "s", n_files=12, seg=4)
    res = _cli(store, "--out", tmp_path / "r", "--label-column", "", "--embedding", "pca", "--seed", "1",
               "--features", "mfcc", "--features", "chroma")
    assert res.exit_code == 0, res.output
    assert "analysed 48 of 48 segments, 10 columns (2 features, 2 groups)" in res.output
    assert "recommended groups:" in res.output
    sub = yaml.safe_load((tmp_path / "r" / "subset.yaml").read_text())
    assert sub["method"] == "non_redundant" and sub["label_column"] is None


def test_read_subset_rejects_other_files(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("model: lstm\n")
    with pytest.raises(ConfigError, match="not a feature subset"):
        read_subset(p)
    with pytest.raises(ConfigError, match="not found"):
        read_subset(tmp_path / "missing.yaml")


# ---------------------------------------------------------------------------------------------
# The report in a real browser


@pytest.mark.browser
def test_report_renders_in_headless_chromium(planted, tmp_path):
    from browser import chromium_or_skip, render

    chromium_or_skip()
    _, out, _ = planted
    page = render(out / "report.html", tmp_path, screenshot=tmp_path / "report.png")
    dom = page.dom
    total = int(re.search(r'data-images-total="(\d+)"', dom).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', dom).group(1))
    assert total == 6 and loaded == total
    for heading in ("Which features matter", "Recommended subset", "Permutation importance", "Group ablation",
                    "Correlation structure", "PCA explained variance", "2-D embedding", "Mutual information"):
        assert heading in dom, heading
    assert "src=\"http" not in dom and "href=\"http" not in dom  # self-contained
    assert page.screenshot_ok


# ---------------------------------------------------------------------------------------------
# End to end on a real extract of samples/


@pytest.mark.slow
def test_analyze_of_a_real_store_end_to_end(small_store, tmp_path):
    from genaudio import extract as ex
    from genaudio.cli import main
    from genaudio.config import load
    from genaudio.cli.extract import _features_option
    from genaudio.store import read_manifest

    store = small_store   # `genaudio extract` of six sample files (tests/conftest.py)
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["analyze", str(store), "--out", str(out), "--seed", "0"])
    assert res.exit_code == 0, res.output
    assert "cross-validated accuracy" in res.output
    manifest = read_manifest(store)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["supervised"]["classes"] == ["bells", "drums", "noise", "piano", "strings"]
    assert summary["sample_sizes"]["rows_used"] == manifest["counts"]["segments"]
    groups = pd.read_csv(out / "groups.csv")
    assert set(groups.group) <= {v["group"] for v in manifest["features"].values()}
    imp = pd.read_csv(out / "importance.csv")
    feats = set(imp[imp.level == "feature"].feature)
    assert feats and feats <= set(manifest["features"])
    assert np.isfinite(imp.score).all()
    # the subset file feeds back into extract's --features option
    sub = read_subset(out / "subset.yaml")
    assert sub["features"] and _features_option((str(out / "subset.yaml"),))["features"] == sub["features"]
    ex.check_features(load(ex.ExtractConfig, {"features": {"features": sub["features"]}}))
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6


def test_binned_mutual_information_is_zero_for_noise_and_high_for_signal():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 2000)
    signal = y + 0.3 * rng.standard_normal(2000)
    X = np.column_stack([signal, rng.standard_normal(2000), -signal])
    mi = stats.binned_mutual_information(X, y)
    assert mi[1] < 0.02                      # independent column: ~0 after the bias correction
    assert mi[0] > 0.8 and abs(mi[0] - mi[2]) < 1e-9   # rank-based: a sign flip changes nothing
    assert mi[0] <= np.log(4) + 1e-9         # bounded by the label entropy


def test_binned_mutual_information_of_a_mostly_constant_column_is_not_its_row_order():
    """A store lists rows file by file, so by label: tied values must share a bin, or a column
    that is mostly one value would be binned by row position and look informative."""
    rng = np.random.default_rng(4)
    y = np.sort(rng.integers(0, 4, 2000))              # rows grouped by label, as a store's are
    sparse = np.where(rng.random(2000) < 0.05, rng.standard_normal(2000), 0.0)   # 95 % zeros, no signal
    constant = np.zeros(2000)
    mi = stats.binned_mutual_information(np.column_stack([sparse, constant]), y)
    assert mi[0] < 0.02 and mi[1] == 0.0
