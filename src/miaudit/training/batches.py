"""Batches: which records each model sees at each step, gathered, and inference chunk sizes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

__all__ = ["Schedule", "gather"]


class Schedule:
    """Which records each model sees at each step, with models sorted by training-set size.

    Model ``m`` takes ``ceil(n_m / B)`` steps per epoch over a fresh permutation of its own
    IN records (drawn from its own order generator); its last batch may be short. Sorting
    the group by ``n_m`` (largest first) makes the models still active at any step a
    prefix, and models with the same batch size at a step a contiguous range, so the
    engine works on views without padding or masking: every model computes exactly what
    it would compute alone.
    """

    def __init__(self, counts: np.ndarray, batch_size: int) -> None:
        counts = np.asarray(counts, dtype=np.int64)
        self.order = np.argsort(-counts, kind="stable")  # position in group, largest first
        self.counts = counts[self.order]
        self.batch_size = batch_size
        steps = -(-self.counts // batch_size)
        self.steps_per_epoch = int(steps.max())
        self.ranges: list[list[tuple[int, int, int]]] = []
        for step in range(self.steps_per_epoch):
            sizes = np.minimum(batch_size, self.counts - step * batch_size)
            active = int((sizes > 0).sum())
            ranges: list[tuple[int, int, int]] = []
            lo = 0
            while lo < active:
                hi = lo + int((sizes[lo:active] == sizes[lo]).sum())
                ranges.append((lo, hi, int(sizes[lo])))
                lo = hi
            self.ranges.append(ranges)

    def epoch_indices(self, records: Sequence[torch.Tensor], generators: Sequence[torch.Generator]) -> torch.Tensor:
        """[G, steps·B] record indices of one epoch (sorted order); rows padded with 0."""
        width = self.steps_per_epoch * self.batch_size
        out = torch.zeros((len(records), width), dtype=torch.int64)
        for row, (rec, gen) in enumerate(zip(records, generators, strict=True)):
            out[row, : rec.numel()] = rec[torch.randperm(rec.numel(), generator=gen)]
        return out

    def chunks(self, step: int, max_models: int) -> Iterator[tuple[int, int, int]]:
        """(lo, hi, batch) ranges of step ``step``, split into at most ``max_models`` models each."""
        for lo, hi, batch in self.ranges[step]:
            for start in range(lo, hi, max_models):
                yield start, min(hi, start + max_models), batch


def gather(values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``values[rows]`` for a [G, B] index, via ``index_select`` (many times faster on CPU)."""
    return values.index_select(0, rows.reshape(-1)).view(*rows.shape, *values.shape[1:])


def inference_rows(n: int, models: int, widest: int, budget_bytes: int = 32 << 20) -> int:
    """Records per inference chunk: a few [models, rows, widest] activations within the budget.

    Small chunks are faster, not only leaner: activations this size are served again from
    memory just freed, while fresh large allocations cost page faults on every call.
    """
    per_row = 4 * models * max(widest, 1) * 4
    return int(max(1, min(n, budget_bytes // per_row)))
