"""The self-contained HTML report of a run: the full audit's page and the deployed model's."""

from miaudit.report.html import build_report

__all__ = ["build_report"]
