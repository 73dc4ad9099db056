"""What both report pages share: number formats, the template environment, subgroup sections.

Formatting is the only arithmetic here (digits, percent, em dash for undefined); the numbers
themselves are the run's findings.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

import jinja2
import numpy as np
from markupsafe import Markup

from miaudit.findings import GroupFindings

__all__ = ["cell", "count", "environment", "fmt", "group_sections", "pct", "pvalue", "rate_label"]


# --------------------------------------------------------------------------- formatting


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x: Any, digits: int = 3) -> str:
    """A number for the page; undefined (None, NaN) is an em dash, never "nan"."""
    if not _finite(x):
        return "—"
    return f"{float(x):.{digits}f}"


def pct(x: Any, digits: int = 1) -> str:
    if not _finite(x):
        return "—"
    return f"{float(x) * 100:.{digits}f}%"


def count(x: Any) -> str:
    if not _finite(x):
        return "—"
    return f"{int(x):,}"


def pvalue(p: Any) -> str:
    if not _finite(p):
        return "—"
    p = float(p)
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def cell(value: Any) -> str:
    """An attribute value as text (whole numbers without ".0", NaN as "missing")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    return str(value)


def rate_label(key: str) -> str:
    if key == "1/N":
        return "1/N"
    return f"{float(key) * 100:g}%"


def group_sections(groups: GroupFindings | None, charts: Any) -> dict[str, Any] | None:
    """The subgroup section: the findings with one chart per attribute and the size chart."""
    if groups is None:
        return None
    sections = []
    share_col = groups.share_column
    for i, finding in enumerate(groups.attributes):
        rows = finding.rows
        shown = rows
        if len(rows) > charts.MAX_GROUPS:
            keep = rows["residual"].abs().fillna(0).nlargest(charts.MAX_GROUPS).index
            shown = rows.loc[sorted(keep)]
        svg = charts.group_chart(
            shown,
            attribute=finding.attribute,
            cohort_median=groups.cohort_median,
            top_label=groups.top_label,
            chart_id=f"group-{i}",
        )
        sections.append(
            {
                "attribute": finding.attribute,
                "chart_id": f"group-{i}",
                "svg": Markup(svg),
                "shown": len(shown),
                "total": len(rows),
                "test": finding.test,
                "over": finding.over,
                "rows": [
                    {
                        "group": str(r["group"]),
                        "n": int(r["n"]),
                        "median": float(r["median"]),
                        "median_lo": float(r["median_lo"]),
                        "median_hi": float(r["median_hi"]),
                        "share": float(r[share_col]),
                        "share_lo": float(r[f"{share_col}_lo"]),
                        "share_hi": float(r[f"{share_col}_hi"]),
                        "n_top": int(r["n_top"]) if _finite(r["n_top"]) else 0,
                        "expected": float(r["expected"]),
                        "residual": float(r["residual"]),
                    }
                    for _, r in rows.iterrows()
                ],
            }
        )
    size_svg = charts.size_chart(
        groups.sizes,
        share_column=share_col,
        threshold=groups.threshold,
        cohort_share=groups.cohort_share,
        chart_id="size-exposure",
    )
    return {
        "sections": sections,
        "size_svg": Markup(size_svg),
        "threshold": groups.threshold,
        "top_label": groups.top_label,
        "n_top": groups.n_top,
        "n_patients": groups.n_patients,
        "cutoff": groups.cutoff,
        "correction": groups.correction,
        "alpha": groups.alpha,
        "cohort_median": groups.cohort_median,
        "cohort_share": groups.cohort_share,
        "rare": groups.rare,
    }


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: (
                resources.files("miaudit.report")
                .joinpath("templates", name)
                .read_text(encoding="utf-8")
            )
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fmt=fmt, pct=pct, count=count, pvalue=pvalue, cell=cell)
    return env
