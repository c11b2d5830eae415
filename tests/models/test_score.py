"""The comparable score's statistics against hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from genaudio.models.score import code_stats, frechet_distance, ndb, standardize


def _reference_fd(x, y):
    mx, my = x.mean(0), y.mean(0)
    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    return float(((mx - my) ** 2).sum() + np.trace(cx + cy - 2 * scipy.linalg.sqrtm(cx @ cy).real))


def test_identical_sets_have_distance_zero():
    x = np.random.default_rng(0).standard_normal((50, 6))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_shifted_copy_gives_the_squared_shift():
    # same covariance, means differ by delta: FD = |delta|^2 exactly
    x = np.random.default_rng(1).standard_normal((200, 4))
    delta = np.array([1.0, -2.0, 0.5, 0.0])
    assert frechet_distance(x, x + delta) == pytest.approx(float(delta @ delta), rel=1e-6)


def test_shifted_scaled_gaussians_match_the_closed_form():
    # N(0, I) vs N(mu, s^2 I) in d dims: |mu|^2 + d (1 - s)^2
    rng = np.random.default_rng(2)
    d, s, mu = 3, 2.0, np.array([1.0, 1.0, 0.0])
    x = rng.standard_normal((40000, d))
    y = mu + s * rng.standard_normal((40000, d))
    expected = float(mu @ mu) + d * (1 - s) ** 2  # = 5
    assert frechet_distance(x, y) == pytest.approx(expected, rel=0.03)


def test_few_samples_many_dims_uses_the_exact_low_rank_formula():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 40))
    y = 0.5 + 1.5 * rng.standard_normal((15, 40))
    assert frechet_distance(x, y) == pytest.approx(_reference_fd(x, y), rel=1e-6)
    small_x, small_y = rng.standard_normal((60, 5)), rng.standard_normal((70, 5)) + 1
    assert frechet_distance(small_x, small_y) == pytest.approx(_reference_fd(small_x, small_y), rel=1e-5)


def test_nonfinite_samples_give_infinite_distance():
    x = np.random.default_rng(4).standard_normal((10, 3))
    y = x.copy()
    y[0, 0] = np.nan
    assert frechet_distance(x, y) == float("inf")


def test_ndb_same_distribution_few_bins_differ_shifted_many_do():
    rng = np.random.default_rng(5)
    real = rng.standard_normal((1000, 2))
    same = rng.standard_normal((1000, 2))
    shifted = rng.standard_normal((1000, 2)) + np.array([1.5, 0.0])
    a = ndb(real, same, k=10, seed=0)
    b = ndb(real, shifted, k=10, seed=0)
    assert a["ndb"] <= 2 and a["k"] == 10
    assert b["ndb"] >= 6 and b["jsd"] > a["jsd"]
    assert sum(a["real_props"]) == pytest.approx(1.0)
    # mode collapse: every generated sample in one place
    collapsed = np.zeros((500, 2)) + real[0]
    c = ndb(real, collapsed, k=10, seed=0)
    assert c["ndb"] >= 9 and c["ndb_fraction"] >= 0.9


def test_standardize_uses_the_real_statistics():
    real = np.array([[0.0, 100.0], [2.0, 300.0]])
    rs, fs = standardize(real, np.array([[1.0, 200.0]]))
    assert np.allclose(rs.mean(0), 0) and np.allclose(rs.std(0), 1)
    assert np.allclose(fs, [[0.0, 0.0]])


def test_code_stats_shape():
    c = np.random.default_rng(6).standard_normal((5, 30, 4))
    s = code_stats(c)
    assert s.shape == (5, 12)
    assert np.allclose(s[:, :4], c.mean(1))


def test_a_near_constant_column_cannot_dominate_the_score():
    rng = np.random.default_rng(7)
    real = rng.standard_normal((16, 50))
    real[:, 0] = 1e-9 * rng.standard_normal(16)  # e.g. a DC offset: spread ~1e-9
    fake = rng.standard_normal((16, 50))
    fake[:, 0] = 0.5  # far off in that one column only
    rs, fs = standardize(real, fake)
    assert np.abs(fs).max() <= 10.0
    base_r, base_f = standardize(real[:, 1:], fake[:, 1:])
    # one column moves the distance by at most its clipped share (10^2), not by 1e17
    assert frechet_distance(rs, fs) - frechet_distance(base_r, base_f) <= 100.0 + 1e-6
