"""The tables of one audit and the whole config: ``[audit]``, ``[report]``, ``[executor]``.

Defaults are chosen so that ``miaudit audit`` on the built-in RHC cohort finishes in a few
minutes on a 2-core laptop.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from miaudit.config.base import Strict
from miaudit.config.cohort import _MEDIA_KEYS, _SYNTHETIC_ONLY, CohortConfig
from miaudit.config.model import RECIPE_KEYS, ModelSpec
from miaudit.config.training import DPSpec, TrainingSpec
from miaudit.config.views import ViewSpec

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

ATTACK_NAMES = ("lira", "lira_offline", "rmia", "rmia_online", "loss", "confidence")
#: Attacks that fit a Gaussian per record: ≥ 2 references per side, so models/2 − 1 ≥ 2.
LIRA_PER_RECORD = ("lira", "lira_offline")
LIRA_MIN_MODELS = 6
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
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> AuditSpec:
        if self.models % 2:
            raise ValueError(
                f"audit.models = {self.models}: must be even so that every patient is IN for "
                "exactly half of the models; use an even number such as 200"
            )
        unknown = [a for a in self.attacks if a not in ATTACK_NAMES]
        if unknown or not self.attacks:
            raise ValueError(
                f"audit.attacks: unknown attack(s) {unknown}; choose from {list(ATTACK_NAMES)}"
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
        per_record = [a for a in self.attacks if a in LIRA_PER_RECORD]
        if per_record and self.models < LIRA_MIN_MODELS:
            raise ValueError(
                f"audit.models = {self.models} is too few for {', '.join(per_record)}: with one "
                f"model as target, a record keeps only models/2 − 1 = {self.models // 2 - 1} "
                "reference(s) on its IN or OUT side, and LiRA's per-record Gaussian needs 2; "
                f"use audit.models ≥ {LIRA_MIN_MODELS} (the paper uses 200) or drop "
                f"{', '.join(per_record)} from audit.attacks"
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


#: The family a modality gets when [model] family is not given.
_DEFAULT_FAMILY = {"table": "mlp", "image": "wrn", "signal": "resnet1d"}
#: Modality each convolutional family takes.
_CONV_FAMILY_MODALITY = {"wrn": "image", "resnet1d": "signal"}


class AuditConfig(Strict):
    """One audit: cohort, model recipe, training recipe, audit and report options."""

    cohort: CohortConfig = Field(default_factory=lambda: CohortConfig(dataset="rhc"))
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    privacy: DPSpec = Field(default_factory=DPSpec)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    views: ViewSpec = Field(default_factory=ViewSpec)

    @model_validator(mode="before")
    @classmethod
    def _family_for_modality(cls, data: Any) -> Any:
        """Without [model] family, images get the WRN and signals the 1-D ResNet.

        The MLP default suits tables only; picking the matching CNN lets an image or ECG
        audit run from a [cohort] table alone.
        """
        if not isinstance(data, dict):
            return data
        model = data.get("model")
        if isinstance(model, dict) and any(k in model for k in ("family", *RECIPE_KEYS)):
            return data
        if isinstance(model, ModelSpec) and (
            "family" in model.model_fields_set or model.kind != "family"
        ):
            return data
        try:
            cohort = CohortConfig.model_validate(data.get("cohort", {"dataset": "rhc"}))
        except ValidationError:
            return data  # reported by the field's own validation
        family = _DEFAULT_FAMILY[cohort.input_modality()]
        if family != "mlp":
            base = model.model_dump(exclude_unset=True) if isinstance(model, ModelSpec) else dict(model or {})
            data = {**data, "model": {**base, "family": family}}
        return data

    @model_validator(mode="after")
    def _model_fits_cohort(self) -> AuditConfig:
        modality = self.cohort.input_modality()
        if self.model.kind != "family":
            if self.privacy.enabled:
                raise ValueError(
                    f"privacy: patient-level DP-SGD is implemented for the built-in table "
                    f"families; a {self.model.kind} recipe trains outside it — remove [privacy] "
                    "epsilon, or train your recipe privately yourself and audit it as it is"
                )
            if self.model.inputs == "raw" and modality != "table":
                raise ValueError(
                    f"model.inputs = 'raw': raw columns exist for table cohorts only; this "
                    f"cohort holds {modality} records — remove model.inputs"
                )
            return self
        wanted = _DEFAULT_FAMILY[modality]
        family = self.model.family
        if (family in _CONV_FAMILY_MODALITY) != (modality != "table") or (
            family in _CONV_FAMILY_MODALITY and _CONV_FAMILY_MODALITY[family] != modality
        ):
            raise ValueError(
                f"model.family = {family!r} does not take {modality} records; use "
                f"family = \"{wanted}\" for this cohort"
                + ("" if modality == "table" else " (or leave [model] family unset)")
            )
        if modality == "table" and (self.views.flip or self.views.shift):
            raise ValueError(
                "views: tables have one view (the record itself); remove the [views] table"
            )
        if family in _CONV_FAMILY_MODALITY and self.privacy.enabled:
            raise ValueError(
                f"privacy: patient-level DP-SGD is implemented for the table families; "
                f"model.family = {family!r} cannot be trained privately yet — remove "
                "[privacy] epsilon or audit a table cohort"
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
        if science["views"] == ViewSpec().model_dump(mode="json"):
            science.pop("views")  # runs made before views existed keep their hash
        science["audit"] = {
            "models": self.audit.models,
            "seed": self.audit.seed,
            "holdout_fraction": self.audit.holdout_fraction,
        }
        text = json.dumps(science, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()
