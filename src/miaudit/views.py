"""Query views: the augmentations every record is trained with and scored under.

LiRA-style attacks gain power by querying each record under several label-preserving
transforms ("views") and pooling the evidence. The same list of views also drives training
augmentation (each record of each batch gets one view drawn uniformly from the list, from
the model's own generator), so the scoring views are exactly the distribution the models
were trained on.

Images [B, C, H, W]: ``flip`` adds the horizontal mirror; ``shift = s`` translates by
(dy, dx) in {0, -s, s}² with zero padding (9 offsets). V = (1 + flip) × (9 if s else 1).
Signals [B, L, T]: ``shift = s`` translates in time by {0, -s, s} samples with zero padding
(V = 3). Flipping a signal is refused: mirroring time or inverting polarity does not give
an ECG the heart could have produced, so it would teach and query the models on records
unlike any real one. Tables have the identity view only.

Order is deterministic, identity first: for images the unflipped offsets in the order
(0,0), (0,-s), (0,+s), (-s,0), (-s,-s), (-s,+s), (+s,0), (+s,-s), (+s,+s), then the same
offsets flipped. A positive dy moves content down (towards larger row indices), a positive
dx right, a positive time shift later. Each view maps every record on its own (pure copies),
so applying it to any subset of a batch gives the same rows.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from miaudit.config import ViewSpec
from miaudit.errors import InputError

__all__ = ["MODALITIES", "View", "ViewSpec", "make_views", "view_count", "view_names"]

MODALITIES: tuple[str, ...] = ("table", "image", "signal")


def _shift(x: torch.Tensor, offset: int, dim: int) -> torch.Tensor:
    """``x`` translated by ``offset`` along ``dim``, the vacated positions zero."""
    if offset == 0:
        return x
    size = x.shape[dim]
    out = torch.zeros_like(x)
    if abs(offset) >= size:
        return out
    if offset > 0:
        out.narrow(dim, offset, size - offset).copy_(x.narrow(dim, 0, size - offset))
    else:
        out.narrow(dim, 0, size + offset).copy_(x.narrow(dim, -offset, size + offset))
    return out


@dataclass(frozen=True)
class View:
    """One query view: an optional horizontal flip, then a shift of the trailing axes.

    ``offsets`` are (dy, dx) for images and (dt,) for signals; () is the identity for any
    modality. A plain dataclass so that views pickle to worker processes.
    """

    flip: bool = False
    offsets: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        parts = []
        if self.flip:
            parts.append("flip")
        if any(self.offsets):
            parts.append("shift(" + ",".join(f"{o:+d}" for o in self.offsets) + ")")
        return "+".join(parts) or "identity"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip:
            x = x.flip(-1)
        dims = range(x.dim() - len(self.offsets), x.dim())
        for dim, offset in zip(dims, self.offsets, strict=True):
            x = _shift(x, offset, dim)
        return x


def _check(spec: ViewSpec, modality: str) -> None:
    if modality not in MODALITIES:
        raise InputError(
            f"modality {modality!r}: unknown; expected one of {', '.join(MODALITIES)}"
        )
    if modality == "table" and (spec.flip or spec.shift):
        raise InputError(
            "views: tables have the identity view only (flip and shift are image and signal "
            "augmentations); remove the [views] settings for a table cohort"
        )
    if modality == "signal" and spec.flip:
        raise InputError(
            "views.flip: not available for signals: reversing time or inverting polarity does "
            "not give an ECG a heart could produce, so models would be trained and queried on "
            "unnatural records; use views.shift for signals and drop flip"
        )


def make_views(spec: ViewSpec, modality: str, shape: tuple[int, ...] | None = None) -> list[View]:
    """The V views of ``modality`` (batch → batch, same shape), identity first.

    With ``shape`` (one record's shape, e.g. (C, H, W)), a shift that would move every
    value out of the record is rejected up front.
    """
    _check(spec, modality)
    s = spec.shift
    if modality == "table" or (s == 0 and not spec.flip):
        return [View()]
    if shape is not None:
        axes = tuple(shape[-2:]) if modality == "image" else tuple(shape[-1:])
        if s and s >= min(axes):
            raise InputError(
                f"views.shift: {s} moves every value out of records of shape {tuple(shape)}; "
                f"use a shift well below {min(axes)} (a few pixels or samples)"
            )
    steps = (0, -s, s) if s else (0,)
    if modality == "image":
        offsets = [(dy, dx) if s else () for dy, dx in itertools.product(steps, steps)]
        flips = (False, True) if spec.flip else (False,)
        return [View(f, o) for f in flips for o in offsets]
    return [View(False, (dt,)) for dt in steps]


def view_names(spec: ViewSpec, modality: str) -> list[str]:
    """Names of the views in ``make_views`` order, for reports ("identity", "flip+shift(-2,+0)")."""
    return [view.name for view in make_views(spec, modality)]


def view_count(spec: ViewSpec, modality: str) -> int:
    """V, the number of views of ``modality``."""
    return len(make_views(spec, modality))
