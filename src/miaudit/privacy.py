"""How much membership inference a differential-privacy guarantee still permits.

A membership test of one patient against a model is a hypothesis test between the model
trained with the patient and without. If training is (ε, δ)-DP at the patient level, no
test can have a better trade-off between false positives α and false negatives β than

    f(α) = max(0, 1 − δ − e^ε α, e^{−ε} (1 − δ − α))

(Kairouz, Oh & Viswanath 2015; Dong, Roth & Su 2019). The largest attack AUC any test can
reach is therefore 1 − ∫₀¹ f(α) dα, which integrates in closed form to

    max AUC = 1 − (1 − δ)² / (1 + e^ε)        (= e^ε / (1 + e^ε) at δ = 0).

A DP-SGD run is in fact (ε(δ), δ)-DP for *every* δ at once, with ε(δ) given by its
accountant; the trade-off curve of the run is then at least the pointwise maximum of the
curves above over the whole (ε(δ), δ) profile, which is a strictly tighter bound than any
single (ε, δ) pair. :func:`bound_from_accountant` integrates that envelope exactly. This is
the bound the audit draws next to patient exposure ("max AUC of the mechanism"); the
single-pair bound :func:`max_auc` is also reported, as the promise a user who only knows
"ε = 3" can check. μ-GDP (:func:`max_auc_gdp`) is the central-limit description of many
subsampled Gaussian steps; it is an approximation for DP-SGD, not a bound, so the audit
shows it only as information.

Everything here is numpy/scipy on numbers: no torch, no accountant library.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from miaudit.errors import InputError

__all__ = [
    "DELTA_GRID",
    "bound_from_accountant",
    "envelope_tpr",
    "gdp_mu",
    "max_auc",
    "max_auc_gdp",
    "tpr_bound",
    "tradeoff",
]

DELTA_GRID: np.ndarray = np.geomspace(1e-12, 0.5, 28)
"""δ values at which an accountant's ε(δ) profile is sampled for :func:`bound_from_accountant`."""


def _epsilon(epsilon: Any) -> np.ndarray:
    try:
        eps = np.asarray(epsilon, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(
            f"epsilon: {epsilon!r} is not a number; pass ε ≥ 0 (float('inf') for no privacy)"
        ) from None
    if np.isnan(eps).any() or (eps < 0).any():
        raise InputError(f"epsilon: {epsilon!r} must be ≥ 0 (use float('inf') for no privacy)")
    return eps


def _delta(delta: Any) -> np.ndarray:
    try:
        d = np.asarray(delta, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"delta: {delta!r} is not a number; pass δ in [0, 1)") from None
    if np.isnan(d).any() or (d < 0).any() or (d >= 1).any():
        raise InputError(f"delta: {delta!r} must lie in [0, 1), e.g. 1/patients")
    return d


def _scalar(x: np.ndarray) -> Any:
    return float(x) if x.ndim == 0 else x


def tradeoff(fpr: Any, epsilon: Any, delta: Any = 0.0) -> Any:
    """Smallest false-negative rate any test at false-positive rate ``fpr`` can have under (ε, δ)-DP."""
    alpha = np.asarray(fpr, dtype=np.float64)
    if np.isnan(alpha).any() or (alpha < 0).any() or (alpha > 1).any():
        raise InputError(f"fpr: {fpr!r} must lie in [0, 1]")
    eps, d = _epsilon(epsilon), _delta(delta)
    with np.errstate(over="ignore", invalid="ignore"):
        grow = np.exp(eps)
        first = np.where(np.isinf(grow), np.where(alpha > 0, -np.inf, 1.0 - d), 1.0 - d - grow * alpha)
        second = np.exp(-eps) * (1.0 - d - alpha)
    return _scalar(np.maximum(0.0, np.maximum(first, second)))


def tpr_bound(fpr: Any, epsilon: Any, delta: Any = 0.0) -> Any:
    """Largest true-positive rate any membership test at ``fpr`` can reach under (ε, δ)-DP.

    ``min(1, δ + e^ε·fpr, 1 − e^{−ε}(1 − δ − fpr))``, vectorised over all arguments.
    """
    return _scalar(1.0 - np.asarray(tradeoff(fpr, epsilon, delta)))


def max_auc(epsilon: Any, delta: Any = 0.0) -> Any:
    """Largest AUC of any membership test against an (ε, δ)-DP mechanism: 1 − (1−δ)²/(1+e^ε).

    The closed form of 1 − ∫ f for the optimal trade-off curve f (see the module text);
    ε = 0 and δ = 0 give 0.5, ε = ∞ gives 1. Vectorised over ε and δ.
    """
    eps, d = _epsilon(epsilon), _delta(delta)
    # (1-δ)²/(1+e^ε) = (1-δ)² · sigmoid(-ε), stable for large ε
    return _scalar(1.0 - (1.0 - d) ** 2 * special.expit(-eps))


def max_auc_gdp(mu: Any) -> Any:
    """Largest AUC of any test against a μ-GDP mechanism: Φ(μ/√2) (two unit Gaussians μ apart)."""
    m = np.asarray(mu, dtype=np.float64)
    if np.isnan(m).any() or (m < 0).any():
        raise InputError(f"mu: {mu!r} must be ≥ 0")
    return _scalar(special.ndtr(m / math.sqrt(2.0)))


def gdp_mu(sample_rate: float, noise_multiplier: float, steps: int) -> float:
    """μ of the central-limit GDP approximation of Poisson-subsampled Gaussian steps.

    μ = q·√(T·(e^{1/σ²} − 1)) (Bu, Dong, Long & Su 2020). An approximation that is accurate
    for small q and many steps and can understate the privacy loss otherwise, so it is
    reported as information, never as the bound.
    """
    if not 0 < sample_rate <= 1 or noise_multiplier <= 0 or steps < 1:
        raise InputError(
            f"gdp_mu: needs 0 < sample_rate ≤ 1, noise_multiplier > 0 and steps ≥ 1, got "
            f"{sample_rate}, {noise_multiplier}, {steps}"
        )
    with np.errstate(over="ignore"):
        return float(sample_rate * math.sqrt(steps * math.expm1(min(1.0 / noise_multiplier**2, 700))))


def _profile(epsilons: Any, deltas: Any) -> tuple[np.ndarray, np.ndarray]:
    eps = np.atleast_1d(_epsilon(epsilons)).ravel()
    d = np.atleast_1d(_delta(deltas)).ravel()
    if eps.shape != d.shape or eps.size == 0:
        raise InputError(
            f"bound_from_accountant: expected as many ε as δ values (one (ε, δ) pair each), got "
            f"{eps.size} and {d.size}"
        )
    return eps, d


def _lines(eps: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slopes and intercepts of the lines whose minimum is the TPR bound of the profile."""
    finite = np.isfinite(eps)
    e, dd = eps[finite], d[finite]
    slopes = np.r_[np.exp(e), np.exp(-e), 0.0]
    intercepts = np.r_[dd, 1.0 - np.exp(-e) * (1.0 - dd), 1.0]
    return slopes, intercepts


def envelope_tpr(fpr: Any, epsilons: Any, deltas: Any) -> Any:
    """TPR bound at ``fpr`` of a mechanism that is (ε_i, δ_i)-DP for every pair of a profile."""
    eps, d = _profile(epsilons, deltas)
    slopes, intercepts = _lines(eps, d)
    alpha = np.asarray(fpr, dtype=np.float64)
    values = np.min(slopes[:, None] * alpha.reshape(-1)[None, :] + intercepts[:, None], axis=0)
    return _scalar(np.clip(values, 0.0, 1.0).reshape(alpha.shape))


def bound_from_accountant(epsilons: Any, deltas: Any) -> float:
    """Largest AUC of any test against a mechanism that is (ε_i, δ_i)-DP for all i.

    Pass an accountant's profile ε(δ) (e.g. at :data:`DELTA_GRID`). The TPR bound is the
    minimum of the lines δ_i + e^{ε_i}α, 1 − e^{−ε_i}(1 − δ_i − α) and 1: a concave,
    piecewise-linear curve, so the area is exact once its breakpoints are known. They are
    found by walking the envelope from α = 0: the next active line is the one of smaller
    slope that crosses the current one first. Never larger than :func:`max_auc` of any
    one pair.
    """
    eps, d = _profile(epsilons, deltas)
    slopes, intercepts = _lines(eps, d)
    start = np.lexsort((slopes, intercepts))[0]  # lowest at α = 0, then the flattest
    points, x, current = [0.0], 0.0, int(start)
    for _ in range(slopes.size):
        flatter = np.flatnonzero(slopes < slopes[current])
        if flatter.size == 0:
            break
        cross = (intercepts[flatter] - intercepts[current]) / (slopes[current] - slopes[flatter])
        ahead = cross > x
        if not ahead.any():
            break
        cross, flatter = cross[ahead], flatter[ahead]
        first = np.lexsort((slopes[flatter], cross))[0]
        if cross[first] >= 1.0:
            break
        x, current = float(cross[first]), int(flatter[first])
        points.append(x)
    grid = np.array([*points, 1.0])
    values = np.min(slopes[:, None] * grid[None, :] + intercepts[:, None], axis=0)
    return float(np.trapezoid(values, grid))
