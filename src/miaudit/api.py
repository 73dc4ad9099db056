"""The audit from a notebook: a DataFrame and the user's model in, the result out.

    import miaudit
    from sklearn.ensemble import HistGradientBoostingClassifier

    result = miaudit.audit_frame(df, label="hospitalised", patient_id="mrn",
                           attributes=["sex", "insurance"],
                           recipe=HistGradientBoostingClassifier(max_depth=6),
                           models=200, out="runs/gbm")
    result.patients.sort_values("exposure", ascending=False).head()

No TOML and no file on disk are needed; the run directory (``out``) holds the same files as
a CLI run, and calling again with the same arguments resumes it. ``recipe`` is what the
reference models are: an estimator object (each model a ``clone`` with its own
``random_state``), ``"family"`` name of a built-in (``"mlp"``, ``"logistic"``), an
``"package.module:Name"`` estimator path, or a ``[model]`` table as a dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from miaudit.audit import AuditResult, run_audit
from miaudit.config import FAMILIES, parse_config
from miaudit.datasets.tabular import cohort_from_frame
from miaudit.errors import InputError

__all__ = ["audit_frame", "model_table"]

#: ``[cohort] path`` recorded for a cohort handed over as a DataFrame (nothing is read from it).
DATAFRAME_SOURCE = "<DataFrame>"


def _plain(value: Any) -> Any:
    """A parameter value as TOML can hold it; anything else by its repr (recorded, not rebuilt)."""
    if value is None:
        return "None"
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, bool | int | float | str) for v in value):
        return list(value)
    return repr(value)


def model_table(recipe: Any) -> tuple[dict[str, Any], Any]:
    """The ``[model]`` table that describes ``recipe``, and the estimator object to train (or None).

    An estimator object is recorded by its class path and plain parameters, so the run's
    training hash changes with any parameter; the object itself is what trains.
    """
    if recipe is None:
        return {}, None
    if isinstance(recipe, dict):
        return dict(recipe), None
    if isinstance(recipe, str):
        if recipe in FAMILIES:
            return {"family": recipe}, None
        if ":" in recipe:
            return {"estimator": recipe}, None
        raise InputError(
            f"recipe = {recipe!r}: name a built-in family ({', '.join(FAMILIES)}), an estimator "
            "as 'package.module:Name', or pass the estimator object itself"
        )
    if callable(getattr(recipe, "fit", None)) and callable(getattr(recipe, "get_params", None)):
        cls = type(recipe)
        params = {k: _plain(v) for k, v in recipe.get_params(deep=True).items()}
        return {"estimator": f"{cls.__module__}:{cls.__qualname__}", "params": params}, recipe
    raise InputError(
        f"recipe: a {type(recipe).__name__} is not an estimator (it has no fit and get_params); "
        "pass a scikit-learn-compatible classifier, a family name or a [model] dict"
    )


def audit_frame(
    data: pd.DataFrame,
    *,
    label: str,
    out: str | Path,
    patient_id: str | None = None,
    record_id: str | None = None,
    attributes: list[str] | tuple[str, ...] = (),
    features: list[str] | None = None,
    exclude: list[str] | tuple[str, ...] = (),
    positive: str | None = None,
    recipe: Any = None,
    inputs: str | None = None,
    models: int = 200,
    attacks: list[str] | None = None,
    seed: int = 0,
    workers: int | None = None,
    training: dict[str, Any] | None = None,
    redact: bool = False,
    html: bool = True,
    force: bool = False,
    **audit_options: Any,
) -> AuditResult:
    """Audit ``recipe`` trained on ``data``: which patients are most exposed, and by how much.

    ``inputs`` is what an estimator gets: ``"raw"`` (the default for estimators: the
    DataFrame's feature columns as they are, for the pipeline the user ships) or
    ``"encoded"`` (miaudit's numeric encoding). Columns are named as in ``[cohort]`` (``label``, ``patient_id``, ``attributes``, …);
    ``audit_options`` are further ``[audit]`` keys (``holdout_fraction``, ``thresholds``, …).
    Returns the :class:`~miaudit.audit.AuditResult` (``patients``, ``summary``, ``run_dir``;
    the report is ``run_dir / "report.html"`` when ``html``).
    """
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"data: expected a pandas DataFrame, got {type(data).__name__}")
    cohort_keys = {"path": DATAFRAME_SOURCE, "label": label, "patient_id": patient_id,
                   "record_id": record_id, "features": features, "exclude": list(exclude),
                   "attributes": list(attributes), "positive": positive}
    cohort_keys = {k: v for k, v in cohort_keys.items() if v is not None}
    table, estimator = model_table(recipe)
    if "estimator" in table:
        table.setdefault("inputs", inputs or "raw")
    elif inputs is not None:
        table["inputs"] = inputs
    config = parse_config({
        "cohort": cohort_keys,
        "model": table,
        "training": training or {},
        "audit": {"models": models, "seed": seed, **({"attacks": attacks} if attacks else {}),
                  **audit_options},
        "report": {"redact": redact, "html": html},
        "executor": {} if workers is None else {"workers": workers},
    }, "miaudit.audit_frame()")
    spec = {k: v for k, v in cohort_keys.items() if k != "path"}
    cohort = cohort_from_frame(data, {**spec, "path": DATAFRAME_SOURCE}, name="dataframe",
                               source="DataFrame")
    return run_audit(config, Path(out), force=force, cohort=cohort, estimator=estimator)
