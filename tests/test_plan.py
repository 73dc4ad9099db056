"""MembershipPlan: balanced, seeded, patient-level."""

from __future__ import annotations

import io

import numpy as np
import pytest

from miaudit.errors import InputError
from miaudit.plan import MembershipPlan, make_plan

CASES = [(2, 2, 0), (7, 2, 1), (101, 4, 2), (500, 16, 3), (1000, 64, 4), (5735, 200, 0)]


@pytest.mark.parametrize(("patients", "models", "seed"), CASES)
def test_every_patient_is_in_for_exactly_half_the_models(
    patients: int, models: int, seed: int
) -> None:
    plan = make_plan(patients, models, seed)
    assert plan.keep.shape == (models, patients) and plan.keep.dtype == bool
    assert (plan.num_models, plan.num_patients, plan.seed) == (models, patients, seed)
    assert np.all(plan.keep.sum(axis=0) == models // 2)


@pytest.mark.parametrize(("patients", "models", "seed"), CASES)
def test_model_sizes_differ_by_at_most_one(patients: int, models: int, seed: int) -> None:
    sizes = make_plan(patients, models, seed).keep.sum(axis=1)
    assert set(sizes.tolist()) <= {patients // 2, (patients + 1) // 2}
    if patients % 2 == 0:
        assert np.all(sizes == patients // 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_records_follow_their_patient(seed: int) -> None:
    rng = np.random.default_rng(seed)
    patients, models = 40, 8
    patient = rng.permutation(np.repeat(np.arange(patients), rng.integers(1, 5, size=patients)))
    plan = make_plan(patients, models, seed)
    record_keep = plan.record_keep(patient)
    assert record_keep.shape == (models, patient.size)
    for m in range(models):
        for i in range(patient.size):
            assert record_keep[m, i] == plan.keep[m, patient[i]]
    # all records of a patient are IN or OUT together, and each record is IN for M/2 models
    for p in range(patients):
        rows = record_keep[:, patient == p]
        assert np.all(rows == rows[:, :1])
    assert np.all(record_keep.sum(axis=0) == models // 2)


def test_deterministic_by_seed_and_independent_of_global_state() -> None:
    first = make_plan(300, 10, 7).keep
    np.random.seed(123)  # noqa: NPY002 - the legacy global state must not matter
    np.random.default_rng(0).random(1000)
    again = make_plan(300, 10, 7).keep
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, make_plan(300, 10, 8).keep)


def test_splits_look_like_independent_random_halves() -> None:
    """No complementary or identical models, no paired-off patients.

    With every patient IN for h = M/2 models, two models share on average
    P·h(h-1)/(M(M-1)) patients (≈ P/4), with a spread of about sqrt(P)/4; a construction
    from complementary pairs of models would put some overlaps at 0.
    """
    patients, models = 400, 20
    keep = make_plan(patients, models, 11).keep.astype(int)
    half = models // 2
    expected = patients * half * (half - 1) / (models * (models - 1))
    pairs = (keep @ keep.T)[np.triu_indices(models, k=1)]
    assert np.all(np.abs(pairs - expected) < 30)
    rows = {tuple(r) for r in keep.T}
    assert len(rows) > 0.95 * patients


@pytest.mark.parametrize("models", [0, 1, 3, 7, -2])
def test_odd_or_too_few_models_are_refused_with_the_fix(models: int) -> None:
    with pytest.raises(InputError, match="even number"):
        make_plan(100, models, 0)


def test_too_few_patients_are_refused() -> None:
    with pytest.raises(InputError, match="at least 2"):
        make_plan(1, 4, 0)


def test_arrays_round_trip_through_npz_without_pickles() -> None:
    plan = make_plan(57, 6, 5)
    buffer = io.BytesIO()
    np.savez(buffer, **plan.to_arrays())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as loaded:
        back = MembershipPlan.from_arrays({k: loaded[k] for k in loaded.files})
    np.testing.assert_array_equal(back.keep, plan.keep)
    assert back.seed == 5


def test_damaged_plan_arrays_are_refused() -> None:
    arrays = make_plan(20, 4, 0).to_arrays()
    with pytest.raises(InputError, match="lacks seed"):
        MembershipPlan.from_arrays({"keep": arrays["keep"]})
    with pytest.raises(InputError, match="bool"):
        MembershipPlan.from_arrays({**arrays, "keep": arrays["keep"].astype(np.int8)})
    unbalanced = arrays["keep"].copy()
    unbalanced[0, 3] = not unbalanced[0, 3]
    with pytest.raises(InputError, match="patient 3 is IN"):
        MembershipPlan.from_arrays({**arrays, "keep": unbalanced})


def test_record_keep_refuses_a_cohort_of_another_size() -> None:
    plan = make_plan(10, 4, 0)
    with pytest.raises(InputError, match="another cohort"):
        plan.record_keep(np.array([0, 5, 10]))


def test_holdout_patients_are_never_in_and_the_rest_stay_balanced() -> None:
    plan = make_plan(101, 8, seed=5, holdout_fraction=0.2)
    assert plan.holdout is not None and plan.holdout.sum() == 20
    assert not plan.keep[:, plan.holdout].any()
    np.testing.assert_array_equal(plan.keep[:, plan.audited].sum(axis=0), 4)
    again = MembershipPlan.from_arrays(plan.to_arrays())
    np.testing.assert_array_equal(again.holdout, plan.holdout)
    # the held-out set does not depend on the number of models
    np.testing.assert_array_equal(make_plan(101, 16, 5, holdout_fraction=0.2).holdout, plan.holdout)
    # without a holdout the plan is unchanged by the option
    np.testing.assert_array_equal(make_plan(50, 8, 1, holdout_fraction=0.0).keep, make_plan(50, 8, 1).keep)
