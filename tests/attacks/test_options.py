"""LiRA's and RMIA's options: frozen, keyword-only, validated once, and built by run_attack."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from miaudit import attacks
from miaudit.attacks import LiraOptions, RmiaOptions
from miaudit.errors import InputError
from miaudit.plan import make_plan
from miaudit.signals import compute_signal


def world(m: int = 6, patients: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    patient = np.repeat(np.arange(patients), 2)
    keep = make_plan(patients, m, seed).record_keep(patient)
    logits = rng.normal(size=(m, patient.size, 1, 2)).astype(np.float32)
    labels = rng.integers(0, 2, patient.size)
    return logits, labels, keep


def test_defaults_are_the_attacks_defaults():
    assert LiraOptions() == LiraOptions(
        online=True, fixed_variance=False, estimator="mean", ddof=1, min_std=1e-6
    )
    assert RmiaOptions() == RmiaOptions(online=False, gamma=1.0, a=None, trim=0.0)


def test_frozen_and_keyword_only():
    opts = LiraOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.online = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        LiraOptions(False)  # type: ignore[misc]
    with pytest.raises(TypeError):
        RmiaOptions(True)  # type: ignore[misc]
    assert dataclasses.replace(opts, online=False).online is False


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LiraOptions(estimator="mode"), "estimator: expected 'mean' or 'median'"),
        (lambda: LiraOptions(ddof=2), "ddof: expected 0 or 1"),
        (lambda: LiraOptions(min_std=0.0), "min_std: expected a positive floor"),
        (lambda: LiraOptions(min_std="1e-6"), "min_std"),
        (lambda: LiraOptions(online="yes"), "online: expected True or False"),
        (lambda: LiraOptions(fixed_variance=1), "fixed_variance: expected True or False"),
        (lambda: RmiaOptions(gamma=0.0), "gamma: expected a positive threshold"),
        (lambda: RmiaOptions(gamma=np.inf), "gamma"),
        (lambda: RmiaOptions(a=1.5), r"a: expected the offline interpolation a in \[0, 1\]"),
        (lambda: RmiaOptions(a=np.nan), "a: expected"),
        (lambda: RmiaOptions(trim=0.5), r"trim: expected the fraction cut from each end"),
        (lambda: RmiaOptions(online=None), "online: expected True or False"),
    ],
)
def test_bad_options_are_input_errors(make, match):
    with pytest.raises(InputError, match=match):
        make()


def test_the_wrong_record_is_refused():
    logits, labels, keep = world()
    conf = compute_signal("logit_confidence", logits, labels)
    with pytest.raises(InputError, match="expected LiraOptions"):
        attacks.lira(conf, keep, options=RmiaOptions())
    with pytest.raises(InputError, match="expected RmiaOptions"):
        attacks.rmia_target(conf[0], conf[1:], keep[1:], options=LiraOptions())


def test_run_attack_builds_the_options_from_keywords():
    logits, labels, keep = world()
    conf = compute_signal("logit_confidence", logits, labels)
    prob = compute_signal("probability", logits, labels)
    got = attacks.run_attack("lira_offline", logits, labels, keep, fixed_variance=True, ddof=0)
    want = attacks.lira(conf, keep, options=LiraOptions(online=False, fixed_variance=True, ddof=0))
    np.testing.assert_array_equal(got, want)
    got = attacks.run_attack("rmia_online", logits, labels, keep, gamma=2.0, population=[0, 3, 5])
    want = attacks.rmia(
        prob, keep, population=[0, 3, 5], options=RmiaOptions(online=True, gamma=2.0)
    )
    np.testing.assert_array_equal(got, want)
    with pytest.raises(InputError, match="accepted: fixed_variance, balanced, estimator, ddof, min_std, n_jobs"):
        attacks.run_attack("lira", logits, labels, keep, online=False)
    with pytest.raises(InputError, match="accepted: gamma, a, trim, population, n_jobs"):
        attacks.run_attack("rmia", logits, labels, keep, estimator="median")
    with pytest.raises(InputError, match="gamma: expected a positive threshold"):
        attacks.run_attack("rmia", logits, labels, keep, gamma=-1.0)
