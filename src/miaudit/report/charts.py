"""Charts for the report and the sweep, as inline SVG strings made with matplotlib.

Why SVG, inline: the report must open offline, be searchable and print sharply, so every chart
is vector markup inside the HTML file, with text as text (no embedded fonts, no scripts). Each
chart is drawn on its own ``Figure`` (no pyplot state), with fixed ids and no date stamp, so the
same run files always give the same bytes. These functions only draw: every number they show
is computed by the caller from the run's files.
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import ParamSpec

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure

from miaudit.risk import Survival

# Okabe–Ito: distinguishable for the common forms of colour blindness and in greyscale print.
PALETTE = ("#0b5394", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7f7f7f")
INK = "#1f2933"
MUTED = "#6b7785"
GRID = "#e3e8ee"
HIGH = "#b42318"
LOW = "#175cd3"
NEUTRAL = "#98a2b3"

MAX_GROUPS = 12
"""At most this many subgroups per attribute chart (those most over- or under-represented)."""

# Figure widths in inches for the three places a chart sits in the page (full width, the wide
# column of a chart-and-text row, half of a two-chart row), so that text on every chart shows
# at about the same size once the SVG is scaled to its box.
FULL, WIDE, HALF = 10.5, 5.8, 5.0

_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "miaudit",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "font.size": 9.5,
    "axes.edgecolor": MUTED,
    "axes.labelcolor": INK,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.titlecolor": INK,
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.labelcolor": INK,
    "ytick.labelcolor": INK,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "lines.linewidth": 1.8,
    "path.simplify": True,
}

_XML_HEAD = re.compile(r"\A.*?(?=<svg\b)", re.S)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_STYLE = re.compile(r"\s*<defs>\s*<style[^>]*>[^<]*</style>\s*</defs>")
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_SIZE = re.compile(r'\s+(?:width|height)="[\d.]+pt"')
_ID = re.compile(r'(\bid="|url\(#|href="#)([^")]+)')


def plain(text: object) -> str:
    """Text that matplotlib shows as typed: a ``$`` in a subgroup name ("$11-$25k") is not maths."""
    return str(text).replace("$", r"\$")


_P = ParamSpec("_P")


def _styled(draw: Callable[_P, str]) -> Callable[_P, str]:
    """Draw under the report's style only; pyplot and the user's rcParams stay untouched."""

    @functools.wraps(draw)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> str:
        with matplotlib.rc_context(_RC):
            return draw(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def to_svg(fig: Figure, chart_id: str, title: str) -> str:
    """The figure as an ``<svg>`` element ready to inline: ids made unique, no external URLs.

    The XML prologue, the metadata block (which names matplotlib's web site) and the style
    block (a page-wide rule once inlined; the page's CSS carries it) are dropped;
    namespaces are implied for SVG inside HTML; every id is prefixed with ``chart_id`` so
    clip paths of two charts in one page never collide; a ``<title>`` names the chart for
    screen readers.
    """
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = _XML_HEAD.sub("", svg, count=1)
    svg = _METADATA.sub("", svg, count=1)
    svg = _STYLE.sub("", svg, count=1)  # one rule in the page's CSS instead
    svg = _XMLNS.sub("", svg)
    svg = _SIZE.sub("", svg)
    svg = _ID.sub(lambda m: f"{m.group(1)}{chart_id}-{m.group(2)}", svg)
    safe_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    svg = svg.replace(
        "<svg ",
        f'<svg role="img" aria-labelledby="{chart_id}-title" class="chart-svg" ',
        1,
    )
    head_end = svg.index(">") + 1
    return f'{svg[:head_end]}\n <title id="{chart_id}-title">{safe_title}</title>{svg[head_end:]}'.strip()


def _percent(x: float, _pos: int | None = None) -> str:
    if x >= 0.1 or x == 0:
        return f"{x:.0%}"
    if x >= 0.01:
        return f"{x:.1%}".replace(".0%", "%")
    digits = max(0, -math.floor(math.log10(x * 100)))
    return f"{x * 100:.{digits}f}%"


def _step_points(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The best TPR reachable at FPR ≤ each grid point (the ROC as a conservative step)."""
    idx = np.searchsorted(fpr, grid, side="right") - 1
    return np.where(idx >= 0, tpr[np.clip(idx, 0, None)], 0.0)


@_styled
def roc_chart(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    log: bool,
    floor: float,
    chart_id: str,
    primary: str,
) -> str:
    """ROC of every attack over all (target, record) pairs, with the chance diagonal.

    ``floor`` is the smallest FPR the scores resolve (1 / number of OUT pairs); the log-log
    axes start there, because the low-FPR corner is where single records are given away.
    """
    fig = _figure(HALF, 4.5)
    ax = fig.add_subplot()
    lo = max(floor, 1e-6) if log else 0.0
    if log:
        grid = np.unique(np.r_[np.geomspace(lo, 1.0, 500), 1.0])
    else:
        grid = np.unique(np.r_[np.linspace(0.0, 1.0, 400), np.geomspace(1e-4, 1.0, 100)])
    ax.plot([lo, 1], [lo, 1], ls="--", lw=1, color=NEUTRAL, label="chance (random guess)")
    for k, (name, (fpr, tpr)) in enumerate(curves.items()):
        y = _step_points(np.asarray(fpr), np.asarray(tpr), grid)
        if log:
            y = np.maximum(y, lo)
        ax.plot(
            grid,
            y,
            color=PALETTE[k % len(PALETTE)],
            lw=2.2 if name == primary else 1.4,
            label=plain(name),
            drawstyle="steps-post",
        )
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, 1)
        ax.set_ylim(lo, 1)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(ticker.FuncFormatter(_percent))
        ax.set_title("ROC, log–log axes (low false-positive rates)")
    else:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title("ROC, linear axes")
    ax.set_xlabel("false-positive rate (non-members flagged)")
    ax.set_ylabel("true-positive rate (members found)")
    ax.legend(loc="lower right")
    return to_svg(fig, chart_id, f"ROC curves ({'log-log' if log else 'linear'} axes)")


@_styled
def survival_chart(
    curves: Mapping[str, Survival],
    *,
    primary: str,
    thresholds: Sequence[float],
    counts: Mapping[float, int],
    chart_id: str,
) -> str:
    """Share of patients whose exposure is at least x, with the primary attack's band."""
    fig = _figure(WIDE, 4.0)
    ax = fig.add_subplot()
    main = curves[primary]
    floor = 0.5 / max(main.n, 1)
    for k, (name, s) in enumerate(curves.items()):
        color = PALETTE[k % len(PALETTE)]
        y = np.where(s.fraction > 0, s.fraction, np.nan)
        if name == primary:
            ax.fill_between(
                s.grid,
                np.maximum(s.lower, floor),
                np.maximum(s.upper, floor),
                step="post",
                color=color,
                alpha=0.18,
                lw=0,
                label=f"{round(s.confidence * 100)}% confidence band",
            )
        ax.step(
            s.grid,
            y,
            where="post",
            color=color,
            lw=2.2 if name == primary else 1.2,
            ls="-" if name == primary else "--",
            label=plain(name),
        )
    top = 1.0
    for t in thresholds:
        ax.axvline(t, color=HIGH, lw=0.9, ls=":")
        ax.annotate(
            f"≥ {t:g}: {counts.get(t, 0)}",
            xy=(t, top),
            xytext=(-3, -4),
            textcoords="offset points",
            ha="right",
            va="top",
            rotation=90,
            fontsize=8,
            color=HIGH,
        )
    ax.set_yscale("log")
    ax.set_ylim(floor, 1.05)
    ax.set_xlim(float(main.grid[0]), float(main.grid[-1]))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(_percent))
    ax.set_xlabel("exposure x (patient attack AUC)")
    ax.set_ylabel("patients with exposure ≥ x")
    ax.set_title("How many patients are exposed, at every level of exposure")
    ax.legend(loc="lower left")
    return to_svg(fig, chart_id, "Survival curve of patient exposure")


@_styled
def group_chart(
    groups: pd.DataFrame,
    *,
    attribute: str,
    cohort_median: float,
    top_label: str,
    chart_id: str,
) -> str:
    """Per-subgroup median exposure with its interval (left) and Pearson residual (right).

    ``groups`` has columns group, n, median, median_lo, median_hi, residual, n_top; one row
    per subgroup, in the order to show (top to bottom).
    """
    k = len(groups)
    fig = _figure(FULL, 1.2 + 0.3 * max(k, 2))
    left, right = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.25, 1]})
    y = np.arange(k)[::-1]
    names = [f"{plain(g)}  (n={n:,})" for g, n in zip(groups["group"], groups["n"], strict=True)]
    med = groups["median"].to_numpy(float)
    lo = np.minimum(groups["median_lo"].to_numpy(float), med)
    hi = np.maximum(groups["median_hi"].to_numpy(float), med)
    left.errorbar(
        med,
        y,
        xerr=[med - lo, hi - med],
        fmt="o",
        color=PALETTE[0],
        ecolor=PALETTE[0],
        elinewidth=1.6,
        capsize=3,
        ms=5,
    )
    left.axvline(cohort_median, color=MUTED, ls="--", lw=1)
    left.set_yticks(y, names)
    left.set_xlabel("median exposure, 95% interval")
    left.set_title(f"{plain(attribute)}: exposure per subgroup")
    left.grid(axis="y", visible=False)
    span = max(float(np.nanmax(hi)) if k else 0.6, cohort_median) - min(
        float(np.nanmin(lo)) if k else 0.4, cohort_median
    )
    pad = max(span * 0.15, 0.01)
    left.set_xlim(
        min(float(np.nanmin(lo)) if k else 0.4, cohort_median) - pad,
        max(float(np.nanmax(hi)) if k else 0.6, cohort_median) + pad,
    )

    res = groups["residual"].to_numpy(float)
    colors = [HIGH if r >= 2 else LOW if r <= -2 else NEUTRAL for r in np.nan_to_num(res)]
    right.barh(y, np.nan_to_num(res), color=colors, height=0.6)
    for yy, r, n_top in zip(y, res, groups["n_top"], strict=True):
        if math.isfinite(r):
            right.annotate(
                f"{int(n_top)}",
                xy=(r, yy),
                xytext=(3 if r >= 0 else -3, 0),
                textcoords="offset points",
                ha="left" if r >= 0 else "right",
                va="center",
                fontsize=7.5,
                color=MUTED,
            )
    right.axvline(0, color=MUTED, lw=0.8)
    for v in (-2, 2):
        right.axvline(v, color=NEUTRAL, ls=":", lw=1)
    finite = np.abs(res[np.isfinite(res)])
    lim = max(3.0, float(finite.max()) * 1.25 if finite.size else 3.0)
    right.set_xlim(-lim, lim)
    right.set_xlabel(f"Pearson residual in the {top_label}")
    right.set_title("over-/under-represented")
    right.grid(axis="y", visible=False)
    right.tick_params(axis="y", length=0)
    return to_svg(fig, chart_id, f"Exposure and representation by {attribute}")


@_styled
def size_chart(
    table: pd.DataFrame,
    *,
    share_column: str,
    threshold: float,
    cohort_share: float,
    chart_id: str,
    max_labels: int = 6,
) -> str:
    """Subgroup size (log scale) against the share of its patients at high risk."""
    fig = _figure(WIDE, 4.4)
    ax = fig.add_subplot()
    attributes = list(dict.fromkeys(table["attribute"]))
    for k, attribute in enumerate(attributes):
        rows = table[table["attribute"] == attribute]
        ax.scatter(
            rows["n"],
            rows[share_column],
            s=34,
            color=PALETTE[k % len(PALETTE)],
            edgecolor="white",
            linewidth=0.6,
            label=plain(attribute),
            zorder=3,
        )
    ax.axhline(cohort_share, color=MUTED, ls="--", lw=1, label="whole cohort")
    ranked = table.assign(_score=table[share_column].fillna(0)).sort_values(
        ["_score", "n"], ascending=[False, True], kind="stable"
    )
    flagged = ranked[(ranked["_score"] >= 1.5 * cohort_share) | ranked["rare"]].head(max_labels)
    for _, row in flagged.iterrows():
        ax.annotate(
            plain(f"{row['attribute']}={row['group']}"),
            xy=(row["n"], row[share_column]),
            xytext=(5, 3),
            textcoords="offset points",
            fontsize=7.5,
            color=INK,
        )
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(ticker.LogLocator(subs=(2.0, 5.0)))
    whole = ticker.FuncFormatter(lambda x, _p: f"{x:,.0f}")
    ax.xaxis.set_major_formatter(whole)
    ax.xaxis.set_minor_formatter(whole)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(_percent))
    top = float(np.nanmax(np.r_[table[share_column].to_numpy(float), cohort_share, 0.01]))
    ax.set_ylim(0, top * 1.18)
    ax.set_xlabel("patients in the subgroup (log scale)")
    ax.set_ylabel(f"share with exposure ≥ {threshold:g}")
    ax.set_title("Subgroup size against high-risk share")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=min(5, len(attributes) + 1))
    return to_svg(fig, chart_id, "Subgroup size against share of high-risk patients")


@_styled
def adequacy_chart(table: pd.DataFrame, *, chart_id: str) -> str:
    """Standard error of record AUC (and its drift) as targets are added."""
    fig = _figure(WIDE, 3.8)
    ax = fig.add_subplot()
    k = table["num_targets"].to_numpy(float)
    ax.plot(k, table["mean_se"], "o-", color=PALETTE[0], label="mean SE of record AUC")
    ax.plot(k, table["median_se"], "o--", color=PALETTE[5], lw=1.2, ms=4, label="median SE")
    # Against all targets the change is zero by construction, so the last point is left out.
    ax.plot(
        k[:-1],
        table["mean_abs_diff"].to_numpy(float)[:-1],
        "s:",
        color=PALETTE[1],
        lw=1.2,
        ms=4,
        label="mean |AUC change| vs all targets",
    )
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _p: f"{x:g}"))
    ax.set_xticks(k)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("target models used")
    ax.set_ylabel("AUC units")
    ax.set_title("Is the number of models adequate?")
    ax.legend(loc="best")
    return to_svg(fig, chart_id, "Model-count adequacy")


@_styled
def diagnostic_chart(auroc: np.ndarray, *, chart_id: str) -> str:
    """Histogram of the models' diagnostic AUROC on patients they never saw."""
    fig = _figure(WIDE, 3.6)
    ax = fig.add_subplot()
    values = np.asarray(auroc, float)
    values = values[np.isfinite(values)]
    if values.size:
        lo, hi = float(values.min()), float(values.max())
        width = max(hi - lo, 0.01)
        bins = np.linspace(lo - width * 0.05, hi + width * 0.05, min(25, max(6, values.size // 3)))
        ax.hist(values, bins=bins, color=PALETTE[2], edgecolor="white", linewidth=0.6)
        mean = float(values.mean())
        ax.axvline(mean, color=INK, ls="--", lw=1.2)
        ax.annotate(
            f"mean {mean:.3f}",
            xy=(mean, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(4, -2),
            textcoords="offset points",
            va="top",
            fontsize=8.5,
            color=INK,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
        )
    ax.set_xlabel("diagnostic AUROC on the model's held-out patients")
    ax.set_ylabel("models")
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.grid(axis="x", visible=False)
    ax.set_title("How good are the audited models?")
    return to_svg(fig, chart_id, "Diagnostic AUROC across models")


#: The sweep chart's style (a chart of its own, as sweep.svg).
_SWEEP_RC = {"svg.fonttype": "none", "svg.hashsalt": "miaudit", "font.size": 9.0,
             "axes.spines.top": False, "axes.spines.right": False}


def sweep_chart(
    table: pd.DataFrame, survival: Mapping[str, Survival], *, high_risk: float, chart_id: str = "sweep"
) -> str:
    """A sweep's chart: diagnostic AUROC against highly exposed patients, and exposure survival.

    ``table`` has one row per point (``point``, ``highly_exposed`` — patients with exposure
    ≥ ``high_risk`` —, ``diagnostic_auroc`` and its ``_std``, ``max_auc`` the DP bound and
    ``epsilon``); ``survival`` each point's :func:`miaudit.risk.survival`. Drawn under its own
    style (it stands alone as ``sweep.svg``, not in a report page).
    """
    with matplotlib.rc_context(_SWEEP_RC):
        fig = Figure(figsize=(10.5, 4.2), layout="constrained")
        left, right = fig.subplots(1, 2)
        colours = {}
        for k, row in enumerate(table.itertuples(index=False)):
            colour = PALETTE[k % len(PALETTE)]
            colours[row.point] = colour
            left.errorbar(row.highly_exposed, row.diagnostic_auroc, yerr=row.diagnostic_auroc_std,
                          fmt="o", color=colour, ms=6, capsize=3)
            left.annotate(plain(row.point), (row.highly_exposed, row.diagnostic_auroc),
                          xytext=(5, 4), textcoords="offset points", fontsize=8, color=INK)
        left.set_xlabel(f"highly exposed patients (exposure ≥ {high_risk:g})")
        left.set_ylabel("diagnostic AUROC (held-out patients)")
        left.set_title("Diagnostic performance against patient exposure", loc="left")
        left.grid(True, color="#e3e8ee")
        floor = 1.0
        for row in table.itertuples(index=False):
            s = survival.get(row.point)
            if s is None or s.n == 0:
                continue
            floor = min(floor, 0.5 / s.n)
            y = np.where(s.fraction > 0, s.fraction, np.nan)
            right.step(s.grid, y, where="post", color=colours[row.point], lw=1.6, label=plain(row.point))
            if row.max_auc < 1:
                right.axvline(row.max_auc, color=colours[row.point], lw=1.0, ls="--")
                right.annotate(f"DP bound ε={row.epsilon:g}", (row.max_auc, 1.0), rotation=90,
                               xytext=(-3, -4), textcoords="offset points", ha="right", va="top",
                               fontsize=7.5, color=colours[row.point])
        right.set_yscale("log")
        right.set_ylim(floor, 1.05)
        right.set_xlim(0.5, 1.0)
        right.set_xlabel("exposure x (patient attack AUC)")
        right.set_ylabel("share of patients with exposure ≥ x")
        bounded = bool((table["max_auc"] < 1).any())
        right.set_title("Patient exposure" + (", with each ε's max attack AUC (dashed)" if bounded else
                                               " at each point"), loc="left")
        right.grid(True, color="#e3e8ee")
        right.legend(loc="lower left", fontsize=7.5, frameon=False, labelcolor=MUTED)
        return to_svg(fig, chart_id, "Sweep: diagnostic AUROC against highly exposed patients")
