"""Signals from logits: exactness against 50-digit arithmetic, stability, and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from miaudit.errors import InputError
from miaudit.signals import (
    SIGNALS,
    check_logits,
    compute_signal,
    cross_entropy,
    logit_confidence,
    true_class_probability,
)


def exact(logit_row, positive):
    """(confidence, probability, loss) of one logit vector with 50-digit arithmetic."""
    mpmath = pytest.importorskip("mpmath")  # installed with torch (via sympy)
    mpmath.mp.dps = 50
    if len(logit_row) == 1:  # a single binary logit z is the pair [0, z]
        logit_row = [0.0, logit_row[0]]
    pos = mpmath.fsum(
        mpmath.exp(mpmath.mpf(float(z))) for z, p in zip(logit_row, positive, strict=True) if p
    )
    neg = mpmath.fsum(
        mpmath.exp(mpmath.mpf(float(z))) for z, p in zip(logit_row, positive, strict=True) if not p
    )
    conf = mpmath.log(pos) - mpmath.log(neg)
    prob = pos / (pos + neg)
    return float(conf), float(prob), float(-mpmath.log(prob))


def exact_multilabel(logit_row, positive):
    """(confidence, probability, loss) of independent sigmoid findings, 50-digit arithmetic."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    log_p = mpmath.mpf(0)
    for z, p in zip(logit_row, positive, strict=True):
        a = mpmath.mpf(float(z)) if p else -mpmath.mpf(float(z))
        log_p -= mpmath.log1p(mpmath.exp(-a))
    prob = mpmath.exp(log_p)
    conf = log_p - mpmath.log(-mpmath.expm1(log_p))
    return float(conf), float(prob), float(-log_p)


def check_exact_multilabel(logits, labels):
    conf = logit_confidence(logits, labels)
    prob = true_class_probability(logits, labels)
    loss = cross_entropy(logits, labels)
    m, n, v, _ = logits.shape
    for mi in range(m):
        for ni in range(n):
            for vi in range(v):
                want = exact_multilabel(list(logits[mi, ni, vi]), [bool(x) for x in labels[ni]])
                got = (conf[mi, ni, vi], prob[mi, ni, vi], loss[mi, ni, vi])
                for g, w in zip(got, want, strict=True):
                    assert math.isfinite(g)
                    assert g == pytest.approx(w, rel=1e-10, abs=1e-300)


def positives(label, k):
    if np.ndim(label) == 1:
        return [bool(v) for v in label]
    width = 2 if k == 1 else k
    return [i == int(label) for i in range(width)]


def check_exact(logits, labels):
    conf = logit_confidence(logits, labels)
    prob = true_class_probability(logits, labels)
    loss = cross_entropy(logits, labels)
    m, n, v, k = logits.shape
    for mi in range(m):
        for ni in range(n):
            for vi in range(v):
                want = exact(list(logits[mi, ni, vi]), positives(labels[ni], k))
                got = (conf[mi, ni, vi], prob[mi, ni, vi], loss[mi, ni, vi])
                for g, w in zip(got, want, strict=True):
                    assert math.isfinite(g)
                    assert g == pytest.approx(w, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_signals_equal_high_precision_values(k):
    rng = np.random.default_rng(k)
    logits = rng.normal(0, 8, size=(2, 6, 2, k))
    labels = rng.integers(0, 2 if k == 1 else k, size=6)
    check_exact(logits, labels)


def test_multilabel_probability_is_the_product_of_the_findings_sigmoids():
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 5, size=(3, 5, 1, 4))
    # rows with no finding and with every finding are ordinary records
    labels = np.array([[1, 0, 1, 0], [0, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]])
    check_exact_multilabel(logits, labels)
    sig = 1.0 / (1.0 + np.exp(-np.where(labels[None, :, None, :] == 1, logits, -logits)))
    np.testing.assert_allclose(true_class_probability(logits, labels), sig.prod(axis=-1), rtol=1e-12)


@pytest.mark.parametrize(
    "row",
    [
        [40.0, -40.0, 40.0],  # memorised: p within 1e-17 of 1
        [800.0, -900.0, 1e4],  # every sigmoid rounds to 1 in float64
        [1e-9, 50.0, -50.0],
        [-1e4, 1e4, -1e4],  # confidently wrong
        [3.0, -2.0, 0.5],
    ],
)
def test_multilabel_extremes_are_exact(row):
    logits = np.array(row, dtype=np.float64)[None, None, None, :]
    check_exact_multilabel(logits, np.array([[1, 0, 1]]))


def test_one_finding_is_the_binary_case():
    z = np.array([-30.0, -2.0, 0.0, 1.5, 35.0])
    logits = z[None, :, None, None]
    y = np.array([1, 0, 1, 1, 0])
    got = logit_confidence(logits, y[:, None].repeat(1, axis=1))
    np.testing.assert_allclose(got[0, :, 0], np.where(y == 1, z, -z), rtol=1e-12)


@pytest.mark.parametrize(
    ("row", "label"),
    [
        ([0.0, 1e4], 1),
        ([0.0, 1e4], 0),
        ([1e4, -1e4, 0.0], 0),
        ([1e4, -1e4, 0.0], 1),
        ([-1e4, -1e4 + 3.0, -1e4], 1),
        ([1e4], 1),
        ([-1e4], 1),
        ([745.0, -745.0], 0),
    ],
)
def test_extreme_logits_give_finite_exact_signals(row, label):
    logits = np.array(row, dtype=np.float64)[None, None, None, :]
    check_exact(logits, np.array([label]))
    conf = logit_confidence(logits, np.array([label]))[0, 0, 0]
    assert abs(conf) < 1e5  # never ±inf


def test_closed_forms_far_in_the_tails():
    # binary [0, z]: confidence z, loss softplus(−z); for label 0: −z and softplus(z)
    z = np.array([-1e4, -50.0, -1.0, 0.0, 1.0, 50.0, 1e4])
    logits = np.stack([np.zeros_like(z), z], axis=-1)[:, None, :]
    ones = np.ones(z.size, dtype=int)
    np.testing.assert_array_equal(logit_confidence(logits, ones)[:, 0], z)
    np.testing.assert_array_equal(logit_confidence(logits, 1 - ones)[:, 0], -z)
    loss = cross_entropy(logits, ones)[:, 0]
    assert loss[0] == 1e4 and loss[-1] == 0.0 and loss[3] == pytest.approx(math.log(2))
    assert loss[5] == pytest.approx(math.exp(-50.0), rel=1e-14)  # not 0: no log(1 − ε) rounding


def test_float32_logits_are_scored_in_float64():
    logits = np.array([[[0.0, 40.0]]], dtype=np.float32)  # float32 softmax rounds p to 1
    labels = np.array([1])
    assert logit_confidence(logits, labels).dtype == np.float64
    assert logit_confidence(logits, labels)[0, 0] == 40.0
    assert cross_entropy(logits, labels)[0, 0] == pytest.approx(math.exp(-40.0), rel=1e-14)


def test_single_logit_equals_two_logits_with_zero():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 10, size=(3, 7, 2, 1))
    labels = rng.integers(0, 2, size=7)
    pair = np.concatenate([np.zeros_like(z), z], axis=-1)
    for name in SIGNALS:
        np.testing.assert_array_equal(
            compute_signal(name, z, labels), compute_signal(name, pair, labels)
        )


def test_one_model_shape_and_labels_as_floats():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(5, 2, 3))  # [N, V, K]: one model
    labels = np.array([0, 2, 1, 1, 0])
    got = logit_confidence(logits, labels.astype(float))
    assert got.shape == (5, 2)
    np.testing.assert_array_equal(got, logit_confidence(logits[None], labels)[0])


def test_non_finite_logits_name_model_and_record():
    logits = np.zeros((4, 6, 1, 2))
    logits[2, 5, 0, 1] = np.nan
    with pytest.raises(InputError, match=r"model 2, record 5 \(view 0, class 1\) holds nan"):
        check_logits(logits)
    logits[2, 5, 0, 1] = 0.0
    logits[1, 3, 0, 0] = -np.inf
    with pytest.raises(InputError, match="model 1, record 3"):
        logit_confidence(logits, np.zeros(6, dtype=int))
    one = np.zeros((6, 1, 2))
    one[4, 0, 0] = np.inf
    with pytest.raises(InputError, match="record 4"):
        check_logits(one)


@pytest.mark.parametrize(
    ("shape", "match"),
    [((4, 6), r"\[M, N, V, K\]"), ((2, 3, 4, 5, 6), r"\[M, N, V, K\]"), ((2, 0, 1, 2), "empty")],
)
def test_logit_shapes_are_checked(shape, match):
    with pytest.raises(InputError, match=match):
        check_logits(np.zeros(shape))


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.array([0, 1, 3]), "record 2 has label 3, outside 0..2"),
        (np.array([0, -1, 1]), "record 1 has label -1"),
        (np.array([0, 1]), "2 labels for 3 records"),
        (np.array([0.0, 1.5, 1.0]), "record 1"),
        (np.array([[1, 0, 0], [0, 2, 0], [1, 0, 0]]), "record 1 has multi-hot values"),
        (np.array([[1, 0], [0, 1], [1, 0]]), "do not match"),
    ],
)
def test_bad_labels_name_the_record(labels, match):
    with pytest.raises(InputError, match=match):
        logit_confidence(np.zeros((2, 3, 1, 3)), labels)


def test_binary_logit_labels_are_zero_or_one():
    with pytest.raises(InputError, match=r"outside 0\.\.1"):
        logit_confidence(np.zeros((1, 2, 1, 1)), np.array([0, 2]))
    got = logit_confidence(np.ones((1, 2, 1, 1)), np.array([[0], [1]]))  # [N, 1] column
    np.testing.assert_array_equal(got[0, :, 0], [-1.0, 1.0])


def test_unknown_signal_name():
    with pytest.raises(InputError, match="choose one of"):
        compute_signal("entropy", np.zeros((1, 1, 1, 2)), np.zeros(1, dtype=int))
