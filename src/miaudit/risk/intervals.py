"""Confidence intervals for proportions (survival bands, ε bounds)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from miaudit.errors import InputError
from miaudit.risk._checks import check_confidence


def clopper_pearson(k: Any, n: Any, confidence: float = 0.95) -> tuple[Any, Any]:
    """Two-sided exact (Clopper–Pearson) interval for a binomial proportion, vectorised.

    Each end holds with probability ≥ 1 − (1 − confidence)/2. k = 0 gives lower 0, k = n gives
    upper 1, and n = 0 gives NaN for both.
    """
    c = check_confidence(confidence)
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    k_arr, n_arr = np.broadcast_arrays(k_arr, n_arr)
    if (
        not np.all(np.isfinite(k_arr) & np.isfinite(n_arr))
        or np.any(k_arr != np.round(k_arr))
        or np.any(n_arr != np.round(n_arr))
        or np.any(k_arr < 0)
        or np.any(k_arr > n_arr)
    ):
        raise InputError(
            "clopper_pearson: k and n must be whole numbers with 0 ≤ k ≤ n (successes out "
            "of trials)."
        )
    alpha = 1.0 - c
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k_arr > 0, stats.beta.ppf(alpha / 2, k_arr, n_arr - k_arr + 1), 0.0)
        hi = np.where(k_arr < n_arr, stats.beta.ppf(1 - alpha / 2, k_arr + 1, n_arr - k_arr), 1.0)
    empty = n_arr == 0
    lo = np.where(empty, np.nan, lo)
    hi = np.where(empty, np.nan, hi)
    return lo[()], hi[()]


def hanley_mcneil_variance(auc: Any, n_in: Any, n_out: Any) -> np.ndarray:
    """Hanley & McNeil (1982) variance of an AUC of n_in positives and n_out negatives."""
    a = np.asarray(auc, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        q1 = a / (2.0 - a)
        q2 = 2.0 * a * a / (1.0 + a)
        var = (a * (1 - a) + (n_in - 1) * (q1 - a * a) + (n_out - 1) * (q2 - a * a)) / (
            n_in * n_out
        )
    return np.maximum(var, 0.0)


def auc_score_interval(
    auc: Any,
    n_in: Any,
    n_out: Any,
    confidence: float = 0.95,
    *,
    inflation: Any = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Score interval of an AUC: every θ with (Â − θ)² ≤ z²·κ·V_HM(θ) (Newcombe 2006, method 5).

    The Hanley–McNeil variance is evaluated at the candidate θ, not at Â, so an AUC of 1 from
    few targets still gets a lower end well below 1 (the Wald interval Â ± z·SE collapses to
    a point there). ``inflation`` κ ≥ 1 scales the variance where the estimator's pairs are
    dependent (measured from the permutation null, see :func:`miaudit.risk.chance.inflation`).
    Both ends by 60 steps of bisection, vectorised; NaN where the AUC is undefined.
    """
    z = float(stats.norm.ppf(0.5 + check_confidence(confidence) / 2.0))
    a = np.asarray(auc, dtype=np.float64)
    i = np.asarray(n_in, dtype=np.float64)
    o = np.asarray(n_out, dtype=np.float64)
    k = np.asarray(inflation, dtype=np.float64)
    a, i, o, k = np.broadcast_arrays(a, i, o, k)
    ok = ~np.isnan(a) & (i > 0) & (o > 0)
    safe = np.where(ok, a, 0.5)

    def outside(theta: np.ndarray) -> np.ndarray:
        scale = 1.0 + (k - 1.0) * 4.0 * theta * (1.0 - theta)
        return (safe - theta) ** 2 > z * z * scale * hanley_mcneil_variance(theta, i, o)

    ends = []
    for lo0, hi0, below in ((np.zeros_like(safe), safe, True), (safe, np.ones_like(safe), False)):
        lo, hi = lo0.copy(), hi0.copy()  # the end lies between: outside at one, inside at other
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            out = outside(mid)
            if below:
                lo, hi = np.where(out, mid, lo), np.where(out, hi, mid)
            else:
                lo, hi = np.where(out, lo, mid), np.where(out, mid, hi)
        ends.append(hi if below else lo)
    low = np.where(ok, ends[0], np.nan)
    high = np.where(ok, ends[1], np.nan)
    # where even the boundary is inside (θ = 0 or 1 not rejected), the end is that boundary
    low = np.where(ok & ~outside(np.zeros_like(safe)), 0.0, low)
    high = np.where(ok & ~outside(np.ones_like(safe)), 1.0, high)
    return low, high


#: Coverage of :func:`auc_score_interval` (with the null's inflation) measured by simulation:
#: targets → (lowest, highest) share of 95 % intervals containing the true AUC over records of
#: true AUC 0.5, 0.7, 0.8, 0.9, 0.95, 0.99 (``python bench/bench_null.py --study coverage
#: --models 8 16 32 64 200 --seeds 3``, bench/RESULTS.md).
MEASURED_COVERAGE: dict[int, tuple[float, float]] = {
    8: (0.839, 1.0),
    16: (0.896, 0.976),
    32: (0.943, 0.980),
    64: (0.946, 0.989),
    200: (0.948, 0.999),
}


def measured_coverage(targets: int) -> dict[str, float] | None:
    """The measured coverage of record intervals at the largest measured count ≤ ``targets``."""
    counts = [m for m in sorted(MEASURED_COVERAGE) if m <= targets]
    if not counts:
        return None
    m = counts[-1]
    worst, best = MEASURED_COVERAGE[m]
    return {"targets": m, "worst": worst, "best": best}
