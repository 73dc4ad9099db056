"""The recipe checks of every config that trains models on a cohort.

``miaudit audit`` (:class:`~miaudit.config.audit.AuditConfig`) and ``miaudit audit-model``
(:class:`~miaudit.config.deployed.DeployedConfig`) both train models with ``[model]``,
``[training]``, ``[privacy]`` and ``[views]`` on a ``[cohort]``. :class:`RecipeChecks` gives
both the same family per modality when ``[model] family`` is not given, and the same checks
that the recipe fits the cohort.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from pydantic import ValidationError, model_validator

from miaudit.config.base import Strict
from miaudit.config.cohort import CohortConfig
from miaudit.config.model import RECIPE_KEYS, ModelSpec
from miaudit.config.training import DPSpec
from miaudit.config.views import ViewSpec

__all__ = ["CONV_FAMILY_MODALITY", "DEFAULT_FAMILY", "RecipeChecks"]

#: The family a modality gets when [model] family is not given.
DEFAULT_FAMILY = {"table": "mlp", "image": "wrn", "signal": "resnet1d"}
#: Modality each convolutional family takes.
CONV_FAMILY_MODALITY = {"wrn": "image", "resnet1d": "signal"}


class RecipeChecks(Strict):
    """Validators for a config with ``cohort``, ``model``, ``privacy`` and ``views`` fields.

    It defines no field of its own, so each config keeps its fields (and their order in the
    TOML it writes) as it declares them.
    """

    if TYPE_CHECKING:
        cohort: CohortConfig
        model: ModelSpec
        privacy: DPSpec
        views: ViewSpec

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
        if "cohort" in data:
            given = data["cohort"]
        elif cls.model_fields["cohort"].is_required():
            return data  # reported by the field's own validation
        else:
            given = cls.model_fields["cohort"].get_default(call_default_factory=True)
        try:
            cohort = CohortConfig.model_validate(given)
        except ValidationError:
            return data  # reported by the field's own validation
        family = DEFAULT_FAMILY[cohort.input_modality()]
        if family != "mlp":
            base = model.model_dump(exclude_unset=True) if isinstance(model, ModelSpec) else dict(model or {})
            data = {**data, "model": {**base, "family": family}}
        return data

    @model_validator(mode="after")
    def _model_fits_cohort(self) -> Self:
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
        wanted = DEFAULT_FAMILY[modality]
        family = self.model.family
        if (family in CONV_FAMILY_MODALITY) != (modality != "table") or (
            family in CONV_FAMILY_MODALITY and CONV_FAMILY_MODALITY[family] != modality
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
        if family in CONV_FAMILY_MODALITY and self.privacy.enabled:
            raise ValueError(
                f"privacy: patient-level DP-SGD is implemented for the table families; "
                f"model.family = {family!r} cannot be trained privately yet — remove "
                "[privacy] epsilon or audit a table cohort"
            )
        return self
