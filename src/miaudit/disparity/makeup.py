"""The composition test: the make-up of the most exposed against the cohort, per attribute.

Pearson residuals per subgroup, a χ² test per attribute (an exact or Monte-Carlo p-value when
expected counts are small) and a multiple-testing correction across attributes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from miaudit.disparity.groups import _groupings, _restrict
from miaudit.disparity.inputs import (
    _check_choice,
    _check_exposure,
    _check_fraction,
    _check_n_sim,
    _check_seed,
    _rng,
)
from miaudit.disparity.top import Ties, _top_set
from miaudit.errors import InputError
from miaudit.jsonable import jsonable

SMALL_EXPECTED = 5.0
"""Below this expected count the χ² approximation is not trusted (Cochran's rule)."""
Correction = Literal["holm", "bh", "bonferroni", "none"]
TestMethod = Literal["auto", "chi2", "exact"]
_CORRECTIONS = ("holm", "bh", "bonferroni", "none")
_METHODS = ("auto", "chi2", "exact")


def _pearson_statistic(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Σ (O−E)²/E along the last axis; groups with E = 0 (and so O = 0) add nothing."""
    safe = np.where(expected > 0, expected, 1.0)
    return np.sum(np.where(expected > 0, (observed - expected) ** 2 / safe, 0.0), axis=-1)


def _mc_pvalue(observed_stat: float, simulated: np.ndarray) -> float:
    """(1 + #{T* ≥ T}) / (1 + n): a valid p-value for any number of draws."""
    tol = 1e-9 * max(1.0, abs(observed_stat))
    return float((1 + np.count_nonzero(simulated >= observed_stat - tol)) / (simulated.size + 1))


def _composition_test(
    n_cohort: np.ndarray,
    observed: np.ndarray,
    *,
    method: TestMethod,
    n_sim: int,
    rng: np.random.Generator,
) -> tuple[float, int, float, str]:
    """Statistic, dof, p-value and method name for the top set's make-up.

    Under "exposure does not depend on the subgroup" the top set is a random subset of the
    cohort, so its counts are multivariate hypergeometric. The asymptotic p-value refers
    X²·P/(P−n) — the Pearson χ² of the 2×K table top/rest × subgroup — to χ²(K−1); the factor
    is the finite-population correction (≈1 for the top 1%). The exact path enumerates the
    hypergeometric law for two groups and simulates it (seeded) for more.
    """
    n_patients = int(n_cohort.sum())
    n_top = int(observed.sum())
    k = n_cohort.size
    expected = n_top * n_cohort / n_patients
    statistic = float(_pearson_statistic(observed, expected))
    if k < 2:
        return statistic, 0, math.nan, "not tested: one subgroup"
    dof = k - 1
    if n_top >= n_patients:
        return statistic, dof, math.nan, "not tested: top set is the whole cohort"
    small = bool(expected.min() < SMALL_EXPECTED)
    if method == "chi2" or (method == "auto" and not small):
        scaled = statistic * n_patients / (n_patients - n_top)
        return statistic, dof, float(stats.chi2.sf(scaled, dof)), "chi2"
    if k == 2:
        lo = max(0, n_top - int(n_cohort[1]))
        hi = min(n_top, int(n_cohort[0]))
        x = np.arange(lo, hi + 1)
        table = np.stack([x, n_top - x], axis=1).astype(float)
        stat_x = _pearson_statistic(table, expected[None, :])
        pmf = stats.hypergeom.pmf(x, n_patients, int(n_cohort[0]), n_top)
        tol = 1e-9 * max(1.0, statistic)
        p_value = float(min(1.0, pmf[stat_x >= statistic - tol].sum()))
        return statistic, dof, p_value, "exact hypergeometric"
    draws = rng.multivariate_hypergeometric(n_cohort.astype(np.int64), n_top, size=n_sim)
    simulated = _pearson_statistic(draws.astype(float), expected[None, :])
    return statistic, dof, _mc_pvalue(statistic, simulated), f"monte-carlo ({n_sim} draws)"


def adjust_pvalues(p_values: Sequence[float], correction: Correction = "holm") -> np.ndarray:
    """Adjusted p-values across attributes; NaN entries (untested) stay NaN and don't count.

    ``holm`` controls the family-wise error rate (step-down Bonferroni); ``bh`` the false
    discovery rate (Benjamini–Hochberg); ``bonferroni`` and ``none`` as named.
    """
    if correction not in _CORRECTIONS:
        raise InputError(
            f"correction: expected one of {', '.join(_CORRECTIONS)}, got {correction!r}; "
            f"'holm' controls the chance of any false alarm across attributes."
        )
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = tested.size
    if m == 0:
        return out
    pt = p[tested]
    if correction == "none":
        adjusted = pt
    elif correction == "bonferroni":
        adjusted = np.minimum(1.0, m * pt)
    elif correction == "holm":
        order = np.argsort(pt, kind="stable")
        steps = np.minimum(1.0, (m - np.arange(m)) * pt[order])
        adjusted = np.empty(m)
        adjusted[order] = np.maximum.accumulate(steps)
    else:
        order = np.argsort(pt, kind="stable")
        steps = np.minimum(1.0, m / np.arange(1, m + 1) * pt[order])
        adjusted = np.empty(m)
        adjusted[order] = np.minimum.accumulate(steps[::-1])[::-1]
    out[tested] = adjusted
    return out


@dataclass(frozen=True, eq=False)
class Composition:
    """The make-up of the most exposed patients against the cohort.

    ``groups``: attribute, group, n_cohort, share_cohort, n_top, share_top, expected,
    residual ((O−E)/√E), ratio (share_top / share_cohort). ``tests``: attribute, statistic
    (Σ residual²), dof, p_value, p_adjusted, method, significant (p_adjusted < alpha).
    ``top`` holds the patient indices of the top set, most exposed first. ``n_tied_outside``
    counts patients whose exposure equals ``cutoff`` but fell outside the top set: when it is
    non-zero, membership among them was decided by the ``ties`` rule.
    """

    groups: pd.DataFrame
    tests: pd.DataFrame
    top_fraction: float
    n_top: int
    n_patients: int
    n_excluded: int
    cutoff: float
    n_tied_outside: int
    correction: str
    alpha: float
    top: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (NaN as null) for the report."""
        return jsonable(
            {
                "top_fraction": self.top_fraction,
                "n_top": self.n_top,
                "n_patients": self.n_patients,
                "n_excluded": self.n_excluded,
                "cutoff": self.cutoff,
                "n_tied_outside": self.n_tied_outside,
                "correction": self.correction,
                "alpha": self.alpha,
                "groups": self.groups,
                "tests": self.tests,
            },
            nonfinite="null",
        )


def composition(
    attributes: pd.DataFrame,
    exposure: Any,
    *,
    top_fraction: float = 0.01,
    columns: Iterable[Any] | None = None,
    correction: Correction = "holm",
    seed: int = 0,
    alpha: float = 0.05,
    method: TestMethod = "auto",
    n_sim: int = 10_000,
    ties: Ties = "index",
    numeric_bins: int = 4,
) -> Composition:
    """Compare the subgroup make-up of the ⌈top_fraction·P⌉ most exposed patients to the cohort.

    P counts patients with a defined exposure. Ties at the cut-off are broken by patient index
    (``ties="index"``, deterministic) or by a seeded random order (``ties="random"``, which
    avoids favouring low indices when the data is sorted by a subgroup). Per attribute the
    test is χ² (``method="chi2"``), or ``"exact"``: the hypergeometric law of the top set
    enumerated for two subgroups, simulated with ``n_sim`` seeded draws for more; ``"auto"``
    takes the exact path when any expected count is below 5. p-values are then adjusted
    across attributes (``correction``).
    """
    fraction = _check_fraction(top_fraction)
    seed = _check_seed(seed)
    _check_choice("method", method, _METHODS, "'auto' picks an exact test for small counts.")
    _check_choice("ties", ties, ("index", "random"), "'index' is deterministic.")
    _check_choice("correction", correction, _CORRECTIONS, "'holm' is the default.")
    n_sim = _check_n_sim(n_sim)
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha: expected a level in (0, 1), got {alpha!r}; use 0.05.")
    groupings = _groupings(attributes, columns, numeric_bins)
    values, valid = _check_exposure(exposure, len(attributes))
    patients = np.flatnonzero(valid)
    present = values[valid]
    n_patients = present.size
    order, in_top = _top_set(present, fraction, ties, seed)
    n_top = int(in_top.sum())
    cutoff = float(present[order[n_top - 1]])
    n_tied_outside = int(np.count_nonzero((present == cutoff) & ~in_top))

    group_rows: list[pd.DataFrame] = []
    test_rows: list[dict[str, Any]] = []
    for g in groupings:
        codes, labels = _restrict(g, valid)
        n_cohort = np.bincount(codes, minlength=len(labels))
        observed = np.bincount(codes[in_top], minlength=len(labels))
        expected = n_top * n_cohort / n_patients
        share_cohort = n_cohort / n_patients
        group_rows.append(
            pd.DataFrame(
                {
                    "attribute": g.attribute,
                    "group": labels,
                    "n_cohort": n_cohort,
                    "share_cohort": share_cohort,
                    "n_top": observed,
                    "share_top": observed / n_top,
                    "expected": expected,
                    "residual": (observed - expected) / np.sqrt(expected),
                    "ratio": (observed / n_top) / share_cohort,
                }
            )
        )
        statistic, dof, p_value, used = _composition_test(
            n_cohort,
            observed,
            method=method,
            n_sim=n_sim,
            rng=_rng(seed, "composition", g.attribute),
        )
        test_rows.append(
            {
                "attribute": g.attribute,
                "statistic": statistic,
                "dof": dof,
                "p_value": p_value,
                "method": used,
            }
        )
    tests = pd.DataFrame(test_rows)
    tests.insert(4, "p_adjusted", adjust_pvalues(tests["p_value"].to_numpy(), correction))
    tests["significant"] = (tests["p_adjusted"] < alpha).to_numpy()
    return Composition(
        groups=pd.concat(group_rows, ignore_index=True),
        tests=tests,
        top_fraction=fraction,
        n_top=n_top,
        n_patients=n_patients,
        n_excluded=int(values.size - n_patients),
        cutoff=cutoff,
        n_tied_outside=n_tied_outside,
        correction=correction,
        alpha=float(alpha),
        top=patients[order[:n_top]],
    )
