"""Risk metrics on synthetic scores with known answers, and fast paths against plain loops."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from miaudit import risk
from miaudit.errors import InputError

# --------------------------------------------------------------------------- helpers


def balanced_membership(rng: np.random.Generator, n_targets: int, n_units: int) -> np.ndarray:
    """[T, n_units] bool, each unit IN for exactly half of the targets (like a MembershipPlan)."""
    return np.argsort(rng.random((n_targets, n_units)), axis=0) < n_targets // 2


def plain_record_auc(scores: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """Per-record loop with sklearn: the obvious definition of record AUC."""
    out = np.full(scores.shape[1], np.nan)
    for n in range(scores.shape[1]):
        ok = ~np.isnan(scores[:, n])
        y = membership[ok, n]
        if y.any() and not y.all():
            out[n] = roc_auc_score(y, scores[ok, n])
    return out


def plain_hanley_mcneil(a: float, n1: int, n2: int) -> float:
    q1 = a / (2 - a)
    q2 = 2 * a**2 / (1 + a)
    return math.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a**2) + (n2 - 1) * (q2 - a**2)) / (n1 * n2))


def brute_tpr_at_fpr(s: np.ndarray, y: np.ndarray, at: float) -> float:
    """Try every threshold: the best TPR any real threshold reaches at FPR ≤ at."""
    best = 0.0
    for thr in np.r_[np.unique(s), np.inf]:
        pred = s >= thr
        fpr = (pred & ~y).sum() / (~y).sum()
        if fpr <= at:
            best = max(best, (pred & y).sum() / y.sum())
    return best


# --------------------------------------------------------------------------- the paper's effect


def test_planted_shift_exposes_records_while_aggregate_stays_near_chance():
    rng = np.random.default_rng(7)
    n_targets, n_patients, shift = 64, 1000, 5.0
    patient = np.repeat(np.arange(n_patients), 2)  # 2000 records, two per patient
    n_records = patient.size
    keep = balanced_membership(rng, n_targets, n_patients)
    membership = keep[:, patient]  # a patient's records are IN or OUT together
    planted_patients = rng.choice(n_patients, 20, replace=False)
    planted = 2 * planted_patients  # the first record of each planted patient
    offset = np.zeros(n_records)
    offset[planted] = shift
    scores = rng.normal(size=(n_targets, n_records)) + membership * offset

    rec = risk.record_auc(scores, membership)
    assert np.all(rec.n_in == 32) and np.all(rec.n_out == 32)
    # P(IN > OUT) = Φ(5/√2) ≈ 0.9998 for planted records, 0.5 for the rest
    assert rec.auc[planted].min() > 0.95
    others = np.setdiff1d(np.arange(n_records), planted)
    assert abs(rec.auc[others].mean() - 0.5) < 0.01  # SE ≈ 0.072/√1980 ≈ 0.0016
    assert rec.auc[others].max() < 0.9

    metrics = risk.attack_metrics(scores, membership)
    expected_auc = 0.5 + len(planted) / n_records * (stats.norm.cdf(shift / math.sqrt(2)) - 0.5)
    agg = metrics["aggregate"]
    assert agg["auc"] < 0.56
    assert abs(agg["auc"] - expected_auc) < 0.01  # expected ≈ 0.505, SE ≈ 0.0016
    # yet at FPR 0.1% the planted pairs (1% of IN pairs, 97% of them above z_0.999) show up
    assert agg["tpr_at_fpr"]["0.001"] > 5 * 1e-3

    exposure, _ = risk.patient_exposure(rec, patient)
    assert set(risk.top_exposed(exposure, fraction=0.02)) == set(planted_patients)
    assert risk.high_risk_counts(exposure)["0.95"] == 20

    eps = risk.epsilon_lower_bound_from_scores(scores, membership)
    assert eps["epsilon_lower"] > 1.0


# --------------------------------------------------------------------------- record AUC


def messy_scores(seed: int, n_targets: int = 40, n_records: int = 300):
    """Integer scores (many ties), unbalanced membership, NaN holes and degenerate records."""
    rng = np.random.default_rng(seed)
    p_in = rng.uniform(0.1, 0.9, n_records)
    membership = rng.random((n_targets, n_records)) < p_in
    scores = np.round(
        rng.normal(size=(n_targets, n_records)) * 2 + membership * rng.uniform(0, 3, n_records)
    )
    scores[rng.random(scores.shape) < 0.1] = np.nan
    membership[:, 0] = False  # no IN
    membership[:, 1] = True  # no OUT
    scores[:, 2] = np.nan  # nothing at all
    scores[:, 3] = 1.0  # all tied
    scores[~membership[:, 4], 4] = np.nan  # OUT scores all missing
    return scores, membership


@pytest.mark.parametrize("seed", [0, 1])
def test_empirical_record_auc_matches_sklearn_loop(seed):
    scores, membership = messy_scores(seed)
    fast = risk.record_auc(scores, membership)
    slow = plain_record_auc(scores, membership)
    np.testing.assert_array_equal(np.isnan(fast.auc), np.isnan(slow))
    np.testing.assert_allclose(fast.auc, slow, rtol=0, atol=1e-12, equal_nan=True)
    valid = ~np.isnan(scores)
    np.testing.assert_array_equal(fast.n_in, (valid & membership).sum(0))
    np.testing.assert_array_equal(fast.n_out, (valid & ~membership).sum(0))
    assert len(set(fast.n_in.tolist())) > 5  # records really differ in n_in
    assert fast.auc[3] == 0.5
    assert np.isnan(fast.auc[[0, 1, 2, 4]]).all() and np.isnan(fast.se[[0, 1, 2, 4]]).all()
    for n in np.flatnonzero(~np.isnan(slow)):
        expected = plain_hanley_mcneil(slow[n], fast.n_in[n], fast.n_out[n])
        assert fast.se[n] == pytest.approx(expected, rel=1e-10, abs=1e-14)


def test_record_auc_blocks_give_the_same_answer(monkeypatch):
    scores, membership = messy_scores(3, n_targets=30, n_records=257)
    whole = risk.record_auc(scores, membership)
    monkeypatch.setattr(risk.record, "_BLOCK_ELEMENTS", 30 * 7)  # blocks of 7 records
    for method in ("empirical", "gaussian"):
        blocked = risk.record_auc(scores, membership, method=method)
        monkeypatch.setattr(risk.record, "_BLOCK_ELEMENTS", 1 << 22)
        single = risk.record_auc(scores, membership, method=method)
        monkeypatch.setattr(risk.record, "_BLOCK_ELEMENTS", 30 * 7)
        np.testing.assert_array_equal(blocked.auc, single.auc)
        np.testing.assert_array_equal(blocked.se, single.se)
    np.testing.assert_array_equal(whole.n_in, blocked.n_in)


def test_empirical_record_auc_ranks_infinite_scores():
    rng = np.random.default_rng(4)
    membership = balanced_membership(rng, 20, 50)
    scores = rng.normal(size=(20, 50))
    scores[rng.random(scores.shape) < 0.1] = np.inf
    scores[rng.random(scores.shape) < 0.1] = -np.inf
    stand_in = np.clip(scores, -1e6, 1e6)  # same order, finite
    np.testing.assert_allclose(
        risk.record_auc(scores, membership).auc, plain_record_auc(stand_in, membership), atol=1e-12
    )
    assert np.isnan(
        risk.record_auc(scores, membership, method="gaussian").auc[np.isinf(scores).any(0)]
    ).all()


def test_gaussian_record_auc_matches_plain_formula():
    scores, membership = messy_scores(5)
    fast = risk.record_auc(scores, membership, method="gaussian")
    for n in range(scores.shape[1]):
        ok = ~np.isnan(scores[:, n])
        a, b = scores[ok & membership[:, n], n], scores[ok & ~membership[:, n], n]
        if len(a) < 2 or len(b) < 2:
            assert np.isnan(fast.auc[n]) and np.isnan(fast.se[n])
            continue
        va, vb = np.var(a, ddof=1), np.var(b, ddof=1)
        if va + vb == 0:
            continue
        d = (a.mean() - b.mean()) / math.sqrt(va + vb)
        var_d = (va / len(a) + vb / len(b)) / (va + vb) + d**2 / 2 * (
            va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)
        ) / (va + vb) ** 2
        assert fast.auc[n] == pytest.approx(stats.norm.cdf(d), abs=1e-12)
        assert fast.se[n] == pytest.approx(stats.norm.pdf(d) * math.sqrt(var_d), rel=1e-9)


def test_large_samples_recover_the_binormal_auc():
    rng = np.random.default_rng(11)
    deltas = np.array([0.0, 0.5, 1.0, 2.0, 3.0])
    n_targets = 20_000
    membership = balanced_membership(rng, n_targets, deltas.size)
    scores = rng.normal(size=(n_targets, deltas.size)) + membership * deltas
    truth = stats.norm.cdf(deltas / math.sqrt(2))
    for method in ("gaussian", "empirical"):
        r = risk.record_auc(scores, membership, method=method)
        assert np.all(np.abs(r.auc - truth) < 4 * r.se), method
        assert np.all(r.se < 0.005)


@pytest.mark.parametrize("delta", [0.0, 1.0])
@pytest.mark.parametrize("method", ["empirical", "gaussian"])
def test_standard_error_matches_spread_over_replicates(delta, method):
    # 4000 records with the same IN/OUT shift are 4000 independent replicates of one AUC
    rng = np.random.default_rng(int(delta * 10) + len(method))
    membership = balanced_membership(rng, 64, 4000)
    scores = rng.normal(size=membership.shape) + membership * delta
    r = risk.record_auc(scores, membership, method=method)
    assert np.std(r.auc, ddof=1) == pytest.approx(np.mean(r.se), rel=0.2)


def test_zero_variance_and_missing_groups():
    membership = np.array([[1, 1, 0, 1, 1, 0]] * 2 + [[0, 0, 1, 0, 0, 1]] * 3, dtype=bool).T
    # records: IN high / IN low / all equal (not exactly representable) / 1 IN only
    scores = np.stack(
        [
            np.where(membership[:, 0], 1.0, 0.0),
            np.where(membership[:, 1], 0.0, 1.0),
            np.full(6, 0.1),
            np.full(6, 0.1),
            np.where(membership[:, 4], 2.0, -1.0),
        ],
        axis=1,
    )
    membership = membership[:, :5].copy()
    membership[:, 3] = [True, False, False, False, False, False]  # a single IN score
    g = risk.record_auc(scores, membership, method="gaussian")
    e = risk.record_auc(scores, membership)
    assert g.auc[0] == 1.0 and g.se[0] == 0.0
    assert g.auc[1] == 0.0 and g.se[1] == 0.0
    assert g.auc[2] == 0.5 and np.isnan(g.se[2])
    assert np.isnan(g.auc[3]) and g.n_in[3] == 1  # Gaussian needs two of each
    assert e.auc[3] == 0.5  # one IN tied with every OUT
    np.testing.assert_array_equal(e.auc[[0, 1, 2, 4]], [1.0, 0.0, 0.5, 1.0])
    assert e.se[0] == 0.0


def test_record_auc_is_frozen_and_rejects_bad_input():
    r = risk.record_auc(np.zeros((4, 2)), np.array([[1, 0]] * 2 + [[0, 1]] * 2, dtype=bool))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.auc = np.zeros(2)  # type: ignore[misc]
    with pytest.raises(InputError, match="method"):
        risk.record_auc(np.zeros((4, 2)), np.zeros((4, 2), bool), method="lira")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"membership: shape \(4, 3\)"):
        risk.record_auc(np.zeros((4, 2)), np.zeros((4, 3), bool))
    with pytest.raises(InputError, match="membership: value 2"):
        risk.record_auc(np.zeros((2, 2)), np.array([[0, 1], [2, 0]]))
    with pytest.raises(InputError, match="scores: expected a 2-D"):
        risk.record_auc(np.zeros(4), np.zeros(4, bool))
    with pytest.raises(InputError, match="scores: cannot be read"):
        risk.record_auc([["a", "b"]], [[True, False]])


# --------------------------------------------------------------------------- ROC and metrics


def test_tpr_at_fpr_on_a_hand_made_roc():
    fpr = [0.0, 0.0, 0.005, 0.02, 0.5, 1.0]
    tpr = [0.0, 0.1, 0.2, 0.4, 0.9, 1.0]
    assert risk.tpr_at_fpr(fpr, tpr, 0.0) == 0.1
    assert risk.tpr_at_fpr(fpr, tpr, 0.01) == 0.2  # no interpolation towards (0.02, 0.4)
    assert risk.tpr_at_fpr(fpr, tpr, 0.02) == 0.4
    assert risk.tpr_at_fpr(fpr, tpr, 0.3) == 0.4
    assert risk.tpr_at_fpr(fpr, tpr, 1.0) == 1.0
    with pytest.raises(InputError, match="at="):
        risk.tpr_at_fpr(fpr, tpr, 1.5)
    with pytest.raises(InputError, match="same non-zero length"):
        risk.tpr_at_fpr(fpr, tpr[:-1], 0.1)


def test_roc_and_attack_metrics_agree_with_brute_force():
    rng = np.random.default_rng(2)
    membership = balanced_membership(rng, 6, 200)
    scores = np.round(rng.normal(size=(6, 200)) + membership * 0.8, 1)  # ties
    scores[rng.random(scores.shape) < 0.05] = np.nan
    scores[:, :3] = np.inf  # three records flagged as certain members
    ok = ~np.isnan(scores)
    s, y = scores[ok], membership[ok]

    fpr, tpr, thr = risk.roc(scores, membership)
    assert thr[0] == np.inf and thr[1] == np.inf and np.all(thr[1:-1] >= thr[2:])  # +inf scores
    for at in (0.0, 1e-3, 0.01, 0.05, 0.1, 0.5, 1 / 200):
        assert risk.tpr_at_fpr(fpr, tpr, at) == brute_tpr_at_fpr(s, y, at)
    full_fpr, full_tpr, _ = risk.roc(scores, membership, drop_intermediate=False)
    assert full_fpr.size > fpr.size
    assert np.trapezoid(tpr, fpr) == pytest.approx(np.trapezoid(full_tpr, full_fpr), abs=1e-12)

    out = risk.attack_metrics(scores, membership, fprs=(0.1, 0.01, 0.001))
    json.dumps(out, allow_nan=False)
    stand_in = np.where(np.isinf(s), 1e6, s)
    assert out["aggregate"]["auc"] == pytest.approx(roc_auc_score(y, stand_in), abs=1e-12)
    assert out["aggregate"]["tpr_at_fpr"]["1/N"] == brute_tpr_at_fpr(s, y, 1 / 200)
    assert set(out["aggregate"]["tpr_at_fpr"]) == {"0.1", "0.01", "0.001", "1/N"}
    per = [
        roc_auc_score(membership[t, ok[t]], np.where(np.isinf(scores[t]), 1e6, scores[t])[ok[t]])
        for t in range(6)
    ]
    assert out["per_target"]["auc_mean"] == pytest.approx(np.mean(per), abs=1e-12)
    assert out["per_target"]["auc_std"] == pytest.approx(np.std(per), abs=1e-12)
    per_tpr = [brute_tpr_at_fpr(scores[t, ok[t]], membership[t, ok[t]], 0.1) for t in range(6)]
    assert out["per_target"]["tpr_at_fpr_mean"]["0.1"] == pytest.approx(np.mean(per_tpr))
    assert out["num_targets"] == 6 and out["num_records"] == 200
    assert out["per_target"]["num_defined"] == 6


def test_attack_metrics_skips_targets_without_both_classes():
    rng = np.random.default_rng(3)
    membership = balanced_membership(rng, 4, 100)
    membership[3] = True  # target 3 trained on everything: no OUT pairs
    scores = rng.normal(size=(4, 100)) + membership
    out = risk.attack_metrics(scores, membership)
    assert out["per_target"]["num_defined"] == 3
    per = [roc_auc_score(membership[t], scores[t]) for t in range(3)]
    assert out["per_target"]["auc_mean"] == pytest.approx(np.mean(per), abs=1e-12)


def test_roc_without_out_pairs_is_an_input_error():
    with pytest.raises(InputError, match="no OUT pairs"):
        risk.roc(np.array([[0.1, 0.2], [0.3, np.nan]]), np.array([[1, 1], [1, 0]], bool))
    with pytest.raises(InputError, match="fprs"):
        risk.attack_metrics(np.zeros((2, 2)), np.eye(2, dtype=bool), fprs=(0.0,))


# --------------------------------------------------------------------------- patients


def plain_patient_exposure(auc, patient, se, how, n_patients):
    exposure = np.full(n_patients, np.nan)
    out_se = np.full(n_patients, np.nan)
    for p in range(n_patients):
        rows = [i for i in range(len(auc)) if patient[i] == p and not np.isnan(auc[i])]
        if not rows:
            continue
        if how == "max":
            best = rows[0]
            for i in rows:
                if auc[i] > auc[best]:
                    best = i
            exposure[p], out_se[p] = auc[best], se[best]
        else:
            exposure[p] = sum(auc[i] for i in rows) / len(rows)
            out_se[p] = math.sqrt(sum(se[i] ** 2 for i in rows)) / len(rows)
    return exposure, out_se


@pytest.mark.parametrize("how", ["max", "mean"])
def test_patient_exposure_matches_plain_loop(how):
    rng = np.random.default_rng(5)
    n_records, n_patients = 600, 130  # patients 120..129 have no records
    patient = rng.integers(0, 120, n_records)
    auc = np.round(rng.uniform(0.3, 1.0, n_records), 1)  # many ties within a patient
    se = rng.uniform(0.01, 0.1, n_records)
    auc[rng.random(n_records) < 0.2] = np.nan
    auc[patient == 7] = np.nan  # a patient with no defined record
    got, got_se = risk.patient_exposure(auc, patient, how=how, se=se, num_patients=n_patients)
    want, want_se = plain_patient_exposure(auc, patient, se, how, n_patients)
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(got_se, want_se, rtol=1e-12, equal_nan=True)
    assert np.isnan(got[7]) and np.isnan(got[120:]).all()


def test_patient_exposure_on_plain_lists_and_record_auc():
    exposure, se = risk.patient_exposure([0.6, 0.9, float("nan"), 0.7], [0, 0, 1, 2])
    np.testing.assert_array_equal(exposure, [0.9, np.nan, 0.7])
    assert np.isnan(se).all()
    mean, _ = risk.patient_exposure([0.6, 0.9, 0.7], [0, 0, 1], how="mean")
    np.testing.assert_allclose(mean, [0.75, 0.7])
    rec = risk.RecordAUC(
        auc=np.array([0.6, 0.9]), se=np.array([0.1, 0.2]), n_in=np.ones(2), n_out=np.ones(2)
    )
    _, se = risk.patient_exposure(rec, [0, 0])
    np.testing.assert_array_equal(se, [0.2])


def test_patient_exposure_rejects_bad_input():
    with pytest.raises(InputError, match="patient: index -1"):
        risk.patient_exposure([0.5, 0.6], [0, -1])
    with pytest.raises(InputError, match="factorize"):
        risk.patient_exposure([0.5, 0.6], ["a", "b"])
    with pytest.raises(InputError, match=r"patient: shape \(3,\)"):
        risk.patient_exposure([0.5, 0.6], [0, 1, 2])
    with pytest.raises(InputError, match="num_patients"):
        risk.patient_exposure([0.5, 0.6], [0, 4], num_patients=2)
    with pytest.raises(InputError, match="how"):
        risk.patient_exposure([0.5], [0], how="median")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="se: shape"):
        risk.patient_exposure([0.5], [0], se=[0.1, 0.2])
    with pytest.raises(InputError, match="record_auc: entry 1"):
        risk.patient_exposure([0.5, np.inf], [0, 1])


def test_survival_matches_plain_count_with_exact_band():
    rng = np.random.default_rng(9)
    auc = np.round(rng.beta(2, 2, 300) * 0.5 + 0.5, 3)
    auc[:10] = np.nan
    auc[10] = 0.95  # exactly on a default grid value: counts as ≥ 0.95
    surv = risk.survival(auc)
    assert surv.n == 290 and surv.grid[0] == 0.5 and surv.grid[-1] == 1.0 and surv.grid.size == 101
    defined = auc[~np.isnan(auc)]
    for i, x in enumerate(surv.grid):
        k = sum(1 for a in defined if a >= x)
        assert surv.fraction[i] == k / 290
        ci = stats.binomtest(k, 290).proportion_ci(0.95, method="exact")
        assert surv.lower[i] == pytest.approx(ci.low, abs=1e-9)
        assert surv.upper[i] == pytest.approx(ci.high, abs=1e-9)
    i95 = int(np.flatnonzero(surv.grid == 0.95)[0])
    assert surv.fraction[i95] * 290 == risk.high_risk_counts(auc)["0.95"]
    assert surv.fraction[0] == 1.0 and surv.upper[0] == 1.0


def test_survival_dkw_band_and_empty_input():
    auc = np.linspace(0.5, 1.0, 200)
    surv = risk.survival(auc, grid=[0.5, 0.75, 1.0], band="dkw", confidence=0.9)
    eps = math.sqrt(math.log(2 / 0.1) / 400)
    np.testing.assert_allclose(surv.upper - surv.fraction, [0.0, eps, eps])
    assert surv.lower[0] == pytest.approx(1 - eps)
    empty = risk.survival([np.nan, np.nan])
    assert empty.n == 0 and np.isnan(empty.fraction).all()
    with pytest.raises(InputError, match="confidence"):
        risk.survival(auc, confidence=95)


def test_high_risk_counts_and_top_exposed():
    auc = np.array([0.99, np.nan, 0.95, 0.81, 0.95, 0.5, 0.9, 0.949999])
    assert risk.high_risk_counts(auc) == {"0.8": 6, "0.9": 5, "0.95": 3, "0.99": 1}
    np.testing.assert_array_equal(risk.top_exposed(auc, fraction=0.5), [0, 2, 4, 7])
    assert risk.top_exposed(auc, fraction=0.01).tolist() == [0]
    assert len(risk.top_exposed(np.linspace(0, 1, 100), fraction=0.07)) == 7  # 0.07·100 ≠ 7.0…1
    assert risk.top_exposed([np.nan, 0.2], fraction=1.0).tolist() == [1]
    with pytest.raises(InputError, match="fraction"):
        risk.top_exposed(auc, fraction=2)


# --------------------------------------------------------------------------- confidence and ε


def test_clopper_pearson_agrees_with_binomtest():
    ks, ns = [], []
    for n in (1, 2, 7, 50, 1000):
        for k in sorted({0, 1, n // 3, n - 1, n}):
            ks.append(k)
            ns.append(n)
    lo, hi = risk.clopper_pearson(ks, ns, confidence=0.9)
    for k, n, a, b in zip(ks, ns, lo, hi, strict=True):
        ci = stats.binomtest(k, n).proportion_ci(0.9, method="exact")
        assert a == pytest.approx(ci.low, abs=1e-10) and b == pytest.approx(ci.high, abs=1e-10)
    assert risk.clopper_pearson(0, 10)[0] == 0.0 and risk.clopper_pearson(10, 10)[1] == 1.0
    assert all(np.isnan(risk.clopper_pearson(0, 0)))
    assert isinstance(float(risk.clopper_pearson(3, 10)[0]), float)
    with pytest.raises(InputError, match="0 ≤ k ≤ n"):
        risk.clopper_pearson(11, 10)
    with pytest.raises(InputError, match="whole numbers"):
        risk.clopper_pearson(1.5, 10)


def test_epsilon_lower_bound_known_point():
    out = risk.epsilon_lower_bound(50, 50, 5, 95)
    assert out["epsilon"] == pytest.approx(math.log(10))  # TPR 0.5, FPR 0.05
    lo = stats.binomtest(50, 100).proportion_ci(0.95, method="exact").low
    hi = stats.binomtest(5, 100).proportion_ci(0.95, method="exact").high
    assert out["epsilon_lower"] == pytest.approx(math.log(lo / hi), abs=1e-9)
    with_delta = risk.epsilon_lower_bound(50, 50, 5, 95, delta=0.1)
    assert with_delta["epsilon"] == pytest.approx(math.log(8))
    assert with_delta["epsilon_lower"] < out["epsilon_lower"]
    json.dumps(out)
    with pytest.raises(InputError, match="needs at least one member"):
        risk.epsilon_lower_bound(0, 0, 1, 1)
    with pytest.raises(InputError, match="tp: 'ten'"):
        risk.epsilon_lower_bound("ten", 1, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="fn: -1"):
        risk.epsilon_lower_bound(1, -1, 1, 1)
    with pytest.raises(InputError, match="delta"):
        risk.epsilon_lower_bound(1, 1, 1, 1, delta=1.0)


def test_perfect_attack_bound_is_finite_and_grows_with_trials():
    bounds = []
    for n in (10, 100, 1000, 10_000):
        out = risk.epsilon_lower_bound(n, 0, 0, n)
        a = 0.025 ** (1 / n)  # exact CP ends for k = n and k = 0
        assert out["epsilon"] == math.inf
        assert out["epsilon_lower"] == pytest.approx(math.log(a / (1 - a)), rel=1e-9)
        bounds.append(out["epsilon_lower"])
    assert all(math.isfinite(b) for b in bounds) and np.all(np.diff(bounds) > 1)


def test_random_attack_bound_is_near_zero():
    rng = np.random.default_rng(12)
    membership = balanced_membership(rng, 20, 500)
    scores = rng.normal(size=membership.shape)
    out = risk.epsilon_lower_bound_from_scores(scores, membership)
    assert 0.0 <= out["epsilon_lower"] < 0.05
    assert risk.epsilon_lower_bound_from_scores(scores, membership, threshold=0.0)["epsilon"] < 0.1


def test_epsilon_from_scores_scans_every_threshold():
    rng = np.random.default_rng(13)
    membership = balanced_membership(rng, 8, 60)
    scores = np.round(rng.normal(size=membership.shape) + 1.5 * membership, 1)
    scores[0, 0] = np.nan
    ok = ~np.isnan(scores)
    s, y = scores[ok], membership[ok]
    best = -1.0
    for thr in np.unique(s):
        tp, fp = int(((s >= thr) & y).sum()), int(((s >= thr) & ~y).sum())
        b = risk.epsilon_lower_bound(tp, y.sum() - tp, fp, (~y).sum() - fp)["epsilon_lower"]
        best = max(best, b)
    out = risk.epsilon_lower_bound_from_scores(scores, membership)
    assert out["epsilon_lower"] == pytest.approx(best, abs=1e-12) and best > 0.5
    at = risk.epsilon_lower_bound_from_scores(scores, membership, threshold=out["threshold"])
    assert at["epsilon_lower"] == out["epsilon_lower"]
    thinned = risk.epsilon_lower_bound_from_scores(scores, membership, max_candidates=6)
    assert 0 < thinned["epsilon_lower"] <= out["epsilon_lower"]


# --------------------------------------------------------------------------- model count


def test_model_count_adequacy_shrinks_like_one_over_root_k():
    rng = np.random.default_rng(14)
    membership = balanced_membership(rng, 64, 1000)
    scores = rng.normal(size=membership.shape) + membership * 0.5
    table = risk.model_count_adequacy(scores, membership, counts=(16, 32, 64))
    assert table["num_targets"].tolist() == [16, 32, 64]
    se = table["mean_se"].to_numpy()
    assert np.all(np.diff(se) < 0)
    assert se[0] / se[2] == pytest.approx(2.0, rel=0.2)  # SE ∝ 1/√k
    assert table["mean_abs_diff"].iloc[-1] == 0.0
    assert table["num_defined"].tolist() == [1000, 1000, 1000]
    default = risk.model_count_adequacy(scores, membership)
    assert default["num_targets"].tolist() == [8, 16, 32, 64]
    with pytest.raises(InputError, match="counts: 65"):
        risk.model_count_adequacy(scores, membership, counts=(65,))


def test_risk_does_not_import_torch():
    code = "import sys, miaudit.risk; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
