"""The ``[model]`` table: one model family and its capacity knobs (see ``miaudit.models``)."""

from __future__ import annotations

from typing import Literal, Self

import pydantic

from miaudit.config.base import Strict

__all__ = ["CONV_FAMILIES", "CONV_WIDTH", "FAMILIES", "ModelSpec"]

FAMILIES: tuple[str, ...] = ("logistic", "mlp", "tabresnet", "wrn", "resnet1d")
CONV_FAMILIES: tuple[str, ...] = ("wrn", "resnet1d")
#: ``width`` of the conv families when the user gives none (the table families' is 128).
CONV_WIDTH = 16


class ModelSpec(Strict):
    """One model family and its capacity knobs (unknown keys are rejected)."""

    family: Literal["logistic", "mlp", "tabresnet", "wrn", "resnet1d"] = "mlp"
    width: int = pydantic.Field(
        128, ge=1,
        description="hidden units per layer (mlp, tabresnet); first-stage channels (wrn, "
        "resnet1d), where it defaults to 16",
    )
    depth: int = pydantic.Field(2, ge=0, description="hidden layers (mlp)")
    blocks: int = pydantic.Field(
        2, ge=0, description="residual blocks (tabresnet); residual blocks per stage (wrn, resnet1d)"
    )
    dropout: float = pydantic.Field(0.0, ge=0.0, lt=1.0, description="dropout (all but logistic)")
    l2: float = pydantic.Field(
        1e-4, ge=0.0, description="ridge strength of the logistic objective (logistic only)"
    )
    kernel_size: int = pydantic.Field(7, ge=1, description="odd convolution length (resnet1d only)")

    @pydantic.model_validator(mode="after")
    def _family_defaults(self) -> Self:
        """Fill the conv families' own defaults and reject knobs they would silently ignore."""
        fields = type(self).model_fields
        if self.family in CONV_FAMILIES:
            if "width" not in self.model_fields_set:
                self.width = CONV_WIDTH
            if self.depth != fields["depth"].default:
                raise ValueError(
                    f"depth: the {self.family} family has no depth knob; its depth is blocks "
                    "(residual blocks in each of 3 stages: WRN-16 is blocks = 2, WRN-28 is "
                    "blocks = 4), so set blocks and remove depth"
                )
        if self.kernel_size != fields["kernel_size"].default and self.family != "resnet1d":
            raise ValueError(
                f"kernel_size: only the resnet1d family has a kernel_size knob (wrn is 3×3); "
                f"remove it for the {self.family} family"
            )
        if self.kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size: must be odd so that a convolution keeps the signal length, got "
                f"{self.kernel_size}; use {self.kernel_size + 1}"
            )
        return self

    def capacity(self) -> dict[str, float | int]:
        """The knob values that change this family's capacity, for reports and sweeps."""
        if self.family == "logistic":
            return {"l2": self.l2}
        if self.family == "mlp":
            return {"width": self.width, "depth": self.depth, "dropout": self.dropout}
        knobs: dict[str, float | int] = {"width": self.width, "blocks": self.blocks,
                                         "dropout": self.dropout}
        if self.family == "resnet1d":
            knobs["kernel_size"] = self.kernel_size
        return knobs
