"""Risk metrics: from membership scores to record and patient exposure.

Aggregate attack success can sit near a coin flip while single patients are identified almost
surely. This module measures both sides from the same arrays: the aggregate ROC over all
(target, record) pairs, each record's own separability of IN and OUT scores across targets
(record AUC), a patient's exposure over their records, the survival function of patient
exposure, high-risk counts, the most exposed patients and an empirical lower bound on ε.

Inputs (see DESIGN.md): ``scores`` [T, N] float, the membership score of each record against
each target (higher = member; NaN = undefined and ignored); ``membership`` [T, N] bool, True
where the record was IN the target's training set; ``patient`` [N] int in 0..P-1.

Everything here is numpy/scipy/scikit-learn on arrays, so it works on scores a user already
has, without training anything (``patient_exposure(record_auc(scores, membership), patient)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special, stats
from sklearn import metrics

from miaudit.errors import InputError

__all__ = [
    "RecordAUC",
    "Survival",
    "attack_metrics",
    "clopper_pearson",
    "epsilon_lower_bound",
    "epsilon_lower_bound_from_scores",
    "high_risk_counts",
    "model_count_adequacy",
    "patient_exposure",
    "record_auc",
    "roc",
    "survival",
    "top_exposed",
    "tpr_at_fpr",
]

DEFAULT_FPRS: tuple[float, ...] = (1e-1, 1e-2, 1e-3)
DEFAULT_RISK_THRESHOLDS: tuple[float, ...] = (0.8, 0.9, 0.95, 0.99)
DEFAULT_MODEL_COUNTS: tuple[int, ...] = (8, 16, 32, 64, 128, 256)

# Record AUC works on blocks of records so that the [T, block] temporaries stay small
# (about 4M elements each) even for cohorts of millions of records.
_BLOCK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- validation


def _key(value: float) -> str:
    """Dictionary key for a rate or threshold: ``0.1 -> "0.1"``, ``1e-3 -> "0.001"``."""
    return repr(float(value))


def _as_scores(scores: Any, name: str = "scores") -> np.ndarray:
    """``scores`` as a 2-D float64 array [T, N]; NaN allowed, any other garbage rejected."""
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{name}: cannot be read as a float array ({exc}); pass a numeric [T, N] array "
            "of membership scores (targets × records)."
        ) from None
    if arr.ndim != 2:
        raise InputError(
            f"{name}: expected a 2-D array [T targets, N records], got shape {arr.shape}; "
            "for a single target pass scores[None, :]."
        )
    return arr


def _as_membership(membership: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``membership`` as a bool array of ``shape``; 0/1 numbers accepted, anything else rejected."""
    arr = np.asarray(membership)
    if arr.shape != shape:
        raise InputError(
            f"membership: shape {arr.shape} does not match scores shape {shape}; both must be "
            "[T targets, N records] in the same order."
        )
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind not in "biuf":
        raise InputError(
            f"membership: expected a bool array (True = record IN the target's training set), "
            f"got dtype {arr.dtype}; convert it with membership.astype(bool)."
        )
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        t, n = np.argwhere(bad)[0]
        raise InputError(
            f"membership: value {arr[t, n].item()!r} at target {t}, record {n} is not 0/1 or "
            "True/False; membership must say IN (True) or OUT (False) for every pair."
        )
    return arr.astype(bool)


def _pairs(scores: Any, membership: Any) -> tuple[np.ndarray, np.ndarray]:
    s = _as_scores(scores)
    return s, _as_membership(membership, s.shape)


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise InputError(
            f"confidence: {confidence!r} is not strictly between 0 and 1; use e.g. 0.95."
        )
    return c


def _as_vector(values: Any, name: str) -> np.ndarray:
    """A 1-D float64 array; NaN means undefined, ±inf is rejected (it is never an AUC)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: cannot be read as a float array ({exc}).") from None
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-D array, got shape {arr.shape}.")
    if np.isinf(arr).any():
        i = int(np.flatnonzero(np.isinf(arr))[0])
        raise InputError(
            f"{name}: entry {i} is {arr[i]}; use NaN for an undefined value, not infinity."
        )
    return arr


def _is_whole(value: Any, low: int = 0) -> bool:
    """True for a whole number ≥ ``low`` (3, 3.0, np.int64(3)); False for anything else."""
    try:
        return float(value) == int(value) and int(value) >= low
    except (TypeError, ValueError, OverflowError):
        return False


def _nan_to_none(x: float) -> float | None:
    """JSON has no NaN: an undefined number is written as null."""
    return None if math.isnan(x) else float(x)


# --------------------------------------------------------------------------- ROC


def _finite_order_preserving(s: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Replace ±inf by finite values just outside the finite range (ROC depends on order only).

    Returns the new array and the two stand-ins, so thresholds can be mapped back to ±inf.
    """
    pos, neg = np.isposinf(s), np.isneginf(s)
    if not (pos.any() or neg.any()):
        return s, math.inf, -math.inf
    finite = s[np.isfinite(s)]
    hi = float(finite.max()) if finite.size else 0.0
    lo = float(finite.min()) if finite.size else 0.0
    hi_sub = hi + max(1.0, abs(hi))
    lo_sub = lo - max(1.0, abs(lo))
    out = s.copy()
    out[pos], out[neg] = hi_sub, lo_sub
    return out, hi_sub, lo_sub


def _roc_1d(s: np.ndarray, y: np.ndarray, *, drop_intermediate: bool = True):
    """ROC of one flat set of pairs, NaN already removed; ±inf scores keep their order."""
    s2, hi_sub, lo_sub = _finite_order_preserving(s)
    fpr, tpr, thr = metrics.roc_curve(y, s2, drop_intermediate=False)
    if drop_intermediate and fpr.size > 2:
        # Drop only points inside a vertical or horizontal run. scikit-learn's own option also
        # drops points on sloped segments (tied scores), which are real operating points that
        # a TPR at a fixed FPR can need.
        inner_v = (fpr[1:-1] == fpr[:-2]) & (fpr[1:-1] == fpr[2:])
        inner_h = (tpr[1:-1] == tpr[:-2]) & (tpr[1:-1] == tpr[2:])
        keep = np.r_[True, ~(inner_v | inner_h), True]
        fpr, tpr, thr = fpr[keep], tpr[keep], thr[keep]
    if math.isfinite(hi_sub):
        thr = np.where(thr == hi_sub, np.inf, np.where(thr == lo_sub, -np.inf, thr))
    return fpr, tpr, thr


def roc(
    scores: Any, membership: Any, *, drop_intermediate: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC over all non-NaN (target, record) pairs: ``(fpr, tpr, thresholds)``.

    A pair is predicted a member when its score is ≥ the threshold; ``thresholds[0]`` is inf
    and stands for predicting no pair a member (scikit-learn's convention), even when some
    scores are +inf. ``drop_intermediate`` only drops points inside vertical or horizontal runs
    of the curve, so the AUC and every TPR at a fixed FPR are unchanged.
    """
    s, m = _pairs(scores, membership)
    valid = ~np.isnan(s)
    y = m[valid]
    n_in = int(y.sum())
    if n_in == 0 or n_in == y.size:
        which = "IN" if n_in == 0 else "OUT"
        raise InputError(
            f"membership: no {which} pairs among the {y.size} non-NaN scores, so the ROC is "
            "undefined; audit targets that trained on some records and not on others."
        )
    return _roc_1d(s[valid], y, drop_intermediate=drop_intermediate)


def tpr_at_fpr(fpr: Any, tpr: Any, at: float) -> float:
    """The largest TPR among ROC points with FPR ≤ ``at``.

    Conservative by construction: there is no interpolation between ROC points. When ``at``
    falls between two points (a low FPR the scores cannot resolve, e.g. below 1/#OUT pairs),
    the TPR of the point to its left is reported, never a value read off the line to the next
    point. The reported operating point is therefore always attained by a real threshold.
    """
    f = np.asarray(fpr, dtype=np.float64)
    t = np.asarray(tpr, dtype=np.float64)
    if f.ndim != 1 or f.shape != t.shape or f.size == 0:
        raise InputError(
            f"tpr_at_fpr: fpr and tpr must be 1-D arrays of the same non-zero length, got "
            f"shapes {f.shape} and {t.shape}; pass the first two outputs of roc()."
        )
    a = float(at)
    if not 0.0 <= a <= 1.0:
        raise InputError(f"tpr_at_fpr: at={at!r} is not a false-positive rate in [0, 1].")
    ok = f <= a
    return float(t[ok].max()) if ok.any() else 0.0


def _rates(fpr: np.ndarray, tpr: np.ndarray, fprs: Sequence[float], n_records: int) -> dict:
    out = {_key(a): tpr_at_fpr(fpr, tpr, a) for a in fprs}
    out["1/N"] = tpr_at_fpr(fpr, tpr, 1.0 / n_records)
    return out


def attack_metrics(
    scores: Any, membership: Any, fprs: Iterable[float] = DEFAULT_FPRS
) -> dict[str, Any]:
    """Aggregate and per-target AUC and TPR at low FPR, as a JSON-serialisable dict.

    ``"aggregate"`` pools all (target, record) pairs into one ROC. ``"per_target"`` computes
    one ROC per target and reports mean and standard deviation (ddof=0) over the targets whose
    scores contain both IN and OUT pairs (their number is ``"num_defined"``), as the paper
    reports. ``"1/N"`` is the TPR at FPR = 1/N with N the number of records. An undefined
    number (no target defined) is written as None (JSON null).
    """
    s, m = _pairs(scores, membership)
    n_targets, n_records = s.shape
    rates = []
    for a in fprs:
        fa = float(a)
        if not 0.0 < fa <= 1.0:
            raise InputError(f"fprs: {a!r} is not a false-positive rate in (0, 1].")
        rates.append(fa)
    fpr, tpr, _ = roc(s, m)
    aggregate = {
        "auc": float(metrics.auc(fpr, tpr)),
        "tpr_at_fpr": _rates(fpr, tpr, rates, n_records),
    }

    aucs: list[float] = []
    per_rates: list[dict[str, float]] = []
    for t in range(n_targets):
        valid = ~np.isnan(s[t])
        y = m[t, valid]
        if y.all() or not y.any():
            continue
        f, r, _ = _roc_1d(s[t, valid], y)
        aucs.append(float(metrics.auc(f, r)))
        per_rates.append(_rates(f, r, rates, n_records))
    keys = list(aggregate["tpr_at_fpr"])

    def mean_std(values: list[float]) -> tuple[float | None, float | None]:
        if not values:
            return None, None
        return float(np.mean(values)), float(np.std(values))

    auc_mean, auc_std = mean_std(aucs)
    tpr_mean, tpr_std = {}, {}
    for k in keys:
        tpr_mean[k], tpr_std[k] = mean_std([r[k] for r in per_rates])
    return {
        "aggregate": aggregate,
        "per_target": {
            "auc_mean": auc_mean,
            "auc_std": auc_std,
            "tpr_at_fpr_mean": tpr_mean,
            "tpr_at_fpr_std": tpr_std,
            "num_defined": len(aucs),
        },
        "num_targets": int(n_targets),
        "num_records": int(n_records),
    }


# --------------------------------------------------------------------------- record AUC


@dataclass(frozen=True, eq=False)
class RecordAUC:
    """Per-record attack success across targets; NaN where undefined.

    ``auc`` [N], ``se`` [N] its standard error, ``n_in`` / ``n_out`` [N] the number of
    non-NaN IN / OUT scores each record had.
    """

    auc: np.ndarray
    se: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray
    method: str = "empirical"


def _midranks_axis0(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n along axis 0 with ties sharing their mean rank; NaN sorts last.

    NaN entries get meaningless ranks, but never change the ranks of the non-NaN entries
    because numpy sorts them after every number.
    """
    n = x.shape[0]
    order = np.argsort(x, axis=0, kind="stable")
    xs = np.take_along_axis(x, order, axis=0)
    idx = np.broadcast_to(np.arange(n)[:, None], xs.shape)
    starts = np.ones(xs.shape, dtype=bool)
    starts[1:] = xs[1:] != xs[:-1]  # NaN != NaN, so each NaN is its own group
    ends = np.ones(xs.shape, dtype=bool)
    ends[:-1] = starts[1:]
    first = np.maximum.accumulate(np.where(starts, idx, 0), axis=0)
    last = np.minimum.accumulate(np.where(ends, idx, n - 1)[::-1], axis=0)[::-1]
    ranks = np.empty(xs.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=0)
    return ranks


def _hanley_mcneil_se(auc: np.ndarray, n_in: np.ndarray, n_out: np.ndarray) -> np.ndarray:
    """Hanley & McNeil (1982) standard error, IN scores as the positive class.

    SE² = [A(1−A) + (n_in−1)(Q1−A²) + (n_out−1)(Q2−A²)] / (n_in·n_out),
    Q1 = A/(2−A), Q2 = 2A²/(1+A). It is 0 at A = 0 or 1, where it understates uncertainty.
    """
    a = auc
    with np.errstate(invalid="ignore", divide="ignore"):
        q1 = a / (2.0 - a)
        q2 = 2.0 * a * a / (1.0 + a)
        var = (a * (1 - a) + (n_in - 1) * (q1 - a * a) + (n_out - 1) * (q2 - a * a)) / (
            n_in * n_out
        )
    return np.sqrt(np.maximum(var, 0.0))


def _empirical_block(s: np.ndarray, m: np.ndarray):
    valid = ~np.isnan(s)
    is_in = valid & m
    n_in = is_in.sum(axis=0)
    n_out = valid.sum(axis=0) - n_in
    ranks = _midranks_axis0(s)
    rank_sum = np.where(is_in, ranks, 0.0).sum(axis=0)
    defined = (n_in > 0) & (n_out > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = rank_sum - n_in * (n_in + 1) / 2.0
        auc = np.where(defined, u / (n_in.astype(np.float64) * n_out), np.nan)
    se = np.where(defined, _hanley_mcneil_se(auc, n_in, n_out), np.nan)
    return auc, se, n_in, n_out


def _group_moments(s: np.ndarray, mask: np.ndarray):
    """Count, mean and unbiased variance per column over ``mask``; exact for constant groups."""
    n = mask.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(mask, s, 0.0).sum(axis=0)
        mean = total / n
        var = np.where(mask, (s - mean) ** 2, 0.0).sum(axis=0) / (n - 1)
        lo = np.where(mask, s, np.inf).min(axis=0)
        hi = np.where(mask, s, -np.inf).max(axis=0)
    constant = (n > 0) & (lo == hi)
    mean = np.where(constant, lo, mean)  # sum/n of a constant can be off by an ulp
    var = np.where(constant, 0.0, var)
    return n, mean, var


def _gaussian_block(s: np.ndarray, m: np.ndarray):
    valid = ~np.isnan(s)
    n_in, mu_in, v_in = _group_moments(s, valid & m)
    n_out, mu_out, v_out = _group_moments(s, valid & ~m)
    defined = (n_in >= 2) & (n_out >= 2)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        diff = mu_in - mu_out
        total = v_in + v_out
        sd = np.sqrt(total)
        d = diff / sd
        var_d = (v_in / n_in + v_out / n_out) / total + d * d * (
            v_in**2 / (n_in - 1) + v_out**2 / (n_out - 1)
        ) / (2.0 * total**2)
        auc = special.ndtr(d)
        se = np.exp(-0.5 * d * d) / math.sqrt(2 * math.pi) * np.sqrt(var_d)
    zero = defined & (total == 0)
    auc = np.where(zero, np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5)), auc)
    se = np.where(zero, np.where(diff == 0, np.nan, 0.0), se)
    auc = np.where(defined, auc, np.nan)
    se = np.where(defined, se, np.nan)
    return auc, se, n_in, n_out


def record_auc(
    scores: Any,
    membership: Any,
    *,
    method: Literal["empirical", "gaussian"] = "empirical",
) -> RecordAUC:
    """Each record's AUC of its IN scores vs its OUT scores across targets, with its SE.

    ``"empirical"``: the Mann–Whitney AUC (ties count ½) from mid-ranks along the target axis,
    vectorised over records; SE by Hanley & McNeil. ±inf scores are ranked like any other.

    ``"gaussian"``: the closed form Φ(d), d = (μ_in − μ_out)/√(σ_in² + σ_out²), from sample
    means and unbiased (ddof=1) variances, so it needs n_in ≥ 2 and n_out ≥ 2. The SE is the
    delta method, treating means and variances as independent with Var(μ̂) = σ²/n and
    Var(σ̂²) = 2σ⁴/(n−1) (Gaussian samples):
    Var(d̂) = (σ_in²/n_in + σ_out²/n_out)/S + d²·(σ_in⁴/(n_in−1) + σ_out⁴/(n_out−1))/(2S²),
    S = σ_in² + σ_out², and SE = φ(d)·√Var(d̂). With zero total variance (both groups
    constant) the AUC is 1, 0 or 0.5 by the sign of μ_in − μ_out; its SE is 0 for 1 and 0
    (the limit of the formula) and NaN for 0.5 (the limit depends on the unknown variances).
    Records with infinite scores get NaN.

    NaN scores are ignored; a record with no IN or no OUT score (or fewer than two of either
    for ``"gaussian"``) gets NaN AUC and SE, with its counts still reported.
    """
    if method not in ("empirical", "gaussian"):
        raise InputError(
            f"method: {method!r} is not a record-AUC method; use 'empirical' or 'gaussian'."
        )
    s, m = _pairs(scores, membership)
    n_targets, n_records = s.shape
    block = max(1, _BLOCK_ELEMENTS // max(n_targets, 1))
    auc = np.empty(n_records)
    se = np.empty(n_records)
    n_in = np.empty(n_records, dtype=np.int64)
    n_out = np.empty(n_records, dtype=np.int64)
    fn = _empirical_block if method == "empirical" else _gaussian_block
    for lo in range(0, n_records, block):
        sl = slice(lo, lo + block)
        auc[sl], se[sl], n_in[sl], n_out[sl] = fn(s[:, sl], m[:, sl])
    return RecordAUC(auc=auc, se=se, n_in=n_in, n_out=n_out, method=method)


# --------------------------------------------------------------------------- patients


def _as_patient(patient: Any, n: int, num_patients: int | None) -> tuple[np.ndarray, int]:
    arr = np.asarray(patient)
    if arr.shape != (n,):
        raise InputError(
            f"patient: shape {arr.shape} does not match the {n} records; pass one patient "
            "index per record."
        )
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise InputError(
            f"patient: expected integer patient indices 0..P-1, got dtype {arr.dtype}; map "
            "patient ids to indices first, e.g. patient = pandas.factorize(ids)[0]."
        )
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise InputError(
            f"patient: index {int(arr.min())} is negative; patient indices run from 0 to P-1."
        )
    top = int(arr.max()) + 1 if arr.size else 0
    if num_patients is None:
        return arr, top
    p = int(num_patients)
    if p < top:
        raise InputError(
            f"num_patients: {num_patients} is smaller than the largest patient index + 1 "
            f"({top}); pass the number of patients in the cohort."
        )
    return arr, p


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
    auc = _as_vector(record_auc, "record_auc")
    pat, n_patients = _as_patient(patient, auc.size, num_patients)
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


# --------------------------------------------------------------------------- confidence


def clopper_pearson(k: Any, n: Any, confidence: float = 0.95) -> tuple[Any, Any]:
    """Two-sided exact (Clopper–Pearson) interval for a binomial proportion, vectorised.

    Each end holds with probability ≥ 1 − (1 − confidence)/2. k = 0 gives lower 0, k = n gives
    upper 1, and n = 0 gives NaN for both.
    """
    c = _check_confidence(confidence)
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


# --------------------------------------------------------------------------- survival


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


def survival(
    patient_auc: Any,
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
    c = _check_confidence(confidence)
    auc = _as_vector(patient_auc, "patient_auc")
    if grid is None:
        g = np.round(np.linspace(0.5, 1.0, 101), 6)
    else:
        g = _as_vector(grid, "grid")
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
    patient_auc: Any, thresholds: Iterable[float] = DEFAULT_RISK_THRESHOLDS
) -> dict[str, int]:
    """Number of patients with exposure ≥ each threshold (NaN never counts); keys like "0.9"."""
    auc = _as_vector(patient_auc, "patient_auc")
    defined = auc[~np.isnan(auc)]
    return {_key(t): int(np.count_nonzero(defined >= float(t))) for t in thresholds}


def top_exposed(patient_auc: Any, fraction: float = 0.01) -> np.ndarray:
    """Indices of the ⌈fraction·P⌉ most exposed patients, most exposed first.

    P is the length of ``patient_auc``; NaN patients are never included, so fewer are returned
    when fewer are defined. Ties are broken by the lower patient index.
    """
    auc = _as_vector(patient_auc, "patient_auc")
    f = float(fraction)
    if not 0.0 <= f <= 1.0:
        raise InputError(f"fraction: {fraction!r} is not a fraction of patients in [0, 1].")
    k = math.ceil(round(f * auc.size, 9))
    idx = np.flatnonzero(~np.isnan(auc))
    order = idx[np.lexsort((idx, -auc[idx]))]
    return order[:k].astype(np.int64)


# --------------------------------------------------------------------------- epsilon


def _epsilon_from_rates(tpr: np.ndarray, fpr: np.ndarray, delta: float) -> np.ndarray:
    """max(0, log((TPR−δ)/FPR), log((1−FPR−δ)/(1−TPR))), with x/0 = inf for x > 0."""
    tpr, fpr = np.broadcast_arrays(np.asarray(tpr, float), np.asarray(fpr, float))

    def term(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        out = np.full(num.shape, -np.inf)
        pos = num > 0
        both = pos & (den > 0)
        out[both] = np.log(num[both] / den[both])
        out[pos & (den <= 0)] = np.inf
        return out

    eps = np.maximum(term(tpr - delta, fpr), term(1.0 - fpr - delta, 1.0 - tpr))
    return np.maximum(eps, 0.0)


def _check_delta(delta: float) -> float:
    d = float(delta)
    if not 0.0 <= d < 1.0:
        raise InputError(f"delta: {delta!r} is not in [0, 1); use e.g. 0 or 1e-5.")
    return d


def epsilon_lower_bound(
    tp: int, fn: int, fp: int, tn: int, *, delta: float = 0.0, confidence: float = 0.95
) -> dict[str, float]:
    """Empirical ε lower bound from one operating point (Jagielski et al. 2020; Nasr et al. 2021).

    Point estimate ε̂ = max(log((TPR−δ)/FPR), log((1−FPR−δ)/(1−TPR)), 0). The lower bound
    plugs in the Clopper–Pearson lower end for TPR and upper end for FPR, each taken from the
    two-sided interval at ``confidence`` (one-sided at (1−confidence)/2), so both hold
    together with probability ≥ ``confidence`` and then ε ≥ ``epsilon_lower``. A perfect
    attack gives ε̂ = inf but a finite lower bound that grows with the number of trials.
    """
    counts = {"tp": tp, "fn": fn, "fp": fp, "tn": tn}
    for name, v in counts.items():
        if not _is_whole(v):
            raise InputError(f"{name}: {v!r} is not a non-negative whole count.")
    tp, fn, fp, tn = (int(v) for v in counts.values())
    if tp + fn == 0 or fp + tn == 0:
        raise InputError(
            "epsilon_lower_bound: needs at least one member (tp + fn > 0) and one non-member "
            f"(fp + tn > 0), got tp={tp}, fn={fn}, fp={fp}, tn={tn}."
        )
    d = _check_delta(delta)
    c = _check_confidence(confidence)
    tpr, fpr = tp / (tp + fn), fp / (fp + tn)
    tpr_lo, _ = clopper_pearson(tp, tp + fn, c)
    _, fpr_hi = clopper_pearson(fp, fp + tn, c)
    return {
        "epsilon": float(_epsilon_from_rates(tpr, fpr, d)),
        "epsilon_lower": float(_epsilon_from_rates(tpr_lo, fpr_hi, d)),
        "tpr": tpr,
        "fpr": fpr,
        "tpr_lower": float(tpr_lo),
        "fpr_upper": float(fpr_hi),
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "tn": tn,
        "delta": d,
        "confidence": c,
    }


def _operating_points(s: np.ndarray, y: np.ndarray):
    """(threshold, tp, fp) at each distinct score, predicting member when score ≥ threshold."""
    order = np.argsort(-s, kind="stable")
    ss, yy = s[order], y[order]
    last = np.r_[ss[1:] != ss[:-1], True]
    idx = np.flatnonzero(last)
    tps = np.cumsum(yy)[idx]
    fps = idx + 1 - tps
    return ss[idx], tps, fps


def epsilon_lower_bound_from_scores(
    scores: Any,
    membership: Any,
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
    threshold: float | None = None,
    max_candidates: int = 20_000,
) -> dict[str, float]:
    """The best ε lower bound over thresholds of the pooled non-NaN (target, record) pairs.

    Only the ROC corners are scanned (for each false-positive count, the threshold with the
    most true positives), since the bound rises with TP and falls with FP. When there are more
    than ``max_candidates`` corners, a subset log-spaced in FP from both ends is scanned (still
    a valid bound, perhaps a looser one). Choosing the threshold on the same scores makes the
    confidence statement optimistic; for a strict bound choose ``threshold`` on other targets
    and pass it here. The result is :func:`epsilon_lower_bound`'s dict plus ``"threshold"``.
    """
    s, m = _pairs(scores, membership)
    d = _check_delta(delta)
    c = _check_confidence(confidence)
    valid = ~np.isnan(s)
    sv, yv = s[valid], m[valid]
    n_pos = int(yv.sum())
    n_neg = int(yv.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        which = "IN" if n_pos == 0 else "OUT"
        raise InputError(
            f"membership: no {which} pairs among the {yv.size} non-NaN scores; the ε bound "
            "needs both members and non-members."
        )
    if threshold is not None:
        thr = float(threshold)
        pred = sv >= thr
        tp = int(np.count_nonzero(pred & yv))
        fp = int(np.count_nonzero(pred & ~yv))
        out = epsilon_lower_bound(tp, n_pos - tp, fp, n_neg - fp, delta=d, confidence=c)
        return {**out, "threshold": thr}

    thr, tps, fps = _operating_points(sv, yv)
    corner = np.r_[fps[1:] > fps[:-1], True]
    thr, tps, fps = thr[corner], tps[corner], fps[corner]
    if thr.size > max_candidates:
        half = max(1, max_candidates // 2)
        wanted = np.unique(
            np.r_[
                0,
                np.round(np.geomspace(1, n_neg, half)),
                n_neg - np.round(np.geomspace(1, n_neg, half)),
            ]
        )
        pick = np.unique(np.clip(np.searchsorted(fps, wanted, side="right") - 1, 0, fps.size - 1))
        thr, tps, fps = thr[pick], tps[pick], fps[pick]
    tpr_lo, _ = clopper_pearson(tps, np.full(tps.shape, n_pos), c)
    _, fpr_hi = clopper_pearson(fps, np.full(fps.shape, n_neg), c)
    bounds = _epsilon_from_rates(tpr_lo, fpr_hi, d)
    best = int(np.argmax(bounds))
    tp, fp = int(tps[best]), int(fps[best])
    out = epsilon_lower_bound(tp, n_pos - tp, fp, n_neg - fp, delta=d, confidence=c)
    return {**out, "threshold": float(thr[best])}


# --------------------------------------------------------------------------- model count


def model_count_adequacy(
    scores: Any,
    membership: Any,
    counts: Iterable[int] | None = None,
    *,
    method: Literal["empirical", "gaussian"] = "empirical",
) -> pd.DataFrame:
    """How record AUC settles as targets are added: one row per count k of first targets.

    Columns: ``num_targets`` (k), ``mean_se`` and ``median_se`` (record-AUC SE over records
    defined with k targets), ``num_defined`` (such records), ``mean_abs_diff`` (mean
    |AUC with k − AUC with all T| over records defined in both). Default counts are
    8, 16, 32, … up to T, plus T itself.
    """
    s, m = _pairs(scores, membership)
    n_targets = s.shape[0]
    if counts is None:
        ks = sorted({k for k in DEFAULT_MODEL_COUNTS if k < n_targets} | {n_targets})
    else:
        ks = []
        for k in counts:
            if not (_is_whole(k, 1) and int(k) <= n_targets):
                raise InputError(
                    f"counts: {k!r} is not a number of targets between 1 and {n_targets} "
                    "(the rows of scores)."
                )
            ks.append(int(k))
    full = record_auc(s, m, method=method).auc
    rows = []
    for k in ks:
        r = record_auc(s[:k], m[:k], method=method)
        ok = ~np.isnan(r.se)
        both = ~np.isnan(r.auc) & ~np.isnan(full)
        rows.append(
            {
                "num_targets": k,
                "mean_se": float(r.se[ok].mean()) if ok.any() else math.nan,
                "median_se": float(np.median(r.se[ok])) if ok.any() else math.nan,
                "num_defined": int(np.count_nonzero(~np.isnan(r.auc))),
                "mean_abs_diff": float(np.abs(r.auc[both] - full[both]).mean())
                if both.any()
                else math.nan,
            }
        )
    return pd.DataFrame(
        rows, columns=["num_targets", "mean_se", "median_se", "num_defined", "mean_abs_diff"]
    )
