"""Leave-pair-out record AUC of LiRA: every IN/OUT pair of targets judged by the same Gaussians.

A record's AUC compares its IN targets' scores with its OUT targets'. Scored leave-one-out,
an IN target's value is left out of the IN Gaussian it is compared with and an OUT target's
out of the OUT one, so an extreme value always looks like the *other* side: members score
lower than non-members when nothing is learnt, the bias of leave-one-out cross-validated AUC
(record AUC 0.45 at 16 models and still 0.47 at 200 on pure noise, whatever the references'
balance). Leave-pair-out (Airola et al. 2011, "An experimental comparison of
cross-validation techniques for estimating the area under the ROC curve") removes it: for
each pair of an IN target t and an OUT target o, both are scored against the same references
— IN without t, OUT without o — so neither value is in either fit, the two scores are one
function of two exchangeable values, and under the null P(s_t > s_o) = ½ exactly. The
record AUC is the share of pairs (ties ½) where t scores higher.

Online LiRA compares the two Gaussians (the per-view log-likelihood ratio, averaged over
views); offline LiRA the one-sided log Φ against OUT. Means and per-record variances with
``ddof`` as :mod:`miaudit.attacks.lira`, floored at ``min_std``; a pair whose sides keep
fewer than two references is not counted. Medians and one shared variance have no pairwise
form here: :func:`supports` says so and the audit then uses the scores' own record AUC.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import log_ndtr

from miaudit.arrays import as_keep, as_model_array, as_targets
from miaudit.attacks.options import LiraOptions

# Pairs x records x views per block: about 4M elements per temporary.
_BLOCK_ELEMENTS = 1 << 22
# References a side keeps for its per-record Gaussian.
MIN_REFERENCES = 2


def supports(options: LiraOptions) -> bool:
    """Whether ``options`` have a leave-pair-out form (mean location, per-record variance)."""
    return options.estimator == "mean" and not options.fixed_variance


def _loo(values: NDArray[np.float64], ddof: int, floor: float):
    """Leave-one-out (mean, variance) [k, R, V] of each row of ``values`` [k, R, V]."""
    k = values.shape[0]
    mean = values.mean(axis=0)
    dev = values - mean
    ss = np.einsum("krv,krv->rv", dev, dev)
    with np.errstate(invalid="ignore", divide="ignore"):
        loo_mean = mean - dev / (k - 1)
        loo_ss = ss - dev * dev * (k / (k - 1))
        var = np.maximum(loo_ss, 0.0) / (k - 1 - ddof)
    return loo_mean, np.maximum(var, floor)


def _score_gaps(
    a: NDArray[np.float64], b: NDArray[np.float64], options: LiraOptions
) -> NDArray[np.float64]:
    """[k, m, R] each pair's score of its IN value minus its OUT value (summed over views)."""
    floor = options.min_std**2
    if not options.online and a.shape[-1] == 1:
        # log Φ((x − μo)/σo) rises with x: with one view the pair compares the raw values
        return a[:, None, :, 0] - b[None, :, :, 0]
    mu_b, var_b = _loo(b, options.ddof, floor)  # [m, R, V]: OUT without o
    if not options.online:
        mo, so = mu_b[None, :], np.sqrt(var_b)[None, :]
        return (log_ndtr((a[:, None] - mo) / so) - log_ndtr((b[None, :] - mo) / so)).sum(axis=-1)
    # the log-likelihood ratio's gap, per view (the log-variance terms cancel): with
    # (a − μ)² − (b − μ)² = (a − b)(a + b − 2μ), it is ½(a − b)[(a + b)(1/σo² − 1/σi²)
    # − 2μo/σo² + 2μi/σi²]; the ½ does not change the sign
    mu_a, var_a = _loo(a, options.ddof, floor)  # IN without t
    p_i, p_o = 1.0 / var_a, 1.0 / var_b
    gap = (2.0 * mu_a * p_i)[:, None] - (2.0 * mu_b * p_o)[None, :]  # [k, m, R, V]
    gap += (a[:, None] + b[None, :]) * (p_o[None, :] - p_i[:, None])
    gap *= a[:, None] - b[None, :]
    return gap.sum(axis=-1)


def _pairs_auc(
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    ta: NDArray[np.bool_],
    tb: NDArray[np.bool_],
    options: LiraOptions,
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """AUC, IN and OUT target counts [R] of records with IN values ``a`` [k, R, V] and OUT
    values ``b`` [m, R, V]; ``ta`` [k, R], ``tb`` [m, R] mark the targets."""
    diff = _score_gaps(a, b, options)
    # a win is +1, a tie 0, a loss −1: AUC = ½ + Σ sign / (2 n_in n_out)
    sign = np.sign(diff)
    if not (ta.all() and tb.all()):
        sign *= ta[:, None] & tb[None, :]
    n_in = ta.sum(axis=0)
    n_out = tb.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = 0.5 + sign.sum(axis=(0, 1)) / (2.0 * n_in * n_out)
    return auc, n_in, n_out


def lira_pair_auc(
    signals: ArrayLike,
    keep: ArrayLike,
    *,
    targets: ArrayLike | None = None,
    options: LiraOptions | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """(record AUC, IN targets, OUT targets) [N] by leave-pair-out LiRA (module doc).

    NaN where a record has no IN or no OUT target or a side keeps fewer than two references.
    """
    opts = options or LiraOptions()
    x = as_model_array(signals, name="signals")
    m, n, v = x.shape
    mask = as_keep(keep, m, n)
    is_target = np.zeros(m, dtype=bool)
    is_target[as_targets(targets, m)] = True
    auc = np.full(n, np.nan)
    n_in = np.zeros(n, dtype=np.int64)
    n_out = np.zeros(n, dtype=np.int64)
    c_in = mask.sum(axis=0)
    for k in np.unique(c_in):
        cols = np.flatnonzero(c_in == k)
        rest = m - k
        targeted = mask[:, cols] & is_target[:, None]
        n_in[cols] = targeted.sum(axis=0)
        n_out[cols] = (~mask[:, cols] & is_target[:, None]).sum(axis=0)
        if k - 1 < MIN_REFERENCES or rest - 1 < MIN_REFERENCES:
            continue
        block = max(1, _BLOCK_ELEMENTS // max(k * rest * v, 1))
        for s in range(0, cols.size, block):
            c = cols[s : s + block]
            order = np.argsort(~mask[:, c], axis=0, kind="stable")  # IN models first
            vals = x[order, c[None, :], :]  # [M, R, V]
            role = is_target[order]
            auc[c], _, _ = _pairs_auc(vals[:k], vals[k:], role[:k], role[k:], opts)
    auc[(n_in == 0) | (n_out == 0)] = np.nan
    return auc, n_in, n_out
