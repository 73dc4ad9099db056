"""Training engine: the fast paths against slow, obvious references written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _margins import SEED, at_least, at_most
from sklearn.linear_model import LogisticRegression
from torch import nn

from miaudit.errors import InputError
from miaudit.models import ModelSpec, build_module, dropout_mask
from miaudit.training import (
    TrainingSpec,
    build_user_module,
    model_generator,
    model_seed,
    select_device,
    train_group,
    train_sequential,
    train_vmap,
)
from miaudit.training.batches import Schedule
from miaudit.training.devices import cpu_threads
from miaudit.training.newton import fit_logistic_newton
from miaudit.training.optim import StackedAdam, adam_options
from miaudit.training.seeds import STREAM_ORDER
from miaudit.training.stacked import MLPStep

N, F_IN = 480, 8


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one thread is as fast, and immune to the stalls a second
    thread suffers when other processes hold the cores of a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cohort() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A noisy linear problem and 8 random halves of the records."""
    rng = np.random.default_rng(7 + SEED)
    x = rng.normal(size=(N, F_IN)).astype(np.float32)
    y = ((x @ rng.normal(size=F_IN) + 0.8 * rng.normal(size=N)) > 0).astype(np.int64)
    keep = rng.random((8, N)) < 0.5
    return x, y, keep


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return (logits[:, :, 0].argmax(-1) == labels[None]).mean(1)


# --- stacked path against train_sequential ------------------------------------------------

@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(family="mlp", width=32, depth=2),
        ModelSpec(family="mlp", width=32, depth=2, dropout=0.3),
        ModelSpec(family="tabresnet", width=16, blocks=2, dropout=0.1),
    ],
    ids=["mlp", "mlp-dropout", "tabresnet"],
)
def test_stacked_models_equal_models_trained_one_by_one(cohort, spec: ModelSpec) -> None:
    x, y, keep = cohort
    training = TrainingSpec(epochs=3, batch_size=32, learning_rate=1e-2, weight_decay=1e-3)
    fast = train_group(spec, training, x, y, keep, range(8), seed=1)
    slow = train_sequential(spec, training, x, y, keep, range(8), seed=1)
    assert fast.shape == slow.shape == (8, N, 1, 2) and fast.dtype == np.float32
    agree = (fast.argmax(-1) == slow.argmax(-1)).mean()
    at_least("share of predictions the two paths agree on", agree, 0.98, strict=False)
    at_most("largest accuracy difference between the paths",
            np.abs(_accuracy(fast, y) - _accuracy(slow, y)).max(), 0.01, strict=False)
    at_least("lowest accuracy (they did learn)", _accuracy(fast, y).min(), 0.7)


def test_stacked_path_repeats_each_lone_models_arithmetic(cohort) -> None:
    """Beyond the issue's 98 %: per model, the stacked step performs the same operations as
    a lone module (same BLAS kernels per matrix, same fused Adam over its own memory)."""
    x, y, keep = cohort
    spec = ModelSpec(family="mlp", width=32, depth=2, dropout=0.1)
    training = TrainingSpec(epochs=2, batch_size=48, learning_rate=1e-2)
    fast = train_group(spec, training, x, y, keep[:4], range(4), seed=4)
    slow = train_sequential(spec, training, x, y, keep[:4], range(4), seed=4)
    assert np.array_equal(fast, slow)


def test_softmax_regression_uses_the_stacked_path(cohort) -> None:
    x, _, keep = cohort
    y3 = np.digitize(x[:, 0] + 0.3 * x[:, 1], [-0.5, 0.5])
    spec = ModelSpec(family="logistic", l2=1e-3)
    training = TrainingSpec(epochs=5, batch_size=32, learning_rate=5e-2)
    fast = train_group(spec, training, x, y3, keep[:4], range(4), seed=0)
    slow = train_sequential(spec, training, x, y3, keep[:4], range(4), seed=0)
    assert fast.shape == (4, N, 1, 3)
    at_least("share of predictions the two paths agree on",
             (fast.argmax(-1) == slow.argmax(-1)).mean(), 0.98, strict=False)
    at_least("lowest accuracy", _accuracy(fast, y3).min(), 0.8)


# --- vmap path: bit-identical to plain single-model training ------------------------------

def _factory() -> nn.Module:
    return nn.Sequential(nn.Linear(F_IN, 24), nn.Tanh(), nn.Linear(24, 24), nn.ReLU(), nn.Linear(24, 2))


def _plain_training(factory, training: TrainingSpec, x, y, keep, models, seed) -> np.ndarray:
    """Each model alone: its seeded module, a plain Adam loop over its own shuffled records."""
    out = []
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    for row, model in enumerate(models):
        module = build_user_module(factory, seed, model)
        optimizer = torch.optim.Adam(module.parameters(), lr=training.learning_rate,
                                     weight_decay=training.weight_decay,
                                     **adam_options(torch.device("cpu")))
        order = torch.Generator().manual_seed(model_seed(seed, model, STREAM_ORDER))
        records = torch.from_numpy(np.flatnonzero(keep[row]))
        for _ in range(training.epochs):
            shuffled = records[torch.randperm(len(records), generator=order)]
            for start in range(0, len(shuffled), training.batch_size):
                batch = shuffled[start : start + training.batch_size]
                loss = F.cross_entropy(module(inputs[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            out.append(module.eval()(inputs).numpy()[:, None, :])
    return np.stack(out)


def test_vmap_path_is_bit_identical_to_plain_training(cohort) -> None:
    x, y, keep = cohort
    keep = keep[:5].copy()
    # IN-set sizes that leave last batches of 1, 2 and 31 records (tiny and ragged steps)
    for row, size in enumerate([65, 66, 95, 120, 200]):
        keep[row] = False
        keep[row, np.random.default_rng(row).choice(N, size, replace=False)] = True
    training = TrainingSpec(epochs=3, batch_size=32, weight_decay=1e-3)
    models = [3, 10, 11, 40, 2]
    fast = train_vmap(_factory, training, x, y, keep, models, seed=5)
    slow = _plain_training(_factory, training, x, y, keep, models, seed=5)
    assert fast.shape == (5, N, 1, 2)
    assert np.array_equal(fast, slow)


def test_vmap_rejects_batchnorm_and_wrong_output_width(cohort) -> None:
    x, y, keep = cohort
    training = TrainingSpec(epochs=1)
    with pytest.raises(InputError, match="BatchNorm"):
        train_vmap(lambda: nn.Sequential(nn.Linear(F_IN, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)),
                   training, x, y, keep[:2], [0, 1], 0)
    with pytest.raises(InputError, match="outputs 3 logits"):
        train_vmap(lambda: nn.Linear(F_IN, 3), training, x, y, keep[:2], [0, 1], 0)


# --- grouping and seeding ----------------------------------------------------------------

@pytest.mark.parametrize(
    "spec",
    [ModelSpec(family="mlp", width=16, depth=2, dropout=0.2), ModelSpec(family="logistic")],
    ids=["mlp", "logistic-newton"],
)
def test_results_do_not_depend_on_the_grouping(cohort, spec: ModelSpec) -> None:
    x, y, keep = cohort
    training = TrainingSpec(epochs=2, batch_size=32)
    whole = train_group(spec, training, x, y, keep, range(8), seed=3)
    halves = np.concatenate([
        train_group(spec, training, x, y, keep[:4], range(4), seed=3),
        train_group(spec, training, x, y, keep[4:], range(4, 8), seed=3),
    ])
    assert np.array_equal(whole, halves)
    reordered = train_group(spec, training, x, y, keep[::-1], range(7, -1, -1), seed=3,
                            max_models=3)
    assert np.array_equal(whole, reordered[::-1])


def test_vmap_results_do_not_depend_on_the_grouping(cohort) -> None:
    x, y, keep = cohort
    training = TrainingSpec(epochs=2, batch_size=32)
    whole = train_vmap(_factory, training, x, y, keep[:6], range(6), seed=2)
    parts = np.concatenate([
        train_vmap(_factory, training, x, y, keep[:2], range(2), seed=2),
        train_vmap(_factory, training, x, y, keep[2:6], range(2, 6), seed=2, max_models=3),
    ])
    assert np.array_equal(whole, parts)


def test_seed_and_model_index_decide_the_model(cohort) -> None:
    x, y, keep = cohort
    spec, training = ModelSpec(width=16), TrainingSpec(epochs=1, batch_size=64)
    rows = np.repeat(keep[:1], 2, axis=0)
    same_records = train_group(spec, training, x, y, rows, [0, 1], seed=0)
    assert not np.array_equal(same_records[0], same_records[1])  # own init and order
    again = train_group(spec, training, x, y, rows[:1], [1], seed=0)
    assert np.array_equal(again[0], same_records[1])
    other_seed = train_group(spec, training, x, y, rows[:1], [1], seed=9)
    assert not np.array_equal(other_seed[0], same_records[1])
    streams = {model_seed(0, m, s) for m in range(3) for s in range(3)}
    assert len(streams) == 9


# --- per-model masking --------------------------------------------------------------------

def test_each_model_trains_only_on_its_own_records(cohort) -> None:
    x, y, keep = cohort
    keep = keep[:3].copy()
    keep[0] = y == 1  # only positives: must predict positive everywhere
    keep[1] = y == 0  # only negatives
    keep[2] = False
    keep[2, :5] = True  # five records: a much shorter epoch than its neighbours
    spec = ModelSpec(width=16)
    training = TrainingSpec(epochs=3, batch_size=32, learning_rate=1e-2)
    logits = train_group(spec, training, x, y, keep, [0, 1, 2], seed=0)
    pred = logits[:, :, 0].argmax(-1)
    assert (pred[0] == 1).all()
    assert (pred[1] == 0).all()
    alone = train_group(spec, training, x, y, keep[2:], [2], seed=0)
    assert np.array_equal(alone[0], logits[2])


def test_schedule_covers_each_models_batches_exactly() -> None:
    counts = np.array([70, 5, 64, 100, 33, 64])
    schedule = Schedule(counts, batch_size=32)
    seen: dict[int, list[int]] = {int(m): [] for m in range(len(counts))}
    for step in range(schedule.steps_per_epoch):
        for lo, hi, size in schedule.chunks(step, max_models=2):
            assert hi - lo <= 2
            for position in range(lo, hi):
                seen[int(schedule.order[position])].append(size)
    for model, n in enumerate(counts):
        expected = [min(32, n - start) for start in range(0, n, 32)]  # a plain loop's batches
        assert seen[model] == expected
    records = [torch.arange(n) for n in schedule.counts]
    gens = [torch.Generator().manual_seed(i) for i in range(len(counts))]
    indices = schedule.epoch_indices(records, gens)
    for row, n in enumerate(schedule.counts):
        assert sorted(indices[row, :n].tolist()) == list(range(n))


# --- hand-written MLP gradients against autograd on plain modules ----------------------------

@pytest.mark.parametrize(("depth", "dropout", "batch"), [(2, 0.0, 40), (1, 0.5, 40), (0, 0.0, 40), (2, 0.0, 17)])
def test_mlp_step_gradients_equal_autograd_on_plain_modules(depth: int, dropout: float, batch: int) -> None:
    spec = ModelSpec(family="mlp", width=12, depth=depth, dropout=dropout)
    modules = [build_module(spec, 9, 3, generator=torch.Generator().manual_seed(m)) for m in range(3)]
    params = [torch.stack(list(ps)).detach() for ps in zip(*(m.parameters() for m in modules), strict=True)]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, batch, 9, generator=gen)
    y = torch.randint(0, 3, (3, batch), generator=gen)
    masks = [dropout_mask((3, batch, 12), dropout, gen) for _ in range(depth)] if dropout else None
    step = MLPStep(params, max_models=3, batch_size=40)
    grads = step(0, 3, x, y, masks)
    for m, module in enumerate(modules):
        h = x[m]
        for layer, linear in enumerate(module.hidden):  # the module's forward, masks given
            h = F.relu(linear(h))
            if masks:
                h = h * masks[layer][m]
        loss = F.cross_entropy(module.head(h), y[m])
        expected = torch.autograd.grad(loss, list(module.parameters()))
        for got, want in zip(grads, expected, strict=True):
            torch.testing.assert_close(got[m], want, rtol=1e-5, atol=1e-7)


# --- fused Adam against torch.optim.Adam ---------------------------------------------------

@pytest.mark.parametrize("fused", [True, False])
def test_stacked_adam_equals_torch_adam_per_model(fused: bool) -> None:
    torch.manual_seed(0)
    start = torch.randn(4, 6, 5)
    stacked = start.clone()
    adam = StackedAdam([stacked], lr=1e-2, weight_decays=[0.1], fused=fused)
    singles = [start[m].clone().requires_grad_() for m in range(4)]
    options = {"fused": True} if fused else {"foreach": False}
    optims = [torch.optim.Adam([p], lr=1e-2, weight_decay=0.1, **options) for p in singles]
    for step in range(7):
        grads = torch.randn(4, 6, 5)
        lo = 0 if step % 3 else 2  # models 0 and 1 skip some steps: their own step counts
        adam.step(lo, 4, [grads[lo:]])
        for m in range(lo, 4):
            singles[m].grad = grads[m].clone()
            optims[m].step()
    for m in range(4):
        assert torch.equal(stacked[m], singles[m].detach())


# --- batched Newton against scikit-learn ---------------------------------------------------

@pytest.mark.parametrize("l2", [1e-4, 1e-2, 1.0])
def test_newton_matches_sklearn(cohort, l2: float) -> None:
    x, y, keep = cohort
    coef, intercept, iterations = fit_logistic_newton(
        torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(keep), l2)
    assert (iterations < 30).all()
    for m in range(3):
        rows = keep[m]
        ref = LogisticRegression(C=1 / (l2 * rows.sum()), tol=1e-12, max_iter=10_000)
        ref.fit(x[rows].astype(np.float64), y[rows])
        np.testing.assert_allclose(coef[m].numpy(), ref.coef_[0], atol=1e-5)
        assert abs(intercept[m].item() - ref.intercept_[0]) < 1e-5


def test_logistic_group_equals_sklearn_one_by_one(cohort) -> None:
    x, y, keep = cohort
    spec = ModelSpec(family="logistic", l2=1e-3)
    fast = train_group(spec, TrainingSpec(), x, y, keep[:3], range(3), seed=0)
    slow = train_sequential(spec, TrainingSpec(), x, y, keep[:3], range(3), seed=0)
    assert fast.shape == (3, N, 1, 2)
    assert (fast[..., 0] == 0).all()  # binary logits are [0, z]
    np.testing.assert_allclose(fast, slow, atol=1e-4)
    # a stronger ridge shrinks the fitted logits
    strong = train_group(ModelSpec(family="logistic", l2=10.0), TrainingSpec(), x, y, keep[:3],
                         range(3), seed=0)
    assert np.abs(strong).mean() < 0.5 * np.abs(fast).mean()


# --- capacity: memorisation -------------------------------------------------------------

def test_high_capacity_models_memorise_noisy_labels(cohort) -> None:
    x, _, keep = cohort
    noise = np.random.default_rng(0).integers(0, 2, N)  # labels carry no signal
    wide = train_group(ModelSpec(width=256, depth=2), TrainingSpec(epochs=30, batch_size=64,
                       learning_rate=3e-3), x, noise, keep[:2], range(2), seed=0)
    linear = train_group(ModelSpec(family="logistic"), TrainingSpec(), x, noise, keep[:2],
                         range(2), seed=0)
    for logits, memorises in ((wide, True), (linear, False)):
        pred = logits[:, :, 0].argmax(-1)
        for m in range(2):
            acc_in = (pred[m][keep[m]] == noise[keep[m]]).mean()
            acc_out = (pred[m][~keep[m]] == noise[~keep[m]]).mean()
            kind = "wide MLP" if memorises else "linear model"
            at_most(f"{kind} {m}: accuracy on records not trained on (labels are noise)",
                    acc_out, 0.62)
            if memorises:
                at_least(f"{kind} {m}: training accuracy", acc_in, 0.95)
            else:
                at_most(f"{kind} {m}: training accuracy", acc_in, 0.7)


# --- views, classes, devices, errors ------------------------------------------------------

def test_views_add_a_query_axis(cohort) -> None:
    x, y, keep = cohort
    spec, training = ModelSpec(width=8), TrainingSpec(epochs=1)
    plain = train_group(spec, training, x, y, keep[:2], [0, 1], seed=0)
    views = [lambda t: t, lambda t: -t]
    both = train_group(spec, training, x, y, keep[:2], [0, 1], seed=0, views=views)
    assert both.shape == (2, N, 2, 2)
    assert np.array_equal(both[:, :, :1], plain)
    flipped = train_group(spec, training, -x, y, keep[:2], [0, 1], seed=0)
    assert not np.array_equal(both[:, :, 1], flipped[:, :, 0])  # trained on x, queried on -x
    newton = train_group(ModelSpec(family="logistic"), training, x, y, keep[:2], [0, 1], 0,
                         views=views)
    np.testing.assert_allclose(newton[:, :, 1, 1], -newton[:, :, 0, 1] + 2 * _intercepts(newton),
                               atol=1e-4)


def _intercepts(logits: np.ndarray) -> np.ndarray:
    """z(x) + z(-x) = 2b for a linear model, so b = mean of the two views' logits."""
    return ((logits[:, :, 0, 1] + logits[:, :, 1, 1]) / 2).mean(1, keepdims=True)


def test_num_classes_widens_the_output(cohort) -> None:
    x, y, keep = cohort
    logits = train_group(ModelSpec(width=8), TrainingSpec(epochs=1), x, y, keep[:1], [0], 0,
                         num_classes=4)
    assert logits.shape == (1, N, 1, 4)


def test_select_device_prefers_cuda_only_when_present() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device().type == expected
    assert select_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            select_device("cuda")
    with pytest.raises(InputError, match="device"):
        select_device("tpu")


def test_cpu_threads_never_exceed_the_machine() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(64)
    try:
        with cpu_threads():
            assert torch.get_num_threads() <= 64
            import os

            assert torch.get_num_threads() <= len(os.sched_getaffinity(0))
        assert torch.get_num_threads() == 64
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "keep": a["keep"][:, :10]}, "keep: expected a boolean array"),
        (lambda a: {**a, "keep": np.zeros_like(a["keep"])}, "no IN records"),
        (lambda a: {**a, "labels": a["labels"] - 1}, "class indices must be 0..K-1"),
        (lambda a: {**a, "labels": a["labels"][:, None]}, "one class index per record"),
        (lambda a: {**a, "labels": a["labels"] + 0.5}, "integer class indices"),
        (lambda a: {**a, "inputs": np.where(np.eye(N, F_IN, dtype=bool), np.nan, a["inputs"])},
         "record 0 holds a missing"),
        (lambda a: {**a, "inputs": a["inputs"][:, :, None]}, "flatten the records"),
        (lambda a: {**a, "model_index": [0]}, "model_index: expected 2"),
        (lambda a: {**a, "model_index": [1, 1]}, "distinct"),
        (lambda a: {**a, "seed": -1}, "seed"),
    ],
)
def test_bad_inputs_raise_one_clear_error(cohort, change, message: str) -> None:
    x, y, keep = cohort
    args = {"inputs": x, "labels": y, "keep": keep[:2], "model_index": [0, 1], "seed": 0}
    with pytest.raises(InputError, match=message):
        train_group(ModelSpec(width=4), TrainingSpec(epochs=1), **change(args))


def test_logistic_rejects_weight_decay(cohort) -> None:
    x, y, keep = cohort
    with pytest.raises(InputError, match=r"model\.l2"):
        train_group(ModelSpec(family="logistic"), TrainingSpec(weight_decay=0.1), x, y, keep[:1],
                    [0], 0)


def test_model_generator_is_a_cpu_generator_per_stream() -> None:
    a = torch.rand(3, generator=model_generator(1, 2, 0))
    b = torch.rand(3, generator=model_generator(1, 2, 0))
    c = torch.rand(3, generator=model_generator(1, 2, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_uint8_table_trains_as_its_numbers(cohort) -> None:
    """Only image pixels are read as value / 255; a table of small counts stays counts."""
    x, y, keep = cohort
    counts = np.clip(np.round(x * 10 + 50), 0, 255).astype(np.uint8)
    spec, training = ModelSpec(width=8, depth=1), TrainingSpec(epochs=1, batch_size=64)
    as_uint8 = train_group(spec, training, counts, y, keep[:2], [0, 1], seed=0)
    as_float = train_group(spec, training, counts.astype(np.float32), y, keep[:2], [0, 1], seed=0)
    np.testing.assert_array_equal(as_uint8, as_float)
