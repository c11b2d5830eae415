"""Code-space metrics (frechet_distance, code_stats) against hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from genaudio.models.metrics import code_stats, frechet_distance


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


def test_code_stats_shape():
    c = np.random.default_rng(6).standard_normal((5, 30, 4))
    s = code_stats(c)
    assert s.shape == (5, 12)
    assert np.allclose(s[:, :4], c.mean(1))
