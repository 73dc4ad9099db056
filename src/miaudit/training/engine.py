"""Train a group of reference models, each on its own records, and score every record.

``train_group`` is the fast path: binary logistic regression by batched Newton, every
other table family by stacked weights (see ``stacked.py``), the conv families (``wrn``,
``resnet1d``) by ``conv.py`` (models one after another on CPU, vmapped together on CUDA).
``train_sequential`` is the slow, obvious reference the fast path is tested and benchmarked
against: one plain ``nn.Module`` at a time with ``torch.optim.Adam`` (scikit-learn for
binary logistic). Both take and return numpy arrays; torch stays inside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from miaudit.config import TrainingSpec
from miaudit.errors import InputError
from miaudit.models import ModelSpec, SeededDropout, build_module, is_conv
from miaudit.training.batches import inference_rows
from miaudit.training.conv import train_conv
from miaudit.training.data import TrainingData, check_inputs
from miaudit.training.devices import cpu_threads, default_max_models, select_device
from miaudit.training.newton import fit_logistic_newton, logits_from_coef
from miaudit.training.optim import module_optimizer
from miaudit.training.seeds import STREAM_DROPOUT, STREAM_INIT, STREAM_ORDER, model_generator
from miaudit.training.stacked import predict_stacked, train_stacked

__all__ = ["default_max_models", "train_group", "train_sequential"]

View = Callable[[torch.Tensor], torch.Tensor]


def _check_recipe(model: ModelSpec, training: TrainingSpec, data: TrainingData) -> None:
    if training.optimizer not in ("adam", "sgd"):  # pragma: no cover - the spec admits these
        raise InputError(f"training.optimizer: {training.optimizer!r} is not supported")
    if model.family == "logistic" and training.weight_decay != 0.0:
        raise InputError(
            "training.weight_decay: not used by the logistic family, whose penalty is the ridge "
            "strength model.l2; set model.l2 instead and leave weight_decay at 0"
        )


def _is_newton(model: ModelSpec, data: TrainingData) -> bool:
    return model.family == "logistic" and data.num_classes == 2


def train_group(
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
) -> np.ndarray:
    """Train G models at once, model g on the records where ``keep[g]``; logits [G, N, V, K].

    inputs [N, F] float, labels [N] int in 0..K-1, keep [G, N] bool, model_index [G] the
    models' global indices (they seed each model's init, batch order and dropout, so a
    model's result does not depend on G or on the grouping). ``views`` are query
    transforms applied at inference (V = len(views), else 1). ``num_classes`` defaults to
    max(label) + 1. ``max_models`` caps how many models share one batched matmul.
    Binary logistic regression is solved to convergence by batched Newton (logits [0, z]);
    every other table family trains with stacked weights and Adam.

    Conv families (``wrn``: inputs [N, C, H, W]; ``resnet1d``: [N, L, T]) go to
    ``train_conv``: labels may also be [N, K] 0/1 multi-label targets, the views also
    drive training augmentation, and ``grouped`` (None: on CUDA only) picks vmapped group
    training over models one after another. For table families ``grouped=False`` runs
    ``train_sequential``; None or True the stacked path.
    """
    if is_conv(model):
        return train_conv(model, training, inputs, labels, keep, model_index, seed,
                          device=device, views=views, num_classes=num_classes,
                          max_models=max_models, grouped=grouped)
    if grouped is False:
        return train_sequential(model, training, inputs, labels, keep, model_index, seed,
                                device=device, views=views, num_classes=num_classes)
    data = check_inputs(inputs, labels, keep, model_index, seed, num_classes, table=True)
    _check_recipe(model, training, data)
    target = select_device(device)
    with cpu_threads():
        if _is_newton(model, data):
            return _newton_group(model, data, target, views)
        limit = max_models or default_max_models(target)
        params, schedule = train_stacked(model, training, data, target, max_models=limit)
        x = torch.from_numpy(data.inputs).to(target)
        logits = predict_stacked(model, params, x, list(views) if views else None, max_models=limit)
    out = np.empty_like(logits.numpy())
    out[schedule.order] = logits.numpy()
    return out


def _newton_group(model: ModelSpec, data: TrainingData, device: torch.device,
                  views: Sequence[View] | None) -> np.ndarray:
    coef, intercept, _ = fit_logistic_newton(
        torch.from_numpy(data.inputs).to(device),
        torch.from_numpy(data.labels).to(device),
        torch.from_numpy(data.keep).to(device),
        model.l2,
    )
    coef_np, intercept_np = coef.cpu().numpy(), intercept.cpu().numpy()
    return _apply_views(data.inputs, views, lambda x: logits_from_coef(x, coef_np, intercept_np))


def _apply_views(inputs: np.ndarray, views: Sequence[View] | None,
                 score: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Score each view of the inputs ([G, N, 1, K] each) and stack them along V."""
    if not views:
        return score(inputs)
    parts = [score(view(torch.from_numpy(inputs)).numpy()) for view in views]
    return np.concatenate(parts, axis=2)


def train_sequential(
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
) -> np.ndarray:
    """The slow, obvious reference: train each model alone; same arguments and output as ``train_group``.

    Each model is a plain module from ``build_module`` (initialised from its own seed),
    trained by a plain loop over shuffled batches with ``torch.optim.Adam`` (fused where
    supported, the kernel the engine uses); binary
    logistic regression is fitted by scikit-learn with the same objective. Conv families
    run ``train_conv(..., grouped=False)``.
    """
    if is_conv(model):
        return train_conv(model, training, inputs, labels, keep, model_index, seed,
                          device=device, views=views, num_classes=num_classes, grouped=False)
    data = check_inputs(inputs, labels, keep, model_index, seed, num_classes, table=True)
    _check_recipe(model, training, data)
    target = select_device(device)
    parts = []
    with cpu_threads():
        for position in range(len(data.model_index)):
            if _is_newton(model, data):
                parts.append(_sklearn_one(model, data, position, views))
            else:
                parts.append(_torch_one(model, training, data, position, target, views))
    return np.concatenate(parts, axis=0)


def _sklearn_one(model: ModelSpec, data: TrainingData, position: int,
                 views: Sequence[View] | None) -> np.ndarray:
    rows = data.keep[position]
    x, y = data.inputs[rows].astype(np.float64), data.labels[rows]
    if model.l2 > 0:
        fit = LogisticRegression(C=1.0 / (model.l2 * rows.sum()), solver="lbfgs", tol=1e-10,
                                 max_iter=10_000)
    else:
        fit = LogisticRegression(penalty=None, solver="lbfgs", tol=1e-10, max_iter=10_000)
    if np.unique(y).size < 2:
        raise InputError(
            f"keep: model {data.model_index[position]} has IN records of one class only; "
            "scikit-learn cannot fit it (train_group's Newton solver can)"
        )
    fit.fit(x, y)
    coef, intercept = fit.coef_.astype(np.float64), fit.intercept_.astype(np.float64)
    return _apply_views(data.inputs, views, lambda z: logits_from_coef(z, coef, intercept))


def _torch_one(model: ModelSpec, training: TrainingSpec, data: TrainingData, position: int,
               device: torch.device, views: Sequence[View] | None) -> np.ndarray:
    index = data.model_index[position]
    in_features = data.inputs.shape[1]
    module = build_module(model, in_features, data.num_classes,
                          generator=model_generator(data.seed, index, STREAM_INIT)).to(device)
    drop = model_generator(data.seed, index, STREAM_DROPOUT)
    for layer in module.modules():
        if isinstance(layer, SeededDropout):
            layer.generator = drop
    if model.family == "logistic":
        groups = [([module.weight], model.l2), ([module.bias], 0.0)]
    else:
        groups = [(list(module.parameters()), training.weight_decay)]
    records = data.records(position)
    optimizer = module_optimizer(training, groups, records.numel(), device)

    order = model_generator(data.seed, index, STREAM_ORDER)
    inputs = torch.from_numpy(data.inputs).to(device)
    labels = torch.from_numpy(data.labels).to(device)
    module.train()
    for _ in range(training.epochs):
        shuffled = records[torch.randperm(records.numel(), generator=order)].to(device)
        for start in range(0, shuffled.numel(), training.batch_size):
            batch = shuffled[start : start + training.batch_size]
            loss = F.cross_entropy(module(inputs[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    optimizer.finish()

    module.eval()
    transforms = list(views) if views else [None]
    n = inputs.shape[0]
    out = np.empty((1, n, len(transforms), data.num_classes), dtype=np.float32)
    rows = inference_rows(n, 1, max(model.width, in_features))
    with torch.no_grad():
        for start in range(0, n, rows):
            chunk = inputs[start : start + rows]
            for v, transform in enumerate(transforms):
                x = chunk if transform is None else transform(chunk)
                out[0, start : start + rows, v] = module(x).float().cpu().numpy()
    return out
