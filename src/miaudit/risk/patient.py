"""Patient exposure: a patient's attack success over their records, and who is most exposed.

``exposure`` [P] is the max (or mean) record AUC of each patient's records; from it follow
the survival function P(exposure ≥ x) with a confidence band, the high-risk counts and the
most exposed patients. NaN means undefined and is never counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from miaudit.arrays import as_patient, as_vector
from miaudit.errors import InputError
from miaudit.risk._checks import check_confidence, rate_key
from miaudit.risk.intervals import clopper_pearson
from miaudit.risk.record import RecordAUC

DEFAULT_RISK_THRESHOLDS: tuple[float, ...] = (0.8, 0.9, 0.95, 0.99)


def patient_exposure(
    record_auc: Any,
    patient: Any,
    *,
    how: Literal["max", "mean"] = "max",
    se: Any = None,
    num_patients: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A patient's exposure over their records: ``(exposure [P], se [P])``.

    ``record_auc`` is a per-record array [N] (or a :class:`RecordAUC`, whose SE is then used
    unless ``se`` is given); NaN records are ignored and a patient with no defined record gets
    NaN. ``how="max"``: the SE is that of the arg-max record (the lowest record index among
    ties). ``how="mean"``: SE = √(Σ se²)/n, which assumes the records' errors independent;
    records of one patient share their IN/OUT assignments, so this can understate it. Without
    any SE the returned SE is all NaN.
    """
    if isinstance(record_auc, RecordAUC):
        if se is None:
            se = record_auc.se
        record_auc = record_auc.auc
    auc = as_vector(record_auc, "record_auc")
    pat, n_patients = as_patient(patient, auc.size, num_patients)
    if se is None:
        rec_se = np.full(auc.size, np.nan)
    else:
        rec_se = np.asarray(se, dtype=np.float64)
        if rec_se.shape != auc.shape:
            raise InputError(
                f"se: shape {rec_se.shape} does not match record_auc shape {auc.shape}; pass "
                "one standard error per record."
            )
    if how not in ("max", "mean"):
        raise InputError(f"how: {how!r} is not a patient aggregate; use 'max' or 'mean'.")

    valid = ~np.isnan(auc)
    counts = np.bincount(pat[valid], minlength=n_patients)
    exposure = np.full(n_patients, np.nan)
    out_se = np.full(n_patients, np.nan)
    has = counts > 0
    if how == "mean":
        sums = np.bincount(pat[valid], weights=auc[valid], minlength=n_patients)
        sq = np.bincount(pat[valid], weights=rec_se[valid] ** 2, minlength=n_patients)
        exposure[has] = sums[has] / counts[has]
        out_se[has] = np.sqrt(sq[has]) / counts[has]
        return exposure, out_se
    idx = np.flatnonzero(valid)
    # patient ascending, AUC descending, record index ascending: first row per patient wins
    order = idx[np.lexsort((idx, -auc[idx], pat[idx]))]
    first = np.r_[True, pat[order][1:] != pat[order][:-1]] if order.size else order.astype(bool)
    best = order[first]
    exposure[pat[best]] = auc[best]
    out_se[pat[best]] = rec_se[best]
    return exposure, out_se


@dataclass(frozen=True, eq=False)
class Survival:
    """P(patient exposure ≥ x) on ``grid`` with a confidence band; ``n`` patients counted."""

    grid: np.ndarray
    fraction: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: int
    confidence: float = 0.95
    band: str = "clopper-pearson"


def patient_interval(
    record_auc: Any,
    low: Any,
    high: Any,
    patient: Any,
    *,
    how: Literal["max", "mean"] = "max",
    num_patients: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(low [P], high [P]): each patient's exposure interval from their records' intervals.

    ``how="max"``: the interval of the arg-max record (the record :func:`patient_exposure`
    picks); with several records it covers less often than a record's own interval, because
    the largest of k estimates is picked (``bench/bench_null.py --study coverage`` measures
    it). ``how="mean"``: the means of the ends, which hold whenever every record's interval
    does.
    """
    if how == "max":
        _, lo = patient_exposure(record_auc, patient, how="max", se=low, num_patients=num_patients)
        _, hi = patient_exposure(record_auc, patient, how="max", se=high, num_patients=num_patients)
        return lo, hi
    auc = as_vector(record_auc, "record_auc")
    pat, n_patients = as_patient(patient, auc.size, num_patients)
    ends = []
    for end in (low, high):
        e = np.asarray(end, dtype=np.float64)
        valid = ~np.isnan(auc) & ~np.isnan(e)
        counts = np.bincount(pat[valid], minlength=n_patients)
        sums = np.bincount(pat[valid], weights=e[valid], minlength=n_patients)
        with np.errstate(invalid="ignore", divide="ignore"):
            ends.append(np.where(counts > 0, sums / counts, np.nan))
    return ends[0], ends[1]


def survival(
    exposure: Any,
    grid: Any = None,
    confidence: float = 0.95,
    *,
    band: Literal["clopper-pearson", "dkw"] = "clopper-pearson",
) -> Survival:
    """Fraction of patients with exposure ≥ x for each x in ``grid`` (default 0.500..1.000).

    NaN patients are left out (``n`` counts the rest). ``band="clopper-pearson"`` (default)
    is pointwise: each x has its own exact binomial interval. ``band="dkw"`` is simultaneous
    over all x (Dvoretzky–Kiefer–Wolfowitz, Massart's constant): ±√(ln(2/α)/(2n)), clipped.
    """
    c = check_confidence(confidence)
    auc = as_vector(exposure, "exposure")
    if grid is None:
        g = np.round(np.linspace(0.5, 1.0, 101), 6)
    else:
        g = as_vector(grid, "grid")
        if np.isnan(g).any():
            raise InputError("grid: contains NaN; pass the exposure values to evaluate at.")
    if band not in ("clopper-pearson", "dkw"):
        raise InputError(f"band: {band!r} is not a band; use 'clopper-pearson' or 'dkw'.")
    values = np.sort(auc[~np.isnan(auc)])
    n = values.size
    k = n - np.searchsorted(values, g, side="left")
    if n == 0:
        nan = np.full(g.shape, np.nan)
        return Survival(g, nan, nan.copy(), nan.copy(), 0, c, band)
    fraction = k / n
    if band == "dkw":
        eps = math.sqrt(math.log(2.0 / (1.0 - c)) / (2.0 * n))
        lower, upper = np.clip(fraction - eps, 0, 1), np.clip(fraction + eps, 0, 1)
    else:
        lower, upper = clopper_pearson(k, np.full(k.shape, n), c)
    return Survival(g, fraction, np.asarray(lower), np.asarray(upper), int(n), c, band)


def high_risk_counts(
    exposure: Any, thresholds: Iterable[float] = DEFAULT_RISK_THRESHOLDS
) -> dict[str, int]:
    """Number of patients with exposure ≥ each threshold (NaN never counts); keys like "0.9"."""
    auc = as_vector(exposure, "exposure")
    defined = auc[~np.isnan(auc)]
    return {rate_key(t): int(np.count_nonzero(defined >= float(t))) for t in thresholds}


def top_exposed(exposure: Any, fraction: float = 0.01) -> np.ndarray:
    """Indices of the ⌈fraction·P⌉ most exposed patients, most exposed first.

    P is the length of ``exposure``; NaN patients are never included, so fewer are returned
    when fewer are defined. Ties are broken by the lower patient index.
    """
    auc = as_vector(exposure, "exposure")
    f = float(fraction)
    if not 0.0 <= f <= 1.0:
        raise InputError(f"fraction: {fraction!r} is not a fraction of patients in [0, 1].")
    k = math.ceil(round(f * auc.size, 9))
    idx = np.flatnonzero(~np.isnan(auc))
    order = idx[np.lexsort((idx, -auc[idx]))]
    return order[:k].astype(np.int64)
