"""The conv training engine against plain loops: sequential, grouped, views, multi-label.

Measured tolerances (CPU, float32): one Adam step per model, grouped logits equal the
sequential ones to ~1e-6 (vmap turns a conv into a grouped conv, which rounds differently
from a lone one). After several steps the two drift further apart, up to ~1e-2 in a
logit: Adam's first update is lr·g/(|g|+eps) ≈ ±lr for every weight, so a gradient entry
that is zero up to rounding (|g| ~ 1e-7 > eps = 1e-8) can take either sign and that weight
a full step either way. Predictions still agree: ≥ 98 % identical argmax after a few epochs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _margins import SEED, at_least, at_most

from miaudit.errors import InputError
from miaudit.models import ModelSpec, SeededDropout, build_module
from miaudit.training import (
    TrainingSpec,
    score_modules,
    train_conv,
    train_group,
    train_sequential,
)
from miaudit.training.optim import adam_options
from miaudit.training.seeds import (
    STREAM_AUGMENT,
    STREAM_DROPOUT,
    STREAM_INIT,
    STREAM_ORDER,
    model_generator,
)
from miaudit.views import ViewSpec, make_views

N = 48
SHAPE = (1, 8, 8)
SPEC = ModelSpec(family="wrn", width=4, blocks=1)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions gain nothing from a second thread, and on a shared machine each
    parallel region can wait a scheduler slice for it (measured: minutes instead of seconds)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tiny images whose class shows as a bright blob; four models on random halves."""
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(N, *SHAPE)).astype(np.float32) * 0.5
    y = rng.integers(0, 3, N)
    for i in range(N):
        if y[i]:
            r, c = rng.integers(0, 6, 2)
            x[i, 0, r : r + 2, c : c + 2] += 1.5 * y[i]
    keep = rng.random((4, N)) < 0.5
    keep[:, :2] = True  # no empty model
    return x, y, keep


def _plain_loop(spec: ModelSpec, training: TrainingSpec, x: np.ndarray, y: np.ndarray,
                rows: np.ndarray, index: int, seed: int, views: list, classes: int) -> np.ndarray:
    """One model, written out: module, Adam, its own streams; scored on every record and view."""
    module = build_module(spec, x.shape[1:], classes,
                          generator=model_generator(seed, index, STREAM_INIT))
    drop = model_generator(seed, index, STREAM_DROPOUT)  # one stream, blocks in forward order
    for layer in module.modules():
        if isinstance(layer, SeededDropout):
            layer.generator = drop
    optimizer = torch.optim.Adam(module.parameters(), lr=training.learning_rate,
                                 **adam_options(torch.device("cpu")))
    order = model_generator(seed, index, STREAM_ORDER)
    augment = model_generator(seed, index, STREAM_AUGMENT)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    records = torch.from_numpy(np.flatnonzero(rows))
    module.train()
    for _ in range(training.epochs):
        shuffled = records[torch.randperm(len(records), generator=order)]
        for start in range(0, len(shuffled), training.batch_size):
            batch = shuffled[start : start + training.batch_size]
            xb = inputs[batch]
            if len(views) > 1:
                choice = torch.randint(len(views), (len(batch),), generator=augment)
                xb = torch.cat([views[int(c)](xb[i : i + 1]) for i, c in enumerate(choice)])
            loss = F.cross_entropy(module(xb), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    module.eval()
    with torch.no_grad():
        return np.stack([module(v(inputs)).numpy() for v in views or [lambda t: t]], axis=1)


# --- the reference paths -------------------------------------------------------------------

@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_sequential_path_equals_a_plain_loop_bit_for_bit(images, dropout: float) -> None:
    x, y, keep = images
    spec = ModelSpec(family="wrn", width=4, blocks=1, dropout=dropout)
    training = TrainingSpec(epochs=2, batch_size=8, learning_rate=3e-3)
    views = make_views(ViewSpec(flip=True, shift=1), "image", SHAPE)
    got = train_group(spec, training, x, y, keep[:2], [5, 9], seed=3, views=views)
    assert got.shape == (2, N, 18, 3) and got.dtype == np.float32
    for g, index in enumerate((5, 9)):
        expected = _plain_loop(spec, training, x, y, keep[g], index, 3, views, 3)
        np.testing.assert_array_equal(got[g], expected)


def test_train_sequential_and_train_group_share_the_conv_path(images) -> None:
    x, y, keep = images
    training = TrainingSpec(epochs=1, batch_size=16)
    a = train_sequential(SPEC, training, x, y, keep[:2], [0, 1], seed=0)
    b = train_group(SPEC, training, x, y, keep[:2], [0, 1], seed=0)
    c = train_group(SPEC, training, x, y, keep[:2], [0, 1], seed=0, grouped=False)
    assert a.shape == (2, N, 1, 3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_grouped_equals_sequential_after_one_step(images) -> None:
    x, y, keep = images
    training = TrainingSpec(epochs=1, batch_size=N, learning_rate=1e-2)  # one step per model
    views = make_views(ViewSpec(flip=True), "image")
    seq = train_conv(SPEC, training, x, y, keep, [0, 1, 2, 3], 1, views=views, grouped=False)
    grp = train_conv(SPEC, training, x, y, keep, [0, 1, 2, 3], 1, views=views, grouped=True)
    np.testing.assert_allclose(grp, seq, rtol=0, atol=2e-5)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_grouped_predicts_like_sequential_after_a_few_epochs(images, dropout: float) -> None:
    x, y, keep = images
    spec = ModelSpec(family="wrn", width=4, blocks=1, dropout=dropout)
    training = TrainingSpec(epochs=3, batch_size=8, learning_rate=1e-2)
    views = make_views(ViewSpec(flip=True, shift=1), "image", SHAPE)
    seq = train_conv(spec, training, x, y, keep, [0, 1, 2, 3], 2, views=views, grouped=False)
    grp = train_conv(spec, training, x, y, keep, [0, 1, 2, 3], 2, views=views, grouped=True)
    at_least("share of predictions the two paths agree on",
             (seq.argmax(-1) == grp.argmax(-1)).mean(), 0.98, strict=False)
    prob = lambda z: torch.softmax(torch.from_numpy(z), -1).numpy()  # noqa: E731
    at_most("largest probability difference between the paths",
            np.abs(prob(seq) - prob(grp)).max(), 0.08)
    # and the models did train: their logits moved well beyond that difference
    untrained = train_conv(spec, training.model_copy(update={"learning_rate": 1e-12}), x, y,
                           keep, [0, 1, 2, 3], 2, views=views)
    at_least("largest probability change from training", np.abs(prob(seq) - prob(untrained)).max(),
             0.15)


@pytest.mark.parametrize("grouped", [False, True])
def test_a_models_result_does_not_depend_on_its_group(images, grouped: bool) -> None:
    x, y, keep = images
    training = TrainingSpec(epochs=1, batch_size=8)
    views = make_views(ViewSpec(flip=True), "image")
    args = dict(views=views, grouped=grouped)
    four = train_conv(SPEC, training, x, y, keep, [0, 1, 2, 3], 4, **args)
    pairs = np.concatenate([train_conv(SPEC, training, x, y, keep[2:], [2, 3], 4, **args),
                            train_conv(SPEC, training, x, y, keep[:2], [0, 1], 4, **args)])
    pairs = pairs[[2, 3, 0, 1]]
    if grouped:  # each model is its own group of the grouped conv: measured equal on CPU
        np.testing.assert_allclose(four, pairs, rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(four, pairs)
    again = train_conv(SPEC, training, x, y, keep, [0, 1, 2, 3], 4, **args)
    np.testing.assert_array_equal(four, again)
    other_seed = train_conv(SPEC, training, x, y, keep, [0, 1, 2, 3], 5, **args)
    assert not np.allclose(four, other_seed)


# --- what each model sees ------------------------------------------------------------------

class Recorder:
    """An identity view that records which records (coded in pixel [0, 0, 0]) it was given."""

    def __init__(self, log: list, tag: int) -> None:
        self.log, self.tag = log, tag

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append((self.tag, x[:, 0, 0, 0].round().long().tolist()))
        return x


def _recorded(keep_row: np.ndarray, index: int, grouped: bool, epochs: int = 2) -> list:
    x = np.zeros((N, *SHAPE), np.float32)
    x[:, 0, 0, 0] = np.arange(N)
    y = np.arange(N) % 2
    log: list = []
    views = [Recorder(log, 0), Recorder(log, 1), Recorder(log, 2)]
    train_conv(SPEC, TrainingSpec(epochs=epochs, batch_size=8), x, y, keep_row[None], [index],
               0, views=views, grouped=grouped, rows=N)
    # drop the shape probe (one call per view on records 0 and 1) and the scoring calls
    return [entry for entry in log[len(views):] if len(entry[1]) < N]


def test_each_model_trains_on_exactly_its_records_with_its_own_view_draws(images) -> None:
    keep = images[2]
    for grouped in (False, True):
        log = _recorded(keep[0], 7, grouped)
        seen = [r for _, ids in log for r in ids]
        assert sorted(seen) == sorted(np.flatnonzero(keep[0]).tolist() * 2)  # 2 epochs
        views_used = {tag for tag, _ in log}
        assert views_used == {0, 1, 2}
    # reproducible, the same on both paths up to the order of the per-view calls,
    # and different for another model index
    view_of = lambda log: sorted((r, tag) for tag, ids in log for r in ids)  # noqa: E731
    first = _recorded(keep[0], 7, False)
    assert first == _recorded(keep[0], 7, False)
    assert view_of(first) == view_of(_recorded(keep[0], 7, True))
    assert view_of(first) != view_of(_recorded(keep[0], 8, False))


def test_scoring_chunks_never_hold_all_records_and_views(images) -> None:
    x, y, keep = images
    log: list = []
    views = [Recorder(log, v) for v in range(3)]
    x = x.copy()
    x[:, 0, 0, 0] = np.arange(N)
    train_conv(SPEC, TrainingSpec(epochs=1, batch_size=N), x, y, keep[:1], [0], 0,
               views=views, rows=5)
    scoring = log[-3 * int(np.ceil(N / 5)):]
    assert [tag for tag, _ in scoring] == [0, 1, 2] * int(np.ceil(N / 5))
    assert all(len(ids) <= 5 for _, ids in scoring)
    assert sorted(r for tag, ids in scoring if tag == 1 for r in ids) == list(range(N))


@pytest.mark.parametrize("grouped", [False, True])
def test_chunked_scoring_equals_scoring_all_at_once(images, grouped: bool) -> None:
    x, y, keep = images
    training = TrainingSpec(epochs=1, batch_size=16)
    views = make_views(ViewSpec(shift=1), "image", SHAPE)
    whole = train_conv(SPEC, training, x, y, keep[:2], [0, 1], 0, views=views, rows=N,
                       grouped=grouped)
    ones = train_conv(SPEC, training, x, y, keep[:2], [0, 1], 0, views=views, rows=1,
                      grouped=grouped)
    odd = train_conv(SPEC, training, x, y, keep[:2], [0, 1], 0, views=views, rows=7,
                     grouped=grouped)
    # a conv's rounding depends on the batch it runs in: equal up to float32 rounding
    np.testing.assert_allclose(ones, whole, rtol=0, atol=1e-5)
    np.testing.assert_allclose(odd, whole, rtol=0, atol=1e-5)


def test_score_modules_equals_a_per_record_loop() -> None:
    torch.manual_seed(0)
    modules = [build_module(SPEC, SHAPE, 3, generator=torch.Generator().manual_seed(s))
               for s in range(2)]
    x = np.random.default_rng(1).normal(size=(11, *SHAPE)).astype(np.float32)
    views = make_views(ViewSpec(flip=True, shift=1), "image", SHAPE)
    got = score_modules(modules, x, views, rows=4)
    assert got.shape == (2, 11, 18, 3)
    with torch.no_grad():
        for g, module in enumerate(modules):
            for i in range(11):
                for v, view in enumerate(views):
                    one = module(view(torch.from_numpy(x[i : i + 1])))[0].numpy()
                    np.testing.assert_allclose(got[g, i, v], one, rtol=0, atol=1e-5)


# --- labels, signals, precision ------------------------------------------------------------

def test_multilabel_training_reduces_bce_and_learns_a_planted_rule() -> None:
    rng = np.random.default_rng(1 + SEED)
    n = 64
    x = (rng.normal(size=(n, *SHAPE)) * 0.5).astype(np.float32)
    y = (rng.random((n, 2)) < 0.5).astype(np.int64)
    checker = np.indices((8, 8)).sum(0) % 2 * 2 - 1.0
    for i in range(n):
        if y[i, 0]:  # label 0: a bright 2×2 blob somewhere
            r, c = rng.integers(0, 7, 2)
            x[i, 0, r : r + 2, c : c + 2] += 3
        if y[i, 1]:  # label 1: a checkerboard texture
            x[i, 0] += checker
    keep = np.ones((1, n), bool)

    def bce(epochs: int, grouped: bool) -> tuple[float, np.ndarray]:
        training = TrainingSpec(epochs=epochs, batch_size=16, learning_rate=1e-2)
        z = train_conv(SPEC, training, x, y, keep, [0], 0, grouped=grouped)[0, :, 0]
        assert z.shape == (n, 2)
        loss = F.binary_cross_entropy_with_logits(torch.from_numpy(z), torch.from_numpy(y).float())
        return float(loss), ((z > 0) == y).mean(0)

    before, _ = bce(1, False)
    after, accuracy = bce(40, False)
    at_least("BCE drop from 1 to 40 epochs", before - after, 0.1)
    at_least("lowest per-finding accuracy", accuracy.min(), 0.75, strict=False)
    grouped_after, grouped_accuracy = bce(40, True)
    at_least("BCE drop, grouped", before - grouped_after, 0.1)
    at_least("lowest per-finding accuracy, grouped", grouped_accuracy.min(), 0.75, strict=False)


def test_resnet1d_learns_a_rule_on_signals() -> None:
    rng = np.random.default_rng(2 + SEED)
    n, leads, t = 48, 2, 32
    x = rng.normal(size=(n, leads, t)).astype(np.float32)
    y = rng.integers(0, 2, n)
    x[y == 1, 1, 10:14] += 4.0  # class 1: a spike on lead 1
    spec = ModelSpec(family="resnet1d", width=4, blocks=1, kernel_size=5)
    views = make_views(ViewSpec(shift=2), "signal", (leads, t))
    z = train_group(spec, TrainingSpec(epochs=15, batch_size=16, learning_rate=1e-2), x, y,
                    np.ones((1, n), bool), [0], 0, views=views)
    assert z.shape == (1, n, 3, 2)
    at_least("accuracy", (z[0, :, 0].argmax(-1) == y).mean(), 0.9, strict=False)


def test_mixed_precision_keeps_float32_weights_and_trains() -> None:
    rng = np.random.default_rng(3 + SEED)
    x = rng.normal(size=(32, *SHAPE)).astype(np.float32)
    y = rng.integers(0, 2, 32)
    x[y == 1, 0, 2:5, 2:5] += 2.0
    training = TrainingSpec(epochs=30, batch_size=8, learning_rate=1e-2)
    keep = np.ones((1, 32), bool)
    full = train_conv(SPEC, training, x, y, keep, [0], 0, grouped=True)
    half = train_conv(SPEC, training, x, y, keep, [0], 0, grouped=True, mixed_precision=True)
    assert half.dtype == np.float32 and np.isfinite(half).all()
    assert not np.array_equal(half, full)  # bf16 really was used
    at_least("accuracy, float32", (full[0, :, 0].argmax(-1) == y).mean(), 0.9, strict=False)
    at_least("accuracy, bf16", (half[0, :, 0].argmax(-1) == y).mean(), 0.9, strict=False)


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "inputs": a["inputs"][:, 0]}, r"wrn family expects images \[N records"),
        (lambda a: {**a, "model": ModelSpec(family="resnet1d")}, "resnet1d family expects signals"),
        (lambda a: {**a, "labels": np.stack([a["labels"], a["labels"]], 1)},
         "multi-label targets must be 0/1"),
        (lambda a: {**a, "labels": (np.stack([a["labels"]] * 2, 1) > 0), "num_classes": 3},
         "num_classes: 3 but the multi-label targets have 2 columns"),
        (lambda a: {**a, "labels": a["labels"][:, None, None]}, "or \\[N, K\\] 0/1 multi-label"),
        (lambda a: {**a, "views": [lambda t: t[:, :, :4]]}, r"views\[0\]: must map a batch"),
        (lambda a: {**a, "model": ModelSpec(family="mlp")}, "table family"),
        (lambda a: {**a, "rows": 0}, "rows: records per scoring chunk"),
    ],
)
def test_bad_inputs_raise_one_clear_error(images, change, message: str) -> None:
    x, y, keep = images
    args = {"model": SPEC, "training": TrainingSpec(epochs=1), "inputs": x, "labels": y,
            "keep": keep[:1], "model_index": [0], "seed": 0}
    with pytest.raises(InputError, match=message):
        train_conv(**change(args))


def test_table_families_point_multilabel_targets_to_the_conv_families() -> None:
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    y = np.zeros((10, 2), np.int64)
    with pytest.raises(InputError, match=r"one class index per record.*wrn or resnet1d"):
        train_group(ModelSpec(width=4), TrainingSpec(epochs=1), x, y, np.ones((1, 10), bool), [0], 0)


def test_table_families_run_the_sequential_reference_when_not_grouped() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = rng.integers(0, 2, 40)
    keep = rng.random((2, 40)) < 0.6
    spec, training = ModelSpec(width=8), TrainingSpec(epochs=2, batch_size=8)
    np.testing.assert_array_equal(
        train_group(spec, training, x, y, keep, [0, 1], 0, grouped=False),
        train_sequential(spec, training, x, y, keep, [0, 1], 0),
    )


@pytest.mark.parametrize("grouped", [False, True])
def test_uint8_pixels_train_as_their_float_values_bit_for_bit(grouped: bool) -> None:
    """A decoded image cohort trains from uint8 (value / 255 per batch) exactly as from the
    float32 array a user would build from the same bytes: the same logits, to the bit."""
    rng = np.random.default_rng(SEED)
    pixels = rng.integers(0, 256, size=(N, *SHAPE), dtype=np.uint8)
    y = (pixels[:, 0, :4].mean(axis=(1, 2)) > 127).astype(np.int64)
    keep = rng.random((4, N)) < 0.5
    keep[:, :2] = True
    views = make_views(ViewSpec(flip=True, shift=1), "image", SHAPE)
    training = TrainingSpec(epochs=2, batch_size=16)
    as_float = pixels.astype(np.float32) / np.float32(255)
    a = train_conv(SPEC, training, pixels, y, keep, [0, 1, 2, 3], SEED, views=views, grouped=grouped)
    b = train_conv(SPEC, training, as_float, y, keep, [0, 1, 2, 3], SEED, views=views, grouped=grouped)
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all() and a.std() > 0
