"""The tables of one audit and the whole config: ``[audit]``, ``[report]``, ``[executor]``.

Defaults are chosen so that ``miaudit audit`` on the built-in RHC cohort finishes in a few
minutes on a 2-core laptop.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, model_validator

from miaudit.attacks import registry
from miaudit.config.base import Strict
from miaudit.config.cohort import _MEDIA_KEYS, _SYNTHETIC_ONLY, CohortConfig
from miaudit.config.model import TARGET_RECIPE, ModelSpec
from miaudit.config.presets import preset_tables
from miaudit.config.recipe import RecipeChecks
from miaudit.config.training import DPSpec, TrainingSpec
from miaudit.config.views import ViewSpec, without_default_views

__all__ = [
    "ATTACK_NAMES",
    "LIRA_MIN_MODELS",
    "LIRA_PER_RECORD",
    "MAX_MODELS",
    "AuditConfig",
    "AuditSpec",
    "ExecutorSpec",
    "ReportSpec",
]

# Which attacks exist and how many models each needs is the attack registry's
# (miaudit.attacks.registry): [audit] attacks is checked against it when validated, so an
# attack registered later is accepted at once. The three names below are the built-in
# attacks' facts, drawn from it, for callers that import them.
#: The built-in attacks.
ATTACK_NAMES: tuple[str, ...] = registry.names()
#: Built-in attacks that fit a Gaussian per record: ≥ 2 references per side, so models/2 − 1 ≥ 2.
LIRA_PER_RECORD: tuple[str, ...] = tuple(
    name for name in ATTACK_NAMES if registry.get(name).references_per_side() >= 2
)
#: The fewest models those attacks leave every record's score defined with.
LIRA_MIN_MODELS: int = max(registry.get(name).plan_min_models() for name in LIRA_PER_RECORD)
#: Far above any published audit (the paper uses 200); above it the plan alone outgrows RAM.
MAX_MODELS = 10_000


class AuditSpec(Strict):
    """How the audit is run and summarised."""

    models: int = Field(
        200,
        ge=4,
        le=MAX_MODELS,
        description="reference models; every patient is IN for half",
    )
    attacks: list[str] = Field(default_factory=lambda: ["lira", "lira_offline", "rmia", "loss"])
    targets: int | None = Field(None, ge=1, description="models used as targets (default: all)")
    patient_aggregate: Literal["max", "mean"] = "max"
    record_auc: Literal["empirical", "gaussian"] = "empirical"
    thresholds: list[float] = Field(default_factory=lambda: [0.8, 0.9, 0.95, 0.99])
    top_fraction: float = Field(0.01, gt=0, le=0.5)
    group_size: int = Field(50, ge=1, description="models trained together in one group")
    holdout_fraction: float = Field(
        0.0, ge=0.0, lt=0.9, description="patients no model trains on (diagnostic test set)"
    )
    null_permutations: int = Field(
        20,
        ge=0,
        le=10_000,
        description="memberships shuffled among patients to measure what chance gives "
        "(0: no chance baseline)",
    )
    fdr: float = Field(
        0.05, gt=0.0, lt=1.0, description="false-discovery rate of 'exposed beyond chance'"
    )
    fdr_method: Literal["bh", "by"] = Field(
        "bh", description="Benjamini–Hochberg, or Benjamini–Yekutieli (any dependence)"
    )
    seed: int = Field(0, ge=0, lt=2**63, description="random seed (a whole number ≥ 0)")

    @model_validator(mode="after")
    def _check(self) -> AuditSpec:
        if self.models % 2:
            raise ValueError(
                f"audit.models = {self.models}: must be even so that every patient is IN for "
                "exactly half of the models; use an even number such as 200"
            )
        known = registry.names()
        unknown = [a for a in self.attacks if a not in known]
        if unknown or not self.attacks:
            raise ValueError(
                f"audit.attacks: unknown attack(s) {unknown}; choose from {list(known)}"
            )
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError("audit.attacks lists an attack twice")
        if self.targets is not None and self.targets > self.models:
            raise ValueError(
                f"audit.targets = {self.targets} exceeds audit.models = {self.models}; lower "
                "audit.targets or leave it unset to use every model as a target"
            )
        if self.targets is not None and self.targets < 2:
            raise ValueError(
                f"audit.targets = {self.targets}: a record's attack success compares its scores "
                "as a member and as a non-member, which needs at least 2 targets; raise "
                "audit.targets or leave it unset to use every model"
            )
        few = [registry.get(a) for a in self.attacks]
        few = [a for a in few if a.plan_min_models() > self.models]
        if few:
            names = ", ".join(a.name for a in few)
            side = max(a.references_per_side() for a in few)
            raise ValueError(
                f"audit.models = {self.models} is too few for {names}: with one model as "
                f"target, a record keeps only models/2 − 1 = {self.models // 2 - 1} "
                f"reference(s) on its IN or OUT side, and {names} "
                f"need{'s' if len(few) == 1 else ''} {side} per side; use audit.models ≥ "
                f"{max(a.plan_min_models() for a in few)} (the paper uses 200) or drop "
                f"{names} from audit.attacks"
            )
        if any(not 0.5 <= t <= 1.0 for t in self.thresholds):
            raise ValueError("audit.thresholds are exposure (AUC) levels between 0.5 and 1")
        return self


class ReportSpec(Strict):
    """What the report shows and whether patient ids are pseudonymised."""

    redact: bool = False
    top_patients: int = Field(25, ge=1)
    html: bool = True


class ExecutorSpec(Strict):
    """Where groups of models train."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    device: str | None = None
    num_gpus: float = Field(0.0, ge=0)
    num_cpus: float = Field(1.0, gt=0)
    max_retries: int = Field(2, ge=0)
    workers: int | None = Field(
        None, ge=1, description="local processes that train estimator and command recipes, "
        "one thread each (default: one per core)"
    )


class AuditConfig(RecipeChecks):
    """One audit: cohort, model recipe, training recipe, audit and report options.

    The family a cohort's modality gets by default and the checks that the recipe fits the
    cohort are :class:`~miaudit.config.recipe.RecipeChecks`, shared with audit-model.
    """

    cohort: CohortConfig = Field(default_factory=lambda: CohortConfig(dataset="rhc"))
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    privacy: DPSpec = Field(default_factory=DPSpec)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    views: ViewSpec = Field(default_factory=ViewSpec)
    preset: Literal["paper"] | None = Field(
        None, description="a named recipe for the cohort's dataset: \"paper\" gives the paper's "
        "model, training and views (keys set in those tables win)"
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Fill [model], [training] and [views] from the preset, under the user's own keys."""
        if not isinstance(data, dict) or data.get("preset") is None:
            return data
        cohort = data.get("cohort")
        dataset = cohort.get("dataset") if isinstance(cohort, dict) else getattr(cohort, "dataset", None)
        tables = preset_tables(str(data["preset"]), dataset)
        merged = dict(data)
        for table, values in tables.items():
            own = merged.get(table) or {}
            if not isinstance(own, dict):
                own = own.model_dump(exclude_unset=True)
            merged[table] = {**values, **own}
        return merged

    @model_validator(mode="after")
    def _no_target_recipe(self) -> AuditConfig:
        if self.model.estimator == TARGET_RECIPE:
            raise ValueError(
                f'model.estimator = "{TARGET_RECIPE}" means the recipe of a deployed target, which '
                "only miaudit audit-model has; name the estimator class (e.g. "
                '"sklearn.ensemble:HistGradientBoostingClassifier")'
            )
        return self

    def training_hash(self) -> str:
        """Hash of everything the trained models depend on (not attacks, report or executor).

        A run directory is bound to this hash: resuming with a different recipe would mix
        shards of two experiments. Scoring is recomputed from the shards on every run, so
        changing the attacks or thresholds reuses the trained models.
        """
        science = self.model_dump(
            mode="json", include={"cohort", "model", "training", "privacy", "views"}
        )
        # where the files lie is not science (the data fingerprint binds their content), so
        # a run and its data can move to another folder or machine and still resume
        for key in ("path", "root", "array"):
            science["cohort"].pop(key, None)
        # keys added for images and signals are left out where unused, so runs of tables
        # made before them keep their hash
        for key in ("modality", *_MEDIA_KEYS):
            if science["cohort"].get(key) is None:
                science["cohort"].pop(key, None)
        synthetic = science["cohort"].get("synthetic")
        if synthetic and synthetic["modality"] == "table":
            for key in ("modality", "num_labels", *(k for k, m in _SYNTHETIC_ONLY.items() if m != "table")):
                synthetic.pop(key, None)
        science["model"] = self.model.science()
        if self.model.kind == "family" and self.model.family != "resnet1d":
            science["model"].pop("kernel_size", None)  # a resnet1d knob only
        science = without_default_views(science)  # runs made before views keep their hash
        science["audit"] = {
            "models": self.audit.models,
            "seed": self.audit.seed,
            "holdout_fraction": self.audit.holdout_fraction,
        }
        text = json.dumps(science, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()
