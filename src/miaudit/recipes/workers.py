"""How many local worker processes a recipe that trains outside torch runs, and their threads.

Training is the cost of an audit, and one estimator fit rarely uses two cores well; running
one model per core, each single-threaded, avoids OpenMP and BLAS oversubscription (two
workers each starting a thread per core on a 2-core machine run slower than one).
"""

from __future__ import annotations

import os

__all__ = ["available_cores", "worker_count"]


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def worker_count(requested: int | None, models: int) -> tuple[int, int]:
    """(workers, threads per worker) for ``models`` models: one thread each by default."""
    cores = available_cores()
    workers = max(1, min(requested or cores, models))
    return workers, max(1, cores // workers)
