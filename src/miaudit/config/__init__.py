"""The TOML schema of an audit, torch-free: validating a config imports no engine.

Unknown keys are errors (a misspelt key silently ignored would change what is audited), and
every error names the file and the key. Every table is a ``config.base.Strict`` model; the
engine (``miaudit.models``, ``miaudit.training``, ``miaudit.views``) imports its specs from
here.

``base.py`` the strict base; ``model.py`` ``[model]``; ``training.py`` ``[training]`` and
``[privacy]``; ``views.py`` ``[views]``; ``cohort.py`` ``[cohort]``; ``recipe.py`` the checks
that a recipe fits its cohort, shared by both audits' configs; ``audit.py`` ``[audit]``,
``[report]``, ``[executor]`` and the whole config with its training hash; ``deployed.py`` the
config of ``miaudit audit-model``; ``sweep.py`` ``[sweep]``; ``toml.py`` reading, validating
and writing TOML.
"""

from __future__ import annotations

from miaudit.config.audit import (
    ATTACK_NAMES,
    LIRA_MIN_MODELS,
    LIRA_PER_RECORD,
    MAX_MODELS,
    AuditConfig,
    AuditSpec,
    ExecutorSpec,
    ReportSpec,
)
from miaudit.config.base import FrozenStrict, Strict
from miaudit.config.cohort import CohortConfig, SyntheticSpec
from miaudit.config.deployed import (
    ConfoundSpec,
    DeployedAuditSpec,
    DeployedConfig,
    PopulationSpec,
    ReferenceSpec,
    TargetSpec,
    load_deployed_config,
    parse_deployed_config,
)
from miaudit.config.model import CONV_FAMILIES, CONV_WIDTH, FAMILIES, ModelSpec
from miaudit.config.sweep import SweepSpec
from miaudit.config.toml import (
    config_data,
    load_config,
    parse_config,
    read_config_data,
    read_toml,
    to_toml,
    validation_message,
)
from miaudit.config.training import DPSpec, TrainingSpec
from miaudit.config.views import ViewSpec

__all__ = [
    "ATTACK_NAMES",
    "CONV_FAMILIES",
    "CONV_WIDTH",
    "FAMILIES",
    "LIRA_MIN_MODELS",
    "LIRA_PER_RECORD",
    "MAX_MODELS",
    "AuditConfig",
    "AuditSpec",
    "CohortConfig",
    "ConfoundSpec",
    "DPSpec",
    "DeployedAuditSpec",
    "DeployedConfig",
    "ExecutorSpec",
    "FrozenStrict",
    "ModelSpec",
    "PopulationSpec",
    "ReferenceSpec",
    "ReportSpec",
    "Strict",
    "SweepSpec",
    "SyntheticSpec",
    "TargetSpec",
    "TrainingSpec",
    "ViewSpec",
    "config_data",
    "load_config",
    "load_deployed_config",
    "parse_config",
    "parse_deployed_config",
    "read_config_data",
    "read_toml",
    "to_toml",
    "validation_message",
]
