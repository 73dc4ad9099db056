"""Signals: the attack statistic of every model on every record and view, from logits.

Shapes: ``logits`` is [M, N, V, K] (models, records, views, classes) or [N, V, K] for one
model; the signal then has shape [M, N, V] (or [N, V]). K = 1 means a single binary logit z,
the same as the two logits [0, z]. ``labels`` is [N] int in 0..K-1 (0..1 when K = 1), or an
[N, K] 0/1 multi-hot matrix for multi-label tasks (several findings per image or ECG).

Single-label (softmax) models: every signal is derived in float64 from two log-sum-exps, the
log softmax mass of the true class (``lse_pos``) and of the others (``lse_neg``). The
logit-scaled confidence is ``lse_pos - lse_neg`` = log p_y - log Σ_{j≠y} p_j.

Multi-label models output one independent sigmoid logit per finding (trained with binary
cross-entropy), so the probability of a record's labels is the product over findings,
p = Π_k σ(±z_k), and the confidence is its logit, log p - log(1 - p). A row with no positive
finding ("no finding") is an ordinary record; with K = 1 this is exactly the binary case.

In both cases the probability is the sigmoid of the confidence and the loss the softplus of
its negative. No signal is ever taken as log(p) of a rounded probability, so logits of ±1e4
still give finite, exact confidences and losses (a probability itself may underflow to 0 or
round to 1, which is what a probability is).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

from miaudit.arrays import check_logits
from miaudit.errors import InputError

SignalName = Literal["logit_confidence", "probability", "loss"]
SIGNALS: tuple[str, ...] = ("logit_confidence", "probability", "loss")

# Float64 elements processed at once; bounds the temporaries for M=256, N=100k.
_CHUNK_ELEMENTS = 1 << 22


def _as_labels(labels: ArrayLike, n: int, k: int) -> NDArray[np.intp] | NDArray[np.bool_]:
    """Validate labels; return [N] int class indices or an [N, K] bool positive mask."""
    lab = np.asarray(labels)
    if lab.dtype == np.bool_:
        lab = lab.astype(np.int64)
    if not (np.issubdtype(lab.dtype, np.integer) or np.issubdtype(lab.dtype, np.floating)):
        raise InputError(f"labels: expected integers, got dtype {lab.dtype}")
    if np.issubdtype(lab.dtype, np.floating):
        bad = ~np.isfinite(lab) | (lab != np.round(lab))
        if bad.any():
            first = np.unravel_index(int(np.argmax(bad)), lab.shape)[0]
            raise InputError(
                f"labels: record {first} has label {lab.reshape(lab.shape[0], -1)[first]}, "
                f"not a whole number; pass class indices (or 0/1 multi-hot rows)"
            )
        lab = lab.astype(np.int64)
    if k == 1 and lab.ndim == 2 and lab.shape[1] == 1:
        lab = lab[:, 0]
    if lab.ndim == 1:
        if lab.shape[0] != n:
            raise InputError(
                f"labels: {lab.shape[0]} labels for {n} records in the logits; pass one "
                f"label per record, in the same order"
            )
        top = 1 if k == 1 else k - 1
        bad = (lab < 0) | (lab > top)
        if bad.any():
            first = int(np.argmax(bad))
            raise InputError(
                f"labels: record {first} has label {lab[first]}, outside 0..{top} for logits "
                f"with K={k} {'(a single binary logit)' if k == 1 else 'classes'}; map labels "
                f"to class indices 0..{top}"
            )
        return lab.astype(np.intp)
    if lab.ndim == 2:
        if lab.shape != (n, k):
            raise InputError(
                f"labels: multi-hot labels of shape {lab.shape} do not match the logits' "
                f"{n} records and K={k} classes; expected [N, K] = [{n}, {k}]"
            )
        bad = (lab != 0) & (lab != 1)
        if bad.any():
            first = int(np.argmax(bad.any(axis=1)))
            raise InputError(
                f"labels: record {first} has multi-hot values {lab[first].tolist()}; a "
                f"multi-hot row must hold only 0 and 1"
            )
        return lab.astype(bool)
    raise InputError(
        f"labels: expected shape [N] (class indices) or [N, K] (multi-hot), got {lab.shape}"
    )


def _masked_lse(values: NDArray[np.float64], mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """log Σ exp(values) over the last axis where mask; every row has at least one True."""
    masked = np.where(mask, values, -np.inf)
    top = masked.max(axis=-1, keepdims=True)
    out = np.log(np.exp(masked - top).sum(axis=-1)) + top[..., 0]
    return out


def _confidence_block(block: NDArray, labels: NDArray) -> NDArray[np.float64]:
    """Logit-scaled confidence of a [..., N, V, K] block (float64), see module doc."""
    z = block.astype(np.float64, copy=False)
    k = z.shape[-1]
    if k == 1:
        sign = np.where(labels == 1, 1.0, -1.0)[:, None]
        return z[..., 0] * sign
    if labels.ndim == 2:
        return _multilabel_confidence(z, labels)
    if k == 2:
        sign = np.where(labels == 1, 1.0, -1.0)[:, None]
        return (z[..., 1] - z[..., 0]) * sign
    pos = np.zeros((labels.shape[0], k), dtype=bool)
    pos[np.arange(labels.shape[0]), labels] = True
    pos = pos[:, None, :]
    return _masked_lse(z, pos) - _masked_lse(z, ~pos)


#: Below this |log p| the joint probability of a record's findings is within 1e-8 of 1 and
#: log(1 - p) is taken from log|log p| (series) instead of expm1, which would lose digits.
_NEAR_ONE = 1e-8


def _multilabel_confidence(z: NDArray[np.float64], positive: NDArray[np.bool_]) -> NDArray[np.float64]:
    """logit of p = Π_k σ(a_k), a_k = ±z_k the log-odds of finding k being as labelled.

    log p = -Σ softplus(-a_k). Where p is near 1 (a memorised record), log(1 - p) ≈
    log(-log p) + (log p)/2, and log(-log p) = lse_k log softplus(-a_k) stays exact even when
    every softplus(-a_k) underflows (a_k > 745).
    """
    a = np.where(positive[:, None, :], z, -z)
    soft = np.logaddexp(0.0, -a)  # -log σ(a_k) ≥ 0
    log_p = -soft.sum(axis=-1)
    with np.errstate(divide="ignore"):
        log_soft = np.where(a > 30.0, -a, np.log(soft))
    top = log_soft.max(axis=-1, keepdims=True)
    log_minus_log_p = np.log(np.exp(log_soft - top).sum(axis=-1)) + top[..., 0]
    near_one = -log_p < _NEAR_ONE
    with np.errstate(divide="ignore"):
        far = log_p - np.log(-np.expm1(np.minimum(log_p, -_NEAR_ONE)))
    return np.where(near_one, log_p / 2.0 - log_minus_log_p, far)


def logit_confidence(logits: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """log p_y − log Σ_{j≠y} p_j per model/record/view: LiRA's statistic, float64.

    Computed as lse(positive logits) − lse(negative logits), so it stays exact where p_y
    rounds to 1 (members a model memorised) — the records an audit is about.
    """
    check_logits(logits)
    arr = np.asarray(logits)
    single = arr.ndim == 3
    full = arr[None] if single else arr
    m, n, v, k = full.shape
    lab = _as_labels(labels, n, k)
    out = np.empty((m, n, v), dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // max(1, n * v * k))
    for start in range(0, m, step):
        out[start : start + step] = _confidence_block(full[start : start + step], lab)
    return out[0] if single else out


def true_class_probability(logits: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """Probability of the record's true label(s): RMIA's statistic.

    Softmax probability of the true class; for multi-label, the product of the findings'
    sigmoid probabilities.

    Equal to sigmoid(logit confidence), evaluated stably in float64.
    """
    return expit(logit_confidence(logits, labels))


def cross_entropy(logits: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """−log of the true-class probability mass, as softplus(−confidence) (stable, float64)."""
    conf = logit_confidence(logits, labels)
    return np.logaddexp(0.0, -conf)


def compute_signal(name: str, logits: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """The named signal ("logit_confidence", "probability" or "loss") from logits."""
    if name == "logit_confidence":
        return logit_confidence(logits, labels)
    if name == "probability":
        return true_class_probability(logits, labels)
    if name == "loss":
        return cross_entropy(logits, labels)
    raise InputError(f"signal {name!r} is not known; choose one of {', '.join(SIGNALS)}")
