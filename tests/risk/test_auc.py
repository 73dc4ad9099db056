"""The one AUC (miaudit.risk.roc) against scikit-learn and the formulas it replaced."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from miaudit import risk
from miaudit.errors import InputError
from miaudit.risk import curves


def tied_scores(seed: int, n: int = 400, nan_share: float = 0.1):
    """Scores on a coarse grid (many ties), some NaN, and random membership."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    s = np.round(rng.normal(size=n) + 0.7 * y, 1)
    s[rng.random(n) < nan_share] = np.nan
    return s, y


def rank_formula_auc(score: np.ndarray, member: np.ndarray) -> float:
    """The formula RMIA's calibration used: scipy mid-ranks, NaN left out, -inf if undefined."""
    ok = ~np.isnan(score)
    s, y = score[ok], member[ok]
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return -np.inf
    ranks = rankdata(s)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_with_ties_and_nan(seed):
    s, y = tied_scores(seed)
    ok = ~np.isnan(s)
    assert len(np.unique(s[ok])) < ok.sum() / 4  # heavily tied
    assert curves.auc(s, y) == pytest.approx(roc_auc_score(y[ok], s[ok]), abs=1e-12)
    assert curves.auc(s, y.astype(int)) == curves.auc(s, y)


@pytest.mark.parametrize("seed", range(5))
def test_auc_is_the_rank_formula_bit_for_bit(seed):
    s, y = tied_scores(seed)
    assert curves.auc(s, y) == rank_formula_auc(s, y)


def test_auc_is_nan_without_both_classes():
    s = np.array([0.1, 0.5, np.nan, 0.3])
    assert np.isnan(curves.auc(s, [True, True, False, True]))  # the only OUT score is NaN
    assert np.isnan(curves.auc(s, np.zeros(4, bool)))
    assert curves.auc([1.0, 1.0], [True, False]) == 0.5
    assert curves.auc([np.inf, -np.inf, 0.0], [True, False, False]) == 1.0


def test_auc_refuses_bad_shapes_and_labels():
    with pytest.raises(InputError, match="1-D arrays of one length"):
        curves.auc([0.1, 0.2], [True])
    with pytest.raises(InputError, match="True/False"):
        curves.auc([0.1, 0.2], [2, 0])


def test_auc_columns_matches_a_loop_of_auc():
    rng = np.random.default_rng(7)
    s = np.round(rng.normal(size=(30, 50)), 1)
    m = rng.random((30, 50)) < 0.5
    s[rng.random(s.shape) < 0.15] = np.nan
    m[:, 3] = True  # a column with no OUT score
    got, n_in, n_out = curves.auc_columns(s, m)
    for n in range(s.shape[1]):
        assert got[n] == curves.auc(s[:, n], m[:, n]) or (np.isnan(got[n]) and n == 3)
        ok = ~np.isnan(s[:, n])
        assert n_in[n] == (m[ok, n]).sum() and n_out[n] == (~m[ok, n]).sum()
    assert np.isnan(got[3])


@pytest.mark.parametrize("seed", range(4))
def test_delong_auc_agrees_with_auc(seed):
    s, y = tied_scores(seed, nan_share=0.0)
    value, se = curves.delong(s, y)
    assert value == pytest.approx(curves.auc(s, y), abs=1e-12)
    assert se > 0


def test_curve_auc_of_roc_agrees_with_auc():
    s, y = tied_scores(11)
    fpr, tpr, _ = risk.roc(s[None], y[None])
    assert curves.curve_auc(fpr, tpr) == pytest.approx(curves.auc(s, y), abs=1e-12)


def test_diagnostic_auroc_is_sklearns():
    rng = np.random.default_rng(3)
    p2 = rng.dirichlet(np.ones(2), size=200)
    y2 = rng.integers(0, 2, 200)
    assert curves.diagnostic_auroc(y2, p2, False) == roc_auc_score(y2, p2[:, 1])
    p4 = rng.dirichlet(np.ones(4), size=200)
    y4 = rng.integers(0, 4, 200)
    want = roc_auc_score(y4, p4, multi_class="ovr", average="macro", labels=np.arange(4))
    assert curves.diagnostic_auroc(y4, p4, False) == want
    yk = (rng.random((200, 3)) < 0.3).astype(int)
    yk[:, 2] = 0  # a finding with no positive record is left out
    pk = rng.random((200, 3))
    want = np.mean([roc_auc_score(yk[:, k], pk[:, k]) for k in range(2)])
    assert curves.diagnostic_auroc(yk, pk, True) == want
    assert np.isnan(curves.diagnostic_auroc(np.zeros(5, int), p2[:5], False))
