"""Findings: every figure the report and the gate show, computed once from a run's files.

A figure has one definition here; the HTML pages render findings and compute nothing, the
gate checks findings against a policy, and tests hold these figures to the ones the audit
stored in ``summary.json`` (:func:`miaudit.scored.attack_figures`). Findings are frozen:
what the report shows is what the gate checked.
"""

from miaudit.findings.attack import AttackFindings, attack_findings
from miaudit.findings.audit import AuditFindings, audit_findings
from miaudit.findings.deployed import DeployedFindings, deployed_findings
from miaudit.findings.groups import GroupFindings, group_findings

__all__ = [
    "AttackFindings",
    "AuditFindings",
    "DeployedFindings",
    "GroupFindings",
    "attack_findings",
    "audit_findings",
    "deployed_findings",
    "group_findings",
]
