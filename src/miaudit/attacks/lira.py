"""LiRA (Carlini et al., 2022): per-record Gaussian fits of the references' signals.

For target model t and record x with signal s (LiRA's statistic, the logit-scaled
confidence), the references are split into IN (trained on x) and OUT (not):

- online:  score = log N(s; μ_in, σ_in²) − log N(s; μ_out, σ_out²)
- offline: score = log Φ((s − μ_out) / σ_out), one-sided: high when the target is more
  confident on x than models that never saw it (Φ is the standard normal CDF, evaluated
  as ``scipy.special.log_ndtr``, accurate far into both tails).

With V query views the per-view scores are averaged.

Leave-one-model-out (``lira``): every model is a target and its references are the others.
The textbook way leaves out the target alone, so a target that trained on x is fitted
against c_in − 1 IN and c_out OUT references and one that did not against c_in and
c_out − 1: the smaller side's Gaussian is the worse fit and penalises the target on that
side only, so members score lower than non-members even when nothing is learnt (record AUC
below 0.5 under the null, at any number of models). The default (``balanced``) also leaves
out one reference of the other side, the target's *partner* (chosen by model index, never by
signal; see ``sides.partners``): every target then sees c_in − 1 IN and c_out − 1 OUT
references, so under the null a member's score and a non-member's are the same function of
exchangeable signals and the record AUC is centred on 0.5. ``balanced=False`` (attack
``lira_textbook``) is the textbook estimator. A shared (``fixed_variance``) variance pools
all records and leaves out the target alone; its asymmetry is one value in thousands. Statistics are per record and view;
μ is the mean or the median (``estimator``) of that side's references; σ is always their
spread around the mean: the sample variance with ``ddof`` (default 1; the reference code's
``np.std`` is ``ddof=0``, which ``ddof=0`` reproduces).

Per-record variances need at least 2 references on a side; a record with fewer (or with
no reference on a side the attack uses) gets NaN: undefined, not a guess. With
``fixed_variance=True`` each target uses one global variance for IN and one for OUT: the
pooled within-record variance Σ_records Σ_refs (s − mean)² / Σ_records (count − ddof),
the estimate of a spread shared by all records (records then need only 1 reference per
side). When no record offers within-record spread (a single reference, or constant
signals: a pooled variance below 1e-12 of the side's mean squared deviation from each
record's all-model mean), that side falls back to the variance of all its reference
signals across records and views (the fixed variance of the original LiRA code). Variances are floored at ``min_std``² (default
1e-6²), so zero variance gives finite, very confident scores instead of inf/NaN.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import log_ndtr

from miaudit.arrays import as_keep, as_model_array, as_one_model_array, as_targets
from miaudit.attacks.counts import require_models
from miaudit.attacks.options import LiraOptions
from miaudit.attacks.parallel import resolve_jobs, run, tiles
from miaudit.attacks.sides import Side, build_sides, partners
from miaudit.errors import InputError

# A pooled variance below this fraction of the side's mean squared deviation from each
# record's all-model mean is rounding noise: no within-record spread (std < 1e-6 of it).
ZERO_SPREAD = 1e-12


def _lira_options(options: LiraOptions | None) -> LiraOptions:
    if options is None:
        return LiraOptions()
    if not isinstance(options, LiraOptions):
        raise InputError(
            f"options: expected LiraOptions(...), got {type(options).__name__}; e.g. "
            f"options=LiraOptions(online=False)"
        )
    return options


class _Job:
    """One LiRA evaluation: targets (rows of x) against reference tables, tile by tile."""

    def __init__(
        self,
        x: NDArray[np.float64],
        rows: NDArray[np.intp],
        own_in: NDArray[np.bool_] | None,
        in_side: Side | None,
        out_side: Side,
        *,
        fixed_variance: bool,
        estimator: str,
        min_std: float,
        mask: NDArray[np.bool_] | None = None,
    ) -> None:
        self.m, self.n, self.v = x.shape
        self.mask = mask  # [M, N] keep, for balanced sides; None = the textbook removal
        self.x = x.reshape(self.m, self.n * self.v)
        self.rows = rows
        self.own_in = own_in  # [T, N] target trained on the record; None = not a reference
        self.in_side = in_side
        self.out_side = out_side
        self.fixed = fixed_variance
        self.median = estimator == "median"
        self.floor = min_std * min_std
        self.need = 1 if fixed_variance else 2
        self.scores = np.empty((rows.shape[0], self.n))
        self.var_in: NDArray[np.float64] | None = None
        self.var_out: NDArray[np.float64] | None = None

    def _own(
        self, t0: int, t1: int, r0: int, r1: int
    ) -> tuple[
        NDArray[np.bool_] | None,
        NDArray[np.bool_] | None,
        NDArray[np.float64] | None,
        NDArray[np.float64] | None,
    ]:
        """Per side: which records the target is on that side of, as bool [B, n] and flat k."""
        if self.own_in is None:
            return None, None, None, None
        own_in = self.own_in[t0:t1, r0:r1]
        own_out = ~own_in
        k_in = own_in.astype(np.float64)
        if self.v > 1:
            k_in = np.repeat(k_in, self.v, axis=1)
        return own_in, own_out, k_in, 1.0 - k_in

    def pooled_pass(self, t0: int, t1: int, r0: int, r1: int) -> NDArray[np.float64]:
        """Σ of removed squared deviations per target and side over a tile: [B, 2]."""
        lo, hi = r0 * self.v, r1 * self.v
        xt = self.x[self.rows[t0:t1], lo:hi]
        _, _, k_in, k_out = self._own(t0, t1, r0, r1)
        out = np.zeros((t1 - t0, 2))
        if k_in is None:
            return out
        _, rem = self.out_side.moments(xt, k_out, lo, hi)
        out[:, 1] = rem.sum(axis=1)
        if self.in_side is not None:
            _, rem = self.in_side.moments(xt, k_in, lo, hi)
            out[:, 0] = rem.sum(axis=1)
        return out

    def _side(
        self,
        side: Side,
        xt: NDArray[np.float64],
        own: NDArray[np.bool_] | None,
        k: NDArray[np.float64] | None,
        fixed_var: NDArray[np.float64] | None,
        t0: int,
        t1: int,
        r0: int,
        r1: int,
        partner: tuple[NDArray[np.float64], NDArray[np.intp]] | None = None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(signal − location, variance) of one side for a tile.

        ``partner`` (balanced sides): the value and model left out where the target is on
        the other side; then every entry leaves one value out (k = 1).
        """
        lo, hi = r0 * self.v, r1 * self.v
        left_out = None  # [B, flat] model whose value is left out
        if partner is None:
            dev, removed = side.moments(xt, k, lo, hi)
        else:
            assert own is not None
            own_flat = np.repeat(own, self.v, axis=1) if self.v > 1 else own
            y, model = partner
            z = np.where(own_flat, xt, y)
            left_out = np.where(own_flat, self.rows[t0:t1, None], model)
            dev, removed = side.moments_without(xt, z, lo, hi)
            k = np.ones_like(xt)
        if fixed_var is None:
            var = side.variance(removed, k, lo, hi)
            lost = side.cancelled(removed, k, lo, hi)
            if lost is not None:
                rows, flat = lost
                models = (self.rows[t0 + rows] if left_out is None
                          else left_out[rows, flat - lo])
                mean, var[rows, flat - lo] = side.exact_moments(models, flat)
                dev[rows, flat - lo] = xt[rows, flat - lo] - mean
            np.maximum(var, self.floor, out=var)
        else:
            var = fixed_var[t0:t1, None]
        if self.median:
            dev = xt - side.median_of(xt if partner is None else z, k, lo, hi)
        return dev, var

    def _partner(
        self, t0: int, t1: int, r0: int, r1: int
    ) -> tuple[NDArray[np.float64], NDArray[np.intp]] | None:
        """Each target's partner on the other side of each record, as (value, model) flat."""
        if self.mask is None:
            return None
        model = partners(self.mask, self.rows[t0:t1], r0, r1)
        if self.v > 1:
            model = np.repeat(model, self.v, axis=1)
        cols = np.arange(r0 * self.v, r1 * self.v)
        return self.x[model, cols[None, :]], model

    def score_tile(self, t0: int, t1: int, r0: int, r1: int) -> None:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            lo, hi = r0 * self.v, r1 * self.v
            xt = self.x[self.rows[t0:t1], lo:hi]
            own_in, own_out, k_in, k_out = self._own(t0, t1, r0, r1)
            partner = self._partner(t0, t1, r0, r1)
            dev_o, var_o = self._side(
                self.out_side, xt, own_out, k_out, self.var_out, t0, t1, r0, r1, partner
            )
            if self.in_side is None:
                dev_o /= np.sqrt(var_o)
                per_view = log_ndtr(dev_o)
            else:
                dev_i, var_i = self._side(
                    self.in_side, xt, own_in, k_in, self.var_in, t0, t1, r0, r1, partner
                )
                dev_o *= dev_o
                dev_o /= var_o
                dev_i *= dev_i
                dev_i /= var_i
                dev_o -= dev_i
                dev_o += np.log(var_o / var_i)
                dev_o *= 0.5
                per_view = dev_o
            if self.v > 1:
                score = per_view.reshape(t1 - t0, r1 - r0, self.v).mean(axis=2)
            else:
                score = per_view
            if partner is not None:  # both sides leave one out, whatever the target's side
                own_out = own_in = np.ones_like(own_in)
            self.out_side.mark_undefined(score, self.need, own_out, r0, r1)
            if self.in_side is not None:
                self.in_side.mark_undefined(score, self.need, own_in, r0, r1)
            self.scores[t0:t1, r0:r1] = score

    def fixed_variances(self, n_jobs: int) -> None:
        """One pooled variance per target and side (see module doc), floored."""
        t = self.rows.shape[0]
        units = tiles(t, self.n, self.v)
        removed = np.zeros((t, 2))
        for (t0, t1, _, _), part in zip(units, run(self.pooled_pass, units, n_jobs), strict=True):
            removed[t0:t1] += part
        for j, side in ((0, self.in_side), (1, self.out_side)):
            if side is None:
                continue
            total_df, ddf = side.df_terms()
            df = np.full(t, total_df)
            if self.own_in is not None:
                own = self.own_in if j == 0 else ~self.own_in
                per_record = ddf.reshape(self.n, self.v).sum(axis=1)
                for s in range(0, t, 64):
                    df[s : s + 64] -= own[s : s + 64].astype(np.float64) @ per_record
            ss = side.ss.sum() - removed[:, j]
            with np.errstate(invalid="ignore", divide="ignore"):
                var = np.where(df > 0, ss / np.maximum(df, 1.0), 0.0)
            weak = ~(var > ZERO_SPREAD * side.scale2)
            if weak.any():
                own_w = None
                if self.own_in is not None:
                    own_w = (self.own_in if j == 0 else ~self.own_in)[weak]
                gss, gc = side.across_records_ss(self.x[self.rows[weak]], own_w)
                den = gc - side.ddof
                with np.errstate(invalid="ignore", divide="ignore"):
                    var[weak] = np.where(den > 0, gss / np.maximum(den, 1.0), 0.0)
            var = np.maximum(var, self.floor)
            if j == 0:
                self.var_in = var
            else:
                self.var_out = var

    def run(self, n_jobs: int) -> NDArray[np.float64]:
        if self.fixed:
            self.fixed_variances(n_jobs)
        for side in (self.in_side, self.out_side):
            if side is not None and self.median:
                side.build_order(median=True)
        run(self.score_tile, tiles(self.rows.shape[0], self.n, self.v), n_jobs)
        return self.scores


def lira(
    signals: ArrayLike,
    keep: ArrayLike,
    *,
    targets: ArrayLike | None = None,
    options: LiraOptions | None = None,
    n_jobs: int | None = None,
) -> NDArray[np.float64]:
    """LiRA scores [T, N], leave-one-model-out: each target's references are all other models.

    LiRA is Carlini et al. 2022, "Membership Inference Attacks From First Principles".
    ``signals`` [M, N, V] (logit-scaled confidences; [M, N] is read as V = 1), ``keep``
    [M, N] bool, ``options`` a :class:`LiraOptions` (default: online, per-record
    variances, means, ddof 1). Higher = more likely member; NaN = undefined (too few IN/OUT
    references for that record, see the module doc). Each side's mean and variance for
    target t are the all-model tables with t's own value removed in O(1); medians come from
    one sort per record. ``n_jobs``: threads (default: all cores).
    """
    opts = _lira_options(options)
    x = as_model_array(signals, name="signals")
    m, n, _ = x.shape
    mask = as_keep(keep, m, n)
    rows = as_targets(targets, m)
    require_models(m, attack="lira")
    jobs = resolve_jobs(n_jobs)
    in_side, out_side = build_sides(x, mask, ddof=opts.ddof, want_in=opts.online)
    job = _Job(
        x,
        rows,
        mask[rows],
        in_side,
        out_side,
        fixed_variance=opts.fixed_variance,
        estimator=opts.estimator,
        min_std=opts.min_std,
        mask=mask if opts.balanced else None,
    )
    return job.run(jobs)


def lira_target(
    target_signals: ArrayLike,
    ref_signals: ArrayLike,
    ref_keep: ArrayLike,
    *,
    options: LiraOptions | None = None,
) -> NDArray[np.float64]:
    """LiRA scores [N] of one target model against R explicit reference models.

    LiRA is Carlini et al. 2022, "Membership Inference Attacks From First Principles".
    ``target_signals`` [N, V], ``ref_signals`` [R, N, V], ``ref_keep`` [R, N], ``options``
    a :class:`LiraOptions`. Per-record
    variances need ≥ 2 references per side and record, so R < 2 (offline) or R < 4
    (online) is refused, and records with fewer get NaN. With ``fixed_variance=True``
    offline works from R = 1 (each record's single OUT reference is its mean; the variance
    then comes from the spread across records, which sets the scale of the scores but not
    their order) and online from R = 2.
    """
    opts = _lira_options(options)
    xt = as_one_model_array(target_signals, name="target_signals")
    refs = as_model_array(ref_signals, name="ref_signals")
    r, n, v = refs.shape
    if xt.shape != (n, v):
        raise InputError(
            f"target_signals: shape {xt.shape} does not match the references' records and "
            f"views [N, V] = [{n}, {v}]"
        )
    mask = as_keep(ref_keep, r, n, name="ref_keep")
    online, fixed_variance = opts.online, opts.fixed_variance
    need = (2 if online else 1) if fixed_variance else (4 if online else 2)
    if r < need:
        hint = "" if fixed_variance else "; or pass fixed_variance=True, which needs fewer"
        raise InputError(
            f"lira_target: {'online' if online else 'offline'} LiRA with "
            f"{'a fixed' if fixed_variance else 'per-record'} variance needs at least {need} "
            f"reference models, got {r}; add reference models{hint}"
        )
    in_side, out_side = build_sides(refs, mask, ddof=opts.ddof, want_in=online)
    job = _Job(
        xt[None],
        np.zeros(1, dtype=np.intp),
        None,
        in_side,
        out_side,
        fixed_variance=fixed_variance,
        estimator=opts.estimator,
        min_std=opts.min_std,
    )
    return job.run(1)[0]
