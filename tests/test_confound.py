"""The same-distribution control: DeLong AUCs, the input classifier, and the verdict rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _margins import SEED, at_least, at_most
from sklearn.metrics import roc_auc_score

from miaudit.confound import CONFOUND_RULE, AUCTest, assess, auc_test, delong, input_classifier
from miaudit.errors import InputError


def delong_by_loop(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """DeLong's structural components written out pair by pair."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]

    def psi(x: float, y: float) -> float:
        return 1.0 if x > y else 0.5 if x == y else 0.0

    v10 = [sum(psi(x, y) for y in neg) / len(neg) for x in pos]
    v01 = [sum(psi(x, y) for x in pos) / len(pos) for y in neg]
    auc = sum(v10) / len(pos)
    s10 = sum((v - auc) ** 2 for v in v10) / (len(pos) - 1)
    s01 = sum((v - auc) ** 2 for v in v01) / (len(neg) - 1)
    return auc, math.sqrt(s10 / len(pos) + s01 / len(neg))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_matches_the_pairwise_loop_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(120) < 0.4
    scores = np.round(rng.normal(size=120) + 0.6 * labels, 1)  # rounding makes ties
    auc, se = delong(scores, labels)
    want_auc, want_se = delong_by_loop(scores, labels)
    assert auc == pytest.approx(want_auc, abs=1e-12)
    assert se == pytest.approx(want_se, abs=1e-12)
    assert auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_the_one_sided_p_value_is_uniform_when_groups_share_a_distribution() -> None:
    rng = np.random.default_rng(0)
    p = np.array(
        [auc_test(rng.normal(size=300), rng.random(300) < 0.5).p_value for _ in range(600)]
    )
    # 600 draws: the count below 0.05 is Binomial(600, 0.05), mean 30, sd 5.3
    assert 14 <= np.count_nonzero(p < 0.05) <= 46
    assert 0.4 < np.median(p) < 0.6


def test_a_shift_gives_a_significant_auc_and_an_interval_around_it() -> None:
    rng = np.random.default_rng(1)
    labels = np.arange(400) < 200
    scores = rng.normal(size=400) + labels * 1.0
    t = auc_test(scores, labels)
    assert t.auc > 0.7 and t.p_value < 1e-6
    assert t.lower < t.auc < t.upper
    assert (t.n_positive, t.n_negative) == (200, 200)


def test_nan_scores_are_left_out_and_one_sided_data_is_refused() -> None:
    scores = np.array([0.1, np.nan, 0.9, 0.4, 0.8])
    labels = np.array([False, True, True, False, True])
    assert auc_test(scores, labels).n_positive == 2
    with pytest.raises(InputError, match="positives and negatives"):
        delong(np.array([0.1, 0.2]), np.array([True, True]))


def _two_sources(shift: float, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """300 patients, 1–3 records each; members (first half) shifted by ``shift`` in x0."""
    rng = np.random.default_rng(seed)
    p = 300
    member = np.arange(p) < p // 2
    counts = rng.integers(1, 4, size=p)
    patient = np.repeat(np.arange(p), counts)
    inputs = rng.normal(size=(patient.size, 6)).astype(np.float32)
    inputs[:, 0] += shift * member[patient]
    labels = (inputs[:, 1] > 0).astype(np.int64)
    return inputs, labels, patient, member


def test_the_input_classifier_sees_a_source_shift_and_not_a_shared_source() -> None:
    inputs, labels, patient, member = _two_sources(3.0)
    shifted = input_classifier(inputs, labels, patient, member, np.ones(300, bool), seed=0)
    assert shifted is not None
    at_least("input classifier AUC under a source shift", shifted.test.auc, 0.9)
    at_most("its p-value", shifted.test.p_value, 1e-6)
    inputs, labels, patient, member = _two_sources(0.0)
    same = input_classifier(inputs, labels, patient, member, np.ones(300, bool), seed=0)
    assert same is not None
    at_most("input classifier AUC on a shared source", same.test.auc, 0.62)
    at_least("its p-value", same.test.p_value, 0.01)
    # out-of-fold probability for every candidate record
    assert not np.isnan(same.probability).any()


def test_folds_keep_a_patients_records_together() -> None:
    """Near-copies of one patient's records would leak its label across record-level folds."""
    rng = np.random.default_rng(3 + SEED)
    p = 200
    member = rng.random(p) < 0.5
    patient = np.repeat(np.arange(p), 4)
    centre = rng.normal(size=(p, 5)) * 3
    inputs = (centre[patient] + 0.01 * rng.normal(size=(patient.size, 5))).astype(np.float32)
    labels = rng.integers(0, 2, size=patient.size)
    result = input_classifier(
        inputs, labels, patient, member, np.ones(p, bool), seed=0, classifier="boosting"
    )
    assert result is not None
    at_most("boosting AUC with patient-level folds", result.test.auc, 0.62)
    # a record-level split of the same data separates the groups: the leak the folds prevent
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    leaked = cross_val_predict(
        KNeighborsClassifier(n_neighbors=1),
        inputs,
        member[patient],
        cv=KFold(5, shuffle=True, random_state=0),
        method="predict_proba",
    )[:, 1]
    at_least("1-NN AUC with record-level folds", roc_auc_score(member[patient], leaked), 0.8)


def test_only_candidates_are_classified_and_too_few_patients_give_none() -> None:
    inputs, labels, patient, member = _two_sources(0.0)
    candidate = np.ones(300, bool)
    candidate[::3] = False
    result = input_classifier(inputs, labels, patient, member, candidate, classifier="logistic")
    assert result is not None
    outside = ~candidate[patient]
    assert np.isnan(result.probability[outside]).all()
    assert not np.isnan(result.probability[~outside]).any()
    assert result.test.n_positive + result.test.n_negative == candidate.sum()
    lonely = np.zeros(300, bool)
    lonely[0] = True
    assert input_classifier(inputs, labels, patient, lonely, np.ones(300, bool)) is None


def _test(auc: float, p: float) -> AUCTest:
    return AUCTest(auc=auc, se=0.02, lower=auc - 0.04, upper=auc + 0.04, p_value=p,
                   n_positive=100, n_negative=100)


def test_the_verdict_applies_bonferroni_over_the_available_estimates() -> None:
    attack = _test(0.8, 1e-9)
    # 0.03 is below alpha but not below alpha/2
    assert not assess(attack, _test(0.55, 0.03), _test(0.5, 0.5)).confounded
    verdict = assess(attack, _test(0.6, 0.01), _test(0.5, 0.5))
    assert verdict.confounded and "input classifier" in verdict.reasons[0]
    # with one estimate the whole alpha applies to it
    assert assess(attack, None, _test(0.55, 0.03)).confounded
    # an AUC below 0.5 never flags, however small its p-value for the other side
    assert not assess(attack, _test(0.3, 0.9), _test(0.5, 0.6)).confounded
    info = assess(attack, _test(0.6, 0.01), _test(0.62, 0.001)).to_dict()
    assert info["rule"] == CONFOUND_RULE and len(info["reasons"]) == 2
    assert info["attack_minus_neither"] == pytest.approx(0.8 - 0.62)
    with pytest.raises(InputError, match="alpha"):
        assess(attack, None, None, alpha=1.5)
