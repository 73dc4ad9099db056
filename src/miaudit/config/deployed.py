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
from miaudit.config.model import TARGET_RECIPE, ModelSpec
from miaudit.config.recipe import RecipeChecks
from miaudit.config.toml import read_toml, validation_message
from miaudit.config.training import DPSpec, TrainingSpec
from miaudit.config.views import ViewSpec, without_default_views
from miaudit.errors import InputError

#: File names of fitted scikit-learn-compatible targets (read with skops, never unpickled).
SKOPS_SUFFIXES = (".skops",)

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
    inputs: Literal["encoded", "raw"] | None = Field(
        None, description="what target.model reads: miaudit's encoded features or the raw "
        "feature columns (a model with its own preprocessing); default: encoded, or for a "
        ".skops model the columns it was fitted on"
    )
    trusted: list[str] | None = Field(
        None, description="types a .skops model may hold beyond skops's defaults, each reviewed "
        "by you (miaudit names the ones the file needs)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> TargetSpec:
        if (self.predictions is None) == (self.model is None):
            raise ValueError(
                "give exactly one of target.predictions (a CSV/Parquet/.npz file of the "
                "target's outputs) and target.model (.onnx, .skops, .safetensors or .pt)"
            )
        suffix = "" if self.model is None else self.model.name.lower()
        if self.trusted is not None and not suffix.endswith(SKOPS_SUFFIXES):
            raise ValueError(
                "target.trusted lists types a .skops model may hold; this target is no .skops "
                "model — remove target.trusted"
            )
        if self.inputs is not None and not suffix.endswith((".onnx", *SKOPS_SUFFIXES)):
            raise ValueError(
                "target.inputs says what an ONNX or .skops model reads; "
                + ("a predictions file is read as it is" if self.model is None
                   else "a state dict of a built-in family reads the encoded features")
                + " — remove target.inputs"
            )
        return self

    @property
    def is_estimator(self) -> bool:
        """Whether the target is a fitted scikit-learn-compatible model (a .skops file)."""
        return self.model is not None and self.model.name.lower().endswith(SKOPS_SUFFIXES)


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

    seed: int = Field(0, ge=0, lt=2**63, description="random seed (a whole number ≥ 0)")
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

    @model_validator(mode="before")
    @classmethod
    def _references_like_a_fitted_target(cls, data: Any) -> Any:
        """Without a [model] table, references of a .skops target take the target's recipe.

        The references must be trained as the target was; for a fitted estimator miaudit
        knows how, so it needs no [model] table (``estimator = "target"``).
        """
        if not isinstance(data, dict) or "model" in data:
            return data
        target = data.get("target")
        model = target.get("model") if isinstance(target, dict) else None
        if isinstance(model, str | Path) and str(model).lower().endswith(SKOPS_SUFFIXES):
            return {**data, "model": {"estimator": TARGET_RECIPE}}
        return data

    @model_validator(mode="after")
    def _target_recipe_needs_a_fitted_target(self) -> DeployedConfig:
        if self.model.estimator == TARGET_RECIPE and not self.target.is_estimator:
            raise ValueError(
                f'model.estimator = "{TARGET_RECIPE}" trains the references with the recipe of a '
                "fitted target, which needs target.model to be a .skops file; name the "
                "estimator class instead (e.g. \"sklearn.ensemble:HistGradientBoostingClassifier\")"
            )
        if self.model.estimator == TARGET_RECIPE:
            extra = [k for k in ("params", "inputs") if k in self.model.model_fields_set]
            if extra:
                raise ValueError(
                    f'model.estimator = "{TARGET_RECIPE}": the references take the target\'s own '
                    f"parameters and inputs; remove model.{' and model.'.join(extra)} (or "
                    "target.inputs sets what the target reads)"
                )
        return self


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
