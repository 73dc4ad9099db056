"""Chance baselines: how much of each exposure figure a null with no membership effect gives.

A record AUC of 0.9 from 8 models is unremarkable: with 4 IN and 4 OUT scores, chance alone
puts one record in 35 there. Every exposure figure is therefore reported beside its null:
the same audit with membership permuted among patients (``NullRecords``, made by
:mod:`miaudit.chance`), which keeps the design — the IN/OUT target counts, the views, the
records of a patient together — and breaks only the link between membership and signal.

- **Record p-value.** A record's AUC against the pooled null AUCs of records with the same
  design (n_in, n_out): p = (1 + #{null ≥ AUC}) / (1 + #null), a permutation (conformal)
  p-value, valid whenever a record's null AUC is distributed like the pooled ones — exactly
  so for rank statistics of exchangeable scores, which is what records of one design give
  under the null.
- **Patient p-value.** The null hypothesis "no record of the patient is exposed" is tested by
  Simes' combination of its k record p-values, min_j k·p_(j)/j: exact for k = 1, valid for
  the positive dependence of records that share their membership (Sarkar 2008), and never
  the max of k AUCs read as if it were one AUC.
- **False discoveries.** Patients exposed *beyond chance* are those Benjamini–Hochberg keeps
  at the audit's FDR (q-values by ``scipy.stats.false_discovery_control``). Permutation
  p-values against one shared null sample are positively dependent (Bates et al. 2023,
  "Testing for outliers with conformal p-values"), the case BH controls; ``"by"``
  (Benjamini–Yekutieli) holds under any dependence at a cost of power (a factor ~ln P).
- **Null counts.** Next to "n patients with exposure ≥ t" stands the mean count over the
  permutations (and its 95th percentile): how many a null would put there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import special, stats

from miaudit.arrays import as_patient, as_vector
from miaudit.errors import InputError
from miaudit.risk._checks import pairs, rate_key
from miaudit.risk.intervals import hanley_mcneil_variance
from miaudit.risk.patient import DEFAULT_RISK_THRESHOLDS, patient_exposure

FdrMethod = Literal["bh", "by"]
FDR_METHODS: tuple[str, ...] = ("bh", "by")
FDR_NAMES = {"bh": "Benjamini–Hochberg", "by": "Benjamini–Yekutieli"}


@dataclass(frozen=True, eq=False)
class NullRecords:
    """Record AUCs under permuted membership: ``auc``, ``n_in``, ``n_out`` [B, N]."""

    auc: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray

    @property
    def permutations(self) -> int:
        return int(self.auc.shape[0])


def _design_key(n_in: np.ndarray, n_out: np.ndarray) -> np.ndarray:
    return np.asarray(n_in, dtype=np.int64) * (1 << 31) + np.asarray(n_out, dtype=np.int64)


def _pooled(null: NullRecords) -> tuple[np.ndarray, np.ndarray]:
    """(design key, AUC) of every defined null record, pooled over the permutations."""
    key = _design_key(null.n_in, null.n_out).ravel()
    auc = np.asarray(null.auc, dtype=np.float64).ravel()
    ok = ~np.isnan(auc)
    return key[ok], auc[ok]


def record_p_values(
    auc: Any, n_in: Any, n_out: Any, null: NullRecords
) -> np.ndarray:
    """[N] each record's permutation p-value against null records of its own design.

    Ties count against the record (≥), so p is never optimistic. A record with an undefined
    AUC, or whose design no null record shares, gets NaN.
    """
    a = as_vector(auc, "auc")
    key = _design_key(n_in, n_out)
    null_key, null_auc = _pooled(null)
    p = np.full(a.shape, np.nan)
    defined = ~np.isnan(a)
    for k in np.unique(key[defined]):
        ref = np.sort(null_auc[null_key == k])
        if ref.size == 0:
            continue
        rows = defined & (key == k)
        ge = ref.size - np.searchsorted(ref, a[rows], side="left")
        p[rows] = (1.0 + ge) / (1.0 + ref.size)
    return p


def exact_record_p_values(scores: Any, membership: Any) -> np.ndarray:
    """[N] the exact Mann–Whitney p-value of each record's AUC, where the design gives one.

    When a target's score depends on that target's model alone (reference-free attacks),
    a record's scores do not move when membership is permuted, and under the null every
    assignment of its n_in IN labels is equally likely: P(AUC ≥ a) is the Mann–Whitney
    distribution of (n_in, n_out), exact without ties. Records with a tie, an undefined
    score or a side without scores get NaN (the caller's pooled permutation p-value stands).
    """
    s, m = pairs(scores, membership)
    out = np.full(s.shape[1], np.nan)
    clean = ~np.isnan(s).any(axis=0)
    ordered = np.sort(s, axis=0)
    clean &= ~(np.diff(ordered, axis=0) == 0).any(axis=0)
    n_in = m.sum(axis=0)
    clean &= (n_in > 0) & (n_in < s.shape[0])
    for k in np.unique(n_in[clean]):
        cols = np.flatnonzero(clean & (n_in == k))
        sub, mk = s[:, cols], m[:, cols]
        order = np.argsort(~mk, axis=0, kind="stable")  # IN rows first
        arranged = np.take_along_axis(sub, order, axis=0)
        result = stats.mannwhitneyu(
            arranged[:k], arranged[k:], alternative="greater", method="exact", axis=0
        )
        out[cols] = result.pvalue
    return out


def inflation(null: NullRecords, n_in: Any, n_out: Any) -> np.ndarray:
    """[N] κ ≥ 1: the null variance of record AUCs of each record's design over Hanley–McNeil's.

    Hanley–McNeil's variance assumes independent scores; an estimator whose pairs share
    references (leave-pair-out LiRA: κ ≈ 2 at 16–64 models) varies more, and its intervals
    must widen by as much (:func:`miaudit.risk.intervals.auc_score_interval`). Measured on the
    permutation null of the run itself; 1 where a design has fewer than 2 null values.
    """
    key = _design_key(n_in, n_out)
    out = np.ones(key.shape)
    null_key, null_auc = _pooled(null)
    for k in np.unique(key):
        vals = null_auc[null_key == k]
        rows = key == k
        i, o = np.asarray(n_in)[rows][0], np.asarray(n_out)[rows][0]
        if vals.size < 2 or i < 1 or o < 1:
            continue
        base = float(hanley_mcneil_variance(0.5, i, o))
        if base > 0:
            out[rows] = max(1.0, float(vals.var(ddof=1)) / base)
    return out


def simes(p: Any, patient: Any, num_patients: int | None = None) -> np.ndarray:
    """[P] Simes' combination min_j k·p_(j)/j of each patient's k record p-values (NaN: none)."""
    pv = as_vector(p, "p")
    pat, n_patients = as_patient(patient, pv.size, num_patients)
    ok = np.flatnonzero(~np.isnan(pv))
    out = np.full(n_patients, np.nan)
    if ok.size == 0:
        return out
    order = ok[np.lexsort((pv[ok], pat[ok]))]  # patient, then p ascending
    who = pat[order]
    start = np.r_[True, who[1:] != who[:-1]]
    group = np.cumsum(start) - 1
    first = np.flatnonzero(start)
    rank = np.arange(order.size) - first[group] + 1
    k = np.bincount(group)[group]
    combined = k * pv[order] / rank
    best = np.full(first.size, np.inf)
    np.minimum.at(best, group, combined)
    out[who[first]] = np.minimum(best, 1.0)
    return out


def q_values(p: Any, method: FdrMethod = "bh") -> np.ndarray:
    """FDR-adjusted p-values over the defined entries (NaN stays NaN and is not a test)."""
    if method not in FDR_METHODS:
        raise InputError(
            f"fdr_method: {method!r} is not a false-discovery procedure; use 'bh' "
            "(Benjamini–Hochberg) or 'by' (Benjamini–Yekutieli, any dependence)."
        )
    pv = as_vector(p, "p")
    out = np.full(pv.shape, np.nan)
    ok = ~np.isnan(pv)
    if ok.any():
        out[ok] = stats.false_discovery_control(pv[ok], method=method)
    return out


def null_high_risk(
    null_exposure: np.ndarray, thresholds: Iterable[float]
) -> tuple[dict[str, float], dict[str, int]]:
    """(mean, 95th percentile) over permutations of the patients at exposure ≥ each threshold."""
    e = np.asarray(null_exposure, dtype=np.float64)
    mean: dict[str, float] = {}
    upper: dict[str, int] = {}
    for t in thresholds:
        counts = np.count_nonzero(np.nan_to_num(e, nan=-np.inf) >= float(t), axis=1)
        mean[rate_key(t)] = float(counts.mean()) if counts.size else math.nan
        upper[rate_key(t)] = int(np.quantile(counts, 0.95, method="higher")) if counts.size else 0
    return mean, upper


def models_for_threshold(threshold: float, patients: int, records_per_patient: float = 1.0) -> int:
    """About how many models (M/2 IN, M/2 OUT targets) make chance put < 1 patient ≥ threshold.

    Under the null a record AUC of n = M/2 IN and M/2 OUT scores has mean ½ and variance
    (2n + 1)/(12 n²) ≈ 1/(3M); with P·k records tested, chance leaves fewer than one above t
    once (t − ½)·√(3M) ≥ z, z = Φ⁻¹(1 − 1/(P·k)). A planning figure for the report's words,
    not a test.
    """
    t = float(threshold)
    if not 0.5 < t <= 1.0:
        raise InputError(f"threshold: {threshold!r} is not an exposure level in (0.5, 1].")
    n = max(float(patients) * float(records_per_patient), 2.0)
    z = float(special.ndtri(1.0 - 1.0 / n))
    m = math.ceil((z / (t - 0.5)) ** 2 / 3.0)
    return m + (m % 2)


@dataclass(frozen=True, eq=False)
class Chance:
    """Every chance figure of one attack on one run (see the module doc)."""

    record_p: np.ndarray  # [N]
    patient_p: np.ndarray  # [P]
    patient_q: np.ndarray  # [P]
    high_risk_null: dict[str, float]
    high_risk_null_upper: dict[str, int]
    beyond_chance: int
    beyond_chance_above: dict[str, int]
    fdr: float
    fdr_method: str
    permutations: int

    def summary(self) -> dict[str, Any]:
        """The run summary's ``chance`` entry of the attack."""
        return {
            "permutations": self.permutations,
            "high_risk_null": self.high_risk_null,
            "high_risk_null_upper": self.high_risk_null_upper,
            "fdr": self.fdr,
            "fdr_method": self.fdr_method,
            "beyond_chance": self.beyond_chance,
            "beyond_chance_above": self.beyond_chance_above,
        }


def chance(
    auc: np.ndarray,
    n_in: np.ndarray,
    n_out: np.ndarray,
    exposure: np.ndarray,
    patient: np.ndarray,
    num_patients: int,
    null: NullRecords,
    *,
    how: Literal["max", "mean"] = "max",
    thresholds: Iterable[float] = DEFAULT_RISK_THRESHOLDS,
    fdr: float = 0.05,
    fdr_method: FdrMethod = "bh",
    exact_p: np.ndarray | None = None,
) -> Chance:
    """The chance figures of one attack from its record AUCs and their permutation null.

    ``exact_p`` [N]: exact record p-values where the design gives them (NaN elsewhere), used
    in place of the pooled permutation p-value (see :func:`exact_record_p_values`).
    """
    record_p = record_p_values(auc, n_in, n_out, null)
    if exact_p is not None:
        exact = np.asarray(exact_p, dtype=np.float64)
        record_p = np.where(np.isnan(exact), record_p, exact)
    patient_p = simes(record_p, patient, num_patients)
    return chance_from(
        record_p,
        patient_p,
        q_values(patient_p, fdr_method),
        exposure,
        patient,
        num_patients,
        null,
        how=how,
        thresholds=thresholds,
        fdr=fdr,
        fdr_method=fdr_method,
    )


def chance_from(
    record_p: np.ndarray,
    patient_p: np.ndarray,
    patient_q: np.ndarray,
    exposure: np.ndarray,
    patient: np.ndarray,
    num_patients: int,
    null: NullRecords,
    *,
    how: Literal["max", "mean"] = "max",
    thresholds: Iterable[float] = DEFAULT_RISK_THRESHOLDS,
    fdr: float = 0.05,
    fdr_method: FdrMethod = "bh",
) -> Chance:
    """The chance figures from p-values already computed (a run's files hold them)."""
    if not 0.0 < float(fdr) < 1.0:
        raise InputError(f"fdr: {fdr!r} is not a false-discovery rate in (0, 1); use e.g. 0.05.")
    thresholds = tuple(thresholds)
    rows = [patient_exposure(row, patient, how=how, num_patients=num_patients)[0]
            for row in null.auc]
    null_exposure = np.stack(rows) if rows else np.empty((0, num_patients))
    mean, upper = null_high_risk(null_exposure, thresholds)
    found = np.nan_to_num(np.asarray(patient_q, dtype=np.float64), nan=np.inf) <= fdr
    e = np.nan_to_num(np.asarray(exposure, dtype=np.float64), nan=-np.inf)
    above = {rate_key(t): int(np.count_nonzero(found & (e >= float(t)))) for t in thresholds}
    return Chance(
        record_p=np.asarray(record_p, dtype=np.float64),
        patient_p=np.asarray(patient_p, dtype=np.float64),
        patient_q=np.asarray(patient_q, dtype=np.float64),
        high_risk_null=mean,
        high_risk_null_upper=upper,
        beyond_chance=int(found.sum()),
        beyond_chance_above=above,
        fdr=float(fdr),
        fdr_method=fdr_method,
        permutations=null.permutations,
    )
