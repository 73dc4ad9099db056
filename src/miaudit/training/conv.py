"""Training and scoring of the conv families (``wrn`` images, ``resnet1d`` signals).

Two paths train a group of models, each on exactly its own IN records:

* sequential (the CPU default): one plain ``nn.Module`` after another with
  ``torch.optim.Adam(**adam_options(device))``. Small CNNs gain nothing from being batched
  together on a CPU (``bench/bench_images.py``), and this is the path a reader can check.
* grouped (the CUDA default): the group's parameters stacked with torch.func
  (``stack_module_state``), one ``vmap(grad(loss))`` per step, where vmap turns every
  convolution into one grouped convolution over the models, and ``StackedAdam``. On CUDA
  the forward and backward run under bf16 autocast while the master weights, the Adam
  state and the update stay float32.

Both paths consume every model's random streams identically, so each model's result
depends on (seed, its global index) only, never on the group it trains in. Per model:

* init: ``build_module(spec, shape, K, generator=model_generator(seed, m, STREAM_INIT))``;
* each epoch: one ``torch.randperm(n_in, generator=order)`` over its IN records
  (``STREAM_ORDER``), then batches of ``batch_size`` in that order, the last one short;
* each batch, when there are V > 1 views: ``torch.randint(V, (batch,), generator=augment)``
  (``STREAM_AUGMENT``) picks the view each record is trained under (a single view is
  applied to every record and draws nothing);
* each batch with dropout: one mask per residual block, in block order, from
  ``STREAM_DROPOUT`` (``dropout_mask`` of the block's activation shape).

Loss: cross-entropy for [N] class labels; binary cross-entropy with logits (mean over
records and labels) for [N, K] multi-hot labels, with K outputs.

Scoring writes float32 logits [G, N, V, K] into one preallocated array, record chunk by
record chunk and view by view, so memory stays bounded by the chunk: the [N, V, C, H, W]
tensor of all views is never formed. Chunks are sized from a byte budget (fewer rows for
wider activations). Scoring always runs in float32, also on CUDA: the membership signal
sits in the last digits of confident logits, which bf16's 8-bit mantissa would round away.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from miaudit.cohort import float_inputs
from miaudit.config import TrainingSpec
from miaudit.errors import InputError
from miaudit.models import ModelSpec, SeededDropout, build_module, dropout_mask, is_conv
from miaudit.models.conv import activation_elements, block_shapes
from miaudit.training.batches import Schedule, gather, inference_rows
from miaudit.training.data import TrainingData, check_inputs
from miaudit.training.devices import cpu_threads, default_max_models, select_device
from miaudit.training.optim import make_optimizer, module_optimizer, total_steps
from miaudit.training.seeds import (
    STREAM_AUGMENT,
    STREAM_DROPOUT,
    STREAM_INIT,
    STREAM_ORDER,
    model_generator,
)

__all__ = [
    "SCORE_BUDGET_CPU",
    "SCORE_BUDGET_CUDA",
    "apply_views",
    "draw_views",
    "score_modules",
    "score_rows",
    "train_conv",
]

View = Callable[[torch.Tensor], torch.Tensor]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Bytes of activations one scoring chunk may take: small on CPU, where chunks served from
#: recently freed memory are fastest; large on CUDA, where big batches fill the device.
#: Intra-op threads of the CPU path. Small convolutions open many short parallel regions;
#: when another process holds a core each region waits a scheduler time slice for its
#: second thread (measured on a shared 2-core machine: two WRN models in 1.5-3 s with one
#: thread, 22-60 s with two). Parallelism across models comes from executors instead.
CPU_THREADS = 1
SCORE_BUDGET_CPU = 32 << 20
SCORE_BUDGET_CUDA = 4 << 30


def draw_views(count: int, generator: torch.Generator, batch: int) -> torch.Tensor | None:
    """The view index of each record of one batch (CPU int64), or None for a single view."""
    if count <= 1:
        return None
    return torch.randint(count, (batch,), generator=generator)


def apply_views(x: torch.Tensor, views: Sequence[View], choice: torch.Tensor | None) -> torch.Tensor:
    """Record ``i`` of the batch ``x`` under view ``choice[i]`` (every record under views[0] if None)."""
    if choice is None:
        return views[0](x)
    out = torch.empty_like(x)
    for v, view in enumerate(views):
        rows = torch.nonzero(choice == v).squeeze(1)
        if rows.numel():
            rows = rows.to(x.device)
            out.index_copy_(0, rows, view(x.index_select(0, rows)))
    return out


def score_rows(spec: ModelSpec, shape: tuple[int, ...], models: int, device: torch.device,
               n: int) -> int:
    """Records per scoring chunk for ``models`` models at once, from the device's byte budget."""
    budget = SCORE_BUDGET_CUDA if device.type == "cuda" else SCORE_BUDGET_CPU
    return inference_rows(n, models, activation_elements(spec, shape), budget)


def _check_family_shape(model: ModelSpec, inputs: np.ndarray) -> None:
    want = {"wrn": 4, "resnet1d": 3}[model.family]
    if inputs.ndim != want:
        layout = ("images [N records, C channels, H, W]" if want == 4
                  else "signals [N records, L leads, T samples]")
        other = "resnet1d for signals" if want == 4 else "wrn for images"
        raise InputError(
            f"inputs: the {model.family} family expects {layout}, got shape {inputs.shape}; "
            f"use {other} or a table family (mlp, tabresnet, logistic) for tables"
        )


def unit(x: torch.Tensor) -> torch.Tensor:
    """A batch as float: uint8 pixels become value / 255 (float32 batches pass as they are)."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def _check_views(views: Sequence[View] | None, inputs: np.ndarray) -> list[View]:
    transforms = list(views or [])
    probe = unit(torch.from_numpy(np.array(inputs[:2])))
    for v, view in enumerate(transforms):
        if not callable(view):
            raise InputError(f"views[{v}]: expected a function batch → batch, got {type(view).__name__}")
        out = view(probe)
        if not isinstance(out, torch.Tensor) or out.shape != probe.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(
                f"views[{v}]: must map a batch to a batch of the same shape {tuple(probe.shape)}, "
                f"got {got}; build the views with miaudit.views.make_views"
            )
    return transforms


def _loss(multilabel: bool) -> Loss:
    if multilabel:
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits.float(), y)
    return lambda logits, y: F.cross_entropy(logits.float(), y)


def _autocast(device: torch.device, enabled: bool) -> torch.autocast:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def train_conv(
    model: ModelSpec,
    training: TrainingSpec,
    inputs: np.ndarray,
    labels: np.ndarray,
    keep: np.ndarray,
    model_index: Sequence[int],
    seed: int,
    *,
    device: str | None = None,
    views: Sequence[View] | None = None,
    num_classes: int | None = None,
    max_models: int | None = None,
    grouped: bool | None = None,
    mixed_precision: bool | None = None,
    rows: int | None = None,
) -> np.ndarray:
    """Train G conv models, model g on the records where ``keep[g]``; logits [G, N, V, K].

    inputs [N, C, H, W] (wrn; float32, or uint8 pixels read as value / 255) or [N, L, T]
    (resnet1d); labels [N] class indices or [N, K] 0/1 multi-label targets. ``views`` (V = len(views), else 1) are the query views: every
    record is scored under each, and with V > 1 each training record gets one drawn at
    random (see the module docstring for the draws). ``grouped`` (None: on CUDA only)
    trains the group as stacked parameters with vmap; ``mixed_precision`` (None: on CUDA
    only) trains under bf16 autocast; ``max_models`` caps the models per vmapped step;
    ``rows`` overrides the records per scoring chunk.
    """
    if not is_conv(model):
        raise InputError(f"model.family: {model.family!r} is a table family; train it with train_group")
    data = check_inputs(inputs, labels, keep, model_index, seed, num_classes, table=False,
                        multilabel=True)
    _check_family_shape(model, data.inputs)
    if rows is not None and rows < 1:
        raise InputError(f"rows: records per scoring chunk must be at least 1, got {rows}")
    target = select_device(device)
    transforms = _check_views(views, data.inputs)
    group = target.type == "cuda" if grouped is None else bool(grouped)
    mixed = target.type == "cuda" if mixed_precision is None else bool(mixed_precision)
    limit = max_models or default_max_models(target)
    out = np.empty((len(data.model_index), data.inputs.shape[0], max(1, len(transforms)),
                    data.num_classes), dtype=np.float32)
    with cpu_threads(CPU_THREADS):
        inputs_t = torch.from_numpy(data.inputs).to(target)
        labels_t = torch.from_numpy(data.labels.astype(np.float32) if data.multilabel
                                    else data.labels).to(target)
        if group:
            params, base = _train_grouped(model, training, data, target, transforms, mixed,
                                          limit, inputs_t, labels_t)
            _score_stacked(model, base, params, inputs_t, transforms, out, target, limit, rows)
        else:
            for position in range(len(data.model_index)):
                module = _train_one(model, training, data, position, target, transforms, mixed,
                                    inputs_t, labels_t)
                score = rows or score_rows(model, data.inputs.shape[1:], 1, target, len(inputs_t))
                _score_into(out[position : position + 1], lambda x, m=module: m(x).unsqueeze(0),
                            inputs_t, transforms, score)
    return out


def _train_one(model: ModelSpec, training: TrainingSpec, data: TrainingData, position: int,
               device: torch.device, views: list[View], mixed: bool, inputs: torch.Tensor,
               labels: torch.Tensor) -> nn.Module:
    """One plain module trained alone on its IN records (the reference the grouped path meets)."""
    index = data.model_index[position]
    module = build_module(model, data.inputs.shape[1:], data.num_classes,
                          generator=model_generator(data.seed, index, STREAM_INIT)).to(device)
    drop = model_generator(data.seed, index, STREAM_DROPOUT)
    for layer in module.modules():
        if isinstance(layer, SeededDropout):
            layer.generator = drop
    records = data.records(position)
    optimizer = module_optimizer(training, [(list(module.parameters()), training.weight_decay)],
                                 records.numel(), device)
    order = model_generator(data.seed, index, STREAM_ORDER)
    augment = model_generator(data.seed, index, STREAM_AUGMENT)
    loss_fn = _loss(data.multilabel)
    module.train()
    for _ in range(training.epochs):
        shuffled = records[torch.randperm(records.numel(), generator=order)]
        for start in range(0, shuffled.numel(), training.batch_size):
            batch = shuffled[start : start + training.batch_size].to(device)
            x = unit(inputs.index_select(0, batch))
            if views:
                x = apply_views(x, views, draw_views(len(views), augment, batch.numel()))
            with _autocast(device, mixed):
                loss = loss_fn(module(x), labels.index_select(0, batch))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    optimizer.finish()
    module.eval()
    return module


def _train_grouped(model: ModelSpec, training: TrainingSpec, data: TrainingData,
                   device: torch.device, views: list[View], mixed: bool, limit: int,
                   inputs: torch.Tensor, labels: torch.Tensor,
                   ) -> tuple[dict[str, torch.Tensor], nn.Module]:
    """Train the group as stacked parameters; returns them in group order and a meta module."""
    schedule = Schedule(data.keep.sum(axis=1), training.batch_size)
    order = [int(p) for p in schedule.order]
    models = [data.model_index[p] for p in order]
    records = [data.records(p) for p in order]
    order_gens = [model_generator(data.seed, m, STREAM_ORDER) for m in models]
    augment_gens = [model_generator(data.seed, m, STREAM_AUGMENT) for m in models]
    drop_gens = [model_generator(data.seed, m, STREAM_DROPOUT) for m in models]
    shape = tuple(data.inputs.shape[1:])
    modules = [build_module(model, shape, data.num_classes,
                            generator=model_generator(data.seed, m, STREAM_INIT)) for m in models]
    stacked, _ = stack_module_state(modules)
    params = {k: v.detach().to(device) for k, v in stacked.items()}
    base = copy.deepcopy(modules[0]).to("meta")
    del modules
    base.train()
    names = list(params)
    optimizer = make_optimizer(training, [params[k] for k in names], [training.weight_decay] * len(names),
                               total_steps(schedule.counts, training.batch_size, training.epochs))
    loss_fn = _loss(data.multilabel)
    masked = model.dropout > 0.0

    def loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             masks: list[torch.Tensor] | None) -> torch.Tensor:
        return loss_fn(functional_call(base, p, (x, masks)), y)

    gradients = vmap(grad(loss), in_dims=(0, 0, 0, 0 if masked else None))
    batch = training.batch_size
    for _ in range(training.epochs):
        indices = schedule.epoch_indices(records, order_gens).to(device)
        for step in range(schedule.steps_per_epoch):
            for lo, hi, size in schedule.chunks(step, limit):
                rows = indices[lo:hi, step * batch : step * batch + size]
                x = unit(gather(inputs, rows))
                if views:
                    drawn = [draw_views(len(views), augment_gens[j], size) for j in range(lo, hi)]
                    choice = None if drawn[0] is None else torch.cat(drawn)
                    x = apply_views(x.flatten(0, 1), views, choice).view(x.shape)
                masks = None
                if masked:
                    per_model = [
                        [dropout_mask(s, model.dropout, drop_gens[j])
                         for s in block_shapes(model, shape, size)]
                        for j in range(lo, hi)
                    ]
                    masks = [torch.stack(b).to(device) for b in zip(*per_model, strict=True)]
                with _autocast(device, mixed):
                    g = gradients({k: v[lo:hi] for k, v in params.items()}, x,
                                  gather(labels, rows), masks)
                optimizer.step(lo, hi, [g[k] for k in names])
    optimizer.finish()
    inverse = torch.from_numpy(np.argsort(schedule.order)).to(device)
    return {k: v.index_select(0, inverse) for k, v in params.items()}, base


@torch.no_grad()
def _score_into(out: np.ndarray, forward: Callable[[torch.Tensor], torch.Tensor],
                inputs: torch.Tensor, views: list[View], rows: int) -> None:
    """Write ``forward``'s logits [g, b, K] on every chunk and view into ``out`` [g, N, V, K]."""
    target = torch.from_numpy(out)
    transforms = views or [None]
    for start in range(0, inputs.shape[0], rows):
        chunk = unit(inputs[start : start + rows])
        for v, view in enumerate(transforms):
            logits = forward(chunk if view is None else view(chunk))
            target[:, start : start + chunk.shape[0], v] = logits.float().cpu()


def _score_stacked(model: ModelSpec, base: nn.Module, params: dict[str, torch.Tensor],
                   inputs: torch.Tensor, views: list[View], out: np.ndarray,
                   device: torch.device, limit: int, rows: int | None) -> None:
    """Score stacked models: vmapped over up to ``limit`` models on CUDA, one by one on CPU."""
    base.eval()
    models = next(iter(params.values())).shape[0]
    group = min(models, limit) if device.type == "cuda" else 1
    chunk = rows or score_rows(model, tuple(inputs.shape[1:]), group, device, inputs.shape[0])
    batched = vmap(lambda p, x: functional_call(base, p, (x,)), in_dims=(0, None))
    for lo in range(0, models, group):
        hi = min(models, lo + group)
        if group == 1:
            p = {k: v[lo] for k, v in params.items()}
            forward = lambda x, p=p: functional_call(base, p, (x,)).unsqueeze(0)  # noqa: E731
        else:
            p = {k: v[lo:hi] for k, v in params.items()}
            forward = lambda x, p=p: batched(p, x)  # noqa: E731
        _score_into(out[lo:hi], forward, inputs, views, chunk)


def score_modules(
    modules: Sequence[nn.Module],
    inputs: np.ndarray,
    views: Sequence[View] | None = None,
    *,
    device: str | None = None,
    rows: int | None = None,
) -> np.ndarray:
    """Logits [G, N, V, K] of trained modules (on ``device``) on every record and view.

    The engine's chunked scorer, for modules trained elsewhere: ``rows`` records per chunk
    (default 256), each chunk under every view in turn, in eval mode and float32.
    """
    target = select_device(device)
    array = float_inputs(inputs)
    transforms = _check_views(views, array)
    x = torch.from_numpy(array).to(target)
    chunk = int(max(1, min(len(x), rows or 256)))
    out: np.ndarray | None = None
    with cpu_threads(CPU_THREADS):
        for g, module in enumerate(modules):
            module.eval()
            if out is None:
                with torch.no_grad():
                    k = module(x[:1]).shape[-1]
                out = np.empty((len(modules), len(x), max(1, len(transforms)), k), np.float32)
            _score_into(out[g : g + 1], lambda b, m=module: m(b).unsqueeze(0), x, transforms, chunk)
    if out is None:
        raise InputError("modules: expected at least one trained module to score")
    return out
