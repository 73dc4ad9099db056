"""RMIA (Zarifzadeh et al., 2024): pairwise likelihood ratios against population records.

For target model θ, record x and population record z, with Pr(·|θ) the true-class
probability:

    LR(x, z) = (Pr(x|θ) / Pr(x)) / (Pr(z|θ) / Pr(z)),   score(x) = Pr_z[LR(x, z) ≥ γ],

i.e. the fraction of population records z (x itself excluded) with ratio(z) ≤ ratio(x) / γ,
where ratio(·) = Pr(·|θ) / Pr(·). With V query views the per-view scores are averaged.

The reference probability Pr(x) uses the references that qualify, each side averaged
plainly (or trimmed by ``trim`` at both ends, as ``scipy.stats.trim_mean``):

- offline: Pr(x) = ½((1 + a)·P_OUT(x) + (1 − a)), P_OUT the mean over references that
  did not train on x;
- online:  Pr(x) = ½(P_IN(x) + P_OUT(x)). The two sides are averaged separately so the
  number of IN references (which, under a balanced plan, reveals whether the target
  trained on x) cannot tilt Pr(x). A record no model trained on (a held-out population
  record) has no IN side; every reference is an OUT model for it, so Pr(z) = P_OUT(z).

This is *not* the top-k convention of the widely copied research code
(``get_rmia_out_signals`` in ML Privacy Meter), which zeroes the IN references' values,
sorts, and averages the k largest: when a record has more than k OUT references that
keeps its most confident ones and biases P_OUT(x) upwards. Here every qualifying
reference counts once.

Undefined cases are NaN: a record x with no reference on a needed side (or 0/0 ratios)
gets NaN, and such a z is left out of the population for that target.

Offline ``a`` (when not given) is chosen without the target's membership labels: the
models are split into halves by index, [0, M//2) and [M//2, M); for a target in one half,
``a`` is calibrated on the other half alone: its first model is attacked by offline RMIA
with the rest of that half as references, on at most 20,000 records drawn with seed 0,
for a = 0, 0.05, ..., 1, and the a with the best AUC against that model's own membership
wins (ties: the smaller a; see ``calibrate_offline_a``). Two calibrations serve all
targets, and neither reads any model of the target's half. ``rmia_target`` calibrates on
its references alone (reference 0 attacked by the others).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import ArrayLike, NDArray

from miaudit.arrays import (
    as_keep,
    as_model_array,
    as_one_model_array,
    as_population,
    as_targets,
    check_probabilities,
)
from miaudit.attacks.counts import require_models
from miaudit.attacks.options import RmiaOptions, check_rmia_options
from miaudit.attacks.parallel import resolve_jobs, run
from miaudit.attacks.sides import Side, build_sides
from miaudit.errors import InputError
from miaudit.risk import curves

DEFAULT_A_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)


def _rmia_options(options: RmiaOptions | None) -> RmiaOptions:
    if options is None:
        return RmiaOptions()
    if not isinstance(options, RmiaOptions):
        raise InputError(
            f"options: expected RmiaOptions(...), got {type(options).__name__}; e.g. "
            f"options=RmiaOptions(online=True)"
        )
    return options


def _ratio_scores(
    ratio: NDArray[np.float64],
    population: NDArray[np.bool_],
    gamma: float,
    out: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Pr_z[ratio(z) ≤ ratio(x)/γ] for every x, z over population \\ {x}; NaN ratios undefined.

    One sort of the ratios serves both sides: population ratios are a subsequence of the
    sorted ratios and ratio/γ keeps their order, so with γ = 1 counting is a cumulative
    sum over tie groups, not a search.
    """
    n = ratio.shape[0]
    perm = np.argsort(ratio)
    rs = ratio[perm]
    if out is None:
        out = np.empty(n)
    if gamma == 1.0 and not np.isnan(rs[-1]) and population.all():
        # every record is a z and no ratio is undefined: the count below x is its rank
        if not (rs[1:] == rs[:-1]).any():
            out[perm] = _rank_fractions(n)
            return out
    valid = ~np.isnan(rs)
    in_z = population[perm] & valid
    nz = int(in_z.sum())
    if gamma == 1.0:
        # z ≤ rs[i] with ties: the cumulative z count at the end of i's tie group
        cz = np.cumsum(in_z)
        ends = np.empty(n, dtype=bool)
        ends[-1] = True
        np.not_equal(rs[1:], rs[:-1], out=ends[:-1])
        last = np.where(ends, np.arange(n), n)
        last = np.minimum.accumulate(last[::-1])[::-1]
        counts = cz[last]
        self_counted = in_z
    else:
        q = rs / gamma
        counts = np.searchsorted(rs[in_z], q, side="right")
        self_counted = in_z & (rs <= q)
    denom = nz - in_z
    with np.errstate(invalid="ignore", divide="ignore"):
        score_sorted = (counts - self_counted) / denom
    score_sorted[~valid | (denom <= 0)] = np.nan
    out[perm] = score_sorted
    return out


@functools.lru_cache(maxsize=4)
def _rank_fractions(n: int) -> NDArray[np.float64]:
    """i / (n − 1) for i = 0..n−1: the score of the i-th smallest ratio without ties."""
    out = np.arange(n) / (n - 1)
    out.flags.writeable = False
    return out


def _reference_probability(
    p_out: NDArray[np.float64],
    p_in: NDArray[np.float64] | None,
    a: float,
) -> NDArray[np.float64]:
    if p_in is not None:
        p_out += p_in
        p_out *= 0.5
        return p_out
    p_out *= 0.5 * (1.0 + a)
    p_out += 0.5 * (1.0 - a)
    return p_out


def _side_mean(
    side: Side,
    xt: NDArray[np.float64],
    own: NDArray[np.bool_] | None,
    trim: float,
) -> NDArray[np.float64]:
    """Plain (or trimmed) mean of the side's references, leaving out the target's own."""
    hi = xt.shape[1]
    k = None
    if own is not None:
        k = own.astype(np.float64)
        if side.v > 1:
            k = np.repeat(k, side.v, axis=1)
    if trim > 0:
        side.build_order(trim=trim)
        mean = side.trimmed_mean_of(xt, k, 0, hi)
    else:
        mean = side.mean(xt, k, 0, hi)
    found = side.undefined(1, own, 0, side.n)
    if found is not None:
        cols, bad = found
        block = mean.reshape(mean.shape[0], side.n, side.v)[:, cols]
        block[bad] = np.nan
        mean.reshape(mean.shape[0], side.n, side.v)[:, cols] = block
    return mean


class _Job:
    """RMIA for targets (rows of probs) against reference tables, one target at a time."""

    def __init__(
        self,
        probs: NDArray[np.float64],
        rows: NDArray[np.intp],
        own_in: NDArray[np.bool_] | None,
        in_side: Side | None,
        out_side: Side,
        *,
        population: NDArray[np.bool_],
        gamma: float,
        a: NDArray[np.float64],
        trim: float,
    ) -> None:
        self.m, self.n, self.v = probs.shape
        self.p = probs.reshape(self.m, self.n * self.v)
        self.rows = rows
        self.own_in = own_in
        self.in_side = in_side
        self.out_side = out_side
        self.population = population
        self.gamma = gamma
        self.a = a
        self.trim = trim
        self.scores = np.empty((rows.shape[0], self.n))
        self.never_in: NDArray[np.intp] | None = None
        if in_side is not None:
            never = np.repeat(in_side.count == 0, self.v)
            self.never_in = np.flatnonzero(never) if never.any() else None

    def score_target(self, j: int) -> None:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            pt = self.p[self.rows[j]][None]  # a view, [1, N*V]
            own_in = None if self.own_in is None else self.own_in[j : j + 1]
            own_out = None if own_in is None else ~own_in
            p_out = _side_mean(self.out_side, pt, own_out, self.trim)
            p_in = None
            if self.in_side is not None:
                p_in = _side_mean(self.in_side, pt, own_in, self.trim)
                if self.never_in is not None:
                    # a record no model trained on (a held-out population record z) is a
                    # non-member of every reference: its reference probability is P_OUT
                    p_in[:, self.never_in] = p_out[:, self.never_in]
            ref = _reference_probability(p_out, p_in, float(self.a[j]))[0]
            np.divide(pt[0], ref, out=ref)
            if self.v == 1:
                _ratio_scores(ref, self.population, self.gamma, out=self.scores[j])
                return
            ratio = ref.reshape(self.n, self.v)
            acc = np.zeros(self.n)
            for view in range(self.v):
                acc += _ratio_scores(
                    np.ascontiguousarray(ratio[:, view]), self.population, self.gamma
                )
            acc /= self.v
            self.scores[j] = acc

    def run(self, n_jobs: int) -> NDArray[np.float64]:
        if self.trim > 0:
            for side in (self.in_side, self.out_side):
                if side is not None:
                    side.build_order(trim=self.trim)
        run(self.score_target, [(j,) for j in range(self.rows.shape[0])], n_jobs)
        return self.scores


def _as_probabilities(values: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = as_model_array(values, name=name)
    check_probabilities(arr, name=name, models=True)
    return arr


def calibrate_offline_a(
    probabilities: ArrayLike,
    keep: ArrayLike,
    *,
    models: ArrayLike | None = None,
    pseudo_target: int | None = None,
    population: ArrayLike | None = None,
    gamma: float = 1.0,
    trim: float = 0.0,
    grid: ArrayLike | None = None,
    max_records: int = 20_000,
    seed: int = 0,
) -> float:
    """Offline RMIA's ``a``, chosen by attacking one reference model with the others.

    Uses only ``models`` (default: all): ``pseudo_target`` (default: the first of them) is
    attacked by offline RMIA with the remaining ones as references, for each ``a`` in
    ``grid`` (default 0, 0.05, ..., 1), and the ``a`` with the highest AUC against the
    pseudo-target's own membership wins (ties: the smallest). At most ``max_records``
    records (and population records), drawn with ``seed``, keep this cheap. Nothing of a
    model outside ``models`` is read, so a target left out of ``models`` is never used.
    """
    probs = _as_probabilities(probabilities, "probabilities")
    m, n, _ = probs.shape
    mask = as_keep(keep, m, n)
    pop = as_population(population, n)
    check_rmia_options(gamma, None, trim)
    chosen = np.arange(m) if models is None else np.unique(np.asarray(models, dtype=np.intp))
    if chosen.size < 2 or chosen.min() < 0 or chosen.max() >= m:
        raise InputError(
            f"calibrate_offline_a: needs at least 2 valid model indices (one pseudo-target "
            f"and one reference), got {models!r} for {m} models; or pass a explicitly"
        )
    pseudo = int(chosen[0]) if pseudo_target is None else int(pseudo_target)
    if pseudo not in chosen:
        raise InputError(
            f"pseudo_target: model {pseudo_target} is not among the calibration models"
        )
    values = DEFAULT_A_GRID if grid is None else np.asarray(grid, dtype=np.float64).ravel()
    if values.size == 0 or ((values < 0) | (values > 1)).any():
        raise InputError("grid: expected candidate values of a within [0, 1]")
    if max_records < 2:
        raise InputError(f"max_records: expected at least 2, got {max_records}")
    return _calibrate(
        probs,
        mask,
        pseudo,
        chosen[chosen != pseudo],
        pop,
        gamma=gamma,
        trim=trim,
        grid=values,
        max_records=max_records,
        seed=seed,
    )


def _calibrate(
    probs: NDArray[np.float64],
    mask: NDArray[np.bool_],
    pseudo: int,
    refs: NDArray[np.intp],
    pop: NDArray[np.bool_],
    *,
    gamma: float,
    trim: float,
    grid: NDArray[np.float64],
    max_records: int,
    seed: int,
) -> float:
    """calibrate_offline_a on validated arrays."""
    n, v = probs.shape[1], probs.shape[2]
    rng = np.random.default_rng(seed)
    records = np.arange(n)
    if n > max_records:
        records = np.sort(rng.choice(n, size=max_records, replace=False))
    pop_idx = np.flatnonzero(pop)
    if pop_idx.size == n:
        pop_idx = records  # every record is a z: the sampled records serve as both
    elif pop_idx.size > max_records:
        pop_idx = np.sort(rng.choice(pop_idx, size=max_records, replace=False))
    used = np.union1d(records, pop_idx)
    scored = np.isin(used, records)
    sub_pop = np.isin(used, pop_idx)
    ref_probs = probs[np.ix_(refs, used)]
    _, out_side = build_sides(ref_probs, mask[np.ix_(refs, used)], want_in=False)
    pt = probs[pseudo, used].reshape(1, used.size * v)
    p_out = _side_mean(out_side, pt, None, trim)
    member = mask[pseudo, used[scored]]
    best_a, best_auc = float(grid[0]), -np.inf
    for a in grid:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = (pt / _reference_probability(p_out.copy(), None, float(a)))[0]
        ratio = ratio.reshape(used.size, v)
        score = np.mean(
            [
                _ratio_scores(np.ascontiguousarray(ratio[:, view]), sub_pop, gamma)
                for view in range(v)
            ],
            axis=0,
        )[scored]
        auc = curves.auc(score, member)  # NaN (never best) when a class is empty
        if auc > best_auc:
            best_a, best_auc = float(a), auc
    if not np.isfinite(best_auc):
        raise InputError(
            f"calibrate_offline_a: pseudo-target model {pseudo} has no scorable members and "
            f"non-members among the sampled records; pass a explicitly (e.g. a=0.3) or use "
            f"more records"
        )
    return best_a


def rmia(
    probabilities: ArrayLike,
    keep: ArrayLike,
    *,
    targets: ArrayLike | None = None,
    options: RmiaOptions | None = None,
    population: ArrayLike | None = None,
    n_jobs: int | None = None,
) -> NDArray[np.float64]:
    """RMIA scores [T, N], leave-one-model-out (each target's references: all other models).

    RMIA is Zarifzadeh et al. 2024, "Low-Cost High-Power Membership Inference Attacks".
    ``probabilities`` [M, N, V] true-class probabilities, ``keep`` [M, N], ``options`` a
    :class:`RmiaOptions` (default: offline, γ = 1, ``a`` calibrated, no trimming).
    ``population``: record indices or an [N] mask of the z records (default: all). Offline
    ``a=None`` calibrates ``a`` per half of the models, never reading the target's
    membership (module doc). Higher = more likely member; NaN = undefined. ``n_jobs``:
    threads (default: all cores).
    """
    opts = _rmia_options(options)
    online, gamma, a, trim = opts.online, opts.gamma, opts.a, opts.trim
    probs = _as_probabilities(probabilities, "probabilities")
    m, n, _ = probs.shape
    mask = as_keep(keep, m, n)
    rows = as_targets(targets, m)
    require_models(m, attack="rmia")
    pop = as_population(population, n)
    a_rows = np.zeros(rows.shape[0])
    if not online:
        if a is None:
            half = m // 2
            groups = (np.arange(0, half), np.arange(half, m))
            for mine, other in (groups, groups[::-1]):
                hit = np.isin(rows, mine)
                if hit.any():
                    a_rows[hit] = _calibrate(
                        probs,
                        mask,
                        int(other[0]),
                        other[1:],
                        pop,
                        gamma=gamma,
                        trim=trim,
                        grid=DEFAULT_A_GRID,
                        max_records=20_000,
                        seed=0,
                    )
        else:
            a_rows[:] = a
    in_side, out_side = build_sides(probs, mask, want_in=online)
    job = _Job(
        probs,
        rows,
        mask[rows],
        in_side,
        out_side,
        population=pop,
        gamma=gamma,
        a=a_rows,
        trim=trim,
    )
    return job.run(resolve_jobs(n_jobs))


def rmia_target(
    target_probs: ArrayLike,
    ref_probs: ArrayLike,
    ref_keep: ArrayLike,
    *,
    population: ArrayLike | None = None,
    options: RmiaOptions | None = None,
) -> NDArray[np.float64]:
    """RMIA scores [N] of one target model against R explicit reference models.

    RMIA is Zarifzadeh et al. 2024, "Low-Cost High-Power Membership Inference Attacks".
    ``target_probs`` [N, V], ``ref_probs`` [R, N, V], ``ref_keep`` [R, N], ``options`` a
    :class:`RmiaOptions`. Offline works from R = 1 with an explicit ``a``; ``a=None``
    calibrates on the references alone (reference 0 attacked by the others), which needs
    R ≥ 2. Online needs IN and OUT references (R ≥ 2).
    """
    opts = _rmia_options(options)
    online, gamma, a, trim = opts.online, opts.gamma, opts.a, opts.trim
    pt = as_one_model_array(target_probs, name="target_probs")
    check_probabilities(pt, name="target_probs", models=False)
    refs = _as_probabilities(ref_probs, "ref_probs")
    r, n, v = refs.shape
    if pt.shape != (n, v):
        raise InputError(
            f"target_probs: shape {pt.shape} does not match the references' records and "
            f"views [N, V] = [{n}, {v}]"
        )
    mask = as_keep(ref_keep, r, n, name="ref_keep")
    pop = as_population(population, n)
    if online and r < 2:
        raise InputError(
            f"rmia_target: online RMIA needs IN and OUT references, so at least 2 reference "
            f"models; got {r}"
        )
    a_value = 0.0
    if not online:
        if a is None:
            if r < 2:
                raise InputError(
                    "rmia_target: choosing a needs at least 2 reference models (one attacked "
                    "by the others); with 1 reference pass a explicitly, e.g. a=0.3"
                )
            a_value = _calibrate(
                refs,
                mask,
                0,
                np.arange(1, r),
                pop,
                gamma=gamma,
                trim=trim,
                grid=DEFAULT_A_GRID,
                max_records=20_000,
                seed=0,
            )
        else:
            a_value = float(a)
    in_side, out_side = build_sides(refs, mask, want_in=online)
    job = _Job(
        pt[None],
        np.zeros(1, dtype=np.intp),
        None,
        in_side,
        out_side,
        population=pop,
        gamma=gamma,
        a=np.array([a_value]),
        trim=trim,
    )
    return job.run(1)[0]
