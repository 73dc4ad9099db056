"""Bounds on membership inference under differential privacy, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from miaudit import privacy
from miaudit.errors import InputError


def _integrated_auc(epsilon: float, delta: float, n: int = 200_001) -> float:
    """1 − ∫ f(α) dα of the optimal trade-off curve, by the trapezoid rule on a fine grid."""
    alpha = np.linspace(0.0, 1.0, n)
    f = np.maximum.reduce([
        np.zeros_like(alpha),
        1 - delta - math.exp(epsilon) * alpha,
        math.exp(-epsilon) * (1 - delta - alpha),
    ])
    return 1.0 - float(np.trapezoid(f, alpha))


def test_max_auc_hand_values() -> None:
    assert privacy.max_auc(0.0, 0.0) == pytest.approx(0.5, abs=1e-15)
    # δ = 0: e^ε / (1 + e^ε); ε = ln 3 gives 3/4 exactly
    assert privacy.max_auc(math.log(3.0)) == pytest.approx(0.75, abs=1e-12)
    assert privacy.max_auc(1.0) == pytest.approx(math.e / (1 + math.e), abs=1e-12)
    # ε = 0, δ = 0.1: 1 − 0.9²/2
    assert privacy.max_auc(0.0, 0.1) == pytest.approx(1 - 0.81 / 2, abs=1e-12)
    assert privacy.max_auc(math.inf, 0.0) == 1.0
    assert privacy.max_auc(800.0, 1e-5) == pytest.approx(1.0)


@pytest.mark.parametrize(("epsilon", "delta"), [(0.0, 0.0), (0.5, 0.0), (1.0, 1e-3), (3.0, 0.05), (8.0, 1e-5)])
def test_max_auc_is_the_integral_of_the_tradeoff_curve(epsilon: float, delta: float) -> None:
    assert privacy.max_auc(epsilon, delta) == pytest.approx(_integrated_auc(epsilon, delta), abs=1e-8)


def test_max_auc_vectorised_and_monotone() -> None:
    eps = np.array([0.0, 0.5, 1.0, 3.0, 10.0])
    out = privacy.max_auc(eps, 1e-3)
    assert out.shape == eps.shape
    assert np.all(np.diff(out) > 0)
    assert out == pytest.approx([privacy.max_auc(e, 1e-3) for e in eps])


def test_tpr_bound_hand_values() -> None:
    # ε = ln 2, δ = 0, FPR 0.1: min(1, 2·0.1, 1 − ½·0.9) = 0.2
    assert privacy.tpr_bound(0.1, math.log(2.0)) == pytest.approx(0.2)
    # FPR 0.6: min(1, 1.2, 1 − ½·0.4) = 0.8
    assert privacy.tpr_bound(0.6, math.log(2.0)) == pytest.approx(0.8)
    assert privacy.tpr_bound(0.0, 1.0, 0.01) == pytest.approx(0.01)
    assert privacy.tpr_bound(1.0, 1.0, 0.01) == pytest.approx(1.0)
    assert privacy.tpr_bound(0.3, 0.0) == pytest.approx(0.3)  # ε = 0: no better than chance
    grid = np.linspace(0, 1, 11)
    assert privacy.tpr_bound(grid, 2.0, 1e-3) + privacy.tradeoff(grid, 2.0, 1e-3) == pytest.approx(np.ones(11))


def test_gdp_auc() -> None:
    assert privacy.max_auc_gdp(0.0) == pytest.approx(0.5)
    z = stats.norm.ppf(0.95)
    assert privacy.max_auc_gdp(math.sqrt(2.0) * z) == pytest.approx(0.95)
    # AUC of N(μ, 1) against N(0, 1) by Monte Carlo agrees
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 200_000), rng.normal(0.0, 1.0, 200_000)
    assert privacy.max_auc_gdp(1.0) == pytest.approx(float(np.mean(a > b)), abs=3e-3)


def test_gdp_mu_formula() -> None:
    q, sigma, steps = 0.01, 1.0, 10_000
    assert privacy.gdp_mu(q, sigma, steps) == pytest.approx(q * math.sqrt(steps * (math.e - 1)))
    with pytest.raises(InputError, match="sample_rate"):
        privacy.gdp_mu(0.0, 1.0, 10)


def test_bound_from_one_pair_is_max_auc() -> None:
    assert privacy.bound_from_accountant([2.0], [1e-3]) == pytest.approx(privacy.max_auc(2.0, 1e-3), abs=1e-12)
    assert privacy.bound_from_accountant([0.0], [0.0]) == pytest.approx(0.5)
    assert privacy.bound_from_accountant([math.inf], [0.0]) == pytest.approx(1.0)


def test_bound_from_profile_against_a_dense_grid() -> None:
    """The exact envelope integral against min-of-lines evaluated plainly on a fine grid."""
    eps = np.array([0.3, 1.0, 2.5, 6.0])
    deltas = np.array([0.2, 0.05, 1e-3, 1e-8])
    alpha = np.linspace(0, 1, 400_001)
    tpr = np.ones_like(alpha)
    for e, d in zip(eps, deltas, strict=True):
        tpr = np.minimum(tpr, d + math.exp(e) * alpha)
        tpr = np.minimum(tpr, 1 - math.exp(-e) * (1 - d - alpha))
    expected = float(np.trapezoid(tpr, alpha))
    got = privacy.bound_from_accountant(eps, deltas)
    assert got == pytest.approx(expected, abs=1e-7)
    assert got <= min(privacy.max_auc(e, d) for e, d in zip(eps, deltas, strict=True))
    assert privacy.envelope_tpr(alpha[::1000], eps, deltas) == pytest.approx(tpr[::1000])


def test_bound_from_gaussian_profile_recovers_gdp() -> None:
    """The (ε, δ(ε)) profile of μ-GDP has the Gaussian trade-off curve as its envelope."""
    mu = 1.0
    eps = np.linspace(0.0, 6.0, 400)
    deltas = stats.norm.cdf(-eps / mu + mu / 2) - np.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)
    got = privacy.bound_from_accountant(eps, deltas)
    exact = privacy.max_auc_gdp(mu)
    assert exact <= got <= exact + 2e-3


def test_errors_name_the_argument() -> None:
    with pytest.raises(InputError, match="epsilon"):
        privacy.max_auc(-1.0)
    with pytest.raises(InputError, match="delta"):
        privacy.max_auc(1.0, 1.0)
    with pytest.raises(InputError, match="fpr"):
        privacy.tpr_bound(1.5, 1.0)
    with pytest.raises(InputError, match="as many"):
        privacy.bound_from_accountant([1.0, 2.0], [1e-5])
    with pytest.raises(InputError, match="mu"):
        privacy.max_auc_gdp(-0.1)
