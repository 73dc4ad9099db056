"""Group training for any user ``nn.Module`` with torch.func (functional_call + vmap + grad).

The user's module is instantiated once per model (its initialisation drawn from the global
RNG, forked and seeded from the model's init stream), the instances are stacked, and one
vmapped gradient call per step trains the whole group. Models whose batches have the same
size at a step form a contiguous range (see ``Schedule``), so each model's gradient is
computed on exactly its own batch, as it would be alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from miaudit.config import TrainingSpec
from miaudit.errors import InputError
from miaudit.training.batches import Schedule, gather, inference_rows
from miaudit.training.data import TrainingData, check_inputs
from miaudit.training.devices import cpu_threads, default_max_models, select_device
from miaudit.training.optim import make_optimizer, total_steps
from miaudit.training.seeds import STREAM_INIT, STREAM_ORDER, model_generator, model_seed
from miaudit.training.stacked import NAIVE_BMM_LIMIT

__all__ = ["build_user_module", "train_vmap"]


def build_user_module(module_factory: Callable[[], nn.Module], seed: int, model: int) -> nn.Module:
    """The module of the model with global index ``model``, initialised from its own seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(model_seed(seed, model, STREAM_INIT))
        module = module_factory()
    if not isinstance(module, nn.Module):
        raise InputError(
            f"module_factory: expected it to return a torch.nn.Module, got {type(module).__name__}"
        )
    for name, sub in module.named_modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.track_running_stats:
            raise InputError(
                f"module_factory: layer {name or type(module).__name__!r} is a BatchNorm that tracks "
                "running statistics, which vmapped training cannot update; build it with "
                "track_running_stats=False, or use GroupNorm/LayerNorm"
            )
    return module


def train_vmap(
    module_factory: Callable[[], nn.Module],
    training: TrainingSpec,
    inputs: np.ndarray,
    labels: np.ndarray,
    keep: np.ndarray,
    model_index: Sequence[int],
    seed: int,
    *,
    device: str | None = None,
    views: Sequence[Callable[[torch.Tensor], torch.Tensor]] | None = None,
    num_classes: int | None = None,
    max_models: int | None = None,
    randomness: str = "different",
) -> np.ndarray:
    """Train G copies of a user module, each on its own IN records; logits [G, N, V, K].

    ``module_factory()`` must return a fresh module mapping a batch [B, ...] to logits [B, K].
    Each model's initialisation and batch order depend only on (seed, its global index),
    so a deterministic module gets the same result in any group, bit for bit the result of
    training it alone with ``torch.optim.Adam(**adam_options(device))``. Random layers (nn.Dropout) draw from the
    global RNG under vmap (``randomness``), so with them results depend on the grouping.
    ``views`` are deterministic query transforms applied to the inputs at inference.
    """
    data = check_inputs(inputs, labels, keep, model_index, seed, num_classes, table=False)
    if training.optimizer not in ("adam", "sgd"):  # pragma: no cover - the spec admits these
        raise InputError(f"training.optimizer: {training.optimizer!r} is not supported")
    target = select_device(device)
    with cpu_threads():
        params, buffers, base, schedule = _train(
            module_factory, training, data, target, max_models, randomness
        )
        logits = _predict(base, params, buffers, torch.from_numpy(data.inputs).to(target), views, max_models)
    if logits.shape[-1] != data.num_classes:
        raise InputError(
            f"module_factory: the module outputs {logits.shape[-1]} logits per record but the labels "
            f"have {data.num_classes} classes; make its last layer output {data.num_classes}"
        )
    out = np.empty_like(logits.numpy())
    out[schedule.order] = logits.numpy()
    return out


def _train(
    module_factory: Callable[[], nn.Module],
    training: TrainingSpec,
    data: TrainingData,
    device: torch.device,
    max_models: int | None,
    randomness: str,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], nn.Module, Schedule]:
    schedule = Schedule(data.keep.sum(axis=1), training.batch_size)
    order = [int(p) for p in schedule.order]
    models = [data.model_index[p] for p in order]
    records = [data.records(p) for p in order]
    order_gens = [model_generator(data.seed, m, STREAM_ORDER) for m in models]
    modules = [build_user_module(module_factory, data.seed, m).to(device) for m in models]
    stacked, buffers = stack_module_state(modules)
    params = {k: v.detach() for k, v in stacked.items()}
    buffers = {k: v.detach() for k, v in buffers.items()}
    base = copy.deepcopy(modules[0]).to("meta")
    base.train()
    names = list(params)
    adam = make_optimizer(training, [params[k] for k in names], [training.weight_decay] * len(names),
                          total_steps(schedule.counts, training.batch_size, training.epochs))

    def loss(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor,
             y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

    gradients = vmap(grad(loss), randomness=randomness)
    lone = grad(loss)
    linears = [m.in_features * m.out_features for m in base.modules() if isinstance(m, nn.Linear)]
    smallest = min(linears, default=NAIVE_BMM_LIMIT)
    inputs = torch.from_numpy(data.inputs).to(device)
    labels = torch.from_numpy(data.labels).to(device)
    batch = training.batch_size
    limit = max_models or default_max_models(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(model_seed(data.seed, models[0], STREAM_ORDER))
        for _ in range(training.epochs):
            indices = schedule.epoch_indices(records, order_gens).to(device)
            for step in range(schedule.steps_per_epoch):
                for lo, hi, size in schedule.chunks(step, limit):
                    rows = indices[lo:hi, step * batch : step * batch + size]
                    if size * smallest < NAIVE_BMM_LIMIT:
                        # Tiny batches would take ATen's naive bmm loop under vmap; a lone
                        # model's BLAS matmul rounds differently, so go model by model.
                        parts = [
                            lone({k: v[j] for k, v in params.items()},
                                 {k: v[j] for k, v in buffers.items()},
                                 gather(inputs, rows[j - lo]), gather(labels, rows[j - lo]))
                            for j in range(lo, hi)
                        ]
                        adam.step(lo, hi, [torch.stack([g[k] for g in parts]) for k in names])
                        continue
                    g = gradients(
                        {k: v[lo:hi] for k, v in params.items()},
                        {k: v[lo:hi] for k, v in buffers.items()},
                        gather(inputs, rows),
                        gather(labels, rows),
                    )
                    adam.step(lo, hi, [g[k] for k in names])
    adam.finish()
    return params, buffers, base, schedule


@torch.no_grad()
def _predict(
    base: nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    views: Sequence[Callable[[torch.Tensor], torch.Tensor]] | None,
    max_models: int | None,
) -> torch.Tensor:
    base.eval()
    models = next(iter(params.values())).shape[0]
    group = min(models, max_models or default_max_models(inputs.device))
    n = inputs.shape[0]
    transforms = list(views) if views else [None]
    rows = inference_rows(n, group, int(np.prod(inputs.shape[1:])))

    def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    batched = vmap(forward, in_dims=(0, 0, None))
    out: torch.Tensor | None = None
    for lo in range(0, models, group):
        hi = min(models, lo + group)
        p = {k: v[lo:hi] for k, v in params.items()}
        b = {k: v[lo:hi] for k, v in buffers.items()}
        for start in range(0, n, rows):
            chunk = inputs[start : start + rows]
            for v, transform in enumerate(transforms):
                logits = batched(p, b, chunk if transform is None else transform(chunk))
                if logits.dim() != 3:
                    raise InputError(
                        f"module_factory: the module must map a batch [B, ...] to logits [B, K], "
                        f"got output shape {tuple(logits.shape[1:])}"
                    )
                if out is None:
                    out = torch.empty((models, n, len(transforms), logits.shape[-1]), dtype=torch.float32)
                out[lo:hi, start : start + rows, v] = logits.float().cpu()
    assert out is not None
    return out
