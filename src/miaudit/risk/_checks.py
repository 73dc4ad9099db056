"""Input checks shared by the risk metrics: scores [T, N], membership [T, N], vectors, counts."""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.errors import InputError


def rate_key(value: float) -> str:
    """Dictionary key for a rate or threshold: ``0.1 -> "0.1"``, ``1e-3 -> "0.001"``."""
    return repr(float(value))


def as_scores(scores: Any, name: str = "scores") -> np.ndarray:
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


def as_membership(membership: Any, shape: tuple[int, ...]) -> np.ndarray:
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


def pairs(scores: Any, membership: Any) -> tuple[np.ndarray, np.ndarray]:
    s = as_scores(scores)
    return s, as_membership(membership, s.shape)


def check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise InputError(
            f"confidence: {confidence!r} is not strictly between 0 and 1; use e.g. 0.95."
        )
    return c


def as_vector(values: Any, name: str) -> np.ndarray:
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


def is_whole(value: Any, low: int = 0) -> bool:
    """True for a whole number ≥ ``low`` (3, 3.0, np.int64(3)); False for anything else."""
    try:
        return float(value) == int(value) and int(value) >= low
    except (TypeError, ValueError, OverflowError):
        return False
