"""Model families: specs, shapes, parameter counts and reproducible initialisation."""

from __future__ import annotations

import math
import typing

import pydantic
import pytest
import torch
from torch import nn

from miaudit.models import (
    FAMILIES,
    LayerNorm,
    ModelSpec,
    SeededDropout,
    build_module,
    count_parameters,
    init_parameters,
    parameter_shapes,
)


def test_families_match_the_spec_literal() -> None:
    literal = typing.get_args(ModelSpec.model_fields["family"].annotation)
    assert set(FAMILIES) == set(literal)


def test_spec_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(pydantic.ValidationError):
        ModelSpec(family="mlp", widht=64)
    with pytest.raises(pydantic.ValidationError):
        ModelSpec(family="cnn")
    with pytest.raises(pydantic.ValidationError):
        ModelSpec(width=0)
    with pytest.raises(pydantic.ValidationError):
        ModelSpec(dropout=1.0)
    with pytest.raises(pydantic.ValidationError):
        ModelSpec(l2=-1.0)


def test_capacity_names_the_knobs_of_each_family() -> None:
    assert ModelSpec(family="logistic", l2=0.5).capacity() == {"l2": 0.5}
    assert ModelSpec(family="mlp", width=64, depth=3).capacity() == {"width": 64, "depth": 3, "dropout": 0.0}
    assert ModelSpec(family="tabresnet", width=32, blocks=4, dropout=0.1).capacity() == {
        "width": 32, "blocks": 4, "dropout": 0.1}


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(family="logistic"),
        ModelSpec(family="mlp", width=16, depth=0),
        ModelSpec(family="mlp", width=16, depth=3, dropout=0.2),
        ModelSpec(family="tabresnet", width=16, blocks=0),
        ModelSpec(family="tabresnet", width=16, blocks=2, dropout=0.2),
    ],
)
def test_modules_map_records_to_class_logits(spec: ModelSpec) -> None:
    module = build_module(spec, 7, 3)
    assert module(torch.randn(5, 7)).shape == (5, 3)
    shapes = [(name, tuple(p.shape)) for name, p in module.named_parameters()]
    assert shapes == parameter_shapes(spec, 7, 3)
    assert count_parameters(spec, 7, 3) == sum(p.numel() for p in module.parameters())


def test_parameter_counts_follow_the_layer_formulas() -> None:
    f, k, w = 70, 2, 128
    mlp = (f * w + w) + (w * w + w) + (w * k + k)
    assert count_parameters(ModelSpec(family="mlp", width=w, depth=2), f, k) == mlp
    block = 2 * w + 2 * (w * w + w)
    resnet = (f * w + w) + 3 * block + 2 * w + (w * k + k)
    assert count_parameters(ModelSpec(family="tabresnet", width=w, blocks=3), f, k) == resnet
    assert count_parameters(ModelSpec(family="logistic"), f, k) == k * (f + 1)
    # capacity grows with the knob
    counts = [count_parameters(ModelSpec(width=w), f, k) for w in (8, 32, 128)]
    assert counts == sorted(counts) and len(set(counts)) == 3


def test_generator_initialisation_is_reproducible_and_seed_specific() -> None:
    spec = ModelSpec(family="tabresnet", width=8, blocks=1)
    a = build_module(spec, 5, 2, generator=torch.Generator().manual_seed(3))
    b = build_module(spec, 5, 2, generator=torch.Generator().manual_seed(3))
    c = build_module(spec, 5, 2, generator=torch.Generator().manual_seed(4))
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        if pa.dim() == 2:
            assert not torch.equal(pa, pc)


def test_initialisation_has_pytorch_default_bounds() -> None:
    spec = ModelSpec(family="mlp", width=64, depth=1)
    values = dict(init_parameters(spec, 50, 2, torch.Generator().manual_seed(0)))
    bound = 1 / math.sqrt(50)
    weight = values["hidden.0.weight"]
    assert weight.abs().max() <= bound
    # uniform on ±bound: standard deviation bound/sqrt(3)
    assert abs(weight.std().item() - bound / math.sqrt(3)) < 0.05 * bound
    norm = dict(init_parameters(ModelSpec(family="tabresnet", width=4, blocks=1), 3, 2,
                                torch.Generator().manual_seed(0)))
    assert torch.equal(norm["blocks.0.norm.weight"], torch.ones(4))
    assert torch.equal(norm["blocks.0.norm.bias"], torch.zeros(4))


def test_mlp_without_hidden_layers_is_a_linear_model() -> None:
    module = build_module(ModelSpec(family="mlp", depth=0), 4, 2, generator=torch.Generator().manual_seed(0))
    x = torch.randn(6, 4)
    head = module.head
    assert torch.allclose(module(x), x @ head.weight.T + head.bias)


def test_seeded_dropout_is_reproducible_and_off_in_eval() -> None:
    drop = SeededDropout(0.5)
    x = torch.ones(200, 50)
    drop.generator = torch.Generator().manual_seed(1)
    first = drop(x)
    drop.generator = torch.Generator().manual_seed(1)
    assert torch.equal(first, drop(x))
    assert set(first.unique().tolist()) == {0.0, 2.0}
    assert abs(first.mean().item() - 1.0) < 0.05  # inverted dropout keeps the expectation
    drop.eval()
    assert torch.equal(drop(x), x)


def test_layer_norm_matches_torch_layer_norm() -> None:
    ours, theirs = LayerNorm(6), nn.LayerNorm(6)
    with torch.no_grad():
        for p in (ours.weight, theirs.weight):
            p.copy_(torch.arange(6.0))
        for p in (ours.bias, theirs.bias):
            p.fill_(0.5)
    x = torch.randn(4, 6)
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)


def test_build_module_rejects_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        build_module(ModelSpec(), 4, 1)
    with pytest.raises(ValueError, match="in_features"):
        count_parameters(ModelSpec(), 0, 2)
