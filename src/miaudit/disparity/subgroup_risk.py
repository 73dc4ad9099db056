"""Subgroup risk: exposure distributions with intervals, and subgroup size against exposure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from miaudit.disparity.groups import _groupings, _restrict
from miaudit.disparity.inputs import (
    _check_choice,
    _check_exposure,
    _check_seed,
    _check_thresholds,
    _rng,
    _threshold_name,
)
from miaudit.errors import InputError

RARE_N = 30
"""A subgroup with fewer patients than this is *rare* in :func:`size_vs_exposure`."""
RARE_FRACTION = 0.01
"""A subgroup smaller than this share of the analysed cohort is *rare* as well."""
ShareInterval = Literal["wilson", "clopper-pearson"]


def bootstrap_medians(x_sorted: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of ``n_boot`` bootstrap resamples of a sorted sample, in O(n_boot) time.

    A resample takes indices ⌊n·U_i⌋ of the sorted sample with U_i iid uniform, so its k-th
    smallest value is x[⌊n·U_(k)⌋] with U_(k) ~ Beta(k, n−k+1); the next order statistic is
    U_(k) + (1−U_(k))·Beta(1, n−k). Drawing these (two for an even n, where the median is the
    mean of the middle pair) gives exactly the law of the resampled median without building
    n_boot × n resamples, which matters for subgroups of 10⁵ patients.
    """
    n = x_sorted.shape[0]
    k = (n + 1) // 2
    u = rng.beta(k, n - k + 1, size=n_boot)
    low = x_sorted[np.minimum((n * u).astype(np.int64), n - 1)]
    if n % 2:
        return low
    v = u + (1.0 - u) * rng.beta(1, n - k, size=n_boot)
    return 0.5 * (low + x_sorted[np.minimum((n * v).astype(np.int64), n - 1)])


def share_interval(
    k: np.ndarray, n: np.ndarray, confidence: float = 0.95, method: ShareInterval = "wilson"
) -> tuple[np.ndarray, np.ndarray]:
    """Binomial confidence interval for shares k/n (vectorised).

    Wilson's score interval is the default: close to nominal coverage and sensible at 0/n and
    n/n, where a bootstrap of a 7-patient subgroup would collapse to a point. Clopper–Pearson
    guarantees at least nominal coverage and is wider.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    a = 1.0 - confidence
    if method == "wilson":
        z = stats.norm.ppf(1.0 - a / 2.0)
        centre = (k + z**2 / 2.0) / (n + z**2)
        half = z / (n + z**2) * np.sqrt(k * (n - k) / n + z**2 / 4.0)
        return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
    if method == "clopper-pearson":
        with np.errstate(invalid="ignore"):
            lo = np.where(k > 0, stats.beta.ppf(a / 2.0, k, n - k + 1.0), 0.0)
            hi = np.where(k < n, stats.beta.ppf(1.0 - a / 2.0, k + 1.0, n - k), 1.0)
        return lo, hi
    raise InputError(f"share_interval: expected 'wilson' or 'clopper-pearson', got {method!r}.")


def group_risk(
    attributes: pd.DataFrame,
    exposure: Any,
    *,
    thresholds: Iterable[float] = (0.8, 0.9, 0.95, 0.99),
    columns: Iterable[Any] | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    share_interval_method: ShareInterval = "wilson",
    numeric_bins: int = 4,
) -> pd.DataFrame:
    """Exposure distribution of every subgroup, with confidence intervals.

    Columns: attribute, group, n, median, median_lo, median_hi, mean, mean_lo, mean_hi, and
    for each threshold t: share_ge_<t> (share of patients with exposure ≥ t) with _lo/_hi.
    Median intervals are bootstrap percentile intervals over ``n_boot`` resamples (their
    medians drawn directly from the order-statistic law, see :func:`bootstrap_medians`); mean
    intervals are Student-t intervals (NaN for a single patient), clipped to [0, 1]; share
    intervals are Wilson score intervals (or Clopper–Pearson, ``share_interval_method``).
    """
    ts = _check_thresholds(thresholds)
    seed = _check_seed(seed)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise InputError(f"n_boot: expected a positive integer, got {n_boot!r}; use 1000.")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence: expected a level in (0, 1), got {confidence!r}; use 0.95.")
    _check_choice(
        "share_interval_method",
        share_interval_method,
        ("wilson", "clopper-pearson"),
        "use 'wilson'.",
    )
    groupings = _groupings(attributes, columns, numeric_bins)
    values, valid = _check_exposure(exposure, len(attributes))
    present = values[valid]
    a = 1.0 - confidence
    frames: list[pd.DataFrame] = []
    for g in groupings:
        codes, labels = _restrict(g, valid)
        order = np.lexsort((present, codes))  # by subgroup, then exposure
        ends = np.cumsum(np.bincount(codes, minlength=len(labels)))
        medians = np.empty((len(labels), 3))
        for j, label in enumerate(labels):
            x = present[order[ends[j - 1] if j else 0 : ends[j]]]
            boot = bootstrap_medians(x, int(n_boot), _rng(seed, "group_risk", g.attribute, label))
            medians[j] = (np.median(x), *np.quantile(boot, [a / 2.0, 1.0 - a / 2.0]))
        n = np.bincount(codes, minlength=len(labels))
        mean = np.bincount(codes, weights=present, minlength=len(labels)) / n
        spread = np.bincount(codes, weights=(present - mean[codes]) ** 2, minlength=len(labels))
        with np.errstate(divide="ignore", invalid="ignore"):
            half = stats.t.ppf(1.0 - a / 2.0, n - 1) * np.sqrt(spread / (n - 1) / n)
        rows = {
            "n": n,
            "median": medians[:, 0],
            "median_lo": medians[:, 1],
            "median_hi": medians[:, 2],
            "mean": mean,
            "mean_lo": np.clip(mean - half, 0.0, 1.0),
            "mean_hi": np.clip(mean + half, 0.0, 1.0),
        }
        hits = np.stack(
            [np.bincount(codes, weights=present >= t, minlength=len(labels)) for t in ts], axis=1
        )
        frame = pd.DataFrame({"attribute": g.attribute, "group": labels, **rows})
        lo, hi = share_interval(hits, n[:, None], confidence, share_interval_method)
        for i, t in enumerate(ts):
            name = _threshold_name(t)
            frame[name] = hits[:, i] / n
            frame[f"{name}_lo"] = lo[:, i]
            frame[f"{name}_hi"] = hi[:, i]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def size_vs_exposure(
    attributes: pd.DataFrame,
    exposure: Any,
    *,
    columns: Iterable[Any] | None = None,
    threshold: float = 0.9,
    rare_n: int = RARE_N,
    rare_fraction: float = RARE_FRACTION,
    numeric_bins: int = 4,
) -> pd.DataFrame:
    """Subgroup size against exposure, rare and highly exposed subgroups first.

    Columns: attribute, group, n, share_cohort, median, share_ge_<threshold>, share_ratio
    (the subgroup's high-risk share over the cohort's; NaN when the cohort has none) and
    ``rare``: n < ``rare_n`` (30) or n < ``rare_fraction`` (1%) of the analysed patients —
    subgroups too small for an average to represent them. Sorted by rare, then high-risk share,
    then median (both descending), then size (ascending).
    """
    (t,) = _check_thresholds((threshold,))
    groupings = _groupings(attributes, columns, numeric_bins)
    values, valid = _check_exposure(exposure, len(attributes))
    present = values[valid]
    n_patients = present.size
    name = _threshold_name(t)
    cohort_share = float(np.mean(present >= t))
    frames = []
    for g in groupings:
        codes, labels = _restrict(g, valid)
        n = np.bincount(codes, minlength=len(labels))
        high = np.bincount(codes, weights=(present >= t).astype(float), minlength=len(labels))
        medians = [float(np.median(present[codes == j])) for j in range(len(labels))]
        share = high / n
        frames.append(
            pd.DataFrame(
                {
                    "attribute": g.attribute,
                    "group": labels,
                    "n": n,
                    "share_cohort": n / n_patients,
                    "median": medians,
                    name: share,
                    "share_ratio": share / cohort_share if cohort_share > 0 else np.nan,
                    "rare": (n < rare_n) | (n < rare_fraction * n_patients),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table = table.sort_values(
        ["rare", name, "median", "n"], ascending=[False, False, False, True], kind="stable"
    )
    return table.reset_index(drop=True)
