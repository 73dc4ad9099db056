"""Reference-free baselines: a record scores high when the target fits it well.

They need no reference models, so they accept any number of models M ≥ 1 (the pipeline's
``run_attack`` still asks for M ≥ 4, as every attack's scores there feed per-record AUCs
across targets). With V query views the per-view values are averaged.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from miaudit.arrays import as_model_array, as_targets, check_probabilities


def loss_attack(losses: ArrayLike, *, targets: ArrayLike | None = None) -> NDArray[np.float64]:
    """Scores [T, N] = −(mean over views of the target's loss on each record)."""
    arr = as_model_array(losses, name="losses")
    out = _view_mean(arr, as_targets(targets, arr.shape[0]))
    np.negative(out, out=out)
    return out


def confidence_attack(
    probabilities: ArrayLike, *, targets: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Scores [T, N] = mean over views of the target's true-class probability."""
    arr = as_model_array(probabilities, name="probabilities")
    check_probabilities(arr, name="probabilities", models=True)
    return _view_mean(arr, as_targets(targets, arr.shape[0]))


def _view_mean(arr: NDArray[np.float64], rows: NDArray[np.intp]) -> NDArray[np.float64]:
    """Mean over views of the target rows, as a new [T, N] array."""
    if rows.shape[0] == arr.shape[0] and (rows == np.arange(arr.shape[0])).all():
        picked = arr
    else:
        picked = arr[rows]
    if arr.shape[2] == 1:
        return np.array(picked[:, :, 0])
    return picked.mean(axis=2)
