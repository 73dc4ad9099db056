"""Where training runs: the device, torch's CPU threads, and models per batched matmul."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from miaudit.errors import InputError

__all__ = ["cpu_threads", "default_max_models", "select_device"]


def select_device(preferred: str | None = None) -> torch.device:
    """The device to train on: ``preferred`` if usable, else CUDA when present, else CPU."""
    if preferred is None or preferred == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(preferred)
    except (RuntimeError, TypeError) as error:
        raise InputError(
            f"device {preferred!r}: not a device name ({error}); use 'cpu', 'cuda', 'cuda:1' "
            "or leave it unset to pick CUDA when present"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"device {preferred!r}: CUDA is not available on this machine; use 'cpu' or "
                "leave the device unset to pick automatically"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"device {preferred!r}: this machine has {torch.cuda.device_count()} CUDA "
                "device(s); pick an index below that"
            )
    elif device.type != "cpu":
        raise InputError(f"device {preferred!r}: only 'cpu' and 'cuda' are supported")
    return device


@contextlib.contextmanager
def cpu_threads(limit: int | None = None) -> Iterator[None]:
    """Cap torch's intra-op threads at the CPUs this process may use (no oversubscription).

    ``limit`` caps them further (the conv engine runs single-threaded on CPU, see there).
    """
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        available = os.cpu_count() or 1
    if limit is not None:
        available = max(1, min(available, limit))
    before = torch.get_num_threads()
    if before > available:
        torch.set_num_threads(available)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def default_max_models(device: torch.device) -> int:
    """Models per batched matmul: on CPU ~64 keeps a step's activations in cache; on GPU all."""
    return 64 if device.type == "cpu" else 1 << 30


@contextlib.contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """Run the fused CPU Adam single-threaded.

    The kernel opens a parallel region per tensor, and it gets one tensor per model and
    parameter: hundreds of tiny regions per step. Being memory-bound it gains nothing from
    a second thread, and when another process holds a core each region waits a scheduler
    time slice for its second thread (seen here: 1.5 s instead of 2 ms per step).
    """
    before = torch.get_num_threads()
    if device.type != "cpu" or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
