"""Reference models from the user's PyTorch module (``[model] module``) or training function.

A module factory is called as ``factory(input_shape, num_classes, **params)`` and must
return a fresh ``nn.Module`` mapping a batch [B, ...] to logits [B, K]. The engine trains it
with ``[training]`` (Adam, cross-entropy): all models of a group at once by ``torch.func``
(``training.vmap.train_vmap``), or one after another when the module tracks BatchNorm
running statistics, which vmapped training cannot update. Both give a model exactly what
training it alone gives. A training function (``[model] train_fn``) is the user's own loop,
called as ``fn(inputs, labels, keep, models, seed, **params)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from miaudit.config import TrainingSpec
from miaudit.errors import InputError
from miaudit.recipes.user_code import resolve
from miaudit.seeding import STREAM_INIT, STREAM_ORDER, model_seed
from miaudit.training.devices import cpu_threads, select_device
from miaudit.training.optim import module_optimizer
from miaudit.training.vmap import train_vmap

__all__ = ["module_factory", "train_function", "train_module", "train_module_alone"]

View = Callable[[torch.Tensor], torch.Tensor]


def module_factory(path: str, params: dict[str, Any], input_shape: tuple[int, ...],
                   num_classes: int) -> Callable[[], nn.Module]:
    """A zero-argument factory of the user's module (what the engine instantiates per model)."""
    build = resolve(path, "model.module")
    if not callable(build):
        raise InputError(f"model.module = {path!r}: names a {type(build).__name__}, not a function")

    def factory() -> nn.Module:
        try:
            return build(input_shape, num_classes, **params)
        except TypeError as err:
            raise InputError(
                f"model.module = {path!r}: calling it as build(input_shape={input_shape}, "
                f"num_classes={num_classes}, **{params}) failed: {err}; give it that signature "
                "and put its own settings in [model.params]"
            ) from None

    return factory


def _tracks_batch_stats(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
               for m in module.modules())


def train_module_alone(factory: Callable[[], nn.Module], training: TrainingSpec,
                       inputs: np.ndarray, labels: np.ndarray, keep: np.ndarray,
                       models: Sequence[int], seed: int, *, device: str | None = None,
                       views: Sequence[View] | None = None) -> np.ndarray:
    """One model at a time: the plain loop (any module, BatchNorm included); [G, N, V, K]."""
    target = select_device(device)
    x, y = torch.from_numpy(np.ascontiguousarray(inputs)), torch.from_numpy(labels)
    transforms = list(views) if views else [None]
    out = []
    with cpu_threads():
        for row, model in enumerate(models):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(model_seed(seed, model, STREAM_INIT))
                module = factory().to(target)
            records = torch.from_numpy(np.flatnonzero(keep[row]))
            optimizer = module_optimizer(
                training, [(list(module.parameters()), training.weight_decay)], len(records), target
            )
            order = torch.Generator().manual_seed(model_seed(seed, model, STREAM_ORDER))
            module.train()
            for _ in range(training.epochs):
                shuffled = records[torch.randperm(len(records), generator=order)]
                for start in range(0, len(shuffled), training.batch_size):
                    batch = shuffled[start : start + training.batch_size]
                    if len(batch) < 2 and _tracks_batch_stats(module):
                        continue  # BatchNorm cannot normalise a batch of one record
                    loss = F.cross_entropy(module(x[batch].to(target)), y[batch].to(target))
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            optimizer.finish()
            module.eval()
            with torch.no_grad():
                per_view = [module((x if t is None else t(x)).to(target)).float().cpu().numpy()
                            for t in transforms]
            out.append(np.stack(per_view, axis=1))
    return np.stack(out).astype(np.float32)


def train_module(path: str, params: dict[str, Any], training: TrainingSpec,
                 inputs: np.ndarray, labels: np.ndarray, keep: np.ndarray,
                 models: Sequence[int], seed: int, *, device: str | None = None,
                 views: Sequence[View] | None = None) -> np.ndarray:
    """Train the user's module for each model; vectorised when the module allows it."""
    if labels.ndim != 1:
        raise InputError(
            "model.module: the cohort is multi-label; a module recipe trains with "
            "cross-entropy over one label per record — use the built-in family for this cohort"
        )
    num_classes = int(labels.max()) + 1
    factory = module_factory(path, params, tuple(int(d) for d in inputs.shape[1:]), num_classes)
    probe = build_user_module_safely(factory)
    if _tracks_batch_stats(probe):
        return train_module_alone(factory, training, inputs, labels, keep, models, seed,
                                  device=device, views=views)
    return train_vmap(factory, training, inputs, labels, keep, list(models), seed,
                      device=device, views=views, num_classes=num_classes)


def build_user_module_safely(factory: Callable[[], nn.Module]) -> nn.Module:
    """One instance, to see what the module is (BatchNorm or not) before training."""
    module = factory()
    if not isinstance(module, nn.Module):
        raise InputError(
            f"model.module: the factory returned a {type(module).__name__}, not a torch.nn.Module"
        )
    return module


def train_function(path: str, params: dict[str, Any], inputs: np.ndarray | pd.DataFrame,
                   labels: np.ndarray, keep: np.ndarray, models: Sequence[int], seed: int,
                   views: int = 1) -> np.ndarray:
    """Call the user's training function and check what it returns; logits [G, N, V, K]."""
    fn = resolve(path, "model.train_fn")
    if not callable(fn):
        raise InputError(f"model.train_fn = {path!r}: names a {type(fn).__name__}, not a function")
    num_classes = int(labels.shape[1]) if labels.ndim == 2 else int(labels.max()) + 1
    try:
        z = fn(inputs, labels, np.array(keep, dtype=bool), [int(m) for m in models], seed, **params)
    except InputError:
        raise
    except Exception as err:
        raise InputError(
            f"model.train_fn = {path!r} failed for models {int(models[0])}–{int(models[-1])}: "
            f"{type(err).__name__}: {err}"
        ) from None
    z = np.asarray(z.detach().cpu() if isinstance(z, torch.Tensor) else z)
    if z.ndim == 3:
        z = z[:, :, None, :]
    n = len(labels)
    if z.shape != (len(models), n, views, num_classes):
        raise InputError(
            f"model.train_fn = {path!r}: returned shape {list(z.shape)}; expected "
            f"[{len(models)}, {n}, {num_classes}] (models, records, classes)"
            + ("" if views == 1 else f" or [{len(models)}, {n}, {views}, {num_classes}]")
        )
    if not np.issubdtype(z.dtype, np.number) or not np.isfinite(z).all():
        raise InputError(f"model.train_fn = {path!r}: returned NaN, infinite or non-numeric logits")
    return z.astype(np.float32)
