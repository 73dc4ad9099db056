"""Scores against a null: how often a patient nobody trained on would score as high.

A single released model gives each patient one score; whether that score is high is only
meaningful against the scores of patients the model never saw. These functions turn one
model's scores into the deployed audit's per-patient figures — the empirical false-positive
rate (a conformal p-value), the exposure on the full audit's AUC scale, and p-values from the
attack's own null — all pure functions of arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["null_rates", "patient_max", "patient_p_values", "rmia_p_values"]


def patient_max(values: np.ndarray, patient: np.ndarray, num_patients: int) -> np.ndarray:
    """[P] max over each patient's non-NaN records (NaN when a patient has none)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(num_patients, -np.inf)
    ok = ~np.isnan(values)
    np.maximum.at(out, patient[ok], values[ok])
    out[np.isneginf(out) & (np.bincount(patient[ok], minlength=num_patients) == 0)] = np.nan
    return out


def patient_p_values(p: np.ndarray, patient: np.ndarray, num_patients: int) -> np.ndarray:
    """[P] min(1, k · min p) over each patient's k records with a p-value (Bonferroni)."""
    p = np.asarray(p, dtype=np.float64)
    ok = ~np.isnan(p)
    low = np.full(num_patients, np.inf)
    np.minimum.at(low, patient[ok], p[ok])
    k = np.bincount(patient[ok], minlength=num_patients)
    out = np.full(num_patients, np.nan)
    has = k > 0
    out[has] = np.minimum(1.0, k[has] * low[has])
    return out


def null_rates(scores: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, exposure, n) [P] of every patient against the null patients' scores.

    For a score s against the null scores other than the patient's own (n of them):
    fpr = (1 + #{null ≥ s}) / (1 + n) and exposure = (#{null < s} + ½ #{null = s}) / n.
    NaN scores get NaN; NaN null scores are not part of the null. One sort and two searches.
    """
    s = np.asarray(scores, dtype=np.float64)
    null = np.asarray(null, dtype=bool)
    valid_null = null & ~np.isnan(s)
    ref = np.sort(s[valid_null])
    lo = np.searchsorted(ref, s, side="left")  # #null < s
    hi = np.searchsorted(ref, s, side="right")  # #null ≤ s
    n = np.full(s.size, ref.size, dtype=np.float64)
    ge = ref.size - lo
    eq = hi - lo
    own = valid_null  # the patient's own score is in ref: leave it out
    n = n - own
    ge = ge - own
    eq = eq - own
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = (1.0 + ge) / (1.0 + n)
        exposure = (lo + 0.5 * eq) / n
    bad = np.isnan(s) | (n <= 0)
    fpr[bad] = np.nan
    exposure[bad] = np.nan
    n[np.isnan(s)] = np.nan
    return fpr, exposure, n


def rmia_p_values(scores: np.ndarray, population: np.ndarray) -> np.ndarray:
    """p-values [N] of RMIA scores against the population records z.

    RMIA's score of a record x outside the population is the share of valid z whose ratio
    is at most x's, so n_z (1 − score) z's are above it; p = (1 + that) / (1 + n_z). A
    record whose ratio ties a z's counts that z below it (continuous probabilities rarely
    tie). Population records themselves get NaN.
    """
    s = np.asarray(scores, dtype=np.float64)
    population = np.asarray(population, dtype=bool)
    nz = int((population & ~np.isnan(s)).sum())
    below = np.round(s * nz)
    p = (1.0 + nz - below) / (1.0 + nz)
    p[population] = np.nan
    return np.clip(p, 0.0, 1.0)
