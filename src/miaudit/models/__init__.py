"""Model families for tabular cohorts, each with one capacity knob.

The audit compares how exposed patients are as a model gets more capacity, so every family
has a small set of knobs (``ModelSpec.capacity``) and a deterministic initialisation that
the training engine can reproduce model by model: ``init_parameters`` draws the weights of
one model from its own generator, in the order of ``named_parameters()``, so a plain
``nn.Module`` (``build_module(..., generator=g)``) and the engine's stacked weights start
from the same numbers.

Families
--------
``logistic``
    Ridge-regularised logistic (softmax) regression. ``l2`` is the ridge strength of the
    objective ``mean log-loss + l2/2 * ||w||^2`` (the intercept is not penalised), i.e.
    scikit-learn's ``C = 1 / (l2 * n)`` for ``n`` training records.
``mlp``
    ``depth`` hidden layers of ``width`` units (Linear → ReLU → dropout); ``depth=0`` is a
    linear model trained with Adam.
``tabresnet``
    A tabular ResNet (Gorishniy et al., 2021): a linear stem to ``width`` units, then
    ``blocks`` residual blocks ``x + Linear(dropout(ReLU(Linear(LayerNorm(x)))))`` and a
    LayerNorm → ReLU → Linear head. LayerNorm rather than BatchNorm keeps every record's
    output independent of the other records in its batch, so training and evaluation
    compute the same function and models trained side by side cannot couple.
``wrn``
    A WRN-style CNN for images [B, C, H, W]: three stages of ``blocks`` pre-activation
    residual blocks of ``width``, 2·``width`` and 4·``width`` channels, GroupNorm
    (see ``models/conv.py``). ``width`` defaults to 16 and ``blocks`` to 2, i.e. WRN-16-1.
``resnet1d``
    The same network with 1-D convolutions of ``kernel_size`` (default 7) for signals
    [B, L, T], leads as channels.

The conv families have no ``depth`` knob: their depth is ``blocks`` (residual blocks per
stage; WRN-d has blocks = (d - 4) / 6), so a ``depth`` other than the default is rejected
rather than silently ignored. ``kernel_size`` is ``resnet1d``'s alone (``wrn`` is 3×3).
Their modules take a record shape, (C, H, W) or (L, T), where the table families take a
feature count.

Neural families take their L2 penalty from ``TrainingSpec.weight_decay`` (the coupled
weight decay of ``torch.optim.Adam``, the gradient of ``weight_decay/2 * ||θ||^2``);
``ModelSpec.l2`` is the logistic family's ridge strength and is not used by them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from miaudit.config import CONV_FAMILIES, CONV_WIDTH, FAMILIES, ModelSpec

Shape = int | tuple[int, ...]

__all__ = [
    "CONV_FAMILIES",
    "CONV_WIDTH",
    "FAMILIES",
    "MLP",
    "LayerNorm",
    "ModelSpec",
    "SeededDropout",
    "TabResNet",
    "build_module",
    "count_parameters",
    "dropout_mask",
    "init_parameters",
    "is_conv",
    "parameter_shapes",
]


def is_conv(spec: ModelSpec) -> bool:
    """Whether ``spec`` is an image or signal family (records are shapes, not feature counts)."""
    return spec.family in CONV_FAMILIES


def dropout_mask(
    shape: tuple[int, ...],
    p: float,
    generator: torch.Generator | None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Inverted-dropout multipliers (0 or 1/(1-p)) drawn on the CPU from ``generator``.

    Drawing on the CPU from a per-model generator makes the masks identical whether a model
    trains alone or stacked with others, and on CPU or CUDA.
    """
    keep = torch.rand(shape, generator=generator) >= p
    return (keep.to(torch.float32) * (1.0 / (1.0 - p))).to(device)


class SeededDropout(nn.Module):
    """Dropout whose masks come from ``self.generator`` (the model's own stream).

    ``nn.Dropout`` draws from the global RNG, which would tie a model's masks to whatever
    else ran before it; the engine needs each model's masks to depend on its seed only.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * dropout_mask(tuple(x.shape), self.p, self.generator, x.device)


class LayerNorm(nn.Module):
    """LayerNorm written as ``layer_norm(x) * weight + bias``.

    The stacked engine cannot pass per-model affine parameters to ``F.layer_norm``, so the
    plain module computes the affine part with the same separate operations.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],)) * self.weight + self.bias


class MLP(nn.Module):
    """``depth`` × (Linear → ReLU → dropout), then a Linear head."""

    def __init__(self, in_features: int, num_classes: int, width: int, depth: int,
                 dropout: float) -> None:
        super().__init__()
        sizes = [in_features] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.drop = nn.ModuleList(SeededDropout(dropout) for _ in range(depth))
        self.head = nn.Linear(sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for linear, drop in zip(self.hidden, self.drop, strict=True):
            x = drop(F.relu(linear(x)))
        return self.head(x)


class _Block(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.norm = LayerNorm(width)
        self.linear1 = nn.Linear(width, width)
        self.drop = SeededDropout(dropout)
        self.linear2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear2(self.drop(F.relu(self.linear1(self.norm(x)))))


class TabResNet(nn.Module):
    """Linear stem, ``blocks`` pre-norm residual blocks, LayerNorm → ReLU → Linear head."""

    def __init__(self, in_features: int, num_classes: int, width: int, blocks: int,
                 dropout: float) -> None:
        super().__init__()
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList(_Block(width, dropout) for _ in range(blocks))
        self.norm = LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(F.relu(self.norm(x)))


def _check_sizes(in_features: int, num_classes: int) -> None:
    if in_features < 1:
        raise ValueError(f"in_features must be at least 1, got {in_features}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")


def _features(spec: ModelSpec, in_features: Shape) -> int:
    """The feature count of a table family, from an int or a one-element shape."""
    if isinstance(in_features, tuple | list):
        if len(in_features) != 1:
            raise ValueError(
                f"the {spec.family} family takes records of F features, got shape "
                f"{tuple(in_features)}; use a conv family (wrn, resnet1d) or flatten the records"
            )
        return int(in_features[0])
    return int(in_features)


def _record_shape(spec: ModelSpec, shape: Shape) -> tuple[int, ...]:
    if not isinstance(shape, tuple | list):
        layout = "channels, height, width" if spec.family == "wrn" else "leads, samples"
        raise ValueError(
            f"the {spec.family} family needs the record shape ({layout}), not a feature "
            f"count ({shape})"
        )
    return tuple(int(s) for s in shape)


def build_module(
    spec: ModelSpec,
    in_features: Shape,
    num_classes: int,
    *,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """One plain model of ``spec``'s family; with ``generator``, initialised by ``init_parameters``.

    ``in_features`` is the feature count for table families and the record shape, (C, H, W)
    or (L, T), for conv families. Without a generator the weights keep PyTorch's default
    initialisation (same distributions, drawn from the global RNG). Dropout layers draw from
    the global RNG unless their ``generator`` attribute is set.
    """
    if is_conv(spec):
        from miaudit.models.conv import build_conv  # conv.py builds on this module

        return build_conv(spec, _record_shape(spec, in_features), num_classes, generator=generator)
    in_features = _features(spec, in_features)
    _check_sizes(in_features, num_classes)
    module: nn.Module
    if spec.family == "logistic":
        module = nn.Linear(in_features, num_classes)
    elif spec.family == "mlp":
        module = MLP(in_features, num_classes, spec.width, spec.depth, spec.dropout)
    elif spec.family == "tabresnet":
        module = TabResNet(in_features, num_classes, spec.width, spec.blocks, spec.dropout)
    else:  # pragma: no cover - pydantic rejects other families
        raise ValueError(f"unknown family {spec.family!r}")
    if generator is not None:
        with torch.no_grad():
            values = init_parameters(spec, in_features, num_classes, generator)
            for (name, param), (_, value) in zip(module.named_parameters(), values, strict=True):
                if param.shape != value.shape:  # pragma: no cover - guards the layout
                    raise RuntimeError(f"init layout mismatch for {name}")
                param.copy_(value)
    return module


def _layers(spec: ModelSpec, in_features: int, num_classes: int) -> Iterator[tuple[str, str, int, int]]:
    """(name, kind, fan_in, fan_out) of every layer, in ``named_parameters`` order."""
    if spec.family == "logistic":
        yield "", "linear", in_features, num_classes
    elif spec.family == "mlp":
        sizes = [in_features] + [spec.width] * spec.depth
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            yield f"hidden.{i}.", "linear", a, b
        yield "head.", "linear", sizes[-1], num_classes
    else:
        w = spec.width
        yield "stem.", "linear", in_features, w
        for i in range(spec.blocks):
            yield f"blocks.{i}.norm.", "norm", w, w
            yield f"blocks.{i}.linear1.", "linear", w, w
            yield f"blocks.{i}.linear2.", "linear", w, w
        yield "norm.", "norm", w, w
        yield "head.", "linear", w, num_classes


def parameter_shapes(spec: ModelSpec, in_features: Shape, num_classes: int) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of one model's parameters, in ``named_parameters`` order."""
    if is_conv(spec):
        with torch.device("meta"):
            module = build_module(spec, in_features, num_classes)
        return [(name, tuple(p.shape)) for name, p in module.named_parameters()]
    in_features = _features(spec, in_features)
    _check_sizes(in_features, num_classes)
    shapes: list[tuple[str, tuple[int, ...]]] = []
    for prefix, kind, fan_in, fan_out in _layers(spec, in_features, num_classes):
        if kind == "linear":
            shapes += [(prefix + "weight", (fan_out, fan_in)), (prefix + "bias", (fan_out,))]
        else:
            shapes += [(prefix + "weight", (fan_out,)), (prefix + "bias", (fan_out,))]
    return shapes


def init_parameters(
    spec: ModelSpec, in_features: Shape, num_classes: int, generator: torch.Generator
) -> list[tuple[str, torch.Tensor]]:
    """One model's initial parameters drawn from ``generator`` (CPU, float32).

    Linear layers follow PyTorch's default: weight and bias uniform in ±1/sqrt(fan_in)
    (kaiming-uniform with a=sqrt(5)); LayerNorm starts at weight 1, bias 0. Conv families
    (``in_features`` a record shape) draw the same way in their own layer order.
    """
    if is_conv(spec):
        module = build_module(spec, in_features, num_classes, generator=generator)
        return [(name, p.detach()) for name, p in module.named_parameters()]
    in_features = _features(spec, in_features)
    values: list[tuple[str, torch.Tensor]] = []
    for prefix, kind, fan_in, fan_out in _layers(spec, in_features, num_classes):
        if kind == "linear":
            bound = 1.0 / math.sqrt(fan_in)
            weight = torch.rand((fan_out, fan_in), generator=generator) * (2 * bound) - bound
            bias = torch.rand((fan_out,), generator=generator) * (2 * bound) - bound
        else:
            weight, bias = torch.ones(fan_out), torch.zeros(fan_out)
        values += [(prefix + "weight", weight), (prefix + "bias", bias)]
    return values


def count_parameters(spec: ModelSpec, in_features: Shape, num_classes: int) -> int:
    """Number of trainable parameters of one model (a capacity measure for reports).

    ``in_features``: the feature count (tables) or the record shape (C, H, W) / (L, T)
    (conv families, whose count depends on the channels C or leads L only).
    """
    return sum(math.prod(shape) for _, shape in parameter_shapes(spec, in_features, num_classes))
