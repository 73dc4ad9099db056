"""The sweep's page: its chart and its table, one self-contained HTML file like a run's report."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from markupsafe import Markup

from miaudit import __version__
from miaudit.report.page import environment

#: The table's columns on the page, in order, with their headings (the rest is in sweep.csv).
COLUMNS = {
    "point": "point",
    "parameters": "parameters",
    "epsilon": "ε",
    "max_auc": "DP max AUC",
    "diagnostic_auroc": "diagnostic AUROC",
    "attack_auc": "attack AUC",
    "highly_exposed": "patients ≥ 0.9",
    "highly_exposed_null": "by chance",
    "beyond_chance": "beyond chance",
    "median_exposure": "median exposure",
}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞"
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def render_sweep(table: pd.DataFrame, chart: str, meta: dict[str, Any], *, name: str) -> str:
    """The page of a sweep: ``chart`` inlined, the leading columns of ``table``."""
    columns = [c for c in COLUMNS if c in table.columns]
    rows = [[_cell(v) for v in row] for row in table[columns].itertuples(index=False)]
    return environment().get_template("sweep.html").render(
        title=f"miaudit sweep — {name}",
        name=name,
        version=__version__,
        columns=[COLUMNS[c] for c in columns],
        rows=rows,
        svg=Markup(chart),
        models=int(table["models"].iloc[0]) if "models" in table and len(table) else 0,
        holdout=float(meta.get("holdout_fraction", math.nan)),
        test_split=meta.get("test_split"),
        attack=str(table["attack"].iloc[0]) if "attack" in table and len(table) else "",
        high_risk=meta.get("high_risk_threshold", 0.9),
    )
