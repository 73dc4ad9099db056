"""Query views: counts, order, shapes, and each transform against a plain per-pixel loop."""

from __future__ import annotations

import pickle

import numpy as np
import pydantic
import pytest
import torch

from miaudit.errors import InputError
from miaudit.views import View, ViewSpec, make_views, view_count, view_names


def _shift_loop(x: torch.Tensor, offsets: tuple[int, ...]) -> torch.Tensor:
    """out[..., i] = x[..., i - offset] where that index exists, else 0: one element at a time."""
    a = x.numpy()
    out = np.zeros_like(a)
    trailing = a.shape[-len(offsets):]
    for lead in np.ndindex(a.shape[: -len(offsets)]):
        for pos in np.ndindex(trailing):
            src = tuple(p - o for p, o in zip(pos, offsets, strict=True))
            if all(0 <= s < n for s, n in zip(src, trailing, strict=True)):
                out[lead + pos] = a[lead + src]
    return torch.from_numpy(out)


def _flip_loop(x: torch.Tensor) -> torch.Tensor:
    a = x.numpy()
    out = np.empty_like(a)
    w = a.shape[-1]
    for j in range(w):
        out[..., j] = a[..., w - 1 - j]
    return torch.from_numpy(out)


@pytest.mark.parametrize(
    ("spec", "modality", "count"),
    [
        (ViewSpec(), "image", 1),
        (ViewSpec(flip=True), "image", 2),
        (ViewSpec(shift=2), "image", 9),
        (ViewSpec(flip=True, shift=2), "image", 18),
        (ViewSpec(), "signal", 1),
        (ViewSpec(shift=5), "signal", 3),
        (ViewSpec(), "table", 1),
    ],
)
def test_view_counts_and_names(spec: ViewSpec, modality: str, count: int) -> None:
    views = make_views(spec, modality)
    names = view_names(spec, modality)
    assert len(views) == view_count(spec, modality) == len(names) == count
    assert names[0] == "identity"
    assert len(set(names)) == count
    assert names == view_names(spec, modality)  # deterministic order


def test_image_views_are_every_flip_and_offset_in_a_fixed_order() -> None:
    s = 2
    views = make_views(ViewSpec(flip=True, shift=s), "image")
    combos = [(v.flip, v.offsets) for v in views]
    expected = [(f, (dy, dx)) for f in (False, True) for dy in (0, -s, s) for dx in (0, -s, s)]
    assert combos == expected
    assert view_names(ViewSpec(flip=True, shift=s), "image")[9:11] == ["flip", "flip+shift(+0,-2)"]


@pytest.mark.parametrize("modality", ["image", "signal"])
def test_views_match_the_per_element_loops(modality: str) -> None:
    gen = torch.Generator().manual_seed(0)
    shape = (3, 2, 6, 7) if modality == "image" else (3, 4, 11)
    x = torch.randn(shape, generator=gen)
    spec = ViewSpec(flip=modality == "image", shift=2)
    for view in make_views(spec, modality, shape[1:]):
        assert isinstance(view, View)
        expected = _flip_loop(x) if view.flip else x
        expected = _shift_loop(expected, view.offsets) if view.offsets else expected
        out = view(x)
        assert out.shape == x.shape
        assert torch.equal(out, expected), view.name


def test_flip_twice_is_the_identity_and_shifts_undo_away_from_the_border() -> None:
    x = torch.randn(4, 3, 9, 9, generator=torch.Generator().manual_seed(1))
    flip = View(flip=True)
    assert torch.equal(flip(flip(x)), x)
    s = 2
    for dy in (-s, 0, s):
        for dx in (-s, 0, s):
            there, back = View(offsets=(dy, dx)), View(offsets=(-dy, -dx))
            round_trip = back(there(x))
            assert torch.equal(round_trip[..., s:-s, s:-s], x[..., s:-s, s:-s])
    signal = torch.randn(2, 3, 20)
    assert torch.equal(View(offsets=(-3,))(View(offsets=(3,))(signal))[..., 3:-3], signal[..., 3:-3])


def test_a_shift_moves_content_down_and_right_and_fills_with_zeros() -> None:
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0
    moved = View(offsets=(1, -2))(x)
    assert moved[0, 0, 3, 0] == 1.0 and moved.sum() == 1.0
    ones = View(offsets=(2, 0))(torch.ones(1, 1, 5, 5))
    assert ones[0, 0, :2].abs().sum() == 0 and ones[0, 0, 2:].min() == 1


def test_each_record_is_transformed_on_its_own() -> None:
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    rows = torch.tensor([4, 1, 3])
    for view in make_views(ViewSpec(flip=True, shift=1), "image"):
        assert torch.equal(view(x[rows]), view(x)[rows])


def test_views_pickle_for_worker_processes() -> None:
    views = make_views(ViewSpec(flip=True, shift=1), "image")
    again = pickle.loads(pickle.dumps(views))
    x = torch.randn(2, 1, 4, 4)
    assert all(torch.equal(a(x), b(x)) for a, b in zip(views, again, strict=True))


def test_spec_and_modality_errors_say_what_to_do() -> None:
    with pytest.raises(pydantic.ValidationError):
        ViewSpec(flip=True, shfit=2)
    with pytest.raises(pydantic.ValidationError):
        ViewSpec(shift=-1)
    with pytest.raises(InputError, match=r"views\.flip: not available for signals.*views\.shift"):
        make_views(ViewSpec(flip=True), "signal")
    with pytest.raises(InputError, match="tables have the identity view only"):
        make_views(ViewSpec(shift=1), "table")
    with pytest.raises(InputError, match="modality 'video'"):
        make_views(ViewSpec(), "video")
    with pytest.raises(InputError, match=r"views\.shift: 8 moves every value out"):
        make_views(ViewSpec(shift=8), "image", (1, 8, 28))
    with pytest.raises(InputError, match=r"views\.shift"):
        make_views(ViewSpec(shift=10), "signal", (12, 10))
    assert len(make_views(ViewSpec(shift=7), "image", (1, 8, 8))) == 9
