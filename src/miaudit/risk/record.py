"""Record AUC: each record's separability of its IN and OUT scores across targets.

With ~M/2 IN and ~M/2 OUT scores per record, the Mann–Whitney AUC (or the Gaussian closed
form Φ((μ_in − μ_out)/√(σ_in² + σ_out²))) is that record's attack success, with a standard
error. ``model_count_adequacy`` shows how it settles as targets are added.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special

from miaudit.errors import InputError
from miaudit.risk._checks import is_whole, pairs
from miaudit.risk.curves import auc_columns
from miaudit.risk.intervals import hanley_mcneil_variance

DEFAULT_MODEL_COUNTS: tuple[int, ...] = (8, 16, 32, 64, 128, 256)

# Record AUC works on blocks of records so that the [T, block] temporaries stay small
# (about 4M elements each) even for cohorts of millions of records.
_BLOCK_ELEMENTS = 1 << 22


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


def _hanley_mcneil_se(auc: np.ndarray, n_in: np.ndarray, n_out: np.ndarray) -> np.ndarray:
    """Hanley & McNeil (1982) standard error, IN scores as the positive class.

    SE² = [A(1−A) + (n_in−1)(Q1−A²) + (n_out−1)(Q2−A²)] / (n_in·n_out),
    Q1 = A/(2−A), Q2 = 2A²/(1+A). It is 0 at A = 0 or 1, where it understates uncertainty
    (the score interval of :mod:`miaudit.risk.intervals` does not).
    """
    return np.sqrt(hanley_mcneil_variance(auc, n_in, n_out))


def _empirical_block(s: np.ndarray, m: np.ndarray):
    auc, n_in, n_out = auc_columns(s, m)
    defined = (n_in > 0) & (n_out > 0)
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
    s, m = pairs(scores, membership)
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


def pairwise_record_auc(auc: Any, n_in: Any, n_out: Any) -> RecordAUC:
    """A :class:`RecordAUC` from an attack's leave-pair-out record AUCs and target counts.

    The AUC is the attack's own (see :mod:`miaudit.attacks.pairwise`); the standard error is
    Hanley & McNeil's for its n_in × n_out pairs, as for the empirical method.
    """
    a = np.asarray(auc, dtype=np.float64)
    i = np.asarray(n_in, dtype=np.int64)
    o = np.asarray(n_out, dtype=np.int64)
    defined = ~np.isnan(a) & (i > 0) & (o > 0)
    se = np.where(defined, _hanley_mcneil_se(a, i, o), np.nan)
    return RecordAUC(auc=a, se=se, n_in=i, n_out=o, method="leave-pair-out")


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
    s, m = pairs(scores, membership)
    n_targets = s.shape[0]
    if counts is None:
        ks = sorted({k for k in DEFAULT_MODEL_COUNTS if k < n_targets} | {n_targets})
    else:
        ks = []
        for k in counts:
            if not (is_whole(k, 1) and int(k) <= n_targets):
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
