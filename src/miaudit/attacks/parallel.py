"""Tiles of targets × records and the threads that score them.

Work is cut into tiles of targets × records small enough to stay in the CPU cache, and the
tiles run on threads (numpy releases the GIL in its inner loops).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from miaudit.errors import InputError

T = TypeVar("T")

# Elements per tile: big enough to amortise Python overhead (and the GIL between threads),
# small enough that the dozen float64 temporaries of a tile stay in cache.
TILE_ELEMENTS = 1 << 16


def resolve_jobs(n_jobs: int | None) -> int:
    """Threads for the per-target work (numpy releases the GIL in its inner loops)."""
    if n_jobs is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)
    if not isinstance(n_jobs, int | np.integer) or n_jobs < 1:
        raise InputError(f"n_jobs: expected a positive number of threads, got {n_jobs!r}")
    return int(n_jobs)


Tile = tuple[int, int, int, int]


def tiles(n_targets: int, n_records: int, n_views: int, size: int | None = None) -> list[Tile]:
    """(t_lo, t_hi, r_lo, r_hi) tiles of about ``size`` elements (targets × records × views)."""
    size = TILE_ELEMENTS if size is None else size
    per_target = n_records * n_views
    if per_target >= size:
        step = max(1, size // n_views)
        return [
            (t, t + 1, r, min(r + step, n_records))
            for t in range(n_targets)
            for r in range(0, n_records, step)
        ]
    tstep = max(1, size // per_target)
    return [(t, min(t + tstep, n_targets), 0, n_records) for t in range(0, n_targets, tstep)]


def run(work: Callable[..., T], units: Sequence[tuple[int, ...]], n_jobs: int) -> list[T]:
    """work(*unit) for every unit, on ``n_jobs`` threads; results in unit order."""
    jobs = min(n_jobs, len(units))
    if jobs <= 1:
        return [work(*unit) for unit in units]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda u: work(*u), units))
