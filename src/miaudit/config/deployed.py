"""The schema of ``miaudit audit-model``: one deployed model, its roster and the references.

Unknown keys are errors, as in ``miaudit audit``; the cohort, model, training, privacy,
views, report and executor tables are the audit's own, and the recipe gets the same checks
(:class:`~miaudit.config.recipe.RecipeChecks`). Running the audit is ``miaudit.deployed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from miaudit.config.audit import MAX_MODELS, ExecutorSpec, ReportSpec
from miaudit.config.base import Strict
from miaudit.config.cohort import CohortConfig
from miaudit.config.model import ModelSpec
from miaudit.config.recipe import RecipeChecks
from miaudit.config.toml import read_toml, validation_message
from miaudit.config.training import DPSpec, TrainingSpec
from miaudit.config.views import ViewSpec, without_default_views
from miaudit.errors import InputError

__all__ = [
    "ConfoundSpec",
    "DeployedAuditSpec",
    "DeployedConfig",
    "PopulationSpec",
    "ReferenceSpec",
    "TargetSpec",
    "load_deployed_config",
    "parse_deployed_config",
]


class TargetSpec(Strict):
    """The deployed model: its outputs (a predictions file, or a model to run) and its roster."""

    predictions: Path | None = None
    model: Path | None = None
    kind: Literal["auto", "logits", "probabilities"] = "auto"
    record_id: str = "record_id"
    columns: list[str] | None = None
    roster: Path
    roster_column: str = "patient_id"

    @model_validator(mode="after")
    def _one_source(self) -> TargetSpec:
        if (self.predictions is None) == (self.model is None):
            raise ValueError(
                "give exactly one of target.predictions (a CSV/Parquet/.npz file of the "
                "target's outputs) and target.model (.onnx, .safetensors or .pt)"
            )
        return self


class PopulationSpec(Strict):
    """Which non-roster patients are population data (the rest are evaluation non-members)."""

    fraction: float = Field(0.5, gt=0.0, lt=1.0)
    patients: Path | None = None
    column: str = "patient_id"


class ReferenceSpec(Strict):
    """How many reference models, and which attack."""

    models: int = Field(4, ge=1, le=MAX_MODELS)
    attack: Literal["auto", "rmia_offline", "lira_offline", "lira_online"] = "auto"
    rmia_a: float | None = Field(None, ge=0.0, le=1.0)


class ConfoundSpec(Strict):
    """The same-distribution control."""

    classifier: Literal["boosting", "logistic", "none"] = "boosting"
    folds: int = Field(5, ge=2, le=50)
    alpha: float = Field(0.05, gt=0.0, lt=0.5)


class DeployedAuditSpec(Strict):
    """Seed, risk thresholds and the share of most exposed members analysed by subgroup.

    ``top_fraction`` defaults to 5 % (not the full audit's 1 %): one model gives each
    patient one score, so the composition test needs a larger top set to have power.
    """

    seed: int = 0
    thresholds: list[float] = Field(default_factory=lambda: [0.9, 0.99, 0.999])
    top_fraction: float = Field(0.05, gt=0.0, le=0.5)
    group_size: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _check(self) -> DeployedAuditSpec:
        if not self.thresholds or any(not 0.5 <= t <= 1.0 for t in self.thresholds):
            raise ValueError(
                "audit.thresholds are exposure levels between 0.5 and 1 (0.99 = flagged at "
                "FPR ≤ 1 %)"
            )
        return self


class DeployedConfig(RecipeChecks):
    """One deployed-model audit (unknown keys are errors, as in ``miaudit audit``).

    ``[views]`` is dumped only where it is set: the ``config.toml`` and the identity of a run
    whose config leaves it at its defaults are those of a run made before it existed.
    """

    cohort: CohortConfig
    target: TargetSpec
    population: PopulationSpec = Field(default_factory=PopulationSpec)
    references: ReferenceSpec = Field(default_factory=ReferenceSpec)
    confound: ConfoundSpec = Field(default_factory=ConfoundSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    privacy: DPSpec = Field(default_factory=DPSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    audit: DeployedAuditSpec = Field(default_factory=DeployedAuditSpec)
    views: ViewSpec = Field(default_factory=ViewSpec)

    @model_serializer(mode="wrap")
    def _views_where_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return without_default_views(handler(self))


def parse_deployed_config(data: dict[str, Any], source: str = "config") -> DeployedConfig:
    """Validate a mapping; pydantic errors become one message naming each bad key."""
    missing = [k for k in ("cohort", "target") if k not in data]
    if missing:
        raise InputError(
            f"{source}: invalid config — {', '.join(f'[{k}]' for k in missing)} missing; "
            "audit-model needs the cohort and the target ([target] predictions or model, and "
            "roster)"
        )
    try:
        return DeployedConfig.model_validate(data)
    except ValidationError as err:
        raise InputError(validation_message(err, source)) from None


_PATH_KEYS = (
    ("cohort", "path"),
    ("target", "predictions"),
    ("target", "model"),
    ("target", "roster"),
    ("population", "patients"),
)


def load_deployed_config(path: Path) -> DeployedConfig:
    """Read and validate an audit-model TOML; relative paths are taken from its folder."""
    path = Path(path)
    data = read_toml(path)
    for table, key in _PATH_KEYS:
        section = data.get(table)
        if isinstance(section, dict) and isinstance(section.get(key), str):
            p = Path(section[key]).expanduser()
            section[key] = str(p if p.is_absolute() else (path.parent / p).resolve())
    return parse_deployed_config(data, str(path))
