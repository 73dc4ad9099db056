"""The ``[model]`` table: the recipe every reference model is trained by.

One of five kinds, chosen by which key is set:

- ``family`` — a built-in family and its capacity knobs (see ``miaudit.models``);
- ``estimator`` — any scikit-learn-compatible classifier: ``"package.module:Name"`` (or
  ``"file.py:Name"``), called with ``params`` to build it (a class, or a function returning
  a ``Pipeline``);
- ``module`` — the user's PyTorch module: a factory called as
  ``factory(input_shape, num_classes, **params)``, trained by the engine with ``[training]``;
- ``train_fn`` — the user's whole training loop:
  ``fn(inputs, labels, keep, models, seed, **params) -> logits [G, N, V, K]``;
- ``command`` — any program, run once per reference model (see ``miaudit.recipes.command``).

The recipe kinds are documented with their placeholders and signatures in
``miaudit.recipes``.
"""

from __future__ import annotations

from typing import Any, Literal, Self

import pydantic

from miaudit.config.base import Strict

__all__ = ["CONV_FAMILIES", "CONV_WIDTH", "FAMILIES", "RECIPE_KEYS", "TARGET_RECIPE", "ModelSpec"]

#: The keys that choose a recipe other than a built-in family (at most one may be set).
RECIPE_KEYS: tuple[str, ...] = ("estimator", "module", "train_fn", "command")
#: ``estimator = "target"``: the references of ``audit-model`` take the recipe of the fitted
#: target (its class and parameters), read from its .skops file.
TARGET_RECIPE = "target"
#: Knobs of the built-in families, meaningless for the other recipe kinds.
_FAMILY_KNOBS = ("family", "width", "depth", "blocks", "dropout", "l2", "kernel_size")

FAMILIES: tuple[str, ...] = ("logistic", "mlp", "tabresnet", "wrn", "resnet1d")
CONV_FAMILIES: tuple[str, ...] = ("wrn", "resnet1d")
#: ``width`` of the conv families when the user gives none (the table families' is 128).
CONV_WIDTH = 16


class ModelSpec(Strict):
    """The recipe of the reference models: a built-in family or the user's own (unknown keys are rejected)."""

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
        1e-4, ge=0.0, allow_inf_nan=False,
        description="ridge strength of the logistic objective (logistic only)",
    )
    kernel_size: int = pydantic.Field(7, ge=1, description="odd convolution length (resnet1d only)")
    estimator: str | None = pydantic.Field(
        None, description="scikit-learn-compatible classifier: 'package.module:Name' or "
        "'file.py:Name', called with params; in audit-model also 'target' (the fitted target's "
        "own class and parameters)"
    )
    module: str | None = pydantic.Field(
        None, description="PyTorch module factory 'package.module:build', called as "
        "build(input_shape, num_classes, **params)"
    )
    train_fn: str | None = pydantic.Field(
        None, description="training function 'package.module:train', called as "
        "train(inputs, labels, keep, models, seed, **params) -> logits [G, N, V, K]"
    )
    command: str | None = pydantic.Field(
        None, description="program run once per reference model, e.g. 'python train.py "
        "--train {train_ids} --seed {seed} --out {out}'"
    )
    params: dict[str, Any] = pydantic.Field(
        default_factory=dict,
        description="keyword arguments of the estimator, module factory or training function",
    )
    inputs: Literal["encoded", "raw"] = pydantic.Field(
        "encoded", description="what an estimator or training function gets: miaudit's "
        "encoded features (numbers, one-hot categories) or the raw feature columns as a "
        "DataFrame (for a Pipeline with its own preprocessing)"
    )

    @property
    def kind(self) -> str:
        """Which recipe this is: "family", "estimator", "module", "train_fn" or "command"."""
        for key in RECIPE_KEYS:
            if getattr(self, key) is not None:
                return key
        return "family"

    @pydantic.model_validator(mode="after")
    def _one_recipe(self) -> Self:
        """One recipe kind; family knobs only with a family, params only with user code."""
        chosen = [k for k in RECIPE_KEYS if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ValueError(
                f"model: {' and '.join(chosen)} are both set; a model has one recipe — keep "
                "one of them"
            )
        if chosen:
            knobs = [k for k in _FAMILY_KNOBS if k in self.model_fields_set]
            if knobs:
                raise ValueError(
                    f"model: {', '.join(knobs)} belong to the built-in families and "
                    f"do nothing for a {chosen[0]} recipe; remove them (put the "
                    f"recipe's own settings in [model.params])"
                )
            for key in chosen:
                value = getattr(self, key)
                if not value.strip():
                    raise ValueError(f"model.{key}: is empty; name the {key} to train with")
                if key == "estimator" and value == TARGET_RECIPE:
                    continue
                if key != "command" and ":" not in value:
                    raise ValueError(
                        f"model.{key} = {value!r}: give it as 'package.module:Name' or "
                        "'path/to/file.py:Name' (the part after ':' is the name in the module)"
                    )
        else:
            if self.params:
                raise ValueError(
                    "model.params: only an estimator, module or train_fn recipe takes params; "
                    f"the built-in family {self.family!r} has its knobs directly in [model]"
                )
        if self.inputs == "raw" and self.kind not in ("estimator", "train_fn"):
            raise ValueError(
                "model.inputs = 'raw': only an estimator or train_fn recipe takes the raw "
                f"columns; remove it for a {self.kind} recipe"
            )
        return self

    @pydantic.model_validator(mode="after")
    def _family_defaults(self) -> Self:
        """Fill the conv families' own defaults and reject knobs they would silently ignore."""
        fields = type(self).model_fields
        if self.kind != "family":
            return self
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
        """The knob values that change this recipe's capacity, for reports and sweeps."""
        if self.kind != "family":
            return {k: v for k, v in self.params.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)}
        if self.family == "logistic":
            return {"l2": self.l2}
        if self.family == "mlp":
            return {"width": self.width, "depth": self.depth, "dropout": self.dropout}
        knobs: dict[str, float | int] = {"width": self.width, "blocks": self.blocks,
                                         "dropout": self.dropout}
        if self.family == "resnet1d":
            knobs["kernel_size"] = self.kernel_size
        return knobs

    def toml_data(self) -> dict[str, Any]:
        """The table as written to a run's ``config.toml``: a family's as before the other kinds."""
        if self.kind == "family":
            return self.science()
        return self.model_dump(mode="json", exclude_none=True,
                               exclude={k for k in _FAMILY_KNOBS if k != "family"} | {"family"})

    def describe(self) -> str:
        """The recipe in a few words, for the report and warnings."""
        if self.kind == "family":
            return f"built-in {self.family}"
        return f"{self.kind} {getattr(self, self.kind)}"

    def science(self) -> dict[str, Any]:
        """What of this table the trained models depend on, for the run's training hash.

        A built-in family gives exactly what runs made before the other recipe kinds
        hashed, so they still resume.
        """
        dump = self.model_dump(mode="json")
        if self.kind == "family":
            for key in (*RECIPE_KEYS, "params", "inputs"):
                dump.pop(key)
            return dump
        return {"kind": self.kind, self.kind: dump[self.kind], "params": dump["params"],
                "inputs": dump["inputs"]}
