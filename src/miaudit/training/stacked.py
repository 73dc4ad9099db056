"""Stacked training of the built-in families: G models as [G, ...] weight tensors.

Every layer of G models is one batched matmul (``torch.baddbmm``) over their own batches;
MLP gradients are written out by hand (``MLPStep``) into reused buffers, other families go
through one autograd pass over the group; ``StackedAdam`` then updates all models at once.
Weights keep ``nn.Linear``'s [out, in] layout per model, so the stacked forward and
backward perform, model by model, the same operations as a plain module: on CPU a stacked
model's logits equal those of the model trained alone by ``train_sequential``, bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from miaudit.config import TrainingSpec
from miaudit.models import ModelSpec, dropout_mask, init_parameters
from miaudit.training.batches import Schedule, gather, inference_rows
from miaudit.training.data import TrainingData
from miaudit.training.optim import make_optimizer, total_steps
from miaudit.training.seeds import STREAM_DROPOUT, STREAM_INIT, STREAM_ORDER, model_generator

__all__ = ["MLPStep", "dropout_widths", "predict_stacked", "stacked_forward", "train_stacked"]


# ATen computes a bmm whose rows × contraction × columns is below this with a plain loop
# instead of BLAS; its sums are rounded differently from the BLAS ``mm`` a lone model uses.
NAIVE_BMM_LIMIT = 400


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-model ``F.linear``: x [G, B, in], weight [G, out, in], bias [G, out]; or one model."""
    if weight.dim() == 2:
        return F.linear(x, weight, bias)
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def _norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    if weight.dim() == 1:
        return F.layer_norm(x, (x.shape[-1],)) * weight + bias
    return F.layer_norm(x, (x.shape[-1],)) * weight.unsqueeze(1) + bias.unsqueeze(1)


def is_tiny(params: list[torch.Tensor], rows: int) -> bool:
    """Whether some layer's matmul on ``rows`` records would take ATen's naive bmm loop."""
    smallest = min(p.shape[-1] * p.shape[-2] for p in params if p.dim() == 3)
    return rows * smallest < NAIVE_BMM_LIMIT


def dropout_widths(spec: ModelSpec) -> list[int]:
    """Widths of the dropout layers, in the order a forward pass draws their masks."""
    if spec.dropout == 0.0 or spec.family == "logistic":
        return []
    layers = spec.depth if spec.family == "mlp" else spec.blocks
    return [spec.width] * layers


def stacked_forward(
    spec: ModelSpec,
    params: list[torch.Tensor],
    x: torch.Tensor,
    masks: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Logits [G, B, K] of G stacked models on their batches x [G, B, F].

    ``params`` are the stacked parameters in ``named_parameters`` order; ``masks`` are the
    dropout multipliers ([G, B, width] each, training only). Batches so small that a
    batched matmul would leave BLAS run model by model, as a lone model would.
    """
    if params[0].dim() == 3 and is_tiny(params, x.shape[1]):
        return torch.stack([
            _forward(spec, [p[j] for p in params], x[j], [mk[j] for mk in masks or []])
            for j in range(x.shape[0])
        ])
    return _forward(spec, params, x, masks)


def _forward(
    spec: ModelSpec,
    params: list[torch.Tensor],
    x: torch.Tensor,
    masks: list[torch.Tensor] | None,
) -> torch.Tensor:
    drop = iter(masks or [])
    if spec.family in ("logistic", "mlp"):
        hidden = len(params) // 2 - 1
        for layer in range(hidden):
            x = torch.relu(_linear(x, params[2 * layer], params[2 * layer + 1]))
            if masks:
                x = x * next(drop)
        return _linear(x, params[-2], params[-1])
    x = _linear(x, params[0], params[1])
    for block in range(spec.blocks):
        nw, nb, w1, b1, w2, b2 = params[2 + 6 * block : 8 + 6 * block]
        h = torch.relu(_linear(_norm(x, nw, nb), w1, b1))
        if masks:
            h = h * next(drop)
        x = x + _linear(h, w2, b2)
    return _linear(torch.relu(_norm(x, params[-4], params[-3])), params[-2], params[-1])


class MLPStep:
    """Forward and backward of stacked MLPs (and softmax regression) written out by hand.

    The operations are the ones autograd runs for a plain ``MLP`` (addmm backward as
    batched matmuls, ``threshold_backward`` for ReLU, log-softmax backward for the loss),
    so each model's gradient is the one it would get alone; writing them out saves the
    autograd graph and lets full batches reuse the same activation and gradient buffers
    every step instead of allocating fresh memory.
    """

    def __init__(self, params: list[torch.Tensor], max_models: int, batch_size: int) -> None:
        self.params = params
        self.models = min(max_models, params[0].shape[0])
        self.batch_size = batch_size
        device = params[0].device
        self.grads = [torch.empty((self.models, *p.shape[1:]), device=device) for p in params]
        self.grad_views = [list(g.unbind(0)) for g in self.grads]
        self.widths = [w.shape[1] for w in params[0::2]]
        self._full = self._buffers(self.models, batch_size, device)

    def _buffers(self, models: int, batch: int, device: torch.device) -> dict[str, list[torch.Tensor]]:
        def make(count: int) -> list[torch.Tensor]:
            return [torch.empty((models, batch, w), device=device) for w in self.widths[:count]]

        hidden = len(self.widths) - 1
        return {"relu": make(hidden), "dropped": make(hidden), "delta": make(hidden),
                "logits": [torch.empty((models, batch, self.widths[-1]), device=device)]}

    @torch.no_grad()
    def __call__(self, lo: int, hi: int, x: torch.Tensor, y: torch.Tensor,
                 masks: list[torch.Tensor] | None) -> list[torch.Tensor]:
        """Gradients (views of reused buffers, [hi-lo, ...]) of models lo..hi-1 on their batches."""
        count, batch = hi - lo, x.shape[1]
        if batch == self.batch_size and count <= self.models:
            buffers = {k: [b[:count] for b in v] for k, v in self._full.items()}
        else:
            buffers = self._buffers(count, batch, x.device)
        weights = [w[lo:hi] for w in self.params[0::2]]
        biases = [b[lo:hi] for b in self.params[1::2]]
        hidden = len(weights) - 1
        inputs = [x]
        for layer in range(hidden):
            relu = torch.baddbmm(biases[layer].unsqueeze(1), inputs[-1], weights[layer].transpose(1, 2),
                                 out=buffers["relu"][layer]).relu_()
            inputs.append(torch.mul(relu, masks[layer], out=buffers["dropped"][layer]) if masks else relu)
        logits = torch.baddbmm(biases[-1].unsqueeze(1), inputs[-1], weights[-1].transpose(1, 2),
                               out=buffers["logits"][0])
        # d(sum of cross-entropies / batch) / d logits, as nll_loss and log_softmax backward do
        flat = logits.view(-1, logits.shape[-1])
        log_prob = torch.log_softmax(flat, 1)
        scale = (torch.ones(()) / batch).item()  # float32 1/batch, as autograd's DivBackward
        grad_log_prob = torch.zeros_like(log_prob).scatter_(1, y.reshape(-1, 1), -scale)
        delta = torch._log_softmax_backward_data(grad_log_prob, log_prob, 1, log_prob.dtype)
        delta = delta.view(logits.shape)
        grads = [g[:count] for g in self.grads]
        for layer in range(hidden, -1, -1):
            torch.bmm(delta.transpose(1, 2), inputs[layer], out=grads[2 * layer])
            torch.sum(delta, 1, out=grads[2 * layer + 1])
            if layer == 0:
                break
            upstream = torch.bmm(delta, weights[layer], out=buffers["delta"][layer - 1])
            if masks:
                upstream.mul_(masks[layer - 1])
            delta = torch.ops.aten.threshold_backward.grad_input(
                upstream, buffers["relu"][layer - 1], 0, grad_input=upstream)
        return grads


def init_stacked(
    spec: ModelSpec, in_features: int, num_classes: int, models: list[int], seed: int,
    device: torch.device,
) -> list[torch.Tensor]:
    """Stacked initial parameters of the models with global indices ``models``."""
    per_model = [
        [value for _, value in init_parameters(
            spec, in_features, num_classes, model_generator(seed, m, STREAM_INIT))]
        for m in models
    ]
    return [torch.stack(values).to(device) for values in zip(*per_model, strict=True)]


def train_stacked(
    spec: ModelSpec,
    training: TrainingSpec,
    data: TrainingData,
    device: torch.device,
    *,
    max_models: int,
) -> tuple[list[torch.Tensor], Schedule]:
    """Train the group; returns stacked parameters in the schedule's (size-sorted) order."""
    schedule = Schedule(data.keep.sum(axis=1), training.batch_size)
    order = [int(p) for p in schedule.order]
    models = [data.model_index[p] for p in order]
    records = [data.records(p) for p in order]
    order_gens = [model_generator(data.seed, m, STREAM_ORDER) for m in models]
    drop_gens = [model_generator(data.seed, m, STREAM_DROPOUT) for m in models]
    widths = dropout_widths(spec)

    params = init_stacked(spec, data.inputs.shape[1], data.num_classes, models, data.seed, device)
    if spec.family == "logistic":  # ridge on weights, not on the intercept
        decays = [spec.l2 if p.dim() == 3 else 0.0 for p in params]
    else:
        decays = [training.weight_decay] * len(params)
    adam = make_optimizer(training, params, decays,
                          total_steps(schedule.counts, training.batch_size, training.epochs))
    manual = MLPStep(params, max_models, training.batch_size) if spec.family != "tabresnet" else None

    inputs = torch.from_numpy(data.inputs).to(device)
    labels = torch.from_numpy(data.labels).to(device)
    batch = training.batch_size
    for _ in range(training.epochs):
        indices = schedule.epoch_indices(records, order_gens).to(device)
        for step in range(schedule.steps_per_epoch):
            for lo, hi, size in schedule.chunks(step, max_models):
                rows = indices[lo:hi, step * batch : step * batch + size]
                masks = None
                if widths:
                    drawn = [
                        [dropout_mask((size, w), spec.dropout, drop_gens[m]) for w in widths]
                        for m in range(lo, hi)
                    ]
                    masks = [torch.stack(layer).to(device) for layer in zip(*drawn, strict=True)]
                if manual is not None and not is_tiny(params, size):
                    grads = manual(lo, hi, gather(inputs, rows), gather(labels, rows), masks)
                    views = manual.grad_views if hi - lo <= manual.models else None
                    adam.step(lo, hi, grads, views)
                    continue
                leaves = [p[lo:hi].detach().requires_grad_() for p in params]
                logits = stacked_forward(spec, leaves, gather(inputs, rows), masks)
                loss = F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), gather(labels, rows).reshape(-1), reduction="sum"
                ) / size
                adam.step(lo, hi, torch.autograd.grad(loss, leaves))
    adam.finish()
    return params, schedule


@torch.no_grad()
def predict_stacked(
    spec: ModelSpec,
    params: list[torch.Tensor],
    inputs: torch.Tensor,
    views: list | None,
    *,
    max_models: int,
) -> torch.Tensor:
    """Logits [G, N, V, K] (CPU float32) of the stacked models on every record, in chunks."""
    models = params[0].shape[0]
    n = inputs.shape[0]
    num_classes = params[-1].shape[1]
    transforms = views or [None]
    out = torch.empty((models, n, len(transforms), num_classes), dtype=torch.float32)
    group = min(models, max_models)
    rows = inference_rows(n, group, max(spec.width, inputs.shape[1]))
    for lo in range(0, models, group):
        hi = min(models, lo + group)
        part = [p[lo:hi] for p in params]
        for start in range(0, n, rows):
            chunk = inputs[start : start + rows]
            for v, transform in enumerate(transforms):
                x = chunk if transform is None else transform(chunk)
                logits = stacked_forward(spec, part, x.unsqueeze(0).expand(hi - lo, *x.shape))
                out[lo:hi, start : start + rows, v] = logits.float().cpu()
    return out
