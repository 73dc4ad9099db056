"""The conv families (wrn, resnet1d): spec defaults, shapes, parameter counts, norms, init."""

from __future__ import annotations

import math

import pydantic
import pytest
import torch
from torch import nn

from miaudit.models import (
    CONV_FAMILIES,
    CONV_WIDTH,
    ModelSpec,
    SeededDropout,
    build_module,
    count_parameters,
    init_parameters,
    is_conv,
    parameter_shapes,
)
from miaudit.models.conv import activation_elements, block_shapes, norm_groups


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions gain nothing from a second thread, and on a shared machine each
    parallel region can wait a scheduler slice for it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _conv_params(cin: int, cout: int, kernel_elems: int) -> int:
    return cin * cout * kernel_elems


def _expected_count(spec: ModelSpec, channels: int, classes: int) -> int:
    """WRN parameter count from the layer list, written out independently of the module."""
    k = 9 if spec.family == "wrn" else spec.kernel_size
    w = spec.width
    total = _conv_params(channels, w, k)  # stem, no bias
    cin = w
    for stage, cout in enumerate((w, 2 * w, 4 * w)):
        for b in range(spec.blocks):
            stride = 2 if stage > 0 and b == 0 else 1
            total += 2 * cin + _conv_params(cin, cout, k) + 2 * cout + _conv_params(cout, cout, k)
            if stride != 1 or cin != cout:
                total += cin * cout  # 1×1 projection
            cin = cout
    return total + 2 * cin + cin * classes + classes


# --- spec ---------------------------------------------------------------------------------

def test_conv_width_defaults_to_16_unless_given() -> None:
    assert ModelSpec(family="wrn").width == CONV_WIDTH == 16
    assert ModelSpec(family="resnet1d").width == 16
    assert ModelSpec(family="wrn", width=128).width == 128
    assert ModelSpec(family="wrn", width=8).width == 8
    assert ModelSpec().width == 128  # the table default is unchanged
    assert ModelSpec(family="wrn").blocks == 2  # WRN-16
    # a dumped spec validates to the same spec (sweeps and stored configs round-trip)
    for spec in (ModelSpec(family="wrn"), ModelSpec(family="resnet1d", width=4, kernel_size=5)):
        assert ModelSpec.model_validate(spec.model_dump()) == spec


def test_conv_specs_reject_knobs_they_do_not_use() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"no depth knob.*blocks"):
        ModelSpec(family="wrn", depth=28)
    with pytest.raises(pydantic.ValidationError, match="only the resnet1d family"):
        ModelSpec(family="wrn", kernel_size=5)
    with pytest.raises(pydantic.ValidationError, match="only the resnet1d family"):
        ModelSpec(family="mlp", kernel_size=3)
    with pytest.raises(pydantic.ValidationError, match="must be odd"):
        ModelSpec(family="resnet1d", kernel_size=6)
    assert ModelSpec(family="resnet1d", kernel_size=3).kernel_size == 3


def test_conv_capacity_names_width_blocks_and_dropout() -> None:
    assert ModelSpec(family="wrn", width=8, blocks=3).capacity() == {
        "width": 8, "blocks": 3, "dropout": 0.0}
    assert ModelSpec(family="resnet1d", kernel_size=9).capacity() == {
        "width": 16, "blocks": 2, "dropout": 0.0, "kernel_size": 9}
    assert set(CONV_FAMILIES) == {"wrn", "resnet1d"}
    assert is_conv(ModelSpec(family="wrn")) and not is_conv(ModelSpec())


# --- modules ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("spec", "shape", "classes"),
    [
        (ModelSpec(family="wrn", width=4, blocks=1), (1, 8, 8), 3),
        (ModelSpec(family="wrn", width=6, blocks=2, dropout=0.2), (3, 9, 7), 2),
        (ModelSpec(family="wrn", width=4, blocks=0), (2, 5, 5), 4),
        (ModelSpec(family="resnet1d", width=4, blocks=1), (12, 40), 5),
        (ModelSpec(family="resnet1d", width=8, blocks=2, kernel_size=3), (2, 17), 1),
    ],
)
def test_conv_modules_map_records_to_logits(spec: ModelSpec, shape: tuple[int, ...], classes: int) -> None:
    module = build_module(spec, shape, classes)
    module.eval()
    assert module(torch.randn(5, *shape)).shape == (5, classes)
    shapes = [(name, tuple(p.shape)) for name, p in module.named_parameters()]
    assert shapes == parameter_shapes(spec, shape, classes)
    assert count_parameters(spec, shape, classes) == sum(p.numel() for p in module.parameters())
    assert count_parameters(spec, shape, classes) == _expected_count(spec, shape[0], classes)


def test_parameter_counts_match_the_published_wrn_sizes() -> None:
    # Zagoruyko & Komodakis (2016), CIFAR-10: WRN-16-4 has 2.7M parameters, WRN-28-10 36.5M.
    wrn_16_4 = count_parameters(ModelSpec(family="wrn", width=64, blocks=2), (3, 32, 32), 10)
    wrn_28_10 = count_parameters(ModelSpec(family="wrn", width=160, blocks=4), (3, 32, 32), 10)
    assert 2.6e6 < wrn_16_4 < 2.8e6
    assert 36.0e6 < wrn_28_10 < 37.0e6
    # the count does not depend on the image size, and grows with both knobs
    assert count_parameters(ModelSpec(family="wrn"), (3, 64, 64), 10) == count_parameters(
        ModelSpec(family="wrn"), (3, 28, 28), 10)
    sizes = [count_parameters(ModelSpec(family="resnet1d", width=w, blocks=b), (12, 1000), 5)
             for w, b in ((8, 1), (16, 1), (16, 2))]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3


def test_shapes_are_checked_for_each_family() -> None:
    with pytest.raises(ValueError, match=r"record shape \(channels, height, width\)"):
        count_parameters(ModelSpec(family="wrn"), 784, 10)
    with pytest.raises(ValueError, match=r"\(channels, height, width\)"):
        build_module(ModelSpec(family="wrn"), (12, 1000), 2)
    with pytest.raises(ValueError, match=r"\(leads, samples\)"):
        build_module(ModelSpec(family="resnet1d"), (1, 8, 8), 2)
    with pytest.raises(ValueError, match="flatten"):
        count_parameters(ModelSpec(), (1, 8, 8), 2)
    # a one-element shape is a feature count for the table families
    assert count_parameters(ModelSpec(width=8), (7,), 3) == count_parameters(ModelSpec(width=8), 7, 3)


def test_norms_are_group_norms_with_at_most_16_groups() -> None:
    for channels in range(1, 97):
        plain = max(g for g in range(1, 17) if channels % g == 0)
        assert norm_groups(channels) == plain
    module = build_module(ModelSpec(family="wrn", width=12, blocks=2), (3, 8, 8), 2)
    norms = [m for m in module.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
    assert all(m.num_groups <= 16 and m.num_channels % m.num_groups == 0 for m in norms)


@pytest.mark.parametrize("family", ["wrn", "resnet1d"])
def test_a_records_output_does_not_depend_on_its_batch(family: str) -> None:
    shape = (2, 8, 8) if family == "wrn" else (3, 30)
    module = build_module(ModelSpec(family=family, width=4, blocks=1), shape, 3)
    x = torch.randn(6, *shape)
    for mode in (module.train, module.eval):  # no dropout: training computes the same function
        mode()
        together = module(x)
        alone = torch.cat([module(x[i : i + 1]) for i in range(6)])
        torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_block_shapes_are_the_dropout_layers_inputs() -> None:
    for spec, shape in ((ModelSpec(family="wrn", width=4, blocks=2, dropout=0.5), (1, 9, 7)),
                        (ModelSpec(family="resnet1d", width=4, blocks=2, dropout=0.5,
                                   kernel_size=5), (2, 33))):
        module = build_module(spec, shape, 2)
        seen: list[tuple[int, ...]] = []

        def record(_m: nn.Module, inp: tuple[torch.Tensor], _o: torch.Tensor,
                   seen: list[tuple[int, ...]] = seen) -> None:
            seen.append(tuple(inp[0].shape))

        for layer in module.modules():
            if isinstance(layer, SeededDropout):
                layer.register_forward_hook(record)
        module.train()
        module(torch.randn(3, *shape))
        assert seen == block_shapes(spec, shape, 3)
        # stride 2 at stages 2 and 3: each halves (rounding up) the spatial size
        assert seen[-1][2:] == tuple(math.ceil(math.ceil(s / 2) / 2) for s in shape[1:])
        assert activation_elements(spec, shape) == max(math.prod(shape), 4 * math.prod(shape[1:]))


def test_seeded_initialisation_is_reproducible_and_has_default_bounds() -> None:
    spec, shape = ModelSpec(family="wrn", width=4, blocks=1), (3, 8, 8)
    a = build_module(spec, shape, 2, generator=torch.Generator().manual_seed(5))
    b = build_module(spec, shape, 2, generator=torch.Generator().manual_seed(5))
    c = build_module(spec, shape, 2, generator=torch.Generator().manual_seed(6))
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        if "norm" in name:
            assert torch.equal(pa, torch.ones_like(pa) if name.endswith("weight") else torch.zeros_like(pa))
            continue
        assert not torch.equal(pa, pc)
        owner = a.get_submodule(name.rpartition(".")[0])
        fan_in = owner.weight[0].numel()
        assert pa.abs().max() <= 1 / math.sqrt(fan_in)
        if pa.numel() >= 20:  # spread over the range, not tiny
            assert pa.abs().max() > 0.5 / math.sqrt(fan_in)
    values = init_parameters(spec, shape, 2, torch.Generator().manual_seed(5))
    assert [n for n, _ in values] == [n for n, _ in a.named_parameters()]
    assert all(torch.equal(v, p) for (_, v), p in zip(values, a.parameters(), strict=True))


def test_plain_modules_draw_dropout_from_their_generator() -> None:
    spec, shape = ModelSpec(family="wrn", width=4, blocks=1, dropout=0.5), (1, 8, 8)
    module = build_module(spec, shape, 2, generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, *shape)

    def run(seed: int) -> torch.Tensor:
        for layer in module.modules():
            if isinstance(layer, SeededDropout):
                layer.generator = torch.Generator().manual_seed(seed) if seed >= 0 else None
        module.train()
        return module(x)

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))
    module.eval()
    assert torch.equal(module(x), module(x))
