"""A deployed scikit-learn-compatible model from a skops file: its outputs and its recipe.

A fitted estimator is never read from a pickle (loading one runs code the file chose).
skops reads only the types it is told to trust: its own defaults (numpy, scipy and most
scikit-learn classes) plus the ``[target] trusted`` list, which the user fills after
reviewing what :func:`skops.io.get_untrusted_types` reports for the file. A file with any
other type is refused before anything in it is built.

The target's logits come from :func:`miaudit.recipes.estimator.estimator_logits`, the same
function the references' go through, so the target and its references give the attacks
the same kind of number (raw margins where the estimator has them). Its recipe is
``clone(target)``: the estimator class and parameters with the fitted state dropped, which
``[model] estimator = "target"`` trains the references with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from miaudit.cohort import Cohort, float_inputs
from miaudit.deployed_model import require_file
from miaudit.errors import InputError
from miaudit.recipes.estimator import estimator_logits

__all__ = ["FittedTarget", "final_step", "load_skops", "recipe_text"]


def final_step(est: Any) -> Any:
    """The estimator that classifies: the last step of a Pipeline, else the estimator."""
    steps = getattr(est, "steps", None)
    return steps[-1][1] if steps else est


def recipe_text(est: Any) -> str:
    """The estimator's class and set parameters as one line (its recipe, for the run identity).

    scikit-learn's repr lists only parameters that differ from their defaults; it is read
    in full (no ``...``) so that two recipes never share a text.
    """
    from sklearn.base import clone

    unfitted = clone(est)
    try:
        return unfitted.__repr__(N_CHAR_MAX=10**9)
    except TypeError:  # not a scikit-learn BaseEstimator
        return f"{type(unfitted).__module__}.{type(unfitted).__qualname__}({unfitted.get_params()!r})"


@dataclass(frozen=True, eq=False)
class FittedTarget:
    """The deployed estimator, what it reads and its outputs."""

    estimator: Any
    inputs: Literal["encoded", "raw"]
    columns: tuple[str, ...]  # the raw or encoded columns it reads, in its order
    logits: np.ndarray  # [N, K] float64, the cohort's class order

    @property
    def name(self) -> str:
        final = final_step(self.estimator)
        outer = type(self.estimator).__name__
        inner = type(final).__name__
        return inner if final is self.estimator else f"{outer} ending in {inner}"


def _load(path: Path, trusted: list[str]) -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise InputError(
            f"target.model '{path}': reading a .skops model needs the skops package; install it "
            "with `pip install 'miaudit[skops]'`"
        ) from None
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as err:  # skops raises its own types for files that are not its format
        raise InputError(
            f"target.model '{path}': not a skops file ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200] if str(err) else ''}); save the fitted model with "
            "skops.io.dump(model, 'target.skops')"
        ) from None
    missing = [t for t in untrusted if t not in trusted]
    if missing:
        listed = ", ".join(f'"{t}"' for t in missing)
        raise InputError(
            f"target.model '{path}': holds types skops does not trust by default: {listed}. "
            "Loading them builds objects the file describes; if you made the file or trust its "
            f"source, review each and list it in the config: [target] trusted = [{listed}]"
        )
    try:
        return sio.load(path, trusted=list(trusted) or None)
    except Exception as err:
        raise InputError(
            f"target.model '{path}': skops could not load it ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200] if str(err) else ''}); save it again with the "
            "installed scikit-learn and skops versions"
        ) from None


def _features(est: Any, cohort: Cohort, inputs: str | None, path: Path) -> tuple[str, tuple[str, ...], Any]:
    """What the estimator reads: the raw table or the encoded matrix, in its column order."""
    names = getattr(est, "feature_names_in_", None)
    raw = cohort.table
    if inputs is None:  # the estimator's own column names decide; otherwise the encoding
        if names is not None and raw is not None and set(map(str, names)) <= set(map(str, raw.columns)):
            inputs = "raw"
        else:
            inputs = "encoded"
    if inputs == "raw":
        if raw is None:
            raise InputError(
                "target.inputs = 'raw': this cohort has no raw columns (only table cohorts read "
                "from a file have them); remove target.inputs"
            )
        wanted = [str(n) for n in names] if names is not None else [str(c) for c in raw.columns]
        absent = [n for n in wanted if n not in raw.columns]
        if absent:
            raise InputError(
                f"target.model '{path}': the model was fitted on column(s) {absent[:5]} that are "
                f"not feature columns of the cohort ({list(raw.columns)[:12]}); list them in "
                "[cohort] features"
            )
        return "raw", tuple(wanted), raw[wanted]
    x = float_inputs(cohort.inputs).astype(np.float64).reshape(cohort.num_records, -1)
    encoded = tuple(cohort.feature_names) if cohort.modality == "table" else ()
    if names is not None and tuple(map(str, names)) != encoded:
        raise InputError(
            f"target.model '{path}': the model reads columns {[str(n) for n in names][:6]}, "
            f"which are not miaudit's encoded features {list(encoded)[:6]} in order; fit it on "
            "the raw columns and set target.inputs = \"raw\", or on the encoded features"
        )
    width = getattr(est, "n_features_in_", x.shape[1])
    if width != x.shape[1]:
        raise InputError(
            f"target.model '{path}': the model takes {width} features, the cohort's encoded "
            f"records have {x.shape[1]}; fit it on the raw columns and set target.inputs = "
            "\"raw\", or on the encoded features"
        )
    return "encoded", encoded, x


def _class_columns(est: Any, cohort: Cohort, path: Path) -> np.ndarray:
    """Each of the estimator's classes as the cohort's class index (by name, else by value)."""
    classes = list(getattr(final_step(est), "classes_", []))
    names = [str(c) for c in cohort.class_names]
    by_name = [names.index(str(c)) if str(c) in names else -1 for c in classes]
    if classes and -1 not in by_name:
        return np.asarray(by_name)
    try:
        as_index = [int(c) for c in classes]
    except (TypeError, ValueError):
        as_index = []
    if classes and all(0 <= c < len(names) and c == v for c, v in zip(as_index, classes, strict=True)):
        return np.asarray(as_index)
    raise InputError(
        f"target.model '{path}': its classes {classes[:6]} are not the cohort's classes "
        f"{names[:6]}; fit it on the cohort's label column"
    )


def load_skops(path: Path, cohort: Cohort, *, trusted: list[str], inputs: str | None) -> FittedTarget:
    """Load the fitted estimator and compute its logits on every record of the cohort."""

    path = require_file(Path(path), "skops model", "target.model")
    if cohort.multilabel:
        raise InputError(
            f"target.model '{path}': the cohort is multi-label; a scikit-learn target takes "
            "one label per record — give its logits in target.predictions"
        )
    est = _load(path, trusted)
    if not callable(getattr(est, "fit", None)) or not any(
        callable(getattr(est, m, None)) for m in ("predict_proba", "decision_function")
    ):
        raise InputError(
            f"target.model '{path}': holds a {type(est).__name__}, not a fitted classifier "
            "with predict_proba or decision_function"
        )
    mode, columns, x = _features(est, cohort, inputs, path)
    columns_of_class = _class_columns(est, cohort, path)
    try:
        logits = estimator_logits(est, x, cohort.num_classes, class_columns=columns_of_class)
    except InputError:
        raise
    except Exception as err:
        raise InputError(
            f"target.model '{path}': the model failed on the cohort's {mode} inputs "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}); "
            "check target.inputs and [cohort] features"
        ) from None
    if not np.isfinite(logits).all():
        raise InputError(f"target.model '{path}': gave non-finite outputs on some records")
    return FittedTarget(estimator=est, inputs=mode, columns=columns, logits=logits)
