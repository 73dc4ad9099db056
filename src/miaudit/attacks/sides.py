"""Leave-one-model-out reference tables: each record's IN and OUT references, per target.

The reference statistics of a record are taken over one *side* of the references: the
models that trained on it (IN) or did not (OUT). In leave-one-model-out evaluation the
references of target t are all models but t, so each side's statistic for target t is the
statistic over all M models with t's own value x removed when t is on that side. With the
side's full mean μ, count c and sum of squared deviations SS (per record and view), and
δ = x − μ, the removal is O(1):

    mean' = μ − δ/(c − 1),  x − mean' = δ·c/(c − 1),  SS' = SS − δ·(x − mean').

So each target costs a few array operations per record instead of a pass over M models.
SS' subtracts two nearly equal numbers when the target lies far from references that
barely vary (SS is then almost all the target's own term): where the subtraction keeps
fewer than about six of the sixteen digits (SS' < 1e-6 · SS), SS' is recomputed by a
direct two-pass sum over the side's other values (``exact_moments``).
Medians and trimmed means come from one sort per record plus the target's rank in it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# Models x records per chunk when summing or sorting the references of every record.
CHUNK_ELEMENTS = 1 << 16
# SS' = SS − removed keeps ≥ ~10 significant digits while SS' ≥ this fraction of SS.
CANCELLATION = 1e-6


def _safe_inverse(den: NDArray[np.float64]) -> NDArray[np.float64]:
    """1/den where den > 0, else 0 (records where it is undefined are masked later)."""
    out = np.zeros_like(den)
    np.divide(1.0, den, out=out, where=den > 0)
    return out


class Side:
    """Per-record tables of one side (IN or OUT) of the references, flat over records × views.

    ``mu`` mean, ``ss`` sum of squared deviations, ``count`` [N]; for leaving one value out:
    ``a`` = 1/(c − 1); for variances with ``ddof``: ``inv0`` = 1/(c − ddof) and ``dinv`` =
    1/(c − 1 − ddof) − inv0 (so k·dinv + inv0 is the factor with k ∈ {0, 1} values removed).
    Undefined entries are 0; callers mark records with too few references as NaN.
    """

    def __init__(
        self,
        values: NDArray[np.float64],
        mask: NDArray[np.bool_],
        mu: NDArray[np.float64],
        ss: NDArray[np.float64],
        scale2: float,
        *,
        ddof: int,
    ) -> None:
        r, n, v = values.shape
        self.r, self.n, self.v = r, n, v
        self.count = mask.sum(axis=0).astype(np.int64)
        c = np.repeat(self.count, v).astype(np.float64)
        self.mu = mu
        self.ss = ss
        # mean squared deviation from each record's all-model mean: the scale below which a
        # pooled variance is rounding noise rather than spread
        self.scale2 = scale2
        self.a = _safe_inverse(c - 1.0)
        self.inv0 = _safe_inverse(c - ddof)
        self.dinv = _safe_inverse(c - 1.0 - ddof) - self.inv0
        self.ddof = ddof
        self._values = values
        self._mask = mask
        self._risky: dict[tuple[int, bool], NDArray[np.intp]] = {}
        self._global: tuple[float, float, float, float] | None = None
        self.median_tables: NDArray[np.float64] | None = None
        self.trim_tables: NDArray[np.float64] | None = None
        self.trim = 0.0

    # -- validity -------------------------------------------------------------------------
    def risky(self, need: int, loo: bool) -> NDArray[np.intp]:
        """Records that may have fewer than ``need`` references (after leaving one out)."""
        key = (need, loo)
        if key not in self._risky:
            spare = self.count - need
            self._risky[key] = np.flatnonzero(spare < (1 if loo else 0))
        return self._risky[key]

    def undefined(
        self, need: int, own: NDArray[np.bool_] | None, r_lo: int, r_hi: int
    ) -> tuple[NDArray[np.intp], NDArray[np.bool_]] | None:
        """(columns, [B, cols] mask) of records in [r_lo, r_hi) left with < need references.

        ``own`` [B, r_hi − r_lo]: the target is on this side (and is left out). None when
        no record of the range can fall short, which is the common case.
        """
        risky = self.risky(need, own is not None)
        lo, hi = np.searchsorted(risky, (r_lo, r_hi))
        if lo == hi:
            return None
        idx = risky[lo:hi]
        cols = idx - r_lo
        left = self.count[idx][None, :] - (0 if own is None else own[:, cols])
        return cols, left < need

    def mark_undefined(
        self,
        score: NDArray[np.float64],
        need: int,
        own: NDArray[np.bool_] | None,
        r_lo: int,
        r_hi: int,
    ) -> None:
        """Set NaN in score [B, records] where a record keeps < need references."""
        found = self.undefined(need, own, r_lo, r_hi)
        if found is None:
            return
        cols, bad = found
        block = score[:, cols]
        block[bad] = np.nan
        score[:, cols] = block

    # -- means and moments ----------------------------------------------------------------
    def moments(
        self, x: NDArray[np.float64], k: NDArray[np.float64] | None, lo: int, hi: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """For flat slice [lo, hi): (x − mean', k·δ·(x − mean')) with k ∈ {0,1} left out."""
        delta = x - self.mu[lo:hi]
        if k is None:
            return delta, np.zeros_like(delta)
        g = k * self.a[lo:hi]
        g += 1.0
        dev = delta * g
        removed = delta * dev
        removed *= k
        return dev, removed

    def moments_without(
        self, x: NDArray[np.float64], z: NDArray[np.float64], lo: int, hi: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """For flat slice [lo, hi): (x − mean'', removed SS) with one value z of the side left
        out (z = x is the target's own; otherwise another model's, see ``partners``)."""
        mu = self.mu[lo:hi]
        dz = z - mu
        dev = dz * self.a[lo:hi]
        dev += x
        dev -= mu
        removed = dz * dz
        removed *= self.a[lo:hi] + 1.0
        return dev, removed

    def variance(
        self, removed: NDArray[np.float64], k: NDArray[np.float64] | None, lo: int, hi: int
    ) -> NDArray[np.float64]:
        """Per-record variance (with ``ddof``) after the removal described by ``removed``."""
        var = self.ss[lo:hi] - removed
        if k is None:
            var *= self.inv0[lo:hi]
            return var
        h = k * self.dinv[lo:hi]
        h += self.inv0[lo:hi]
        var *= h
        return var

    def cancelled(
        self, removed: NDArray[np.float64], k: NDArray[np.float64] | None, lo: int, hi: int
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
        """(tile rows, flat columns) where SS − removed loses its digits; None when nowhere."""
        if k is None:
            return None
        bad = removed > (1.0 - CANCELLATION) * self.ss[lo:hi]
        bad &= k > 0
        if not bad.any():
            return None
        rows, cols = np.nonzero(bad)
        return rows, cols + lo

    def exact_moments(
        self, models: NDArray[np.intp], flat: NDArray[np.intp]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(mean, variance with ``ddof``) of the side's values at flat positions ``flat``
        without model ``models[i]``'s own value: direct two-pass sums, for where the O(1)
        update cancels."""
        n_idx, v_idx = np.divmod(flat, self.v)
        out = np.empty(flat.shape[0])
        means = np.empty(flat.shape[0])
        step = max(1, CHUNK_ELEMENTS // max(self.r, 1))
        for s in range(0, flat.shape[0], step):
            sl = slice(s, s + step)
            vals = self._values[:, n_idx[sl], v_idx[sl]]
            keep = self._mask[:, n_idx[sl]] & (np.arange(self.r)[:, None] != models[sl][None, :])
            cnt = keep.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(keep, vals, 0.0).sum(axis=0) / cnt
                ss = np.where(keep, (vals - mean) ** 2, 0.0).sum(axis=0)
                out[sl] = np.where(cnt - self.ddof > 0, ss / (cnt - self.ddof), 0.0)
            means[sl] = mean
        return means, out

    def mean(
        self, x: NDArray[np.float64], k: NDArray[np.float64] | None, lo: int, hi: int
    ) -> NDArray[np.float64]:
        """Side mean after leaving out k ∈ {0,1} copies of x: μ − k·(x − μ)/(c − 1)."""
        mu = self.mu[lo:hi]
        if k is None:
            return np.broadcast_to(mu, x.shape).copy()
        step = x - mu
        step *= self.a[lo:hi]
        step *= k
        return mu - step

    # -- pooled and across-record spreads -------------------------------------------------
    def df_terms(self) -> tuple[float, NDArray[np.float64]]:
        """Σ f(c) and f(c) − f(c − 1) per flat element, f(c) = c − ddof for c ≥ 1 else 0."""
        c = np.repeat(self.count, self.v)
        f = np.where(c >= 1, c - self.ddof, 0).astype(np.float64)
        f1 = np.where(c - 1 >= 1, c - 1 - self.ddof, 0).astype(np.float64)
        return float(f.sum()), f - f1

    def across_records_ss(
        self, x: NDArray[np.float64], own: NDArray[np.bool_] | None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per target: (sum of squared deviations from the side's grand mean, count).

        Pools every record and view of the side (the target's own values removed): the
        only spread available when no record has two references on this side.
        """
        if self._global is None:
            total = float((self.mu * np.repeat(self.count, self.v)).sum())
            cnt = float(self.count.sum() * self.v)
            g = total / max(cnt, 1.0)
            t1 = t2 = 0.0
            step = max(1, (1 << 22) // (self.n * self.v))
            for start in range(0, self.r, step):
                d = self._values[start : start + step] - g
                d *= self._mask[start : start + step, :, None]
                t1 += float(d.sum())
                t2 += float((d * d).sum())
            self._global = (g, t1, t2, cnt)
        g, t1, t2, cnt = self._global
        b = x.shape[0]
        if own is None:
            s1 = np.full(b, t1)
            s2 = np.full(b, t2)
            c = np.full(b, cnt)
        else:
            d = (x.reshape(b, self.n, self.v) - g) * own[:, :, None]
            s1 = t1 - d.sum(axis=(1, 2))
            s2 = t2 - (d * d).sum(axis=(1, 2))
            c = cnt - own.sum(axis=1) * self.v
        with np.errstate(invalid="ignore", divide="ignore"):
            ss = s2 - s1 * s1 / c
        return np.maximum(ss, 0.0), c

    # -- order statistics -----------------------------------------------------------------
    def build_order(self, *, median: bool = False, trim: float = 0.0) -> None:
        """Per-record order-statistic tables, from one sort of each record's side values.

        Leaving out the target's own value x from the sorted side values a_0 ≤ … ≤ a_{c−1}
        shifts every later position by one: the i-th remaining value is a_i if
        a_{i+1} ≤ x, else a_{i+1}. So the leave-one-out median needs a_{p1}, a_{p1+1},
        a_{p2}, a_{p2+1} of the record (p1, p2 the middle positions of c − 1 values), and
        the trimmed sum over remaining positions [lo, hi) is Σ_{lo}^{hi−1} a_i plus
        (a_hi − max(a_lo, x)) when a_hi > x. Both are a few array operations per target.
        """
        r, n, v = self.r, self.n, self.v
        width = n * v
        c_all = np.repeat(self.count, v)
        median = median and self.median_tables is None
        trimmed = trim > 0 and (self.trim_tables is None or self.trim != trim)
        if not (median or trimmed):
            return
        if median:
            self.median_tables = np.zeros((5, width))
        if trimmed:
            self.trim_tables = np.zeros((5, width))
            self.trim = trim
        step = max(1, CHUNK_ELEMENTS // r)
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            lo, hi = r0 * v, r1 * v
            keys = np.where(self._mask[:, r0:r1, None], self._values[:, r0:r1, :], np.inf)
            srt = np.ascontiguousarray(keys.reshape(r, hi - lo).T)
            srt.sort(axis=1)
            c = c_all[lo:hi]
            rows = np.arange(hi - lo)

            def at(
                pos: NDArray[np.int64], srt: NDArray[np.float64] = srt, rows=rows
            ) -> NDArray[np.float64]:
                return srt[rows, np.clip(pos, 0, r - 1)]

            if median:
                assert self.median_tables is not None
                tab = self.median_tables[:, lo:hi]
                tab[0] = 0.5 * (at((c - 1) // 2) + at(c // 2))
                p1 = (c - 2) // 2
                p2 = (c - 1) // 2
                tab[1] = at(p1)
                tab[2] = at(p1 + 1)
                tab[3] = at(p2)
                tab[4] = at(p2 + 1)
            if trimmed:
                assert self.trim_tables is not None
                prefix = np.zeros((hi - lo, r + 1))
                np.cumsum(np.where(np.isfinite(srt), srt, 0.0), axis=1, out=prefix[:, 1:])
                g = np.floor(trim * c).astype(np.int64)
                tab = self.trim_tables[:, lo:hi]
                with np.errstate(invalid="ignore", divide="ignore"):
                    tab[0] = (prefix[rows, c - g] - prefix[rows, g]) / (c - 2 * g)
                    c1 = c - 1
                    g1 = np.floor(trim * c1).astype(np.int64)
                    start = np.clip(g1, 0, r)
                    stop = np.clip(c1 - g1, 0, r)
                    tab[1] = prefix[rows, stop] - prefix[rows, start]
                    tab[2] = at(start)
                    tab[3] = at(stop)
                    tab[4] = 1.0 / (c1 - 2 * g1)
        for tables in (self.median_tables, self.trim_tables):
            if tables is not None:
                tables[~np.isfinite(tables)] = 0.0  # undefined records are masked by callers

    def median_of(
        self, x: NDArray[np.float64], k: NDArray[np.float64] | None, lo: int, hi: int
    ) -> NDArray[np.float64]:
        """Median of the side's values, leaving out k ∈ {0,1} copies of x (see build_order)."""
        assert self.median_tables is not None
        full, a1, a2, a3, a4 = self.median_tables[:, lo:hi]
        if k is None:
            return np.broadcast_to(full, x.shape).copy()
        first = (a1 - a2) * (a2 <= x)
        first += a2
        second = (a3 - a4) * (a4 <= x)
        second += a4
        first += second
        first *= 0.5
        first -= full
        first *= k
        first += full
        return first

    def trimmed_mean_of(
        self, x: NDArray[np.float64], k: NDArray[np.float64] | None, lo: int, hi: int
    ) -> NDArray[np.float64]:
        """Trimmed mean of the side's values, leaving out k ∈ {0,1} copies of x."""
        assert self.trim_tables is not None
        full, total, a_lo, a_hi, inv = self.trim_tables[:, lo:hi]
        if k is None:
            return np.broadcast_to(full, x.shape).copy()
        fix = a_hi - np.maximum(a_lo, x)
        fix *= a_hi > x
        fix += total
        fix *= inv
        fix -= full
        fix *= k
        fix += full
        return fix


def partners(
    mask: NDArray[np.bool_], targets: NDArray[np.intp], r_lo: int, r_hi: int
) -> NDArray[np.intp]:
    """[B, r_hi − r_lo] the model left out of the *other* side of each target and record.

    The partner of a target that is the r-th (by index) of a record's IN models is the
    (r mod c_out)-th of its OUT models, and the reverse. It depends on indices only, never
    on signals, so under the null every target's two sides are exchangeable samples of
    c_in − 1 and c_out − 1 references whether it trained on the record or not.
    """
    k = mask[:, r_lo:r_hi]
    order = np.argsort(k, axis=0, kind="stable")  # OUT models ascending, then IN ascending
    c_in = k.sum(axis=0)
    c_out = k.shape[0] - c_in
    rank = np.where(k, np.cumsum(k, axis=0), np.cumsum(~k, axis=0)) - 1
    own = k[targets]
    r = rank[targets]
    pos = np.where(own, r % np.maximum(c_out, 1), c_out + r % np.maximum(c_in, 1))
    pos = np.minimum(pos, k.shape[0] - 1)
    return np.take_along_axis(order, pos, axis=0)


def build_sides(
    values: NDArray[np.float64],
    mask: NDArray[np.bool_],
    *,
    ddof: int = 1,
    want_in: bool = True,
) -> tuple[Side | None, Side]:
    """IN and OUT tables from two passes over the models: each side's mean, then its sum of
    squared deviations around that mean (the corrected two-pass algorithm of Chan, Golub and
    LeVeque, 1983). One pass around a shared centre would cancel when one model lies far
    from the others: the side without it then deviates from the centre by almost the same
    amount everywhere."""
    r, n, v = values.shape
    width = n * v
    shift = values.mean(axis=0).reshape(width)
    flat = values.reshape(r, width)
    step = max(1, CHUNK_ELEMENTS // r) * v

    def chunks():
        for lo in range(0, width, step):
            hi = min(lo + step, width)
            k = mask[:, lo // v : (hi + v - 1) // v]
            yield lo, hi, flat[:, lo:hi], (np.repeat(k, v, axis=1) if v > 1 else k)

    sums = np.zeros((2, width))  # IN, all (around the shared centre)
    scale_sums = np.zeros(2)  # Σ d² over IN and over all
    for lo, hi, block, k in chunks():
        d = block - shift[lo:hi]
        sums[0, lo:hi] = (d * k).sum(axis=0)
        sums[1, lo:hi] = d.sum(axis=0)
        d *= d
        scale_sums += ((d * k).sum(), d.sum())
    c_in = np.repeat(mask.sum(axis=0), v).astype(np.float64)
    c_out = r - c_in
    mu_in = shift + sums[0] * _safe_inverse(c_in)
    mu_out = shift + (sums[1] - sums[0]) * _safe_inverse(c_out)
    ss = np.zeros((2, width))
    residual = np.zeros((2, width))  # Σ (x − μ): the means' own rounding, added back below
    for lo, hi, block, k in chunks():
        for j, (mu, sel) in enumerate(((mu_in, k), (mu_out, ~k))):
            e = np.where(sel, block - mu[lo:hi], 0.0)
            first = e.sum(axis=0)
            residual[j, lo:hi] = first
            e *= e
            ss[j, lo:hi] = e.sum(axis=0) - first * first * _safe_inverse(
                c_in[lo:hi] if j == 0 else c_out[lo:hi]
            )
    np.maximum(ss, 0.0, out=ss)
    mu_in += residual[0] * _safe_inverse(c_in)
    mu_out += residual[1] * _safe_inverse(c_out)
    scale_in = float(scale_sums[0] / max(float(c_in.sum()), 1.0))
    scale_out = float((scale_sums[1] - scale_sums[0]) / max(float(c_out.sum()), 1.0))
    out_side = Side(values, ~mask, mu_out, ss[1], scale_out, ddof=ddof)
    in_side = Side(values, mask, mu_in, ss[0], scale_in, ddof=ddof) if want_in else None
    return in_side, out_side
