"""Subgroup disparity statistics on synthetic cohorts with known answers.

Every fast path is checked against a plain implementation written here: Pearson residuals,
the 2×K χ², exact hypergeometric enumeration, Holm and Benjamini–Hochberg, the bootstrap,
binomial intervals and the Cochran–Mantel–Haenszel statistic.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from miaudit import disparity
from miaudit.disparity import (
    adjust_pvalues,
    composition,
    group_risk,
    patient_groups,
    share_interval,
    size_vs_exposure,
    stratified,
    summarise,
)
from miaudit.errors import InputError

N_SEEDS = 200
ALPHA = 0.05
# A level-0.05 test rejects Binomial(200, 0.05) times over 200 independent null cohorts
# (mean 10, sd 3.1). We allow the 99.5% quantile of that law, 19 rejections (a rate of 0.095):
# a correctly calibrated test stays below it with probability > 0.995 for any set of seeds,
# while a test whose real level is 0.10 (20 expected rejections) fails it more often than not.
MAX_REJECTIONS = int(stats.binom.ppf(0.995, N_SEEDS, ALPHA))


# --------------------------------------------------------------------------- cohorts


def planted_cohort(
    seed: int, n: int = 5000, share: float = 0.05
) -> tuple[pd.DataFrame, np.ndarray]:
    """A majority with low exposure and a `share` subgroup "B" drawn from a higher law."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["A", "B", "C"], size=n, p=[0.6, share, 0.4 - share])
    sex = rng.choice(["F", "M"], size=n)
    exposure = 0.5 + 0.5 * rng.beta(1.0, 8.0, size=n)
    planted = group == "B"
    exposure[planted] = 0.5 + 0.5 * rng.beta(2.0, 4.0, size=planted.sum())
    return pd.DataFrame({"group": group, "sex": sex}), exposure


def confounded_cohort(seed: int, n: int = 5000) -> tuple[pd.DataFrame, np.ndarray]:
    """Exposure depends on disease only; race R1 is concentrated in the exposed disease X."""
    rng = np.random.default_rng(seed)
    disease = rng.choice(["X", "Y"], size=n, p=[0.2, 0.8])
    p_r1 = np.where(disease == "X", 0.6, 0.1)
    race = np.where(rng.random(n) < p_r1, "R1", "R2")
    exposure = np.where(
        disease == "X", 0.5 + 0.5 * rng.beta(3.0, 3.0, n), 0.5 + 0.5 * rng.beta(1.0, 6.0, n)
    )
    return pd.DataFrame({"race": race, "disease": disease}), exposure


# --------------------------------------------------------------------------- slow oracles


def slow_top(exposure: np.ndarray, n_top: int) -> list[int]:
    """Most exposed first, ties by patient index, NaN left out."""
    patients = [p for p in range(len(exposure)) if not math.isnan(exposure[p])]
    return sorted(patients, key=lambda p: (-exposure[p], p))[:n_top]


def slow_holm(p: list[float]) -> list[float]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def slow_bh(p: list[float]) -> list[float]:
    m = len(p)
    adjusted = []
    for i in range(m):
        # min over all p_j ≥ p_i of m p_j / rank(j)
        candidates = []
        for j in range(m):
            if p[j] >= p[i]:
                rank = sum(1 for x in p if x <= p[j])
                candidates.append(min(1.0, m * p[j] / rank))
        adjusted.append(min(candidates))
    return adjusted


def hypergeom_pmf(x: tuple[int, ...], colours: tuple[int, ...]) -> float:
    total = math.comb(sum(colours), sum(x))
    return math.prod(math.comb(c, k) for c, k in zip(colours, x, strict=True)) / total


def exact_pvalue(colours: tuple[int, ...], observed: tuple[int, ...]) -> float:
    """Sum of the multivariate hypergeometric law over tables at least as extreme (Pearson X²)."""
    n = sum(observed)
    big_n = sum(colours)
    expected = [n * c / big_n for c in colours]

    def x2(table: tuple[int, ...]) -> float:
        return sum((o - e) ** 2 / e for o, e in zip(table, expected, strict=True))

    threshold = x2(observed) - 1e-9
    total = 0.0
    for head in itertools.product(*(range(min(c, n) + 1) for c in colours[:-1])):
        last = n - sum(head)
        if 0 <= last <= colours[-1]:
            table = (*head, last)
            if x2(table) >= threshold:
                total += hypergeom_pmf(table, colours)
    return total


def slow_cmh(groups: list[str], strata: list[str], in_top: list[bool], labels: list[str]):
    """Textbook generalised CMH: per-stratum loops, first K−1 categories, explicit inverse."""
    k = len(labels)
    expected = [0.0] * k
    variance = [[0.0] * k for _ in range(k)]
    observed = [
        sum(1 for g, t in zip(groups, in_top, strict=True) if t and g == lab) for lab in labels
    ]
    for s in sorted(set(strata)):
        members = [i for i in range(len(strata)) if strata[i] == s]
        n_s = len(members)
        t_s = sum(in_top[i] for i in members)
        n_g = [sum(1 for i in members if groups[i] == lab) for lab in labels]
        for a in range(k):
            expected[a] += t_s * n_g[a] / n_s
            if n_s > 1:
                for b in range(k):
                    q_ab = (n_g[a] / n_s if a == b else 0.0) - n_g[a] * n_g[b] / n_s**2
                    variance[a][b] += t_s * (n_s - t_s) / (n_s - 1) * q_ab
    d = np.array(observed[:-1]) - np.array(expected[:-1])
    v = np.array([row[:-1] for row in variance[:-1]])
    return float(d @ np.linalg.inv(v) @ d), expected


# --------------------------------------------------------------------------- patient_groups


def test_numeric_column_is_cut_into_readable_quartiles():
    ages = pd.DataFrame({"age": np.arange(20, 100)[np.random.default_rng(0).permutation(80)]})
    groups = patient_groups(ages)["age"]
    counts = groups.value_counts()
    assert set(counts.index) == {"20–39", "40–59", "60–79", "80–99"}
    assert (counts == 20).all()
    assert groups[ages["age"] == 64].item() == "60–79"


def test_numeric_quantile_groups_partition_like_qcut():
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 10.0, size=1000)
    ours = patient_groups(pd.DataFrame({"x": x}), numeric_bins=5)["x"].to_numpy()
    reference = pd.qcut(x, 5, labels=False)
    # Same partition of patients: every qcut bin maps to exactly one label and back.
    pairs = set(zip(ours, reference, strict=True))
    assert len(pairs) == len(set(ours)) == len(set(reference)) == 5
    for label in set(ours):
        lo, hi = (float(v) for v in label.split("–"))
        members = x[ours == label]
        assert members.min() == pytest.approx(lo, rel=1e-2)
        assert members.max() == pytest.approx(hi, rel=1e-2)


def test_few_numeric_values_bool_and_missing_keep_their_own_groups():
    frame = pd.DataFrame(
        {
            "flag": [0, 1, 1, 0, np.nan, 1],
            "smoker": [True, False, True, True, False, False],
            "race": ["white", None, "black", "white", np.nan, "other"],
        }
    )
    groups = patient_groups(frame)
    assert groups["flag"].tolist() == ["0", "1", "1", "0", "missing", "1"]
    assert groups["smoker"].tolist() == ["True", "False", "True", "True", "False", "False"]
    assert groups["race"].tolist() == ["white", "missing", "black", "white", "missing", "other"]


def test_categorical_order_is_kept_in_tables():
    frame = pd.DataFrame(
        {"stage": pd.Categorical(["III", "I", "II", "I"] * 25, categories=["I", "II", "III", "IV"])}
    )
    exposure = np.linspace(0.5, 1.0, 100)
    table = composition(frame, exposure, top_fraction=0.1).groups
    assert table["group"].tolist() == ["I", "II", "III"]  # unused "IV" dropped


def test_patient_groups_rejects_bad_input():
    frame = pd.DataFrame({"race": ["a", "b"]})
    with pytest.raises(InputError, match="'sex' not found"):
        patient_groups(frame, ["sex"])
    with pytest.raises(InputError, match="reset_index"):
        patient_groups(frame.set_index(pd.Index([5, 6])))
    with pytest.raises(InputError, match="numeric_bins"):
        patient_groups(frame, numeric_bins=1)
    with pytest.raises(InputError, match="DataFrame"):
        patient_groups({"race": ["a"]})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- composition


def test_top_set_size_and_index_tie_break():
    exposure = np.array(
        [
            *(0.7, 0.9, 0.9, np.nan, 0.9, 0.6, 0.95, 0.9, 0.5, 0.8),
            *(0.9, 0.3, 0.4, 0.9, np.nan, 0.2, 0.1, 0.99, 0.6, 0.65),
        ]
    )
    frame = pd.DataFrame({"g": ["a", "b"] * 10})
    result = composition(frame, exposure, top_fraction=0.25)
    # 18 patients with a defined exposure: ⌈0.25·18⌉ = 5; of the six tied at 0.9, the lowest
    # indices (1, 2, 4) get in, three (7, 10, 13) stay out.
    assert result.n_top == 5
    assert result.top.tolist() == [17, 6, 1, 2, 4] == slow_top(exposure, 5)
    assert result.cutoff == 0.9
    assert result.n_tied_outside == 3
    assert result.n_excluded == 2 and result.n_patients == 18
    # 0.07 · 100 is 7.000000000000001 in floating point: still 7 patients.
    hundred = pd.DataFrame({"g": ["a", "b"] * 50})
    assert composition(hundred, np.linspace(0, 1, 100), top_fraction=0.07).n_top == 7


def test_random_ties_do_not_favour_low_indices():
    # Data sorted by subgroup and every exposure tied: the index rule takes only "a".
    frame = pd.DataFrame({"g": ["a"] * 500 + ["b"] * 500})
    exposure = np.ones(1000)
    by_index = composition(frame, exposure, top_fraction=0.1)
    assert by_index.groups.set_index("group").loc["a", "n_top"] == 100
    assert by_index.n_tied_outside == 900
    first = composition(frame, exposure, top_fraction=0.1, ties="random", seed=4)
    again = composition(frame, exposure, top_fraction=0.1, ties="random", seed=4)
    n_a = first.groups.set_index("group").loc["a", "n_top"]
    assert 30 < n_a < 70
    assert first.top.tolist() == again.top.tolist()


def test_pearson_residuals_and_statistic_match_hand_computation():
    # 100 patients: A 50, B 30, C 20; the 10 most exposed are 2 A, 3 B, 5 C.
    group = np.array(["A"] * 50 + ["B"] * 30 + ["C"] * 20)
    exposure = np.full(100, 0.5)
    exposure[[0, 1, 50, 51, 52, 80, 81, 82, 83, 84]] = 0.9
    result = composition(pd.DataFrame({"g": group}), exposure, top_fraction=0.1, method="chi2")
    table = result.groups.set_index("group")
    assert table["n_top"].tolist() == [2, 3, 5]
    assert table["expected"].tolist() == pytest.approx([5.0, 3.0, 2.0])
    assert table["residual"].tolist() == pytest.approx([-3 / math.sqrt(5), 0.0, 3 / math.sqrt(2)])
    assert table["ratio"].tolist() == pytest.approx([0.4, 1.0, 2.5])
    test = result.tests.iloc[0]
    assert test["statistic"] == pytest.approx(9 / 5 + 9 / 2)
    assert test["dof"] == 2
    # The p-value is the 2×K (top / rest × subgroup) χ² test.
    table2 = np.array([[2, 3, 5], [48, 27, 15]])
    reference = stats.chi2_contingency(table2, correction=False)
    assert test["p_value"] == pytest.approx(reference.pvalue, rel=1e-10)


def test_exact_two_group_pvalue_matches_enumeration():
    rng = np.random.default_rng(11)
    group = np.where(rng.random(400) < 0.1, "rare", "common")
    exposure = rng.random(400)
    exposure[np.flatnonzero(group == "rare")[:3]] = 1.0
    result = composition(pd.DataFrame({"g": group}), exposure, top_fraction=0.02)
    test = result.tests.iloc[0]
    assert test["method"] == "exact hypergeometric"
    counts = result.groups.set_index("group")
    colours = (int(counts.loc["common", "n_cohort"]), int(counts.loc["rare", "n_cohort"]))
    observed = (int(counts.loc["common", "n_top"]), int(counts.loc["rare", "n_top"]))
    assert test["p_value"] == pytest.approx(exact_pvalue(colours, observed), rel=1e-9)


def test_monte_carlo_pvalue_matches_enumeration():
    rng = np.random.default_rng(12)
    group = rng.choice(["a", "b", "c"], size=300, p=[0.8, 0.12, 0.08])
    exposure = rng.random(300)
    exposure[np.flatnonzero(group == "c")[:2]] = 1.0
    result = composition(pd.DataFrame({"g": group}), exposure, top_fraction=0.02, n_sim=20_000)
    test = result.tests.iloc[0]
    assert test["method"] == "monte-carlo (20000 draws)"
    counts = result.groups
    exact = exact_pvalue(tuple(counts["n_cohort"]), tuple(counts["n_top"]))
    se = math.sqrt(exact * (1 - exact) / 20_000)
    assert abs(test["p_value"] - exact) < 4 * se + 1e-4


def test_forced_exact_agrees_with_chi2_on_large_counts():
    frame, exposure = planted_cohort(5, share=0.15)
    chi2 = composition(frame, exposure, top_fraction=0.2, columns=["sex"], method="chi2")
    exact = composition(frame, exposure, top_fraction=0.2, columns=["sex"], method="exact")
    assert exact.tests["method"].item() == "exact hypergeometric"
    assert exact.tests["p_value"].item() == pytest.approx(chi2.tests["p_value"].item(), abs=0.03)


def test_holm_and_bh_match_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    assert adjust_pvalues(p, "holm").tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_pvalues(p, "bh").tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_pvalues(p, "bonferroni").tolist() == pytest.approx([0.04, 0.16, 0.12, 0.02])
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.random(7) ** 3
        assert adjust_pvalues(q, "holm").tolist() == pytest.approx(slow_holm(list(q)))
        assert adjust_pvalues(q, "bh").tolist() == pytest.approx(slow_bh(list(q)))
        assert adjust_pvalues(q, "bh") == pytest.approx(stats.false_discovery_control(q))
    # Untested attributes (NaN) stay NaN and do not count towards m.
    with_nan = adjust_pvalues([0.01, np.nan, 0.04], "holm")
    assert np.isnan(with_nan[1]) and with_nan[[0, 2]].tolist() == pytest.approx([0.02, 0.04])


def test_composition_applies_the_correction_across_attributes():
    frame, exposure = planted_cohort(1)
    frame["age"] = np.random.default_rng(1).integers(18, 90, size=len(frame))
    for correction, oracle in (("holm", slow_holm), ("bh", slow_bh)):
        tests = composition(frame, exposure, correction=correction).tests
        assert tests["p_adjusted"].tolist() == pytest.approx(oracle(tests["p_value"].tolist()))
        assert (tests["significant"] == (tests["p_adjusted"] < 0.05)).all()


@pytest.mark.parametrize(("top_fraction", "path"), [(0.01, "monte-carlo"), (0.05, "chi2")])
def test_planted_group_is_detected_with_the_right_sign(top_fraction, path):
    frame, exposure = planted_cohort(7)
    result = composition(frame, exposure, top_fraction=top_fraction)
    tests = result.tests.set_index("attribute")
    assert tests.loc["group", "method"].startswith(path)
    assert tests.loc["group", "p_adjusted"] < 0.01
    assert not tests.loc["sex", "significant"]
    groups = result.groups.set_index(["attribute", "group"])
    assert groups.loc[("group", "B"), "residual"] > 3
    assert groups.loc[("group", "A"), "residual"] < 0
    assert groups.loc[("group", "C"), "residual"] < 0
    assert groups.loc["sex", "residual"].abs().max() < 2.5


def test_no_false_alarm_beyond_nominal_rate_on_every_path():
    """Exposure independent of subgroup: each path rejects at most at the nominal rate."""
    paths = {"chi2": [], "exact hypergeometric": [], "monte-carlo": []}
    n = 5000
    for seed in range(N_SEEDS):
        rng = np.random.default_rng(10_000 + seed)
        frame = pd.DataFrame(
            {
                # E = 25, 15, 10 in the top 1% (50 patients): χ² path.
                "common": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]),
                # E = 2.5 for the small group: exact two-group path.
                "pair": rng.choice(["a", "b"], size=n, p=[0.95, 0.05]),
                # E = 3 for two groups: Monte-Carlo path.
                "triple": rng.choice(["a", "b", "c"], size=n, p=[0.88, 0.06, 0.06]),
            }
        )
        tests = composition(
            frame, rng.random(n), correction="none", seed=seed, n_sim=2000
        ).tests.set_index("attribute")
        for attribute in ("common", "pair", "triple"):
            method = tests.loc[attribute, "method"].split(" (")[0]
            paths[method].append(tests.loc[attribute, "p_value"])
    for method, p_values in paths.items():
        assert len(p_values) == N_SEEDS, method
        rejections = int(np.sum(np.array(p_values) < ALPHA))
        assert rejections <= MAX_REJECTIONS, (method, rejections)
    # The asymptotic p-values are close to uniform, not merely conservative.
    assert stats.kstest(paths["chi2"], "uniform").pvalue > 0.001


def test_chi2_null_is_calibrated_when_the_top_set_is_half_the_cohort():
    # Here the finite-population factor P/(P−n) = 2: without it p-values would pile up near 1.
    p_values = []
    for seed in range(N_SEEDS):
        rng = np.random.default_rng(seed)
        frame = pd.DataFrame({"g": rng.choice(["a", "b", "c"], size=400, p=[0.5, 0.3, 0.2])})
        tests = composition(frame, rng.random(400), top_fraction=0.5)
        assert tests.tests["method"].item() == "chi2"
        p_values.append(tests.tests["p_value"].item())
    assert np.sum(np.array(p_values) < ALPHA) <= MAX_REJECTIONS
    assert stats.kstest(p_values, "uniform").pvalue > 0.001


def test_nan_exposure_is_excluded_and_counted():
    frame, exposure = planted_cohort(2, n=2000)
    exposure = exposure.copy()
    drop = np.random.default_rng(2).random(2000) < 0.1
    exposure[drop] = np.nan
    kept_frame = frame[~drop].reset_index(drop=True)
    kept_exposure = exposure[~drop]
    full = composition(frame, exposure)
    kept = composition(kept_frame, kept_exposure)
    assert full.n_excluded == int(drop.sum()) and kept.n_excluded == 0
    assert full.n_patients == kept.n_patients == int((~drop).sum())
    pd.testing.assert_frame_equal(full.groups, kept.groups)
    pd.testing.assert_frame_equal(full.tests, kept.tests)
    assert full.top.tolist() == np.flatnonzero(~drop)[kept.top].tolist()
    pd.testing.assert_frame_equal(
        group_risk(frame, exposure, n_boot=50), group_risk(kept_frame, kept_exposure, n_boot=50)
    )


def test_composition_rejects_bad_input():
    frame = pd.DataFrame({"g": ["a", "b", "c"]})
    with pytest.raises(InputError, match=r"shape \[3\]"):
        composition(frame, np.array([0.5, 0.6]))
    with pytest.raises(InputError, match="outside \\[0, 1\\]"):
        composition(frame, np.array([0.5, 1.5, 0.2]))
    with pytest.raises(InputError, match="every value is NaN"):
        composition(frame, np.full(3, np.nan))
    with pytest.raises(InputError, match="top_fraction"):
        composition(frame, np.array([0.5, 0.6, 0.7]), top_fraction=0.0)
    with pytest.raises(InputError, match="correction"):
        composition(frame, np.array([0.5, 0.6, 0.7]), correction="fdr")  # type: ignore[arg-type]


def test_single_group_attribute_is_reported_untested():
    frame = pd.DataFrame({"site": ["one"] * 200, "g": ["a", "b"] * 100})
    tests = composition(frame, np.random.default_rng(0).random(200)).tests.set_index("attribute")
    assert np.isnan(tests.loc["site", "p_value"]) and not tests.loc["site", "significant"]
    assert tests.loc["site", "method"].startswith("not tested")
    # Only the tested attribute counts towards Holm's m: p_adjusted equals p_value for "g".
    assert tests.loc["g", "p_adjusted"] == pytest.approx(tests.loc["g", "p_value"])


def test_top_set_of_the_whole_cohort_is_not_tested():
    frame = pd.DataFrame({"g": ["a", "b", "c", "a"] * 25})
    result = composition(frame, np.linspace(0.5, 1.0, 100), top_fraction=1.0)
    assert result.n_top == 100
    assert result.groups["residual"].tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert np.isnan(result.tests["p_value"].item())
    assert result.tests["method"].item() == "not tested: top set is the whole cohort"


# --------------------------------------------------------------------------- group_risk


def test_group_risk_values_match_groupby():
    frame, exposure = planted_cohort(3, n=1500)
    table = group_risk(frame, exposure, thresholds=(0.6, 0.75), n_boot=200)
    by = pd.DataFrame({"group": frame["group"], "e": exposure}).groupby("group")["e"]
    rows = table[table["attribute"] == "group"].set_index("group")
    assert rows["n"].to_dict() == by.size().to_dict()
    assert rows["median"].to_numpy() == pytest.approx(by.median().to_numpy())
    assert rows["mean"].to_numpy() == pytest.approx(by.mean().to_numpy())
    assert rows["share_ge_0.75"].to_numpy() == pytest.approx(by.apply(lambda e: (e >= 0.75).mean()))
    assert (rows["median_lo"] <= rows["median"]).all() and (
        rows["median"] <= rows["median_hi"]
    ).all()
    assert (rows["share_ge_0.6_lo"] <= rows["share_ge_0.6"]).all()


def test_planted_group_median_interval_excludes_the_others():
    frame, exposure = planted_cohort(7)
    rows = group_risk(frame, exposure).set_index(["attribute", "group"])
    others_median = np.median(exposure[frame["group"] != "B"])
    assert rows.loc[("group", "B"), "median_lo"] > others_median
    for other in ("A", "C"):
        assert rows.loc[("group", other), "median_hi"] < rows.loc[("group", "B"), "median_lo"]
    assert rows.loc[("group", "B"), "share_ge_0.8_lo"] > rows.loc[("group", "A"), "share_ge_0.8_hi"]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_bootstrap_medians_follow_the_enumerated_resampling_law(n):
    # All n^n equally likely resamples of n distinct values, enumerated: the exact law of
    # the resampled median that the order-statistic draw must reproduce.
    x = np.sort(np.random.default_rng(n).random(n))
    exact: dict[float, float] = {}
    for idx in itertools.product(range(n), repeat=n):
        median = float(np.median([x[i] for i in idx]))
        exact[round(median, 12)] = exact.get(round(median, 12), 0.0) + n**-n
    draws = disparity.bootstrap_medians(x, 200_000, np.random.default_rng(0))
    values, counts = np.unique(np.round(draws, 12), return_counts=True)
    assert set(values.tolist()) <= set(exact)
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        p = exact[value]
        assert abs(count / 200_000 - p) < 5 * math.sqrt(p * (1 - p) / 200_000) + 1e-12


def test_bootstrap_medians_match_a_resampling_loop():
    x = np.sort(np.random.default_rng(1).beta(2.0, 5.0, size=40))
    fast = disparity.bootstrap_medians(x, 20_000, np.random.default_rng(2))
    rng = np.random.default_rng(3)
    slow = [float(np.median(x[rng.integers(0, 40, size=40)])) for _ in range(20_000)]
    assert stats.ks_2samp(fast, slow).pvalue > 0.001
    assert np.quantile(fast, [0.025, 0.975]) == pytest.approx(
        np.quantile(slow, [0.025, 0.975]), abs=0.02
    )


def test_mean_interval_is_the_student_t_interval():
    frame = pd.DataFrame({"g": ["a"] * 12 + ["b"] * 5 + ["c"]})
    exposure = np.random.default_rng(4).uniform(0.5, 1.0, size=18)
    table = group_risk(frame, exposure, n_boot=10, confidence=0.9).set_index("group")
    for group, members in (("a", slice(0, 12)), ("b", slice(12, 17))):
        x = exposure[members]
        lo, hi = stats.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert (table.loc[group, "mean_lo"], table.loc[group, "mean_hi"]) == pytest.approx((lo, hi))
    assert np.isnan(table.loc["c", "mean_lo"]) and table.loc["c", "median"] == exposure[17]


@pytest.mark.parametrize("method", ["wilson", "clopper-pearson"])
def test_share_intervals_match_scipy(method):
    scipy_name = {"wilson": "wilson", "clopper-pearson": "exact"}[method]
    k = np.array([0, 1, 3, 7, 7, 40])
    n = np.array([7, 7, 7, 7, 30, 100])
    lo, hi = share_interval(k, n, 0.9, method)
    for i in range(k.size):
        ci = stats.binomtest(int(k[i]), int(n[i])).proportion_ci(0.9, method=scipy_name)
        assert (lo[i], hi[i]) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_median_mean_and_share_intervals_cover_at_about_the_nominal_rate():
    # 200 independent subgroups of 100 patients from Beta(2, 5); known median and tail share.
    rng = np.random.default_rng(21)
    n_groups, size = 200, 100
    law = stats.beta(2.0, 5.0)
    frame = pd.DataFrame({"g": np.repeat([f"g{i:03d}" for i in range(n_groups)], size)})
    exposure = law.rvs(size=n_groups * size, random_state=rng)
    table = group_risk(frame, exposure, thresholds=(0.4,), n_boot=1000, seed=3)
    covered_median = (table["median_lo"] <= law.median()) & (law.median() <= table["median_hi"])
    share = law.sf(0.4)
    covered_share = (table["share_ge_0.4_lo"] <= share) & (share <= table["share_ge_0.4_hi"])
    covered_mean = (table["mean_lo"] <= law.mean()) & (law.mean() <= table["mean_hi"])
    # Binomial(200, 0.95) has sd 1.5%: [0.90, 0.99] is about ±3 sd around the nominal 95%
    # (upper end widened for the discreteness of the median and of k/n).
    assert 0.90 <= covered_median.mean() <= 0.995
    assert 0.90 <= covered_share.mean() <= 0.995
    assert 0.90 <= covered_mean.mean() <= 0.995


def test_group_risk_is_seeded_and_validates_options():
    frame, exposure = planted_cohort(4, n=500)
    first = group_risk(frame, exposure, n_boot=100, seed=1)
    pd.testing.assert_frame_equal(first, group_risk(frame, exposure, n_boot=100, seed=1))
    other = group_risk(frame, exposure, n_boot=100, seed=2)
    assert not np.allclose(first["median_lo"], other["median_lo"])
    # Adding a column leaves the other attributes' bootstrap unchanged.
    frame["extra"] = "x"
    pd.testing.assert_frame_equal(
        first, group_risk(frame, exposure, n_boot=100, seed=1, columns=["group", "sex"])
    )
    with pytest.raises(InputError, match="n_boot"):
        group_risk(frame, exposure, n_boot=0)
    with pytest.raises(InputError, match="thresholds"):
        group_risk(frame, exposure, thresholds=(90,))


# --------------------------------------------------------------------------- size_vs_exposure


def test_rare_highly_exposed_group_comes_first():
    rng = np.random.default_rng(8)
    disease = rng.choice(["ARF", "CHF", "COPD"], size=5000, p=[0.5, 0.3, 0.2]).astype(object)
    disease[:7] = "Colon Cancer"
    disease[7:46] = "Lung Cancer"
    exposure = 0.5 + 0.5 * rng.beta(1.0, 8.0, size=5000)
    exposure[:7] = 0.5 + 0.5 * rng.beta(8.0, 1.0, size=7)
    table = size_vs_exposure(pd.DataFrame({"disease": disease}), exposure, threshold=0.8)
    assert table["group"].iloc[0] == "Colon Cancer"
    assert table["rare"].tolist()[:2] == [True, True]  # 7 < 30; 39 < 1% of 5000
    assert not table["rare"].iloc[2:].any()
    row = table.iloc[0]
    assert row["n"] == 7
    assert row["median"] == pytest.approx(np.median(exposure[:7]))
    assert row["share_ge_0.8"] == pytest.approx(np.mean(exposure[:7] >= 0.8))
    cohort_share = np.mean(exposure >= 0.8)
    assert row["share_ratio"] == pytest.approx(row["share_ge_0.8"] / cohort_share)
    # Within the non-rare rows, the high-risk share never increases.
    assert table["share_ge_0.8"].iloc[2:].is_monotonic_decreasing


# --------------------------------------------------------------------------- stratified


def test_confounded_group_is_explained_by_the_stratum():
    frame, exposure = confounded_cohort(5)
    marginal = composition(frame, exposure, columns=["race"]).tests.iloc[0]
    assert marginal["p_adjusted"] < 1e-6
    table = stratified(frame, exposure, "race", "disease")
    assert table.attrs["test"]["method"] == "cmh chi2"
    assert table["p_value"].iloc[0] > 0.05
    rows = table.set_index("group")
    assert rows.loc["R1", "residual_marginal"] > 3
    assert abs(rows.loc["R1", "z"]) < 2
    assert rows.loc["R1", "expected"] == pytest.approx(rows.loc["R1", "observed"], abs=8)


def test_stratified_detects_an_effect_within_strata():
    frame, exposure = confounded_cohort(6)
    # Within the exposed disease X, race R2 is shifted up by 0.1: a real within-stratum effect.
    boost = (frame["race"] == "R2").to_numpy() & (frame["disease"] == "X").to_numpy()
    exposure = np.where(boost, np.minimum(1.0, exposure + 0.1), exposure)
    table = stratified(frame, exposure, "race", "disease")
    assert table["p_value"].iloc[0] < 0.01
    rows = table.set_index("group")
    assert rows.loc["R2", "z"] > 0 and rows.loc["R1", "z"] < 0


def test_cmh_statistic_matches_the_textbook_loop():
    rng = np.random.default_rng(13)
    n = 600
    frame = pd.DataFrame(
        {
            "race": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]),
            "disease": rng.choice(["x", "y", "z", "w"], size=n),
        }
    )
    exposure = rng.random(n) + 0.2 * (frame["disease"] == "x").to_numpy()
    exposure = exposure / exposure.max()
    table = stratified(frame, exposure, "race", "disease", top_fraction=0.1)
    in_top = np.zeros(n, dtype=bool)
    in_top[slow_top(exposure, 60)] = True
    statistic, expected = slow_cmh(
        frame["race"].tolist(), frame["disease"].tolist(), in_top.tolist(), ["a", "b", "c"]
    )
    assert table["group"].tolist() == ["a", "b", "c"]
    assert table["expected"].tolist() == pytest.approx(expected)
    assert table["statistic"].iloc[0] == pytest.approx(statistic, rel=1e-9)
    assert table["dof"].iloc[0] == 2
    assert table["p_value"].iloc[0] == pytest.approx(stats.chi2.sf(statistic, 2), rel=1e-9)


def test_one_stratum_cmh_is_the_contingency_chi2_scaled():
    rng = np.random.default_rng(14)
    n = 1000
    frame = pd.DataFrame({"race": rng.choice(["a", "b", "c"], size=n), "site": "one"})
    exposure = rng.random(n)
    table = stratified(frame, exposure, "race", "site", top_fraction=0.1)
    observed = table["observed"].to_numpy()
    contingency = np.stack([observed, table["n_cohort"].to_numpy() - observed])
    x2 = stats.chi2_contingency(contingency, correction=False).statistic
    assert table["statistic"].iloc[0] == pytest.approx(x2 * (n - 1) / n, rel=1e-9)


def test_stratified_small_counts_use_a_seeded_simulation():
    frame, exposure = confounded_cohort(9, n=800)
    table = stratified(frame, exposure, "race", "disease", seed=3, n_sim=5000)
    assert table.attrs["test"]["method"] == "cmh monte-carlo (5000 draws)"
    again = stratified(frame, exposure, "race", "disease", seed=3, n_sim=5000)
    assert again["p_value"].iloc[0] == table["p_value"].iloc[0]
    chi2 = stratified(frame, exposure, "race", "disease", method="chi2")
    assert table["p_value"].iloc[0] == pytest.approx(chi2["p_value"].iloc[0], abs=0.1)


def test_stratified_null_rejection_rate():
    """Race and exposure are independent given disease: no false alarm beyond the nominal rate."""
    p_values: dict[str, list[float]] = {"cmh chi2": [], "cmh monte-carlo": []}
    for seed in range(N_SEEDS):
        frame, exposure = confounded_cohort(20_000 + seed, n=3000)
        # 60 patients in the top set: χ²; 6 patients (expected counts < 5): simulated.
        for top_fraction in (0.02, 0.002):
            table = stratified(
                frame, exposure, "race", "disease", top_fraction=top_fraction, n_sim=1000
            )
            method = table.attrs["test"]["method"].split(" (")[0]
            p_values[method].append(table["p_value"].iloc[0])
    for method, values in p_values.items():
        assert len(values) == N_SEEDS, method
        assert np.sum(np.array(values) < ALPHA) <= MAX_REJECTIONS, method
    assert stats.kstest(p_values["cmh chi2"], "uniform").pvalue > 0.001


def test_stratified_rejects_the_same_column_twice():
    frame, exposure = confounded_cohort(1, n=100)
    with pytest.raises(InputError, match="within"):
        stratified(frame, exposure, "race", "race")


# --------------------------------------------------------------------------- summarise


def test_summary_is_strict_json_and_routes_options():
    frame, exposure = confounded_cohort(2, n=1000)
    frame["age"] = np.random.default_rng(2).normal(60, 15, size=1000)
    exposure = exposure.copy()
    exposure[:5] = np.nan
    summary = summarise(
        frame,
        exposure,
        top_fraction=0.05,
        n_boot=100,
        thresholds=(0.7,),
        threshold=0.7,
        stratify=[("race", "disease")],
    )
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text) == summary
    assert summary["cohort"]["n_excluded"] == 5 and summary["cohort"]["n_analysed"] == 995
    assert summary["composition"]["n_top"] == math.ceil(0.05 * 995)
    assert {row["attribute"] for row in summary["group_risk"]} == {"race", "disease", "age"}
    assert "share_ge_0.7_lo" in summary["group_risk"][0]
    assert summary["stratified"][0]["test"]["within"] == "disease"
    direct = stratified(frame, exposure, "race", "disease", top_fraction=0.05)
    assert summary["stratified"][0]["test"]["p_value"] == pytest.approx(direct["p_value"].iloc[0])
    with pytest.raises(InputError, match="unknown option"):
        summarise(frame, exposure, top_frac=0.1)
