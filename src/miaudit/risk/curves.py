"""ROC and AUC: the one home of every area under a ROC curve in miaudit.

A pair is predicted a member when its score is at least the threshold; NaN scores are
left out and ±inf scores keep their order. ``attack_metrics`` reports the AUC and the TPR
at low false-positive rates that the paper reports, pooled and per target.

The AUCs, each with the arithmetic its callers' results were written with:

- :func:`auc` (one set of scores) and :func:`auc_columns` (one AUC per column of a
  [T, N] array, e.g. per record over its targets): the Mann–Whitney statistic from
  mid-ranks, ties counting ½, NaN scores ignored, NaN when a class is empty;
- :func:`delong`: the same AUC as a mean of per-positive placements, with its DeLong
  standard error;
- :func:`curve_auc`: the trapezoid area under an ROC curve from :func:`roc`;
- :func:`diagnostic_auroc`: a classifier's AUROC on its task (binary, one-vs-rest macro,
  or mean over multi-label findings), as scikit-learn computes it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn import metrics

from miaudit.errors import InputError
from miaudit.risk._checks import pairs, rate_key

DEFAULT_FPRS: tuple[float, ...] = (1e-1, 1e-2, 1e-3)


# --------------------------------------------------------------------------- AUC


def midranks_axis0(x: np.ndarray) -> np.ndarray:
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


def auc_columns(scores: np.ndarray, membership: np.ndarray):
    """Mann–Whitney AUC of each column of ``scores`` [T, N] float: ``(auc, n_in, n_out)`` [N].

    ``membership`` [T, N] bool marks the positives (IN). NaN scores are ignored; a column
    with no positive or no negative score gets NaN, its counts still reported.
    """
    valid = ~np.isnan(scores)
    is_in = valid & membership
    n_in = is_in.sum(axis=0)
    n_out = valid.sum(axis=0) - n_in
    ranks = midranks_axis0(scores)
    rank_sum = np.where(is_in, ranks, 0.0).sum(axis=0)
    defined = (n_in > 0) & (n_out > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = rank_sum - n_in * (n_in + 1) / 2.0
        auc = np.where(defined, u / (n_in.astype(np.float64) * n_out), np.nan)
    return auc, n_in, n_out


def auc(scores: Any, membership: Any) -> float:
    """Mann–Whitney AUC of 1-D ``scores`` for ``membership`` (True = positive, IN).

    Ties count ½ and NaN scores are left out; NaN when no positive or no negative remains.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(membership)
    if s.ndim != 1 or y.shape != s.shape:
        raise InputError(
            f"auc: scores {s.shape} and membership {y.shape} must be 1-D arrays of one length"
        )
    if y.dtype != np.bool_:
        if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
            raise InputError("auc: membership must be True/False (or 1/0) for every score")
        y = y.astype(bool)
    value, _, _ = auc_columns(s[:, None], y[:, None])
    return float(value[0])


def delong(scores: Any, labels: Any) -> tuple[float, float]:
    """AUC of ``scores`` for ``labels`` (True = positive) and its DeLong (1988) standard error.

    With V10_i the share of negatives below positive i and V01_j the share of positives above
    negative j (ties count half), AUC = mean V10 and Var = s²(V10)/m + s²(V01)/n. Both
    components come from three sorts (midranks), not the m·n comparisons.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise InputError(
            f"delong: scores {s.shape} and labels {y.shape} must be 1-D arrays of one length"
        )
    if np.isnan(s).any():
        raise InputError("delong: scores hold NaN; drop undefined scores first")
    pos, neg = s[y], s[~y]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        raise InputError(
            f"delong: needs positives and negatives, got {m} and {n}; the AUC is undefined"
        )
    ranks = rankdata(np.concatenate([pos, neg]))
    v10 = (ranks[:m] - rankdata(pos)) / n
    v01 = 1.0 - (ranks[m:] - rankdata(neg)) / m
    auc = float(v10.mean())
    if m < 2 or n < 2:
        return auc, math.nan
    var = float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    return auc, math.sqrt(max(var, 0.0))


def curve_auc(fpr: Any, tpr: Any) -> float:
    """Trapezoid area under the ROC curve ``(fpr, tpr)``, e.g. the first two outputs of roc()."""
    return float(metrics.auc(fpr, tpr))


def diagnostic_auroc(labels: np.ndarray, probabilities: np.ndarray, multilabel: bool) -> float:
    """A classifier's AUROC on its task; NaN when the labels hold a single class.

    ``probabilities`` [N, K]. Binary (K = 2): AUROC of class 1. Multi-class: one-vs-rest,
    macro-averaged over all K classes. Multi-label (``labels`` [N, K] 0/1): mean over the
    findings that have both positive and negative records.
    """
    y, p = labels, probabilities
    if multilabel:
        aucs = [
            metrics.roc_auc_score(y[:, k], p[:, k])
            for k in range(y.shape[1])
            if 0 < y[:, k].sum() < len(y)
        ]
        return float(np.mean(aucs)) if aucs else float("nan")
    classes = np.unique(y)
    if len(classes) < 2:
        return float("nan")
    if p.shape[1] == 2:
        return float(metrics.roc_auc_score(y, p[:, 1]))
    return float(
        metrics.roc_auc_score(
            y, p, multi_class="ovr", average="macro", labels=np.arange(p.shape[1])
        )
    )


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
    s, m = pairs(scores, membership)
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
    out = {rate_key(a): tpr_at_fpr(fpr, tpr, a) for a in fprs}
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
    s, m = pairs(scores, membership)
    n_targets, n_records = s.shape
    rates = []
    for a in fprs:
        fa = float(a)
        if not 0.0 < fa <= 1.0:
            raise InputError(f"fprs: {a!r} is not a false-positive rate in (0, 1].")
        rates.append(fa)
    fpr, tpr, _ = roc(s, m)
    aggregate = {
        "auc": curve_auc(fpr, tpr),
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
        aucs.append(curve_auc(f, r))
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
