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
