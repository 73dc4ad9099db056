"""The checked arrays of one training group: records, labels, keep and global model indices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from miaudit.errors import InputError

__all__ = ["TrainingData", "check_inputs"]


@dataclass(frozen=True)
class TrainingData:
    """Checked inputs of one group: records, labels, keep and the models' global indices."""

    inputs: np.ndarray  # [N, ...] float32, or uint8 pixels (conv families: value / 255)
    labels: np.ndarray  # [N] int64 class indices, or [N, K] int64 0/1 (multi-label)
    keep: np.ndarray  # [G, N] bool
    model_index: list[int]
    seed: int
    num_classes: int

    @property
    def multilabel(self) -> bool:
        """Whether the labels are an [N, K] multi-hot matrix (one binary task per column)."""
        return self.labels.ndim == 2

    def records(self, position: int) -> torch.Tensor:
        """Indices of the IN records of the model at ``position`` in the group."""
        return torch.from_numpy(np.flatnonzero(self.keep[position]))


def check_inputs(
    inputs: np.ndarray,
    labels: np.ndarray,
    keep: np.ndarray,
    model_index: Sequence[int],
    seed: int,
    num_classes: int | None = None,
    *,
    table: bool = True,
    multilabel: bool = False,
) -> TrainingData:
    """Validate the arrays of one training group, with messages that say how to fix them.

    ``multilabel`` admits [N, K] 0/1 labels (K binary tasks, K outputs), for the paths that
    train them with binary cross-entropy; ``num_classes`` must then be K or unset.
    """
    inputs = np.asarray(inputs)
    if table and inputs.ndim != 2:
        raise InputError(
            f"inputs: the built-in model families expect a table [N records, F features], got "
            f"shape {inputs.shape}; flatten the records or train your own module with train_vmap"
        )
    if inputs.ndim < 2 or inputs.shape[0] == 0 or inputs[0].size == 0:
        raise InputError(f"inputs: expected an array [N records, ...] with N ≥ 1, got shape {inputs.shape}")
    if not np.issubdtype(inputs.dtype, np.number) or np.issubdtype(inputs.dtype, np.complexfloating):
        raise InputError(f"inputs: expected real numbers, got dtype {inputs.dtype}; encode categories as numbers first")
    if inputs.dtype == np.uint8 and not table:
        # decoded pixels (value / 255): the conv engine converts each batch, so the cohort
        # is never held as float32 whole; bytes are always finite
        inputs = np.ascontiguousarray(inputs)
    else:
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    if inputs.dtype != np.uint8 and not np.isfinite(inputs).all():
        bad = np.argwhere(~np.isfinite(inputs))[0]
        raise InputError(
            f"inputs: record {bad[0]} holds a missing or infinite value (position {tuple(bad[1:])}); "
            "impute or drop missing values before training"
        )
    n = inputs.shape[0]

    labels = np.asarray(labels)
    if multilabel and labels.ndim == 2:
        labels, num_classes = _check_multilabel(labels, n, num_classes)
    elif labels.shape != (n,):
        where = (" or [N, K] 0/1 multi-label targets" if multilabel
                 else "; multi-label [N, K] targets need the wrn or resnet1d family")
        raise InputError(
            f"labels: expected one class index per record (shape ({n},)), got shape "
            f"{labels.shape}{where}"
        )
    else:
        labels, num_classes = _check_classes(labels, num_classes)

    keep = np.asarray(keep)
    if keep.ndim != 2 or keep.shape[1] != n or keep.shape[0] == 0:
        raise InputError(
            f"keep: expected a boolean array [G models, {n} records], got shape {keep.shape}; "
            "expand a patient-level plan to records first"
        )
    if keep.dtype != bool:
        if not np.isin(keep, (0, 1)).all():
            raise InputError("keep: expected True/False (or 0/1) entries; got other values")
        keep = keep.astype(bool)
    keep = np.ascontiguousarray(keep)
    empty = np.flatnonzero(~keep.any(axis=1))
    if empty.size:
        raise InputError(
            f"keep: model at position {int(empty[0])} has no IN records; every model needs at least one"
        )

    index = [int(i) for i in np.asarray(model_index).reshape(-1)]
    if len(index) != keep.shape[0]:
        raise InputError(
            f"model_index: expected {keep.shape[0]} global model indices (one per row of keep), got {len(index)}"
        )
    if min(index) < 0 or len(set(index)) != len(index):
        raise InputError("model_index: global model indices must be distinct and non-negative")
    if int(seed) != seed or seed < 0:
        raise InputError(f"seed: expected a non-negative integer, got {seed!r}")
    return TrainingData(inputs, labels, keep, index, int(seed), int(num_classes))


def _check_multilabel(labels: np.ndarray, n: int, num_classes: int | None) -> tuple[np.ndarray, int]:
    """[N, K] multi-hot labels as int64, and K."""
    if labels.shape[0] != n or labels.shape[1] < 1:
        raise InputError(
            f"labels: multi-label targets must have shape ({n} records, K labels) with K ≥ 1, "
            f"got {labels.shape}"
        )
    if labels.dtype == bool:
        labels = labels.astype(np.int64)
    if not np.issubdtype(labels.dtype, np.number) or not np.isin(labels, (0, 1)).all():
        raise InputError(
            "labels: multi-label targets must be 0/1 (multi-hot: 1 where the record has the "
            "label); found other values, so binarise them first"
        )
    k = labels.shape[1]
    if num_classes is not None and num_classes != k:
        raise InputError(
            f"num_classes: {num_classes} but the multi-label targets have {k} columns; leave "
            "num_classes unset or make it the number of label columns"
        )
    return np.ascontiguousarray(labels, dtype=np.int64), k


def _check_classes(labels: np.ndarray, num_classes: int | None) -> tuple[np.ndarray, int]:
    """[N] class indices as int64, and the number of classes."""
    if labels.dtype == bool:
        labels = labels.astype(np.int64)
    if not np.issubdtype(labels.dtype, np.number) or (
        not np.issubdtype(labels.dtype, np.integer)
        and not np.array_equal(labels, np.round(labels))
    ):
        raise InputError(
            f"labels: expected integer class indices 0..K-1, got dtype {labels.dtype}; "
            "encode the classes as integers first"
        )
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if labels.min() < 0:
        raise InputError(f"labels: class indices must be 0..K-1, found {labels.min()}; re-encode the classes")
    k = max(int(labels.max()) + 1, 2)
    if num_classes is None:
        num_classes = k
    elif num_classes < k:
        raise InputError(
            f"labels: found class index {k - 1} but num_classes={num_classes}; raise num_classes "
            "or re-encode the classes as 0..K-1"
        )
    elif num_classes < 2:
        raise InputError(f"num_classes: must be at least 2, got {num_classes}")
    return labels, num_classes
