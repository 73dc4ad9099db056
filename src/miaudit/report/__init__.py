"""The run's outputs: tables (``exports``) and the self-contained HTML report (``html``)."""

from __future__ import annotations

from typing import Any

__all__ = ["build_report"]


def __getattr__(name: str) -> Any:
    # The HTML part pulls in matplotlib; load it only when a report is built.
    if name == "build_report":
        from miaudit.report.html import build_report

        return build_report
    raise AttributeError(name)
