"""Convolutional families for images [B, C, H, W] and signals [B, L, T] (leads as channels).

``wrn`` is a wide-ResNet-style CNN (Zagoruyko & Komodakis, 2016) and ``resnet1d`` the same
network with 1-D convolutions for ECG-like signals:

    stem conv (k) → 3 stages of ``blocks`` pre-activation residual blocks, widths w, 2w, 4w,
    stride 2 at the first block of stages 2 and 3 → norm → ReLU → global average pool → linear

A block is ``norm → ReLU → conv(k, stride) → norm → ReLU → (dropout) → conv(k)`` plus the
input, projected by a 1×1 convolution (applied to the pre-activated input, as in WRN) when
the stride or the width changes. ``k`` is 3 for ``wrn`` and ``ModelSpec.kernel_size`` for
``resnet1d``. Convolutions carry no bias (a normalisation follows each one); the head does.

Normalisation is GroupNorm, never BatchNorm: a record's output must not depend on the other
records of its batch (training and scoring compute the same function of the record), models
trained side by side must not couple through shared batch statistics, running statistics
are buffers that vmapped training cannot update, and per-sample (DP) gradients need every
sample's loss to depend on that sample alone. Groups: the largest divisor of the channel
count that is at most 16 (16 for the default widths, which are multiples of 16).

Initialisation follows PyTorch's defaults, drawn from the model's own generator in
``named_parameters`` order: conv and linear weights (and the head's bias) uniform in
±1/sqrt(fan_in), fan_in = in_channels × kernel elements (kaiming-uniform with a = sqrt(5));
GroupNorm starts at weight 1, bias 0. So a model's initial weights depend on its seed only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from miaudit.models import SeededDropout

if TYPE_CHECKING:
    from miaudit.models import ModelSpec

__all__ = [
    "CONV_FAMILIES",
    "MAX_GROUPS",
    "ConvNet",
    "PreActBlock",
    "activation_elements",
    "block_shapes",
    "build_conv",
    "check_shape",
    "init_conv",
    "norm_groups",
    "stage_widths",
]

CONV_FAMILIES: tuple[str, ...] = ("wrn", "resnet1d")
MAX_GROUPS = 16
WRN_KERNEL = 3


def norm_groups(channels: int) -> int:
    """GroupNorm groups for ``channels``: the largest divisor of it that is at most 16."""
    return max(g for g in range(1, min(MAX_GROUPS, channels) + 1) if channels % g == 0)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(norm_groups(channels), channels)


class PreActBlock(nn.Module):
    """Pre-activation residual block; ``dims`` = 2 for images, 1 for signals."""

    def __init__(self, dims: int, cin: int, cout: int, stride: int, kernel: int,
                 dropout: float) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.norm1 = _norm(cin)
        self.conv1 = conv(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.norm2 = _norm(cout)
        self.drop = SeededDropout(dropout)
        self.conv2 = conv(cout, cout, kernel, stride=1, padding=kernel // 2, bias=False)
        self.shortcut = (
            conv(cin, cout, 1, stride=stride, bias=False) if stride != 1 or cin != cout else None
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        out = F.relu(self.norm1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        h = F.relu(self.norm2(self.conv1(out)))
        # The engine passes the mask (drawn outside vmap); a plain module draws its own.
        h = h * mask if mask is not None and self.training else self.drop(h)
        return self.conv2(h) + skip


def stage_widths(width: int) -> tuple[int, int, int]:
    """Channels of the three stages: w, 2w, 4w."""
    return (width, 2 * width, 4 * width)


class ConvNet(nn.Module):
    """The ``wrn`` (dims=2) and ``resnet1d`` (dims=1) network; see the module docstring.

    ``forward(x, masks)`` takes an optional list of dropout multipliers, one per block
    (shapes from ``block_shapes``), so the stacked engine can draw every model's masks from
    its own generator outside vmap; without it, blocks draw from ``SeededDropout``.
    """

    def __init__(self, dims: int, in_channels: int, num_classes: int, width: int, blocks: int,
                 dropout: float, kernel: int) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.dims = dims
        self.stem = conv(in_channels, width, kernel, padding=kernel // 2, bias=False)
        layers: list[PreActBlock] = []
        cin = width
        for stage, cout in enumerate(stage_widths(width)):
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(PreActBlock(dims, cin, cout, stride, kernel, dropout))
                cin = cout
        self.blocks = nn.ModuleList(layers)
        self.norm = _norm(cin)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            x = block(x, masks[i] if masks else None)
        x = F.relu(self.norm(x))
        return self.head(x.mean(dim=tuple(range(2, 2 + self.dims))))


def _kernel(spec: ModelSpec) -> int:
    return WRN_KERNEL if spec.family == "wrn" else spec.kernel_size


def check_shape(spec: ModelSpec, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The record shape (C, H, W) for ``wrn`` or (L, T) for ``resnet1d``, checked."""
    shape = tuple(int(s) for s in shape)
    want = 3 if spec.family == "wrn" else 2
    if len(shape) != want or min(shape) < 1:
        layout = "(channels, height, width)" if want == 3 else "(leads, samples)"
        raise ValueError(
            f"the {spec.family} family takes records of shape {layout}, got {shape}"
        )
    return shape


def build_conv(spec: ModelSpec, shape: tuple[int, ...], num_classes: int, *,
               generator: torch.Generator | None = None) -> ConvNet:
    """One plain conv model of ``spec`` for records of ``shape``; seeded init with ``generator``."""
    shape = check_shape(spec, shape)
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    dims = len(shape) - 1
    module = ConvNet(dims, shape[0], num_classes, spec.width, spec.blocks, spec.dropout,
                     _kernel(spec))
    if generator is not None:
        init_conv(module, generator)
    return module


@torch.no_grad()
def init_conv(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation, drawn from ``generator`` in ``named_parameters`` order."""
    owners = {name: sub for name, sub in module.named_modules()}
    for name, param in module.named_parameters():
        owner = owners[name.rpartition(".")[0]]
        if isinstance(owner, nn.GroupNorm):
            param.fill_(1.0 if name.endswith("weight") else 0.0)
            continue
        weight = owner.weight
        bound = 1.0 / math.sqrt(weight[0].numel())  # fan_in = in_channels × kernel elements
        value = torch.rand(tuple(param.shape), generator=generator) * (2 * bound) - bound
        param.copy_(value.to(param.device))


def block_shapes(spec: ModelSpec, shape: tuple[int, ...], batch: int) -> list[tuple[int, ...]]:
    """Shape of each block's dropout mask ([batch, channels, *spatial]) for records of ``shape``."""
    shape = check_shape(spec, shape)
    kernel = _kernel(spec)
    spatial = list(shape[1:])
    shapes = []
    for stage, cout in enumerate(stage_widths(spec.width)):
        for b in range(spec.blocks):
            if stage > 0 and b == 0:
                spatial = [(s + 2 * (kernel // 2) - kernel) // 2 + 1 for s in spatial]
            shapes.append((batch, cout, *spatial))
    return shapes


def activation_elements(spec: ModelSpec, shape: tuple[int, ...]) -> int:
    """Elements of the widest activation of one record (sizes scoring chunks by memory)."""
    shape = check_shape(spec, shape)
    first = spec.width * math.prod(shape[1:])
    return max(math.prod(shape), first)
