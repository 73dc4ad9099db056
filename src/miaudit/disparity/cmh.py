"""The stratified test: the composition test within the strata of a confounder (generalised CMH)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from miaudit.disparity.groups import _check_attributes, _groupings, _restrict
from miaudit.disparity.inputs import (
    _check_choice,
    _check_exposure,
    _check_fraction,
    _check_n_sim,
    _check_seed,
    _rng,
)
from miaudit.disparity.makeup import _METHODS, SMALL_EXPECTED, TestMethod, _mc_pvalue
from miaudit.disparity.top import Ties, _top_set
from miaudit.errors import InputError


def _cmh(counts: np.ndarray, top_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stratum-adjusted expected top-set counts E [K] and their null covariance V [K, K].

    Within stratum s, given its n_s patients and t_s of them in the top set, the subgroup
    counts in the top set are multivariate hypergeometric: E = t_s·q_s and
    Cov = t_s(n_s−t_s)/(n_s−1)·(diag q_s − q_s q_sᵀ), q_s the subgroup shares of stratum s.
    """
    n_s = counts.sum(axis=1).astype(float)
    t_s = top_counts.sum(axis=1).astype(float)
    q = counts / np.where(n_s > 0, n_s, 1.0)[:, None]
    expected = (t_s[:, None] * q).sum(axis=0)
    weight = np.where(n_s > 1, t_s * (n_s - t_s) / np.where(n_s > 1, n_s - 1.0, 1.0), 0.0)
    covariance = np.diag(weight @ q) - (q * weight[:, None]).T @ q
    return expected, covariance


def _quadratic(d: np.ndarray, precision: np.ndarray) -> np.ndarray:
    return np.einsum("...i,ij,...j->...", d, precision, d)


def stratified(
    attributes: pd.DataFrame,
    exposure: Any,
    attribute: str,
    within: str,
    *,
    top_fraction: float = 0.01,
    seed: int = 0,
    method: TestMethod = "auto",
    n_sim: int = 10_000,
    ties: Ties = "index",
    numeric_bins: int = 4,
) -> pd.DataFrame:
    """Make-up of ``attribute`` in the top set, controlling for the confounder ``within``.

    The top set is the same as in :func:`composition`. Within each stratum of ``within``, the
    expected top-set count of each subgroup is the stratum's top-set size times the subgroup's
    share of the stratum; summing over strata gives stratum-adjusted expected counts. A group
    that looks over-exposed only because it is concentrated in a highly exposed stratum then
    shows no excess. The test is the generalised Cochran–Mantel–Haenszel statistic
    Q = (O−E)ᵀ V⁻ (O−E) on rank(V) degrees of freedom (χ²), or, when ``method="exact"`` or
    any adjusted expected count is below 5 under ``"auto"``, its conditional null law
    simulated (seeded) stratum by stratum.

    Rows per subgroup: attribute, within, group, n_cohort, observed, expected (adjusted),
    residual ((O−E)/√E), z ((O−E)/√V_gg), expected_marginal and residual_marginal (without
    adjustment, for comparison); the test is repeated on every row (statistic, dof, p_value,
    method, n_strata) and kept in ``.attrs["test"]``.
    """
    attributes = _check_attributes(attributes)
    if str(attribute) == str(within):
        raise InputError(
            f"within: the confounder must differ from the attribute tested, both are "
            f"{attribute!r}; e.g. stratified(..., attribute='race', within='disease')."
        )
    fraction = _check_fraction(top_fraction)
    seed = _check_seed(seed)
    _check_choice("method", method, _METHODS, "'auto' picks an exact test for small counts.")
    _check_choice("ties", ties, ("index", "random"), "'index' is deterministic.")
    n_sim = _check_n_sim(n_sim)
    group_g, strata_g = _groupings(attributes, [attribute, within], numeric_bins)
    values, valid = _check_exposure(exposure, len(attributes))
    present = values[valid]
    n_patients = present.size
    _, in_top = _top_set(present, fraction, ties, seed)
    n_top = int(in_top.sum())

    codes, labels = _restrict(group_g, valid)
    strata, strata_labels = _restrict(strata_g, valid)
    k, s = len(labels), len(strata_labels)
    counts = np.zeros((s, k), dtype=np.int64)
    np.add.at(counts, (strata, codes), 1)
    top_counts = np.zeros((s, k), dtype=np.int64)
    np.add.at(top_counts, (strata[in_top], codes[in_top]), 1)

    observed = top_counts.sum(axis=0).astype(float)
    expected, covariance = _cmh(counts, top_counts)
    precision = np.linalg.pinv(covariance, hermitian=True)
    dof = int(np.linalg.matrix_rank(covariance, hermitian=True)) if k > 1 else 0
    d = observed - expected
    statistic = float(_quadratic(d, precision))
    if dof == 0:
        p_value, used = math.nan, "not tested: no variation within strata"
    elif method == "chi2" or (method == "auto" and expected[expected > 0].min() >= SMALL_EXPECTED):
        p_value, used = float(stats.chi2.sf(statistic, dof)), "cmh chi2"
    else:
        rng = _rng(seed, "stratified", group_g.attribute, strata_g.attribute)
        simulated = np.zeros((n_sim, k))
        for row, t in zip(counts, top_counts.sum(axis=1), strict=True):
            if 0 < t < row.sum():
                simulated += rng.multivariate_hypergeometric(row, int(t), size=n_sim)
            elif t > 0:
                simulated += row
        p_value = _mc_pvalue(statistic, _quadratic(simulated - expected, precision))
        used = f"cmh monte-carlo ({n_sim} draws)"

    n_cohort = counts.sum(axis=0)
    expected_marginal = n_top * n_cohort / n_patients
    variance = np.diag(covariance)
    with np.errstate(divide="ignore", invalid="ignore"):
        residual = np.where(expected > 0, d / np.sqrt(expected), np.nan)
        z = np.where(variance > 0, d / np.sqrt(variance), np.nan)
    table = pd.DataFrame(
        {
            "attribute": group_g.attribute,
            "within": strata_g.attribute,
            "group": labels,
            "n_cohort": n_cohort,
            "observed": observed.astype(np.int64),
            "expected": expected,
            "residual": residual,
            "z": z,
            "expected_marginal": expected_marginal,
            "residual_marginal": (observed - expected_marginal) / np.sqrt(expected_marginal),
            "statistic": statistic,
            "dof": dof,
            "p_value": p_value,
            "method": used,
            "n_strata": s,
        }
    )
    table.attrs["test"] = {
        "attribute": group_g.attribute,
        "within": strata_g.attribute,
        "statistic": statistic,
        "dof": dof,
        "p_value": p_value,
        "method": used,
        "n_strata": s,
        "n_top": n_top,
        "n_patients": n_patients,
    }
    return table
