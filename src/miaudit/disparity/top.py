"""The most exposed patients: the ⌈fraction·P⌉ at the top, ties by index or a seeded order."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from miaudit.disparity.inputs import _rng
from miaudit.errors import InputError

Ties = Literal["index", "random"]


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
