"""Pieces every training path shares: devices, seeds, input checks, batch schedule, Adam.

Each model's randomness comes from its own generators, seeded from (seed, global model
index, stream), and each model walks over its own IN records. Together with per-model
optimiser state this is what makes a model's result independent of which other models
train beside it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from miaudit.errors import InputError

__all__ = [
    "STREAM_AUGMENT",
    "STREAM_DROPOUT",
    "STREAM_INIT",
    "STREAM_ORDER",
    "Schedule",
    "StackedAdam",
    "TrainingData",
    "adam_options",
    "check_inputs",
    "cpu_threads",
    "default_max_models",
    "fused_adam_supported",
    "gather",
    "model_generator",
    "model_seed",
    "select_device",
]

STREAM_INIT = 0
STREAM_ORDER = 1
STREAM_DROPOUT = 2
STREAM_AUGMENT = 3  # which view each record of each batch is trained under (conv families)

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


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


def model_seed(seed: int, model: int, stream: int) -> int:
    """A 64-bit seed for one random stream (init, order, dropout, augment) of the model with global index ``model``."""
    state = np.random.SeedSequence([seed, model, stream]).generate_state(2, np.uint32)
    return int(state[0]) | (int(state[1]) << 32)


def model_generator(seed: int, model: int, stream: int) -> torch.Generator:
    """A CPU generator for one stream of one model; CPU so draws match on every device."""
    return torch.Generator().manual_seed(model_seed(seed, model, stream))


@dataclass(frozen=True)
class TrainingData:
    """Checked inputs of one group: records, labels, keep and the models' global indices."""

    inputs: np.ndarray  # [N, ...] float32
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
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    if not np.isfinite(inputs).all():
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


def fused_adam_supported(device: torch.device) -> bool:
    """Whether ``torch.optim.Adam(fused=True)`` (one pass over memory per step) runs here."""
    return hasattr(torch, "_fused_adam_") and device.type in ("cpu", "cuda")


class StackedAdam:
    """Adam over stacked [G, ...] parameters with a step count per model.

    Each model gets the update ``torch.optim.Adam`` would give it alone. With ``fused`` (the
    default where available) PyTorch's fused Adam kernel, the one behind
    ``torch.optim.Adam(fused=True)``, runs over each model's own slice of every tensor: one
    pass over memory, and every model's elements are processed as if it were alone (the
    kernel's vectorised and tail elements round differently, so slices spanning models
    would make a model's last bits depend on its neighbours). Without it, the operations of
    the default single-tensor algorithm are replayed with per-model bias corrections
    computed in double precision like PyTorch does, matching
    ``torch.optim.Adam(foreach=False)``. ``adam_options`` gives the matching optimiser for
    a plain reference loop.
    """

    def __init__(self, params: Sequence[torch.Tensor], lr: float, weight_decays: Sequence[float],
                 *, fused: bool | None = None) -> None:
        self.params = list(params)
        self.lr = lr
        self.weight_decays = list(weight_decays)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        models = self.params[0].shape[0]
        self.steps = [0] * models
        device = self.params[0].device
        self.fused = fused_adam_supported(device) if fused is None else fused
        groups: dict[float, list[int]] = {}
        for i, wd in enumerate(self.weight_decays):
            groups.setdefault(wd, []).append(i)
        self._groups = list(groups.items())
        if self.fused:  # per-model views, made once
            self._step_counts = torch.zeros(models, dtype=torch.float32, device=device)
            self._step_views = [self._step_counts[m] for m in range(models)]
            self._views = [
                [[t[m] for m in range(models)] for t in tensors]
                for tensors in (self.params, self.exp_avg, self.exp_avg_sq)
            ]

    @torch.no_grad()
    def step(
        self,
        lo: int,
        hi: int,
        grads: Sequence[torch.Tensor],
        grad_views: Sequence[Sequence[torch.Tensor]] | None = None,
    ) -> None:
        """Update models ``lo..hi-1`` with their gradients (each [hi-lo, ...]).

        ``grad_views[i][j]``, when given, is ``grads[i][j]`` made once by a caller that
        reuses its gradient buffers (it saves building the views every step).
        """
        for m in range(lo, hi):
            self.steps[m] += 1
        if not self.fused:
            self._exact_step(lo, hi, grads)
            return
        if grad_views is None:
            grad_views = [list(g.contiguous().unbind(0)) for g in grads]  # kernel walks raw memory
        beta1, beta2 = ADAM_BETAS
        self._step_counts[lo:hi] += 1
        params, exp_avg, exp_avg_sq = self._views
        count = hi - lo
        with _one_thread(self.params[0].device):
            self._fused(lo, hi, count, grad_views, params, exp_avg, exp_avg_sq, beta1, beta2)

    def _fused(self, lo: int, hi: int, count: int, grad_views: Sequence[Sequence[torch.Tensor]],
               params: list[list[torch.Tensor]], exp_avg: list[list[torch.Tensor]],
               exp_avg_sq: list[list[torch.Tensor]], beta1: float, beta2: float) -> None:
        for wd, members in self._groups:
            torch._fused_adam_(
                [v for i in members for v in params[i][lo:hi]],
                [v for i in members for v in grad_views[i][:count]],
                [v for i in members for v in exp_avg[i][lo:hi]],
                [v for i in members for v in exp_avg_sq[i][lo:hi]],
                [],
                [v for _ in members for v in self._step_views[lo:hi]],
                amsgrad=False, lr=self.lr, beta1=beta1, beta2=beta2, weight_decay=wd,
                eps=ADAM_EPS, maximize=False,
            )

    def _exact_step(self, lo: int, hi: int, grads: Sequence[torch.Tensor]) -> None:
        beta1, beta2 = ADAM_BETAS
        counts = [float(t) for t in self.steps[lo:hi]]
        device = self.params[0].device
        neg_step_size = torch.tensor(
            [-(self.lr / (1 - beta1**t)) for t in counts], dtype=torch.float64, device=device
        )
        bc2_sqrt = torch.tensor(
            [(1 - beta2**t) ** 0.5 for t in counts], dtype=torch.float64, device=device
        )
        scalars: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}
        for param, grad, exp_avg, exp_avg_sq, wd in zip(
            self.params, grads, self.exp_avg, self.exp_avg_sq, self.weight_decays, strict=True
        ):
            p, m, v = param[lo:hi], exp_avg[lo:hi], exp_avg_sq[lo:hi]
            if wd != 0:
                grad = grad.add(p, alpha=wd)
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            if p.dtype not in scalars:  # PyTorch rounds its double scalars to the tensor's dtype
                scalars[p.dtype] = (neg_step_size.to(p.dtype), bc2_sqrt.to(p.dtype))
            step_size, bias_correction = scalars[p.dtype]
            shape = (hi - lo,) + (1,) * (p.dim() - 1)
            denom = (v.sqrt() / bias_correction.view(shape)).add_(ADAM_EPS)
            # addcdiv_ takes one scalar; (value · m) / denom is the same arithmetic per model.
            p.add_(step_size.view(shape) * m / denom)


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


def gather(values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``values[rows]`` for a [G, B] index, via ``index_select`` (many times faster on CPU)."""
    return values.index_select(0, rows.reshape(-1)).view(*rows.shape, *values.shape[1:])


def adam_options(device: torch.device) -> dict[str, bool]:
    """Options making a lone ``torch.optim.Adam`` match ``StackedAdam``'s default update."""
    return {"fused": True} if fused_adam_supported(device) else {"foreach": False}


def inference_rows(n: int, models: int, widest: int, budget_bytes: int = 32 << 20) -> int:
    """Records per inference chunk: a few [models, rows, widest] activations within the budget.

    Small chunks are faster, not only leaner: activations this size are served again from
    memory just freed, while fresh large allocations cost page faults on every call.
    """
    per_row = 4 * models * max(widest, 1) * 4
    return int(max(1, min(n, budget_bytes // per_row)))
