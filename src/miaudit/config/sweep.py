"""The ``[sweep]`` table: the grid of capacities and privacy budgets ``miaudit sweep`` runs."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

import pydantic

from miaudit.config.base import Strict

__all__ = ["KNOBS", "SweepSpec"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Grid keys of [sweep] and the [model] knob each sets.
KNOBS = {"widths": "width", "depths": "depth", "blocks": "blocks"}


class SweepSpec(Strict):
    """The grid: capacity (cartesian over the knobs given, or named sizes) × privacy budgets."""

    widths: list[int] = pydantic.Field(default_factory=list)
    depths: list[int] = pydantic.Field(default_factory=list)
    blocks: list[int] = pydantic.Field(default_factory=list)
    sizes: dict[str, dict[str, Any]] = pydantic.Field(default_factory=dict)
    params: dict[str, list[Any]] = pydantic.Field(
        default_factory=dict,
        description="values of the recipe's own parameters (an estimator's max_depth, a "
        "module's width), swept as a grid: params = { max_depth = [2, 4, 8] }",
    )
    epsilons: list[float | Literal["inf"]] = pydantic.Field(default_factory=list)
    holdout_fraction: float = pydantic.Field(0.2, ge=0.0, lt=0.9)

    @pydantic.model_validator(mode="after")
    def _check(self) -> SweepSpec:
        grid = {key: getattr(self, key) for key in KNOBS}
        if sum(bool(x) for x in (self.sizes, any(grid.values()), self.params)) > 1:
            raise ValueError(
                "sweep: give one of named sizes, a grid of widths/depths/blocks, or a grid of "
                "recipe params, not both"
            )
        if not self.sizes and not any(grid.values()) and not self.params and not self.epsilons:
            raise ValueError(
                "sweep: nothing to sweep; give widths, depths, blocks, sizes, params or "
                "epsilons (e.g. widths = [32, 64, 128, 256], params = { max_depth = [2, 4, 8] } "
                "or epsilons = ['inf', 10, 3, 1])"
            )
        for key, values in self.params.items():
            if not values or len({repr(v) for v in values}) != len(values):
                raise ValueError(
                    f"sweep.params.{key}: give a list of distinct values, got {values}"
                )
        for key, values in grid.items():
            low = 1 if key == "widths" else 0
            if any(v < low for v in values):
                raise ValueError(f"sweep.{key}: every value must be ≥ {low}, got {values}")
            if len(set(values)) != len(values):
                raise ValueError(f"sweep.{key}: lists a value twice ({values})")
        for name in self.sizes:
            if not _NAME.match(name):
                raise ValueError(
                    f"sweep.sizes: {name!r} is not usable as a folder name; use letters, "
                    "digits, '-', '_' or '.'"
                )
        values = self.epsilon_values()
        if any(not (v > 0) for v in values):
            raise ValueError(f"sweep.epsilons: every ε must be > 0 or 'inf', got {self.epsilons}")
        if len(set(values)) != len(values):
            raise ValueError(f"sweep.epsilons: lists a budget twice ({self.epsilons})")
        return self

    def epsilon_values(self) -> list[float]:
        """The budgets as floats, ``inf`` for the non-private point."""
        return [math.inf if v == "inf" else float(v) for v in self.epsilons]
