"""Chance baselines: p-values, Simes, false-discovery control and null counts, on known answers.

The calibration checks run on :func:`miaudit.simulate.signal_world` (pure noise, or noise with
a planted effect on known patients) under miaudit's own balanced plan. Their margins were set
from the spread over 10 seeds (``python bench/bench_null.py --calibration``): on pure noise with
one record per patient and M ≥ 16, P(p ≤ 0.05) ranged 0.027–0.066 per seed and 0.037–0.048
averaged over seeds; the checks average 5 seeds.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from miaudit import attacks, risk
from miaudit.chance import null_records, permutation_rng, permuted_keep
from miaudit.errors import InputError
from miaudit.plan import make_plan
from miaudit.risk.chance import (
    NullRecords,
    chance,
    exact_record_p_values,
    models_for_threshold,
    q_values,
    record_p_values,
    simes,
)
from miaudit.simulate import signal_world


def _measure(world, options):
    """``keep -> RecordAUC`` as the audit measures it: leave-pair-out LiRA, else raw scores."""
    if options is None:
        return lambda k: risk.record_auc(world.signals[:, :, 0], k)
    return lambda k: risk.pairwise_record_auc(*attacks.lira_pair_auc(world.signals, k, options=options))


def _figures(world, options=None, permutations=10, seed=1, exact=False):
    """An attack's chance figures on a signal world (reference-free when options is None)."""
    measure = _measure(world, options)
    p = world.num_patients
    record = measure(world.keep)
    exposure, _ = risk.patient_exposure(record.auc, world.patient, num_patients=p)
    null = null_records(
        measure, world.keep, world.patient, p, permutations=permutations, seed=seed
    )
    exact_p = exact_record_p_values(world.signals[:, :, 0], world.keep) if exact else None
    return chance(
        record.auc, record.n_in, record.n_out, exposure, world.patient, p, null, exact_p=exact_p
    ), exposure


# ------------------------------------------------------------------ oracles of the fast paths


def test_record_p_values_match_a_loop_over_designs():
    rng = np.random.default_rng(0)
    auc = rng.uniform(0, 1, 50)
    auc[3] = np.nan
    n_in = rng.choice([3, 4], 50)
    n_out = np.full(50, 4)
    null = NullRecords(
        auc=rng.uniform(0, 1, (4, 50)),
        n_in=rng.choice([3, 4], (4, 50)),
        n_out=np.full((4, 50), 4),
    )
    null.auc[0, :5] = np.nan
    got = record_p_values(auc, n_in, n_out, null)
    for i in range(50):
        if np.isnan(auc[i]):
            assert np.isnan(got[i])
            continue
        same = (null.n_in == n_in[i]) & (null.n_out == n_out[i]) & ~np.isnan(null.auc)
        pool = null.auc[same]
        assert got[i] == pytest.approx((1 + np.sum(pool >= auc[i])) / (1 + pool.size))


def test_a_record_whose_design_no_null_shares_has_no_p_value():
    null = NullRecords(auc=np.full((2, 3), 0.5), n_in=np.full((2, 3), 4), n_out=np.full((2, 3), 4))
    p = record_p_values([0.9, 0.9, 0.9], [4, 3, 4], [4, 4, 4], null)
    assert np.isfinite(p[0]) and np.isnan(p[1]) and np.isfinite(p[2])


def test_simes_matches_its_definition_per_patient():
    rng = np.random.default_rng(1)
    patient = rng.integers(0, 30, 200)
    p = rng.uniform(0, 1, 200) ** 2
    p[rng.choice(200, 20, replace=False)] = np.nan
    got = simes(p, patient, 31)
    for j in range(31):
        mine = np.sort(p[(patient == j) & ~np.isnan(p)])
        if mine.size == 0:
            assert np.isnan(got[j])
        else:
            k = mine.size
            assert got[j] == pytest.approx(min(1.0, np.min(k * mine / np.arange(1, k + 1))))


def test_exact_p_values_enumerate_every_assignment():
    """The exact p-value is the share of the C(6, 3) label assignments with AUC ≥ observed."""
    rng = np.random.default_rng(2)
    scores = rng.standard_normal((6, 40))
    scores[:, 5] = scores[0, 5]  # a tie: no exact p-value
    keep = np.zeros((6, 40), bool)
    for n in range(40):
        keep[rng.permutation(6)[:3], n] = True
    got = exact_record_p_values(scores, keep)
    assert np.isnan(got[5])
    def auc(s, members):
        return np.mean(s[members][:, None] > s[~members][None, :])

    for n in (0, 1, 17, 39):
        observed = auc(scores[:, n], keep[:, n])
        hits = [
            auc(scores[:, n], np.isin(np.arange(6), c)) >= observed - 1e-12
            for c in itertools.combinations(range(6), 3)
        ]
        assert got[n] == pytest.approx(np.mean(hits))


def test_q_values_are_benjamini_hochberg_and_nan_is_no_test():
    p = np.array([0.001, np.nan, 0.02, 0.04, 0.5])
    q = q_values(p)
    assert np.isnan(q[1])
    m = 4
    ranked = np.array([0.001, 0.02, 0.04, 0.5])
    bh = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    np.testing.assert_allclose(q[[0, 2, 3, 4]], bh)
    assert (q_values(p, "by")[[0, 2, 3, 4]] >= q[[0, 2, 3, 4]]).all()
    with pytest.raises(InputError, match="fdr_method"):
        q_values(p, "holm")


def test_permuted_keep_keeps_the_design():
    plan = make_plan(60, 16, 3, holdout_fraction=0.2)
    patient = np.repeat(np.arange(60), 3)
    keep = plan.record_keep(patient)
    eligible = ~plan.holdout
    shuffled = permuted_keep(keep, patient, 60, eligible, permutation_rng(0, 0))
    # every record follows its patient, every patient keeps M/2 models, held-out stay out
    cols = shuffled[:, ::3]
    assert (shuffled == cols[:, patient]).all()
    assert (cols[:, eligible].sum(axis=0) == 8).all() and not cols[:, ~eligible].any()
    # the set of plan columns is the plan's own (so each model's size is unchanged)
    assert (shuffled.sum(axis=1) == keep.sum(axis=1)).all()
    assert not (shuffled == keep).all()
    again = permuted_keep(keep, patient, 60, eligible, permutation_rng(0, 0))
    assert (again == shuffled).all()
    other = permuted_keep(keep, patient, 60, eligible, permutation_rng(0, 1))
    assert not (other == shuffled).all()


def test_models_for_threshold_follows_the_null_spread():
    # the measurement at 5,000 records: at 32 models nothing by chance ≥ 0.9, some ≥ 0.8
    assert 24 <= models_for_threshold(0.9, 5000) <= 34
    assert models_for_threshold(0.8, 5000) > 34
    assert models_for_threshold(0.8, 5000, 5) > models_for_threshold(0.8, 5000)
    with pytest.raises(InputError, match="threshold"):
        models_for_threshold(0.5, 100)


# ------------------------------------------------------------------ calibration on pure noise


@pytest.mark.parametrize("models", [16, 32])
@pytest.mark.parametrize(
    "attack", [attacks.LiraOptions(), attacks.LiraOptions(online=False), None],
    ids=["lira", "lira_offline", "reference-free"],
)
def test_one_record_p_values_are_uniform_on_pure_noise(models, attack):
    rates = []
    for seed in range(5):
        world = signal_world(models, 1000, seed=seed)
        found, _ = _figures(world, attack, exact=attack is None)
        rates.append([np.mean(found.patient_p <= a) for a in (0.01, 0.05, 0.2, 0.5)])
    r = np.mean(rates, axis=0)
    assert 0.002 <= r[0] <= 0.017
    assert 0.03 <= r[1] <= 0.065
    assert 0.16 <= r[2] <= 0.23
    assert 0.45 <= r[3] <= 0.54


@pytest.mark.parametrize("models", [8, 16, 32])
def test_patient_p_values_of_several_records_are_valid_on_pure_noise(models):
    """Simes over a patient's records never gives too small a p-value (it is conservative)."""
    rates = []
    for seed in range(5):
        world = signal_world(models, 200, records_per_patient=5, seed=seed)
        found, _ = _figures(world, attacks.LiraOptions())
        rates.append([np.mean(found.patient_p <= a) for a in (0.05, 0.2)])
    r = np.mean(rates, axis=0)
    assert r[0] <= 0.065 and r[1] <= 0.23


def test_no_discovery_on_pure_noise_but_in_rare_runs():
    """On pure noise every discovery is false: BH at 5 % finds any in ≤ 5 % of runs."""
    runs = [
        _figures(signal_world(16, 300, seed=seed), attacks.LiraOptions())[0].beyond_chance > 0
        for seed in range(20)
    ]
    assert sum(runs) <= 3  # Binomial(20, 0.05): P(≥ 4) = 1.6 %


def test_null_counts_match_the_observed_counts_on_pure_noise():
    world = signal_world(8, 2000, seed=4)
    found, exposure = _figures(world, attacks.LiraOptions(), permutations=20)
    observed = risk.high_risk_counts(exposure, (0.8, 0.9))
    for t in ("0.8", "0.9"):
        assert observed[t] > 20
        assert abs(observed[t] - found.high_risk_null[t]) <= 4 * np.sqrt(observed[t])
        assert found.high_risk_null_upper[t] >= found.high_risk_null[t]
    assert found.beyond_chance == 0


# ------------------------------------------------------------------ power and FDR on planted


def test_planted_patients_are_found_and_false_discoveries_stay_rare():
    fdp, power = [], []
    for seed in range(10):
        world = signal_world(32, 600, effect=3.0, seed=seed)
        found, _ = _figures(world, attacks.LiraOptions())
        hit = found.patient_q <= 0.05
        fdp.append(np.sum(hit & ~world.planted) / max(hit.sum(), 1))
        power.append(np.mean(hit[world.planted]))
    # measured over 20 seeds: mean FDP 0.062 (BH's bound π0·q = 0.0475), power 1.0
    assert np.mean(fdp) <= 0.1
    assert np.mean(power) >= 0.9


def test_the_null_is_seeded():
    world = signal_world(16, 100, seed=0)
    measure = _measure(world, attacks.LiraOptions())

    def null(seed):
        return null_records(measure, world.keep, world.patient, 100, permutations=3, seed=seed)

    np.testing.assert_array_equal(null(5).auc, null(5).auc)
    assert not np.array_equal(null(5).auc, null(6).auc)


# ------------------------------------------------------------------ intervals that cover


def test_the_score_interval_is_every_auc_its_equation_does_not_reject():
    from scipy.stats import norm

    from miaudit.risk.intervals import auc_score_interval, hanley_mcneil_variance

    auc = np.array([0.5, 0.8, 0.95, 1.0, 0.0, np.nan])
    n = np.array([8, 16, 16, 8, 8, 8])
    kappa = np.array([1.0, 2.0, 1.5, 2.0, 1.0, 1.0])
    low, high = auc_score_interval(auc, n, n, inflation=kappa)
    z = norm.ppf(0.975)
    grid = np.linspace(0, 1, 200_001)
    for i in range(5):
        scale = 1 + (kappa[i] - 1) * 4 * grid * (1 - grid)
        inside = (auc[i] - grid) ** 2 <= z * z * scale * hanley_mcneil_variance(grid, n[i], n[i])
        assert low[i] == pytest.approx(grid[inside].min(), abs=1e-5)
        assert high[i] == pytest.approx(grid[inside].max(), abs=1e-5)
    assert np.isnan(low[5]) and np.isnan(high[5])
    assert low[3] < 0.9 and high[3] == 1.0  # an AUC of 1 from 8 targets is not certainty


def test_inflation_measures_the_estimators_own_null_variance():
    from miaudit.risk.chance import inflation

    world = signal_world(32, 1500, seed=2)
    pair = _measure(world, attacks.LiraOptions())
    raw = _measure(world, None)
    for measure, lo, hi in ((pair, 1.4, 3.0), (raw, 1.0, 1.15)):
        record = measure(world.keep)
        null = null_records(measure, world.keep, world.patient, 1500, permutations=5, seed=0)
        kappa = inflation(null, record.n_in, record.n_out)
        assert lo <= kappa.min() and kappa.max() <= hi


def test_patient_intervals_follow_the_arg_max_record_or_average_the_ends():
    auc = np.array([0.6, 0.9, 0.7, np.nan])
    low, high = np.array([0.4, 0.8, 0.5, np.nan]), np.array([0.8, 0.97, 0.9, np.nan])
    patient = np.array([0, 0, 1, 1])
    lo, hi = risk.patient_interval(auc, low, high, patient, num_patients=2)
    np.testing.assert_allclose(lo, [0.8, 0.5])
    np.testing.assert_allclose(hi, [0.97, 0.9])
    lo, hi = risk.patient_interval(auc, low, high, patient, how="mean", num_patients=2)
    np.testing.assert_allclose(lo, [0.6, 0.5])
    np.testing.assert_allclose(hi, [0.885, 0.9])


def test_record_intervals_cover_the_true_auc_at_32_targets():
    """Known true AUCs Φ(δ/√2): 95 % intervals hold for ≥ 93 % of records, the most exposed too.

    Measured over 3 seeds (1,200 records): 0.943–0.977 at 32 targets (bench/RESULTS.md); the
    Wald interval ± 1.96·SE covered 0.60 at true AUC 0.99 and 0.79 at 0.5.
    """
    from scipy.stats import norm

    from miaudit.plan import make_plan
    from miaudit.risk.chance import inflation

    grid = np.array([0.5, 0.7, 0.8, 0.9, 0.95, 0.99])
    covered = {g: [] for g in grid}
    for seed in range(2):
        rng = np.random.default_rng(seed)
        keep = make_plan(1200, 32, seed).keep
        true = np.resize(grid, 1200)
        x = (rng.standard_normal(keep.shape) + np.sqrt(2) * norm.ppf(true) * keep)[:, :, None]

        def measure(k, x=x):
            return risk.pairwise_record_auc(*attacks.lira_pair_auc(x, k))

        record = measure(keep)
        null = null_records(measure, keep, np.arange(1200), 1200, permutations=5, seed=1)
        kappa = inflation(null, record.n_in, record.n_out)
        low, high = risk.auc_score_interval(record.auc, record.n_in, record.n_out, inflation=kappa)
        for g in grid:
            rows = true == g
            covered[g].append(np.mean((low[rows] <= g) & (g <= high[rows])))
    rates = {g: np.mean(v) for g, v in covered.items()}
    assert min(rates.values()) >= 0.92, rates
    assert np.mean(list(rates.values())) >= 0.94, rates


def test_exact_p_values_replace_the_pooled_ones_where_they_exist():
    world = signal_world(8, 300, seed=3)
    scores = world.signals[:, :, 0].copy()
    scores[:, 7] = scores[0, 7]  # a record of ties keeps its pooled p-value
    measure = _measure(world, None)
    record = risk.record_auc(scores, world.keep)
    null = null_records(measure, world.keep, world.patient, 300, permutations=4, seed=0)
    exposure, _ = risk.patient_exposure(record.auc, world.patient, num_patients=300)
    exact = exact_record_p_values(scores, world.keep)
    found = chance(
        record.auc, record.n_in, record.n_out, exposure, world.patient, 300, null, exact_p=exact
    )
    pooled = record_p_values(record.auc, record.n_in, record.n_out, null)
    assert np.isnan(exact[7]) and found.record_p[7] == pooled[7]
    ok = ~np.isnan(exact)
    np.testing.assert_array_equal(found.record_p[ok], exact[ok])
    # the exact and pooled p-values of the same records agree up to the pool's resolution
    assert np.max(np.abs(exact[ok] - pooled[ok])) < 0.1
