"""SGD as the paper trains (Keras' SGD): momentum, decoupled decay, cosine schedule with
warmup, a moving average of the weights; every path against a written-out loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _margins import SEED, at_least

from miaudit.config import ModelSpec, TrainingSpec
from miaudit.errors import InputError
from miaudit.training import train_conv, train_group, train_sequential
from miaudit.training.optim import ModuleSGD, StackedSGD, scheduled_lr, total_steps

SGD = dict(optimizer="sgd", momentum=0.9, schedule="cosine", warmup=0.2, ema=0.9)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_schedule_is_the_papers():
    assert scheduled_lr(0.1, 5, 10, "constant", 0.3) == 0.1
    assert scheduled_lr(0.1, 0, 10, "cosine", 0.0) == pytest.approx(0.1)
    assert scheduled_lr(0.1, 10, 10, "cosine", 0.0) == pytest.approx(0.1 * math.cos(7 * math.pi / 16))
    assert scheduled_lr(0.1, 1, 10, "cosine", 0.2) == pytest.approx(0.1 * math.cos(7 * math.pi / 160) * 0.5)
    assert scheduled_lr(0.1, 0, 10, "cosine", 0.2) == 0.0  # warmup starts from zero, as Keras'


def _reference(p0, grads, lr, wd, momentum, totals, schedule, warmup, ema):
    """Per model, in float64: the update written out step by step."""
    out = []
    for m, (p, gs) in enumerate(zip(p0, grads, strict=True)):
        p, v = p.astype(np.float64), np.zeros_like(p, dtype=np.float64)
        average = p.copy()
        for t, g in enumerate(gs):
            rate = scheduled_lr(lr, t, totals[m], schedule, warmup)
            p = p - rate * wd * p
            v = momentum * v - rate * g
            p = p + v
            average = p.copy() if t == 0 or ema is None else ema * average + (1 - ema) * p
        out.append(average if ema else p)
    return out


@pytest.mark.parametrize("ema", [None, 0.8])
def test_stacked_sgd_updates_each_model_as_written_out(ema):
    rng = np.random.default_rng(SEED)
    steps = [5, 4, 2]  # models take different numbers of steps (the active ones a prefix)
    p0 = [rng.normal(size=(2, 3)).astype(np.float32) for _ in steps]
    grads = [[rng.normal(size=(2, 3)).astype(np.float32) for _ in range(s)] for s in steps]
    params = torch.from_numpy(np.stack(p0))
    sgd = StackedSGD([params], 0.05, [0.01], momentum=0.9, total_steps=steps, schedule="cosine",
                     warmup=0.3, ema=ema)
    for t in range(max(steps)):
        active = [m for m in range(3) if t < steps[m]]
        lo, hi = active[0], active[-1] + 1
        sgd.step(lo, hi, [torch.from_numpy(np.stack([grads[m][t] for m in range(lo, hi)]))])
    sgd.finish()
    want = _reference(p0, grads, 0.05, 0.01, 0.9, steps, "cosine", 0.3, ema)
    np.testing.assert_allclose(params.numpy(), np.stack(want), rtol=0, atol=1e-6)


def test_one_module_steps_as_its_stacked_self():
    torch.manual_seed(SEED)
    module = torch.nn.Linear(3, 2)
    stacked = [p.detach().clone().unsqueeze(0) for p in module.parameters()]
    training = TrainingSpec(learning_rate=0.1, weight_decay=0.01, **SGD)
    single = ModuleSGD(training, [(list(module.parameters()), 0.01)], 6)
    twin = StackedSGD(stacked, 0.1, [0.01, 0.01], momentum=0.9, total_steps=[6], schedule="cosine",
                      warmup=0.2, ema=0.9)
    x = torch.randn(6, 4, 3)
    for t in range(6):
        single.zero_grad()
        module(x[t]).square().sum().backward()
        twin.step(0, 1, [p.grad.unsqueeze(0) for p in module.parameters()])
        single.step()
    single.finish()
    twin.finish()
    for p, q in zip(module.parameters(), stacked, strict=True):
        assert torch.equal(p.detach(), q[0])


def test_total_steps_count_the_last_short_batch():
    assert total_steps([10, 9, 8, 1], 4, 3) == [9, 9, 6, 3]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(40, 1, 8, 8)).astype(np.float32) * 0.5
    y = rng.integers(0, 2, 40)
    x[y == 1, 0, 2:5, 2:5] += 1.5
    keep = rng.random((4, 40)) < 0.5
    keep[:, :2] = True
    return x, y, keep


def test_conv_grouped_equals_sequential_under_sgd(images):
    x, y, keep = images
    spec = ModelSpec(family="wrn", width=4, blocks=1)
    training = TrainingSpec(epochs=1, batch_size=40, learning_rate=0.05, weight_decay=1e-3, **SGD)
    seq = train_conv(spec, training, x, y, keep, [0, 1, 2, 3], 1, grouped=False)
    grp = train_conv(spec, training, x, y, keep, [0, 1, 2, 3], 1, grouped=True)
    np.testing.assert_allclose(grp, seq, rtol=0, atol=2e-5)


def test_conv_sgd_learns_and_the_average_is_what_is_scored():
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(64, 1, 8, 8)).astype(np.float32) * 0.5
    y = rng.integers(0, 2, 64)
    x[y == 1, 0, 2:5, 2:5] += 3.0  # a clear blob: every model should learn it
    keep = np.ones((1, 64), dtype=bool)
    spec = ModelSpec(family="wrn", width=4, blocks=1)
    plain = TrainingSpec(epochs=10, batch_size=8, learning_rate=0.05, optimizer="sgd")
    trained = train_conv(spec, plain, x, y, keep, [0], 3)
    at_least("training accuracy of a WRN trained by SGD", (trained[0, :, 0].argmax(-1) == y).mean(),
             0.9, strict=False)
    paper = plain.model_copy(update={"schedule": "cosine", "warmup": 0.1, "ema": 0.9})
    averaged = train_conv(spec, paper, x, y, keep, [0], 3)
    at_least("training accuracy with the paper's schedule and weight average",
             (averaged[0, :, 0].argmax(-1) == y).mean(), 0.9, strict=False)
    untrained = train_conv(spec, plain.model_copy(update={"learning_rate": 1e-12}), x, y, keep, [0], 3)
    at_least("change training makes", np.abs(trained - untrained).mean(), 0.1)


def test_tabresnet_stacked_equals_sequential_under_sgd():
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=120) > 0).astype(np.int64)
    keep = rng.random((3, 120)) < 0.5
    spec = ModelSpec(family="tabresnet", width=16, blocks=2)
    training = TrainingSpec(epochs=2, batch_size=32, learning_rate=0.05, weight_decay=1e-3, **SGD)
    grouped = train_group(spec, training, x, y, keep, [0, 1, 2], 4)
    alone = train_sequential(spec, training, x, y, keep, [0, 1, 2], 4)
    np.testing.assert_allclose(grouped, alone, rtol=0, atol=5e-4)


def test_sgd_keys_need_sgd():
    with pytest.raises(ValueError, match="momentum, ema apply to optimizer"):
        TrainingSpec(momentum=0.5, ema=0.9)
    assert "momentum" not in TrainingSpec().model_dump()  # configs made before keep their hash
    with pytest.raises(InputError):
        from miaudit.config import parse_config

        parse_config({"training": {"schedule": "cosine"}}, "test")


def _factory() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))


def test_a_users_module_trains_by_sgd_alike_vmapped_and_alone():
    from miaudit.recipes.module import train_module_alone
    from miaudit.training import train_vmap

    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(90, 6)).astype(np.float32)
    y = (x[:, 1] > 0).astype(np.int64)
    keep = rng.random((3, 90)) < 0.5
    training = TrainingSpec(epochs=2, batch_size=16, learning_rate=0.05, weight_decay=1e-3, **SGD)
    fast = train_vmap(_factory, training, x, y, keep, [0, 1, 2], seed=5)
    slow = train_module_alone(_factory, training, x, y, keep, [0, 1, 2], seed=5)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-5)


def test_dp_sgd_with_the_papers_optimiser_does_not_depend_on_the_group():
    from miaudit.config import DPSpec
    from miaudit.training.dp import train_group_dp

    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    patient = np.arange(60) // 2
    keep = np.repeat(rng.random((4, 30)) < 0.5, 2, axis=1)
    spec = ModelSpec(width=8, depth=1)
    training = TrainingSpec(epochs=2, batch_size=8, learning_rate=0.05, **SGD)
    args = (spec, training, DPSpec(noise_multiplier=1.0), x, y, patient)
    whole = train_group_dp(*args, keep, [0, 1, 2, 3], seed=0)
    alone = train_group_dp(*args, keep[2:3], [2], seed=0)
    np.testing.assert_array_equal(whole[2], alone[0])
    assert np.isfinite(whole).all()
