"""Empirical lower bounds on ε from an attack's operating points (Jagielski et al. 2020)."""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.errors import InputError
from miaudit.risk._checks import check_confidence, is_whole, pairs
from miaudit.risk.intervals import clopper_pearson


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
        if not is_whole(v):
            raise InputError(f"{name}: {v!r} is not a non-negative whole count.")
    tp, fn, fp, tn = (int(v) for v in counts.values())
    if tp + fn == 0 or fp + tn == 0:
        raise InputError(
            "epsilon_lower_bound: needs at least one member (tp + fn > 0) and one non-member "
            f"(fp + tn > 0), got tp={tp}, fn={fn}, fp={fp}, tn={tn}."
        )
    d = _check_delta(delta)
    c = check_confidence(confidence)
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
    s, m = pairs(scores, membership)
    d = _check_delta(delta)
    c = check_confidence(confidence)
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
