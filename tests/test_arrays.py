"""The array contract: one validator per design array, one message wherever it enters."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit import arrays, attacks, risk, signals
from miaudit.errors import InputError
from miaudit.plan import make_plan


def test_keep_and_membership_accept_bool_and_binary_numbers():
    keep = np.array([[True, False], [False, True]])
    for form in (keep, keep.astype(int), keep.astype(float)):
        got = arrays.as_keep(form, 2, 2)
        assert got.dtype == bool and (got == keep).all()
        got = arrays.as_membership(form, (2, 2))
        assert got.dtype == bool and (got == keep).all()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: arrays.as_keep(np.ones((2, 3)), 2, 2), r"keep: expected shape \[M, N\] = \[2, 2\]"),
        (lambda: arrays.as_keep(np.array([["a", "b"]]), 1, 2), "keep: expected booleans"),
        (lambda: arrays.as_keep([[0, 2]], 1, 2, name="ref_keep"), "ref_keep: model 0, record 1 is 2"),
        (lambda: arrays.as_membership(np.ones((4, 3)), (3, 3)), r"membership: shape \(4, 3\)"),
        (lambda: arrays.as_membership([[0, np.nan]], (1, 2)), "membership: value nan at target 0"),
        (lambda: arrays.as_membership([["x"]], (1, 1)), "astype"),
        (lambda: arrays.as_scores([1.0, 2.0]), "scores: expected a 2-D"),
        (lambda: arrays.as_scores([["a"]]), "scores: cannot be read"),
        (lambda: arrays.as_vector([0.5, np.inf], "exposure"), "exposure: entry 1 is inf"),
        (lambda: arrays.as_patient([0, 1], 3), r"patient: shape \(2,\) does not match the 3"),
        (lambda: arrays.as_patient([[0, 1]]), "patient: expected a 1-D array"),
        (lambda: arrays.as_patient([0.5, 1.0]), "factorize"),
        (lambda: arrays.as_patient([0, -1]), "patient: index -1 is negative"),
        (lambda: arrays.as_patient([0, 4], num_patients=3), "num_patients: 3"),
        (lambda: arrays.as_targets([5], 4), "targets: model index 5"),
        (lambda: arrays.as_population([0], 4), "at least 2 records"),
        (lambda: arrays.check_logits(np.zeros((2, 3))), r"logits: expected shape \[M, N, V, K\]"),
    ],
)
def test_messages(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_patient_whole_floats_become_indices():
    index, top = arrays.as_patient(np.array([0.0, 2.0, 1.0]))
    assert index.dtype == np.int64 and index.tolist() == [0, 2, 1] and top == 3
    assert arrays.as_patient([0, 1], 2, num_patients=5)[1] == 5


def test_every_part_uses_the_one_validator():
    bad = np.ones((4, 3))  # not [T, N] = [4, 4]
    with pytest.raises(InputError, match=r"keep: expected shape \[M, N\] = \[4, 4\]"):
        attacks.lira(np.zeros((4, 4)), bad)
    with pytest.raises(InputError, match=r"membership: shape \(4, 3\)"):
        risk.record_auc(np.zeros((4, 4)), bad)
    with pytest.raises(InputError, match="patient: index -1 is negative"):
        risk.patient_exposure([0.5, 0.6], [0, -1])
    with pytest.raises(InputError, match="patient: index -1 is negative"):
        make_plan(4, 2, seed=0).record_keep(np.array([0, -1]))
    assert signals.check_logits is arrays.check_logits
