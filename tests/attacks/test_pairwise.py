"""Leave-pair-out record AUC: an oracle loop over pairs, and the bias it removes on pure noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_ndtr

from miaudit import attacks, risk
from miaudit.attacks.pairwise import lira_pair_auc, supports
from miaudit.simulate import signal_world


def oracle_pair_auc(x, keep, targets, options):
    """Each (IN target, OUT target) pair scored against IN without t and OUT without o."""
    m, n, _ = x.shape
    floor = options.min_std**2
    out = np.full(n, np.nan)
    for r in range(n):
        ins = [i for i in range(m) if keep[i, r]]
        outs = [i for i in range(m) if not keep[i, r]]
        if len(ins) - 1 < 2 or len(outs) - 1 < 2:
            continue
        wins, pairs = 0.0, 0
        for t in (i for i in ins if i in targets):
            for o in (i for i in outs if i in targets):
                ref_in = x[[i for i in ins if i != t], r]  # [k-1, V]
                ref_out = x[[i for i in outs if i != o], r]
                mo = ref_out.mean(axis=0)
                vo = np.maximum(ref_out.var(axis=0, ddof=options.ddof), floor)
                if options.online:
                    mi = ref_in.mean(axis=0)
                    vi = np.maximum(ref_in.var(axis=0, ddof=options.ddof), floor)

                    def f(z, mi=mi, vi=vi, mo=mo, vo=vo):
                        return np.mean(0.5 * ((z - mo) ** 2 / vo - (z - mi) ** 2 / vi
                                              + np.log(vo / vi)))
                else:

                    def f(z, mo=mo, vo=vo):
                        return np.mean(log_ndtr((z - mo) / np.sqrt(vo)))

                a, b = f(x[t, r]), f(x[o, r])
                wins += 1.0 if a > b else 0.5 if a == b else 0.0
                pairs += 1
        if pairs:
            out[r] = wins / pairs
    return out


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("ddof", [0, 1])
def test_the_fast_path_matches_a_loop_over_pairs(online, ddof):
    rng = np.random.default_rng(3)
    m, n, v = 10, 30, 2
    x = rng.standard_normal((m, n, v)) + 0.8 * rng.standard_normal((1, n, 1))
    keep = rng.random((m, n)) < 0.5  # unbalanced: IN counts vary by record
    keep[:, 0] = np.arange(m) < 2  # one IN reference too few for a target: undefined
    targets = [0, 2, 3, 5, 8, 9]
    options = attacks.LiraOptions(online=online, ddof=ddof)
    got, n_in, n_out = lira_pair_auc(x, keep, targets=targets, options=options)
    want = oracle_pair_auc(x, keep, set(targets), options)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert np.isnan(got[0])
    assert (n_in == keep[targets].sum(axis=0)).all()
    assert (n_out == (~keep[targets]).sum(axis=0)).all()


def test_median_and_shared_variance_have_no_pairwise_form():
    assert supports(attacks.LiraOptions())
    assert not supports(attacks.LiraOptions(estimator="median"))
    assert not supports(attacks.LiraOptions(fixed_variance=True))


@pytest.mark.parametrize("per", [1, 5])
@pytest.mark.parametrize("models", [16, 32])
def test_on_pure_noise_the_record_auc_is_centred_where_leave_one_out_is_not(models, per):
    """The mean record AUC is ½ by construction (every pair's two scores are exchangeable).

    Measured over seeds 0–2 (5,000 records): leave-pair-out 0.4985–0.5021; the record AUC of
    the (balanced) leave-one-out target scores 0.44–0.46, of the textbook ones 0.40–0.44.
    """
    leave_pair, leave_one = [], []
    for seed in range(2):
        w = signal_world(models, 2000 // per, records_per_patient=per, seed=seed)
        leave_pair.append(np.nanmean(lira_pair_auc(w.signals, w.keep)[0]))
        scores = attacks.lira(w.signals, w.keep)
        leave_one.append(np.nanmean(risk.record_auc(scores, w.keep).auc))
    assert abs(np.mean(leave_pair) - 0.5) <= 0.01
    assert np.mean(leave_one) < 0.48


def test_planted_records_are_measured_at_least_as_well_as_by_target_scores():
    """True AUC of a planted record: Φ(1/√2) = 0.760; leave-one-out reads it low at few models."""
    w = signal_world(32, 2000, effect=1.0, seed=5)
    planted = w.planted[w.patient]
    pair = np.nanmean(lira_pair_auc(w.signals, w.keep)[0][planted])
    scores = attacks.lira(w.signals, w.keep)
    single = np.nanmean(risk.record_auc(scores, w.keep).auc[planted])
    assert pair >= single
    assert 0.70 <= pair <= 0.80
