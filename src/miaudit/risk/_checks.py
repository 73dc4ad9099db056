"""Checks shared by the risk metrics: scores with their membership, confidences, counts.

The arrays themselves are validated by :mod:`miaudit.arrays`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.arrays import as_membership, as_scores
from miaudit.errors import InputError


def rate_key(value: float) -> str:
    """Dictionary key for a rate or threshold: ``0.1 -> "0.1"``, ``1e-3 -> "0.001"``."""
    return repr(float(value))


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


def is_whole(value: Any, low: int = 0) -> bool:
    """True for a whole number ≥ ``low`` (3, 3.0, np.int64(3)); False for anything else."""
    try:
        return float(value) == int(value) and int(value) >= low
    except (TypeError, ValueError, OverflowError):
        return False
