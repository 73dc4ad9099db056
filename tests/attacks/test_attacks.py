"""Attacks: vectorised scores against plain per-record loops, a textbook LiRA, and edge cases.

The oracles below are written the obvious way (pure Python statistics per target, record
and view) and share no code with miaudit.attacks.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats
from scipy.special import log_ndtr

import miaudit.attacks.parallel as parallel
import miaudit.attacks.sides as sides
from miaudit import attacks
from miaudit.attacks.options import option_names
from miaudit.errors import InputError
from miaudit.signals import compute_signal

TOL = 1e-9


# --------------------------------------------------------------------------- fixtures


def make_world(m: int = 8, n: int = 40, v: int = 1, seed: int = 0, balanced: bool = True):
    """Signals where members score higher, a balanced (or random) keep, and probabilities."""
    rng = np.random.default_rng(seed)
    if balanced:
        keep = np.zeros((m, n), dtype=bool)
        for j in range(n):
            keep[rng.permutation(m)[: m // 2], j] = True
    else:
        keep = rng.random((m, n)) < 0.5
    base = rng.normal(0.0, 2.0, size=(1, n, 1))
    signals = base + rng.normal(0.0, 1.0, size=(m, n, v)) * rng.uniform(0.5, 2.0, (1, n, 1))
    signals = signals + 1.5 * keep[:, :, None]
    probs = 1.0 / (1.0 + np.exp(-signals))
    return signals, keep, probs


# --------------------------------------------------------------------------- LiRA oracle


def oracle_lira(
    x,
    keep,
    *,
    targets=None,
    online=True,
    fixed_variance=False,
    estimator="mean",
    ddof=1,
    min_std=1e-6,
    balanced=True,
):
    """Plain LiRA: for every target, record and view, statistics of the other models.

    ``balanced``: besides the target, its partner on the record's other side is left out:
    the target being the r-th IN (OUT) model by index, the (r mod c)-th OUT (IN) model.
    A shared (fixed) variance leaves out the target alone.
    """
    m, n, v = x.shape
    targets = range(m) if targets is None else targets
    var_of = statistics.variance if ddof == 1 else statistics.pvariance
    need = 1 if fixed_variance else 2

    def partner(t, i):
        ins = [j for j in range(m) if keep[j, i]]
        outs = [j for j in range(m) if not keep[j, i]]
        mine, other = (ins, outs) if keep[t, i] else (outs, ins)
        return other[mine.index(t) % len(other)] if other else None

    out = []
    for t in targets:
        refs = [j for j in range(m) if j != t]
        side_vals = {}
        loo_vals = {}
        for side in ("in", "out"):
            loo_vals[side] = [
                [
                    [float(x[j, i, w]) for j in refs if bool(keep[j, i]) == (side == "in")]
                    for w in range(v)
                ]
                for i in range(n)
            ]
            side_vals[side] = [
                [
                    [
                        float(x[j, i, w])
                        for j in refs
                        if bool(keep[j, i]) == (side == "in")
                        and not (balanced and j == partner(t, i))
                    ]
                    for w in range(v)
                ]
                for i in range(n)
            ]
        pooled = {}
        if fixed_variance:
            for side in ("in", "out"):
                # scale: mean squared deviation of the side's values (all M models) from
                # their record's all-model mean; a pooled variance below 1e-12 of it is none
                dev2 = [
                    (float(x[j, i, w]) - statistics.fmean(x[:, i, w].tolist())) ** 2
                    for i in range(n)
                    for w in range(v)
                    for j in range(m)
                    if bool(keep[j, i]) == (side == "in")
                ]
                scale2 = statistics.fmean(dev2) if dev2 else 0.0
                ss = 0.0
                df = 0
                everything = []
                for i in range(n):
                    for w in range(v):
                        vals = loo_vals[side][i][w]
                        everything += vals
                        if vals:
                            mu = statistics.fmean(vals)
                            ss += sum((s - mu) ** 2 for s in vals)
                            df += len(vals) - ddof
                var = ss / df if df > 0 else 0.0
                if not var > 1e-12 * scale2:
                    var = var_of(everything) if len(everything) > ddof else 0.0
                pooled[side] = max(math.sqrt(var), min_std)
        row = []
        for i in range(n):
            counts = {s: len(side_vals[s][i][0]) for s in side_vals}
            sides = ("in", "out") if online else ("out",)
            if any(counts[s] < need for s in sides):
                row.append(math.nan)
                continue
            total = 0.0
            for w in range(v):
                s_t = float(x[t, i, w])
                fit = {}
                for s in sides:
                    vals = side_vals[s][i][w]
                    mu = statistics.fmean(vals) if estimator == "mean" else statistics.median(vals)
                    sd = pooled[s] if fixed_variance else max(math.sqrt(var_of(vals)), min_std)
                    fit[s] = (mu, sd)
                if online:

                    def logpdf(s_val, mu, sd):
                        return -0.5 * math.log(2 * math.pi * sd * sd) - (s_val - mu) ** 2 / (
                            2 * sd * sd
                        )

                    total += logpdf(s_t, *fit["in"]) - logpdf(s_t, *fit["out"])
                else:
                    mu, sd = fit["out"]
                    total += float(log_ndtr((s_t - mu) / sd))
            row.append(total / v)
        out.append(row)
    return np.array(out)


def as_options(cls: type, options: dict) -> dict:
    """Keyword options as the attack's options record plus its other keywords (population)."""
    fields = option_names(cls)
    rest = {k: v for k, v in options.items() if k not in fields}
    return {"options": cls(**{k: v for k, v in options.items() if k in fields}), **rest}


LIRA_CASES = [
    dict(online=True),
    dict(online=False),
    dict(online=True, estimator="median"),
    dict(online=False, estimator="median"),
    dict(online=True, fixed_variance=True),
    dict(online=False, fixed_variance=True),
    dict(online=True, fixed_variance=True, estimator="median"),
    dict(online=True, ddof=0),
    dict(online=False, fixed_variance=True, ddof=0),
]


@pytest.mark.parametrize(
    "options", LIRA_CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items())
)
@pytest.mark.parametrize("views", [1, 3])
def test_lira_matches_per_record_loop(options, views):
    x, keep, _ = make_world(m=8, n=30, v=views, seed=views, balanced=False)
    got = attacks.lira(x, keep, **as_options(attacks.LiraOptions, options))
    want = oracle_lira(x, keep, **options)
    assert got.shape == (8, 30)
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    assert np.isfinite(got).mean() > 0.5


def test_lira_tiles_and_threads_do_not_change_scores(monkeypatch):
    x, keep, _ = make_world(m=7, n=50, v=2, seed=3, balanced=False)
    want = oracle_lira(x, keep, targets=[6, 0, 3], estimator="median", fixed_variance=True)
    monkeypatch.setattr(parallel, "TILE_ELEMENTS", 9)  # several record chunks per target
    monkeypatch.setattr(sides, "CHUNK_ELEMENTS", 20)  # sums and sorts in record chunks
    for jobs in (1, 2):
        got = attacks.lira(
            x,
            keep,
            targets=[6, 0, 3],
            n_jobs=jobs,
            options=attacks.LiraOptions(estimator="median", fixed_variance=True),
        )
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    monkeypatch.setattr(parallel, "TILE_ELEMENTS", 300)  # several targets per tile
    got = attacks.lira(
        x, keep, targets=[6, 0, 3], n_jobs=2, options=attacks.LiraOptions(online=False)
    )
    np.testing.assert_allclose(
        got, oracle_lira(x, keep, targets=[6, 0, 3], online=False), rtol=TOL, atol=TOL
    )


def test_ties_in_order_statistics(monkeypatch):
    """Discrete signals: many references share a value, also with the target's own."""
    x, keep, _ = make_world(m=9, n=40, v=2, seed=14, balanced=False)
    x = np.round(x)
    for options in (dict(estimator="median"), dict(estimator="median", online=False)):
        np.testing.assert_allclose(
            attacks.lira(x, keep, **as_options(attacks.LiraOptions, options)),
            oracle_lira(x, keep, **options),
            rtol=TOL,
            atol=TOL,
        )
    # ties among a record's references (and with the target), but a record-specific offset
    # keeps ratios of different records apart (their exact ties would hinge on rounding)
    offset = np.random.default_rng(15).uniform(0.0, 0.4, size=(1, 40, 1))
    probs = 0.5 * np.clip(np.round(1.0 / (1.0 + np.exp(-x)), 1), 0.1, 0.9) + offset
    monkeypatch.setattr(sides, "CHUNK_ELEMENTS", 30)
    near_ties = False
    for options in (dict(online=True, trim=0.2), dict(a=0.5, trim=0.3), dict(online=True)):
        got = attacks.rmia(probs, keep, **as_options(attacks.RmiaOptions, options))
        # discrete values make some LR(x, z) equal γ up to the last bit (e.g. both ratios
        # exactly 1); such a pair may count either way, nothing else may differ
        low = oracle_rmia(probs, keep, slack=-1e-12, **options)
        high = oracle_rmia(probs, keep, slack=1e-12, **options)
        assert np.array_equal(np.isnan(got), np.isnan(low))
        ok = ~np.isnan(got)
        assert (got[ok] >= low[ok] - TOL).all() and (got[ok] <= high[ok] + TOL).all()
        near_ties |= bool((low < high).any())
    assert near_ties  # the data do produce such pairs


def textbook_lira(x, keep, target, *, online, fixed_variance=False, estimator="mean"):
    """LiRA as in the paper's reference code, with scipy.stats.norm, one target at a time.

    Differences from that code, on purpose: no truncation to equal counts, the offline
    test is one-sided (logcdf, as in the paper) and the fixed variance of OUT comes from OUT.
    """
    m, n, v = x.shape
    refs = np.array([j for j in range(m) if j != target])
    kr, sr = keep[refs], x[refs]
    loc = np.median if estimator == "median" else np.mean
    dat_in = [sr[kr[:, j], j, :] for j in range(n)]
    dat_out = [sr[~kr[:, j], j, :] for j in range(n)]
    mean_in = np.array([loc(d, axis=0) for d in dat_in])
    mean_out = np.array([loc(d, axis=0) for d in dat_out])
    if fixed_variance:

        def pooled(dat):
            num = sum(((d - d.mean(axis=0)) ** 2).sum() for d in dat)
            den = sum((d.shape[0] - 1) * v for d in dat if d.shape[0] > 0)
            return np.sqrt(num / den)

        std_in = np.full((n, v), pooled(dat_in))
        std_out = np.full((n, v), pooled(dat_out))
    else:
        std_in = np.array([np.std(d, axis=0, ddof=1) for d in dat_in])
        std_out = np.array([np.std(d, axis=0, ddof=1) for d in dat_out])
    sc = x[target]
    if online:
        score = stats.norm.logpdf(sc, mean_in, std_in) - stats.norm.logpdf(sc, mean_out, std_out)
    else:
        score = stats.norm.logcdf(sc, mean_out, std_out)
    return score.mean(axis=1)


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("fixed_variance", [False, True])
@pytest.mark.parametrize("estimator", ["mean", "median"])
def test_lira_agrees_with_textbook_implementation(online, fixed_variance, estimator):
    x, keep, _ = make_world(m=10, n=25, v=2, seed=11)
    got = attacks.lira(
        x,
        keep,
        options=attacks.LiraOptions(
            online=online, fixed_variance=fixed_variance, estimator=estimator, balanced=False
        ),
    )
    for t in range(10):
        want = textbook_lira(
            x, keep, t, online=online, fixed_variance=fixed_variance, estimator=estimator
        )
        np.testing.assert_allclose(got[t], want, rtol=TOL, atol=TOL)


def test_lira_separates_members_from_non_members():
    x, keep, _ = make_world(m=16, n=200, seed=5)
    for online in (True, False):
        scores = attacks.lira(x, keep, options=attacks.LiraOptions(online=online))
        auc = stats.mannwhitneyu(scores[keep], scores[~keep]).statistic / (
            keep.sum() * (~keep).sum()
        )
        assert auc > 0.75


def test_lira_target_equals_leave_one_out_with_the_same_references():
    x, keep, _ = make_world(m=9, n=40, v=2, seed=2, balanced=False)
    for options in LIRA_CASES:
        textbook = attacks.LiraOptions(**options, balanced=False)
        loo = attacks.lira(x, keep, targets=[4], options=textbook)[0]
        refs = [j for j in range(9) if j != 4]
        one = attacks.lira_target(
            x[4], x[refs], keep[refs], **as_options(attacks.LiraOptions, options)
        )
        np.testing.assert_allclose(one, loo, rtol=TOL, atol=TOL)


# --------------------------------------------------------------------------- LiRA edge cases


def test_records_without_in_or_out_references_are_undefined_not_errors():
    x, keep, _ = make_world(m=6, n=10, seed=1)
    keep[:, 0] = False  # record 0: never a member, so no IN references anywhere
    keep[:, 1] = True  # record 1: always a member, so no OUT references
    keep[:2, 2] = True  # record 2: exactly two members
    keep[2:, 2] = False
    online = attacks.lira(x, keep)
    offline = attacks.lira(x, keep, options=attacks.LiraOptions(online=False))
    assert np.isnan(online[:, 0]).all() and np.isnan(online[:, 1]).all()
    assert np.isfinite(offline[:, 0]).all() and np.isnan(offline[:, 1]).all()
    # record 2 keeps 1 IN reference for every target (its own or its partner left out):
    # undefined with per-record variance ...
    assert np.isnan(online[:, 2]).all()
    # ... as for the two IN targets alone in the textbook leave-one-out
    textbook = attacks.lira(x, keep, options=attacks.LiraOptions(balanced=False))
    assert np.isnan(textbook[:2, 2]).all() and np.isfinite(textbook[2:, 2]).all()
    # ... but scored with a fixed variance, which needs one reference per side
    fixed = attacks.lira(x, keep, options=attacks.LiraOptions(fixed_variance=True))
    assert np.isfinite(fixed[:, 2]).all() and np.isnan(fixed[:, 0]).all()
    np.testing.assert_allclose(fixed, oracle_lira(x, keep, fixed_variance=True), rtol=TOL, atol=TOL)


def test_zero_variance_gives_finite_floored_scores():
    x, keep, _ = make_world(m=6, n=5, seed=4)
    x[:, 0, :] = 2.0  # every model gives record 0 the same signal
    x[:, 1, :] = np.where(keep[:, 1, None], 3.0, 2.0)  # constant IN and OUT, apart
    online = attacks.lira(x, keep)
    offline = attacks.lira(x, keep, options=attacks.LiraOptions(online=False))
    assert np.isfinite(online).all() and np.isfinite(offline).all()
    np.testing.assert_allclose(online[:, 0], 0.0, atol=1e-12)  # same Gaussian IN and OUT
    np.testing.assert_allclose(offline[:, 0], math.log(0.5), atol=1e-12)  # at the OUT mean
    # record 1 is separated perfectly: huge scores of the right sign, still finite
    member = keep[:, 1]
    assert (online[member, 1] > 1e6).all() and (online[~member, 1] < -1e6).all()
    np.testing.assert_allclose(offline[member, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(offline[~member, 1], math.log(0.5), atol=1e-12)
    np.testing.assert_allclose(online, oracle_lira(x, keep), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(
        attacks.lira(x, keep, options=attacks.LiraOptions(min_std=0.5, online=False)),
        oracle_lira(x, keep, online=False, min_std=0.5),
        rtol=TOL,
        atol=TOL,
    )


def test_fixed_variance_without_within_record_spread_uses_spread_across_records():
    x, keep, _ = make_world(m=7, n=12, v=2, seed=19, balanced=False)
    x = x[:1] + 1.0 * keep[:, :, None]  # every side of every record is one constant
    for online in (True, False):
        got = attacks.lira(x, keep, options=attacks.LiraOptions(online=online, fixed_variance=True))
        want = oracle_lira(x, keep, online=online, fixed_variance=True)
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
        assert np.isfinite(got[:, (keep.sum(0) > 1) & (keep.sum(0) < 6)]).all()


@pytest.mark.parametrize("m", [1, 2, 3])
def test_fewer_than_four_models_is_a_clear_error(m):
    x, keep, probs = make_world(m=m, n=6)
    with pytest.raises(InputError, match="at least 4"):
        attacks.lira(x, keep)
    with pytest.raises(InputError, match="at least 4"):
        attacks.rmia(probs, keep)
    logits = np.stack([np.zeros_like(x), x], axis=-1)
    with pytest.raises(InputError, match="at least 4"):
        attacks.run_attack("loss", logits, np.ones(6, dtype=int), keep)


def test_non_finite_signals_name_model_and_record():
    x, keep, probs = make_world(m=5, n=7)
    x[3, 4, 0] = np.nan
    with pytest.raises(InputError, match=r"model 3, record 4"):
        attacks.lira(x, keep)
    probs[2, 6, 0] = np.inf
    with pytest.raises(InputError, match=r"model 2, record 6"):
        attacks.rmia(probs, keep)


def test_bad_inputs_are_input_errors():
    x, keep, probs = make_world(m=5, n=7)
    with pytest.raises(InputError, match="keep"):
        attacks.lira(x, keep[:, :5])
    with pytest.raises(InputError, match="targets"):
        attacks.lira(x, keep, targets=[5])
    with pytest.raises(InputError, match="estimator"):
        attacks.lira(x, keep, options=attacks.LiraOptions(estimator="mode"))
    with pytest.raises(InputError, match="not a probability"):
        attacks.rmia(x, keep)
    with pytest.raises(InputError, match="gamma"):
        attacks.rmia(probs, keep, options=attacks.RmiaOptions(gamma=0.0))
    with pytest.raises(InputError, match="trim"):
        attacks.rmia(probs, keep, options=attacks.RmiaOptions(trim=0.5))
    with pytest.raises(InputError, match="population"):
        attacks.rmia(probs, keep, population=[99])


def test_lira_target_with_one_reference():
    rng = np.random.default_rng(8)
    target = rng.normal(size=(50, 2))
    ref = rng.normal(size=(1, 50, 2))
    keep = np.zeros((1, 50), dtype=bool)
    with pytest.raises(InputError, match="fixed_variance=True"):
        attacks.lira_target(target, ref, keep, options=attacks.LiraOptions(online=False))
    scores = attacks.lira_target(
        target, ref, keep, options=attacks.LiraOptions(online=False, fixed_variance=True)
    )
    # one OUT reference per record: its value is the mean; σ² is the variance of the
    # reference's signals across records and views
    sd = np.std(ref, ddof=1)
    want = log_ndtr((target - ref[0]) / sd).mean(axis=1)
    np.testing.assert_allclose(scores, want, rtol=TOL, atol=TOL)
    with pytest.raises(InputError, match="at least 2"):
        attacks.lira_target(
            target, ref, keep, options=attacks.LiraOptions(online=True, fixed_variance=True)
        )


# --------------------------------------------------------------------------- RMIA oracle


def oracle_rmia(
    probs,
    keep,
    *,
    targets=None,
    online=False,
    population=None,
    gamma=1.0,
    a=0.0,
    trim=0.0,
    top_k=None,
    slack=0.0,
):
    """Plain RMIA: Pr_z[LR(x, z) ≥ γ], z over the population without x, views averaged.

    ``top_k``: use the top-k convention for P_OUT (mean of the k largest OUT probabilities
    after zeroing IN ones), only to show how it differs. ``slack``: count LR ≥ γ·(1 − slack)
    (an upper bound for pairs tied up to rounding when > 0, a lower bound when < 0).
    """
    m, n, v = probs.shape
    targets = range(m) if targets is None else targets
    pop = list(range(n)) if population is None else list(population)

    def side_mean(vals):
        if not vals:
            return math.nan
        if trim > 0:
            return float(stats.trim_mean(vals, trim))
        return statistics.fmean(vals)

    out = []
    for t in targets:
        refs = [j for j in range(m) if j != t]
        ratio = np.empty((n, v))
        for i in range(n):
            for w in range(v):
                p_out = side_mean([float(probs[j, i, w]) for j in refs if not keep[j, i]])
                if top_k is not None:
                    zeroed = sorted(
                        (0.0 if keep[j, i] else float(probs[j, i, w]) for j in refs), reverse=True
                    )
                    p_out = statistics.fmean(zeroed[:top_k])
                if online:
                    p_in = side_mean([float(probs[j, i, w]) for j in refs if keep[j, i]])
                    if not keep[:, i].any():  # no model trained on it: P_IN is P_OUT
                        p_in = p_out
                    ref = 0.5 * (p_in + p_out)
                else:
                    ref = 0.5 * ((1 + a) * p_out + (1 - a))
                ratio[i, w] = float(probs[t, i, w]) / ref
        row = []
        for i in range(n):
            total = 0.0
            for w in range(v):
                if math.isnan(ratio[i, w]):
                    total = math.nan
                    break
                zs = [z for z in pop if z != i and not math.isnan(ratio[z, w])]
                hits = sum(1 for z in zs if ratio[i, w] / ratio[z, w] >= gamma * (1 - slack))
                total += hits / len(zs)
            row.append(total / v)
        out.append(row)
    return np.array(out)


RMIA_CASES = [
    dict(online=False, a=0.3),
    dict(online=False, a=1.0, gamma=2.0),
    dict(online=False, a=0.0, gamma=0.5),
    dict(online=True),
    dict(online=True, gamma=1.5),
    dict(online=False, a=0.5, trim=0.2),
    dict(online=True, trim=0.25),
    dict(online=False, a=0.3, population=[0, 3, 5, 7, 11, 12, 20, 21, 22, 30]),
]


@pytest.mark.parametrize(
    "options",
    RMIA_CASES,
    ids=lambda o: (
        "-".join(f"{k}={v}" for k, v in o.items() if k != "population")
        + ("-pop" if "population" in o else "")
    ),
)
@pytest.mark.parametrize("views", [1, 2])
def test_rmia_matches_per_record_loop(options, views):
    _, keep, probs = make_world(m=8, n=32, v=views, seed=20 + views, balanced=False)
    got = attacks.rmia(probs, keep, **as_options(attacks.RmiaOptions, options))
    want = oracle_rmia(probs, keep, **options)
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("views", [1, 2])
def test_online_rmia_against_held_out_population_records(views):
    """Records no model trained on (an audit's held-out patients) have no IN side; as the
    population z of online RMIA their reference probability is P_OUT, not undefined."""
    _, keep, probs = make_world(m=8, n=32, v=views, seed=5)
    held = np.arange(20, 32)
    keep[:, held] = False
    options = attacks.RmiaOptions(online=True)
    got = attacks.rmia(probs, keep, population=held, options=options)
    want = oracle_rmia(probs, keep, online=True, population=list(held))
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    assert np.isfinite(got[:, :20]).all()


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("views", [1, 2])
def test_lira_keeps_its_digits_for_a_target_far_from_near_constant_references(online, views):
    """The O(1) leave-one-out SS' = SS − removed cancels when SS is almost all the target's
    own term; those entries are recomputed, so scores of order 1e14 keep ≥ 9 digits."""
    rng = np.random.default_rng(3)
    m, n = 10, 12
    keep = np.zeros((m, n), dtype=bool)
    for j in range(n):
        keep[rng.permutation(m)[: m // 2], j] = True
    x = 1.0 + 1e-3 * rng.standard_normal((m, n, views))
    x[2, :6] += 1e4  # one target far from references that vary by 1e-3
    x[7, 6:] -= 3e3
    got = attacks.lira(x, keep, options=attacks.LiraOptions(online=online))
    want = oracle_lira(x, keep, online=online)
    assert np.abs(got).max() > 1e13
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_rmia_population_mask_equals_indices_and_threads_agree():
    _, keep, probs = make_world(m=6, n=30, seed=9)
    idx = np.array([1, 4, 9, 16, 25])
    mask = np.zeros(30, dtype=bool)
    mask[idx] = True
    a = attacks.rmia(probs, keep, population=idx, n_jobs=1, options=attacks.RmiaOptions(a=0.4))
    b = attacks.rmia(probs, keep, population=mask, n_jobs=2, options=attacks.RmiaOptions(a=0.4))
    np.testing.assert_array_equal(a, b)


def test_rmia_ties_and_undefined_records():
    _, keep, probs = make_world(m=6, n=20, seed=12)
    probs[:, 5] = probs[:, 6]  # identical records: tied ratios
    keep[:, 5] = keep[:, 6]
    keep[:, 7] = True  # no OUT reference: undefined offline, dropped from z
    got = attacks.rmia(probs, keep, options=attacks.RmiaOptions(a=0.2))
    want = oracle_rmia(probs, keep, a=0.2)
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    assert np.isnan(got[:, 7]).all()
    assert np.isfinite(np.delete(got, 7, axis=1)).all()


def test_rmia_reference_mean_is_plain_not_top_k():
    """Our P_OUT(x) averages every OUT reference; the top-k convention keeps the k largest."""
    _, keep, probs = make_world(m=10, n=30, seed=31, balanced=False)
    ours = attacks.rmia(probs, keep, options=attacks.RmiaOptions(a=0.0))
    np.testing.assert_allclose(ours, oracle_rmia(probs, keep, a=0.0), rtol=TOL, atol=TOL)
    k = 2  # fewer than the OUT references of most records
    top_k = oracle_rmia(probs, keep, a=0.0, top_k=k)
    assert np.abs(ours - top_k).max() > 0.05
    # With a = 1, Pr(x) = P_OUT(x): a record whose OUT probabilities spread widely gets a
    # lower reference (higher score) from the plain mean than from its top-k subset.
    refs = list(range(1, 10))
    out_probs = [sorted((probs[j, 0, 0] for j in refs if not keep[j, 0]), reverse=True)]
    plain = statistics.fmean(out_probs[0])
    topk = statistics.fmean(out_probs[0][:k])
    assert topk > plain


def test_rmia_online_uses_balanced_sides():
    """Online Pr(x) = ½(P_IN + P_OUT): repeating the IN references leaves scores unchanged."""
    rng = np.random.default_rng(41)
    n = 20
    target = rng.uniform(0.05, 0.95, size=(n, 1))
    ins = rng.uniform(0.3, 0.99, size=(2, n, 1))
    outs = rng.uniform(0.01, 0.7, size=(2, n, 1))
    refs = np.concatenate([ins, outs])
    rkeep = np.array([[True] * n, [True] * n, [False] * n, [False] * n])
    base = attacks.rmia_target(target, refs, rkeep, options=attacks.RmiaOptions(online=True))
    more = attacks.rmia_target(
        target,
        np.concatenate([ins, ins, outs]),
        np.concatenate([rkeep[:2], rkeep]),
        options=attacks.RmiaOptions(online=True),
    )
    np.testing.assert_allclose(more, base, rtol=TOL, atol=TOL)
    # a plain mean over all references would have moved Pr(x) towards the IN side
    plain_4 = refs.mean(axis=0)
    plain_6 = np.concatenate([ins, ins, outs]).mean(axis=0)
    assert np.abs(plain_4 - plain_6).max() > 0.01


def test_rmia_target_equals_leave_one_out_with_the_same_references():
    _, keep, probs = make_world(m=7, n=25, v=2, seed=17, balanced=False)
    for options in RMIA_CASES[:7]:
        loo = attacks.rmia(probs, keep, targets=[2], **as_options(attacks.RmiaOptions, options))[0]
        refs = [j for j in range(7) if j != 2]
        one = attacks.rmia_target(
            probs[2], probs[refs], keep[refs], **as_options(attacks.RmiaOptions, options)
        )
        np.testing.assert_allclose(one, loo, rtol=TOL, atol=TOL)


# --------------------------------------------------------------------------- RMIA offline a


def test_offline_a_is_chosen_without_the_targets_membership():
    _, keep, probs = make_world(m=8, n=60, seed=51)
    a_low = attacks.calibrate_offline_a(probs, keep, models=[0, 1, 2, 3])
    a_high = attacks.calibrate_offline_a(probs, keep, models=[4, 5, 6, 7])
    # targets 0..3 use the a calibrated on models 4..7 alone, and vice versa
    got = attacks.rmia(probs, keep)
    np.testing.assert_allclose(
        got[:4], attacks.rmia(probs, keep, options=attacks.RmiaOptions(a=a_high))[:4], atol=TOL
    )
    np.testing.assert_allclose(
        got[4:], attacks.rmia(probs, keep, options=attacks.RmiaOptions(a=a_low))[4:], atol=TOL
    )
    # the calibration reads nothing of the models it does not use
    scrambled_keep = keep.copy()
    scrambled_keep[:4] = ~scrambled_keep[:4]
    scrambled = probs.copy()
    scrambled[:4] = 0.5
    assert attacks.calibrate_offline_a(scrambled, scrambled_keep, models=[4, 5, 6, 7]) == a_high


def test_offline_a_maximises_auc_of_the_pseudo_target():
    _, keep, probs = make_world(m=8, n=80, seed=52)
    grid = [0.0, 0.5, 1.0]
    best = attacks.calibrate_offline_a(probs, keep, models=[1, 2, 3, 4], grid=grid)
    aucs = []
    for a in grid:
        s = oracle_rmia(probs[[1, 2, 3, 4]], keep[[1, 2, 3, 4]], targets=[0], a=a)[0]
        ok = ~np.isnan(s)  # records without OUT references among 3 are undefined
        s, member = s[ok], keep[1][ok]
        aucs.append(
            stats.mannwhitneyu(s[member], s[~member]).statistic / (member.sum() * (~member).sum())
        )
    assert len(set(aucs)) == len(aucs)  # a real choice
    assert best == grid[int(np.argmax(aucs))]


def test_rmia_target_needs_two_references_to_choose_a():
    _, keep, probs = make_world(m=5, n=10, seed=3)
    with pytest.raises(InputError, match="pass a explicitly"):
        attacks.rmia_target(probs[0], probs[1:2], keep[1:2])
    scores = attacks.rmia_target(
        probs[0], probs[1:2], keep[1:2] & False, options=attacks.RmiaOptions(a=0.3)
    )
    assert np.isfinite(scores).all()


# --------------------------------------------------------------------------- baselines


def test_baselines_match_per_record_loop():
    _, _, probs = make_world(m=5, n=12, v=3, seed=6)
    losses = -np.log(probs)
    got_loss = attacks.loss_attack(losses, targets=[4, 1])
    got_conf = attacks.confidence_attack(probs)
    for r, t in enumerate([4, 1]):
        for i in range(12):
            assert got_loss[r, i] == pytest.approx(-statistics.fmean(losses[t, i]), abs=TOL)
    for t in range(5):
        for i in range(12):
            assert got_conf[t, i] == pytest.approx(statistics.fmean(probs[t, i]), abs=TOL)
    assert attacks.loss_attack(losses[:1]).shape == (1, 12)  # no references needed


# --------------------------------------------------------------------------- registry


def test_run_attack_computes_the_right_signal():
    x, keep, _ = make_world(m=6, n=20, v=2, seed=13)
    logits = np.stack([np.zeros_like(x), x], axis=-1).astype(np.float32)
    labels = np.ones(20, dtype=int)
    conf = compute_signal("logit_confidence", logits, labels)
    prob = compute_signal("probability", logits, labels)
    loss = compute_signal("loss", logits, labels)
    expect = {
        "lira": attacks.lira(conf, keep, options=attacks.LiraOptions(online=True)),
        "lira_offline": attacks.lira(conf, keep, options=attacks.LiraOptions(online=False)),
        "lira_textbook": attacks.lira(conf, keep, options=attacks.LiraOptions(balanced=False)),
        "rmia": attacks.rmia(prob, keep, options=attacks.RmiaOptions(online=False)),
        "rmia_online": attacks.rmia(prob, keep, options=attacks.RmiaOptions(online=True)),
        "loss": attacks.loss_attack(loss),
        "confidence": attacks.confidence_attack(prob),
    }
    assert set(expect) == set(attacks.ATTACKS)
    for name, want in expect.items():
        got = attacks.run_attack(name, logits, labels, keep)
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL, err_msg=name)
    sub = attacks.run_attack("lira", logits, labels, keep, targets=[3, 1], fixed_variance=True)
    np.testing.assert_allclose(
        sub,
        attacks.lira(conf, keep, targets=[3, 1], options=attacks.LiraOptions(fixed_variance=True)),
        atol=TOL,
    )


def test_run_attack_rejects_unknown_names_options_and_bad_logits():
    x, keep, _ = make_world(m=5, n=8)
    logits = np.stack([np.zeros_like(x), x], axis=-1)
    labels = np.zeros(8, dtype=int)
    with pytest.raises(InputError, match="choose one of"):
        attacks.run_attack("mentr", logits, labels, keep)
    with pytest.raises(InputError, match="gamma"):
        attacks.run_attack("lira", logits, labels, keep, gamma=2.0)
    with pytest.raises(InputError, match="online"):
        attacks.run_attack("lira", logits, labels, keep, online=False)
    logits[2, 5, 0, 1] = np.inf
    with pytest.raises(InputError, match=r"model 2, record 5"):
        attacks.run_attack("lira", logits, labels, keep)
