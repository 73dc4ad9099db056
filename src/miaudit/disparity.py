"""Subgroup disparity: who makes up the most exposed patients, and how exposed each subgroup is.

An aggregate attack success near a coin flip can hide subgroups whose patients are identified
almost surely. This module turns patient exposure (attack AUC per patient) and patient
subgroup attributes into the statistics a report needs to show that:

1. :func:`composition` — the make-up of the most exposed ``top_fraction`` of patients against
   the whole cohort, per attribute: Pearson residuals per subgroup, a χ² test per attribute
   (an exact or Monte-Carlo p-value when expected counts are small) and a multiple-testing
   correction across attributes.
2. :func:`group_risk` — per-subgroup exposure distributions: median (bootstrap interval) and
   mean (t interval), share of high-risk patients at each threshold (binomial interval).
3. :func:`size_vs_exposure` — subgroup size against exposure, so that rare subgroups (a disease
   category with 7 patients) stand out instead of vanishing into an average.
4. :func:`stratified` — the composition test for one attribute within the strata of a
   confounder (race within disease category): a generalised Cochran–Mantel–Haenszel test.

Conventions shared by all functions:

- ``attributes`` is a DataFrame with one row per patient (index 0..P-1) and ``exposure`` a
  float array [P] in [0, 1]; NaN exposure means "undefined" and those patients are excluded
  from every statistic (the count is reported).
- Subgroups are strings, made by :func:`patient_groups`: text and categorical columns keep
  their values; numeric columns with more distinct values than ``numeric_bins`` are cut into
  quantile groups (quartiles by default) labelled by the smallest and largest value observed
  in the group, e.g. ``"52–64"``; missing values form their own subgroup ``"missing"``.
  Groups are computed on all P patients, so labels do not depend on which patients have a
  defined exposure.
- Random draws (bootstrap, Monte-Carlo p-values, random tie-breaking) use generators keyed
  by ``seed`` and by the attribute (and subgroup) name, so a result for one attribute does
  not change when other columns are added to the analysis.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from miaudit.errors import InputError

MISSING = "missing"
"""Label of the subgroup formed by patients with a missing attribute value."""

SMALL_EXPECTED = 5.0
"""Below this expected count the χ² approximation is not trusted (Cochran's rule)."""

RARE_N = 30
"""A subgroup with fewer patients than this is *rare* in :func:`size_vs_exposure`."""

RARE_FRACTION = 0.01
"""A subgroup smaller than this share of the analysed cohort is *rare* as well."""

Correction = Literal["holm", "bh", "bonferroni", "none"]
TestMethod = Literal["auto", "chi2", "exact"]
Ties = Literal["index", "random"]
ShareInterval = Literal["wilson", "clopper-pearson"]

_CORRECTIONS = ("holm", "bh", "bonferroni", "none")
_METHODS = ("auto", "chi2", "exact")


# --------------------------------------------------------------------------- groups


@dataclass(frozen=True, eq=False)
class _Grouping:
    """One attribute as integer group codes [P] (into ``labels``), in display order."""

    attribute: str
    codes: np.ndarray
    labels: tuple[str, ...]


def _check_attributes(attributes: Any) -> pd.DataFrame:
    if not isinstance(attributes, pd.DataFrame):
        raise InputError(
            f"attributes: expected a pandas DataFrame with one row per patient, got "
            f"{type(attributes).__name__}; build one with pd.DataFrame({{'race': [...], ...}})."
        )
    index = attributes.index
    if not (
        isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
    ) and not np.array_equal(np.asarray(index), np.arange(len(attributes))):
        raise InputError(
            "attributes: the index must be the patient index 0..P-1 in order, so that row p "
            "lines up with exposure[p]; call attributes.reset_index(drop=True) after putting "
            "the rows in patient order."
        )
    if len(attributes) == 0:
        raise InputError(
            "attributes: the DataFrame has no rows; pass one row per patient of the audited cohort."
        )
    return attributes


def _select_columns(attributes: pd.DataFrame, columns: Iterable[Any] | None) -> list[Any]:
    if columns is None:
        selected = list(attributes.columns)
    elif isinstance(columns, str):
        selected = [columns]
    else:
        selected = list(columns)
    if not selected:
        raise InputError(
            "attributes: no subgroup columns to analyse; pass a DataFrame with columns such as "
            "'race' or 'insurance', or name them with columns=[...]."
        )
    unknown = [c for c in selected if c not in attributes.columns]
    if unknown:
        raise InputError(
            f"attributes: column(s) {', '.join(map(repr, unknown))} not found; available "
            f"columns are {', '.join(map(repr, attributes.columns))}."
        )
    if len(set(map(str, selected))) != len(selected):
        raise InputError(
            f"columns: {selected!r} names a column twice; list each subgroup attribute once."
        )
    return selected


def _format_number(x: float, digits: int) -> str:
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.{digits}g}"


def _numeric_groups(x: np.ndarray, missing: np.ndarray, bins: int) -> tuple[np.ndarray, list[str]]:
    """Quantile groups of a numeric column; codes -1 for missing values."""
    codes = np.full(x.shape[0], -1, dtype=np.int64)
    present = x[~missing]
    if present.size == 0:
        return codes, []
    distinct = np.unique(present)
    if distinct.size <= bins:
        codes[~missing] = np.searchsorted(distinct, present)
        lows = highs = distinct
    else:
        # Right-closed quantile bins, as pandas.qcut: (e_i, e_{i+1}], the first one closed.
        inner = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1))[1:-1])
        raw = np.searchsorted(inner, present, side="left")
        used, dense = np.unique(raw, return_inverse=True)
        codes[~missing] = dense
        lows = np.array([present[raw == u].min() for u in used])
        highs = np.array([present[raw == u].max() for u in used])
    for digits in range(3, 18):
        labels = [
            _format_number(lo, digits)
            if lo == hi
            else f"{_format_number(lo, digits)}–{_format_number(hi, digits)}"
            for lo, hi in zip(lows, highs, strict=True)
        ]
        if len(set(labels)) == len(labels):
            break
    return codes, labels


def _grouping(attributes: pd.DataFrame, column: Any, numeric_bins: int) -> _Grouping:
    series = attributes[column]
    missing = series.isna().to_numpy()
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        raw = series.cat.codes.to_numpy().astype(np.int64)
        used = np.unique(raw[raw >= 0])
        remap = np.full(len(dtype.categories), -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        codes = np.where(raw >= 0, remap[np.maximum(raw, 0)], -1)
        labels = [str(dtype.categories[u]) for u in used]
    elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        values = series.to_numpy(dtype=float, na_value=np.nan)
        missing = missing | np.isnan(values)
        codes, labels = _numeric_groups(values, missing, numeric_bins)
    else:
        # Factorise first and stringify only the distinct values; values that print the same
        # (1 and "1") merge into one subgroup, and subgroups are listed in sorted order.
        raw, uniques = pd.factorize(series, use_na_sentinel=True)
        raw = np.asarray(raw, dtype=np.int64)
        missing = raw < 0
        codes = np.full(len(series), -1, dtype=np.int64)
        labels = []
        if len(uniques):
            names = np.array([str(u) for u in uniques], dtype=str)
            sorted_names, inverse = np.unique(names, return_inverse=True)
            codes[~missing] = inverse[raw[~missing]]
            labels = [str(u) for u in sorted_names]
    if missing.any():
        if MISSING in labels:  # a literal "missing" value joins the missing patients
            codes[missing] = labels.index(MISSING)
        else:
            codes[missing] = len(labels)
            labels.append(MISSING)
    return _Grouping(str(column), codes, tuple(labels))


def _check_bins(numeric_bins: int) -> int:
    if (
        isinstance(numeric_bins, bool)
        or not isinstance(numeric_bins, (int, np.integer))
        or (numeric_bins < 2)
    ):
        raise InputError(
            f"numeric_bins: expected an integer ≥ 2 (the number of quantile groups for numeric "
            f"attributes such as age), got {numeric_bins!r}; use 4 for quartiles."
        )
    return int(numeric_bins)


def _groupings(
    attributes: pd.DataFrame, columns: Iterable[Any] | None, numeric_bins: int
) -> list[_Grouping]:
    attributes = _check_attributes(attributes)
    bins = _check_bins(numeric_bins)
    return [_grouping(attributes, c, bins) for c in _select_columns(attributes, columns)]


def patient_groups(
    attributes: pd.DataFrame, columns: Iterable[Any] | None = None, *, numeric_bins: int = 4
) -> pd.DataFrame:
    """Subgroup label (a string) of every patient for each attribute column.

    Text, boolean and categorical columns keep their values as strings. Numeric columns with
    more than ``numeric_bins`` distinct values are cut into ``numeric_bins`` quantile groups
    (right-closed, as ``pandas.qcut``; fewer when ties merge quantiles), each labelled by the
    smallest and largest value observed in it (``"52–64"``), so labels read as ranges of real
    patients; numeric columns with few distinct values keep one group per value (cast numeric
    codes, such as disease codes, to str or category to keep every code a group). Missing
    values form the group ``"missing"``.
    """
    groupings = _groupings(attributes, columns, numeric_bins)
    out = {g.attribute: np.array(g.labels, dtype=object)[g.codes] for g in groupings}
    return pd.DataFrame(out, index=attributes.index, dtype=object)


# --------------------------------------------------------------------------- inputs


def _check_exposure(exposure: Any, n_patients: int) -> tuple[np.ndarray, np.ndarray]:
    """Exposure as float [P] and the mask of patients with a defined exposure."""
    try:
        values = np.asarray(exposure, dtype=float)
    except (TypeError, ValueError):
        raise InputError(
            "exposure: expected numbers (patient attack AUC in [0, 1], NaN where undefined); "
            "convert the column with pd.to_numeric first."
        ) from None
    if values.ndim != 1 or values.shape[0] != n_patients:
        raise InputError(
            f"exposure: expected one value per patient, shape [{n_patients}] to match the "
            f"{n_patients} rows of attributes, got shape {list(values.shape)}; pass the patient "
            f"exposure (e.g. patient_auc), not the record-level array."
        )
    if np.isinf(values).any():
        raise InputError(
            f"exposure: {int(np.isinf(values).sum())} value(s) are infinite; exposure is an "
            f"attack AUC in [0, 1] (NaN where undefined)."
        )
    valid = ~np.isnan(values)
    if not valid.any():
        raise InputError(
            "exposure: every value is NaN, so no patient has a defined exposure; check that "
            "the attack produced patient AUCs (each patient needs IN and OUT scores)."
        )
    bad = valid & ((values < 0.0) | (values > 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"exposure: {int(bad.sum())} value(s) outside [0, 1] (patient {first} has "
            f"{values[first]:g}); exposure is an attack AUC, so pass patient AUCs rather than "
            f"raw membership scores."
        )
    return values, valid


def _check_fraction(top_fraction: float) -> float:
    if not (isinstance(top_fraction, (int, float, np.floating)) and 0.0 < top_fraction <= 1.0):
        raise InputError(
            f"top_fraction: expected a share in (0, 1] of the most exposed patients, got "
            f"{top_fraction!r}; use 0.01 for the most exposed 1%."
        )
    return float(top_fraction)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: expected a non-negative integer, got {seed!r}.")
    return int(seed)


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator keyed by seed and names, independent of which other columns are analysed."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode("utf-8")) for k in keys)])


def _restrict(grouping: _Grouping, valid: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Codes of the patients with defined exposure; groups left empty are dropped."""
    codes = grouping.codes[valid]
    counts = np.bincount(codes, minlength=len(grouping.labels))
    kept = np.flatnonzero(counts > 0)
    remap = np.full(len(grouping.labels), -1, dtype=np.int64)
    remap[kept] = np.arange(kept.size)
    return remap[codes], [grouping.labels[k] for k in kept]


def _top_count(top_fraction: float, n: int) -> int:
    # The tolerance keeps 0.07 * 100 = 7.000000000000001 at 7 patients.
    return max(1, min(n, math.ceil(top_fraction * n - 1e-9)))


def _top_order(values: np.ndarray, ties: Ties, seed: int) -> np.ndarray:
    """Patients (positions in ``values``) from most to least exposed."""
    if ties == "index":
        return np.argsort(-values, kind="stable")
    if ties == "random":
        key = _rng(seed, "ties").permutation(values.shape[0])
        return np.lexsort((key, -values))
    raise InputError(f"ties: expected 'index' or 'random', got {ties!r}.")


def _top_set(
    values: np.ndarray, fraction: float, ties: Ties, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Order from most to least exposed, and the mask of the ⌈fraction·P⌉ most exposed."""
    order = _top_order(values, ties, seed)
    in_top = np.zeros(values.shape[0], dtype=bool)
    in_top[order[: _top_count(fraction, values.shape[0])]] = True
    return order, in_top


# --------------------------------------------------------------------------- tests


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


# --------------------------------------------------------------------------- composition


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
        return _jsonable(
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
            }
        )


def _check_choice(name: str, value: Any, choices: Sequence[str], hint: str) -> None:
    if value not in choices:
        raise InputError(f"{name}: expected one of {', '.join(choices)}, got {value!r}; {hint}")


def _check_n_sim(n_sim: int) -> int:
    if isinstance(n_sim, bool) or not isinstance(n_sim, (int, np.integer)) or n_sim < 99:
        raise InputError(
            f"n_sim: expected an integer ≥ 99 (Monte-Carlo draws for small-count p-values), "
            f"got {n_sim!r}; the default 10000 resolves p-values down to 1e-4."
        )
    return int(n_sim)


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


# --------------------------------------------------------------------------- group risk


def _threshold_name(t: float) -> str:
    return f"share_ge_{t:g}"


def _check_thresholds(thresholds: Any) -> tuple[float, ...]:
    items = (thresholds,) if isinstance(thresholds, (int, float)) else tuple(thresholds)
    ts = tuple(float(t) for t in items)
    if not ts or any(not 0.0 <= t <= 1.0 for t in ts):
        raise InputError(
            f"thresholds: expected risk thresholds on the AUC scale in [0, 1], got "
            f"{thresholds!r}; e.g. (0.8, 0.9, 0.95, 0.99)."
        )
    if len({_threshold_name(t) for t in ts}) != len(ts):
        raise InputError(f"thresholds: {thresholds!r} repeats a threshold; list each once.")
    return ts


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


# --------------------------------------------------------------------------- size vs exposure


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


# --------------------------------------------------------------------------- stratified


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


# --------------------------------------------------------------------------- summary


def _jsonable(obj: Any) -> Any:
    """Plain Python values for json.dumps(allow_nan=False): NaN → None, numpy → builtins."""
    if isinstance(obj, pd.DataFrame):
        return [_jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


_SUMMARY_OPTIONS = {
    "columns": ("composition", "group_risk", "size_vs_exposure"),
    "numeric_bins": ("composition", "group_risk", "size_vs_exposure", "stratified"),
    "seed": ("composition", "group_risk", "stratified"),
    "top_fraction": ("composition", "stratified"),
    "method": ("composition", "stratified"),
    "n_sim": ("composition", "stratified"),
    "ties": ("composition", "stratified"),
    "correction": ("composition",),
    "alpha": ("composition",),
    "thresholds": ("group_risk",),
    "n_boot": ("group_risk",),
    "confidence": ("group_risk",),
    "share_interval_method": ("group_risk",),
    "threshold": ("size_vs_exposure",),
    "rare_n": ("size_vs_exposure",),
    "rare_fraction": ("size_vs_exposure",),
}


def summarise(attributes: pd.DataFrame, exposure: Any, **options: Any) -> dict[str, Any]:
    """Every disparity statistic in one JSON-serialisable dict for the report.

    Options are those of the functions above (each goes to the functions that take it), plus
    ``stratify``: a list of (attribute, within) pairs for :func:`stratified`. Keys: cohort
    (counts, median, high-risk shares), composition, group_risk, size_vs_exposure, stratified.
    NaN becomes null, so ``json.dumps(..., allow_nan=False)`` accepts the result.
    """
    stratify = options.pop("stratify", ())
    unknown = sorted(set(options) - set(_SUMMARY_OPTIONS))
    if unknown:
        raise InputError(
            f"summarise: unknown option(s) {', '.join(unknown)}; accepted are "
            f"{', '.join(sorted([*_SUMMARY_OPTIONS, 'stratify']))}."
        )
    pairs = [tuple(p) for p in stratify]
    if any(len(p) != 2 for p in pairs):
        raise InputError(
            f"stratify: expected (attribute, within) pairs, got {stratify!r}; e.g. "
            f"stratify=[('race', 'disease')]."
        )

    def for_(fn: str) -> dict[str, Any]:
        return {k: v for k, v in options.items() if fn in _SUMMARY_OPTIONS[k]}

    comp = composition(attributes, exposure, **for_("composition"))
    risk = group_risk(attributes, exposure, **for_("group_risk"))
    sizes = size_vs_exposure(attributes, exposure, **for_("size_vs_exposure"))
    values, valid = _check_exposure(exposure, len(attributes))
    present = values[valid]
    ts = _check_thresholds(options.get("thresholds", (0.8, 0.9, 0.95, 0.99)))
    cohort: dict[str, Any] = {
        "n_patients": int(values.size),
        "n_excluded": int(values.size - present.size),
        "n_analysed": int(present.size),
        "median": float(np.median(present)),
        "mean": float(present.mean()),
        **{_threshold_name(t): float(np.mean(present >= t)) for t in ts},
    }
    strat = []
    for attribute, within in pairs:
        table = stratified(attributes, exposure, attribute, within, **for_("stratified"))
        strat.append(
            {
                "test": table.attrs["test"],
                "groups": table.drop(columns=["statistic", "dof", "p_value", "method", "n_strata"]),
            }
        )
    summary = _jsonable(
        {
            "cohort": cohort,
            "composition": comp.to_dict(),
            "group_risk": risk,
            "size_vs_exposure": sizes,
            "stratified": strat,
        }
    )
    json.dumps(summary, allow_nan=False)  # fail here, not in the report writer
    return summary


__all__ = [
    "MISSING",
    "RARE_FRACTION",
    "RARE_N",
    "SMALL_EXPECTED",
    "Composition",
    "adjust_pvalues",
    "bootstrap_medians",
    "composition",
    "group_risk",
    "patient_groups",
    "share_interval",
    "size_vs_exposure",
    "stratified",
    "summarise",
]
