"""Reference models from any scikit-learn-compatible classifier (``[model] estimator``).

Each reference model is a fresh estimator from the user's class or factory (a ``clone`` of
an estimator object handed to the Python API) whose every ``random_state`` is that model's
own seed, fitted on its IN records. Its logits come from the most precise output the
estimator offers: raw margins (``decision_function``; XGBoost's ``output_margin``,
LightGBM's ``raw_score``, CatBoost's ``RawFormulaVal``), which stay finite and distinct at
confidences where probabilities round to 0 or 1; otherwise log-probabilities, floored at
``PROBABILITY_FLOOR``. Models train in worker processes (joblib's loky), one thread each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from miaudit.errors import InputError
from miaudit.recipes.user_code import resolve
from miaudit.recipes.workers import worker_count
from miaudit.seeding import recipe_seed

__all__ = ["PROBABILITY_FLOOR", "EstimatorRecipe", "estimator_logits", "train_estimators"]

#: Smallest probability turned into a logit (log 1e-12 ≈ −27.6): a random forest's
#: probabilities are multiples of 1/trees, and 0 would give −∞.
PROBABILITY_FLOOR = 1e-12
#: Parameters that set an estimator's thread count (scikit-learn, XGBoost, LightGBM, CatBoost).
_THREAD_KEYS = ("n_jobs", "nthread", "num_threads", "thread_count")
_SEED_KEYS = ("random_state", "random_seed", "seed")


@dataclass(frozen=True)
class EstimatorRecipe:
    """An estimator named in the config (``path`` and ``params``) or an object from the API."""

    path: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    obj: Any = None

    @property
    def name(self) -> str:
        return self.path or type(self.obj).__name__

    def build(self) -> Any:
        """A fresh, unfitted estimator."""
        if self.obj is not None:
            return clone(self.obj)
        factory = resolve(self.path or "", "model.estimator")
        if not callable(factory):
            raise InputError(
                f"model.estimator = {self.path!r}: names a {type(factory).__name__}, not a "
                "class or function; name the estimator class or a function that returns one"
            )
        try:
            est = factory(**self.params)
        except TypeError as err:
            raise InputError(
                f"model.params: {self.path} does not take {sorted(self.params)}: {err}; fix "
                "[model.params] to the estimator's own parameter names"
            ) from None
        return est

    def check(self) -> None:
        """Fail before any training when the estimator cannot be audited."""
        est = self.build()
        missing = [m for m in ("fit",) if not callable(getattr(est, m, None))]
        if missing or not any(
            callable(getattr(est, m, None)) for m in ("predict_proba", "decision_function")
        ):
            raise InputError(
                f"model.estimator = {self.name!r}: {type(est).__name__} is not a classifier "
                "with fit and predict_proba (or decision_function); name a scikit-learn-"
                "compatible classifier"
            )


def _set_params(est: Any, seed: int, threads: int) -> Any:
    """Seed every random_state of the estimator (and its pipeline steps); cap its threads."""
    if not callable(getattr(est, "get_params", None)):
        return est
    params = est.get_params(deep=True)
    update: dict[str, Any] = {}
    for key, value in params.items():
        leaf = key.rsplit("__", 1)[-1]
        if leaf in _SEED_KEYS and (value is None or isinstance(value, int | np.integer)):
            update[key] = seed
        elif leaf in _THREAD_KEYS and value is None:
            update[key] = threads
    update |= _unlisted_defaults(est, params, seed, threads)
    if update:
        try:
            est.set_params(**update)
        except (TypeError, ValueError) as err:
            raise InputError(
                f"model.estimator: {type(est).__name__} rejects its seed or thread count "
                f"({sorted(update)}): {err}"
            ) from None
    return est


def _unlisted_defaults(est: Any, params: dict[str, Any], seed: int, threads: int) -> dict:
    """Seed and thread count of CatBoost objects, whose ``get_params`` lists only what was
    set explicitly: an unset seed would leave every reference model on CatBoost's default.
    Unless asked for, CatBoost writes no ``catboost_info/`` into the user's folder (parallel
    workers would write it at once)."""
    update: dict[str, Any] = {}
    found = {"": est} | {k: v for k, v in params.items() if hasattr(v, "get_params")}
    for key, obj in found.items():
        if type(obj).__module__.split(".")[0] != "catboost":
            continue
        own = obj.get_params()
        prefix = f"{key}__" if key else ""
        if not any(k in own for k in _SEED_KEYS):
            update[f"{prefix}random_seed"] = seed
        if not any(k in own for k in _THREAD_KEYS):
            update[f"{prefix}thread_count"] = threads
        if "allow_writing_files" not in own and "train_dir" not in own:
            update[f"{prefix}allow_writing_files"] = False
    return update


def _margins(final: Any, x: Any) -> np.ndarray | None:
    if callable(getattr(final, "decision_function", None)):
        return np.asarray(final.decision_function(x), dtype=np.float64)
    package = type(final).__module__.split(".")[0]
    if package == "xgboost":
        return np.asarray(final.predict(x, output_margin=True), dtype=np.float64)
    if package == "lightgbm":
        return np.asarray(final.predict(x, raw_score=True), dtype=np.float64)
    if package == "catboost":
        return np.asarray(final.predict(x, prediction_type="RawFormulaVal"), dtype=np.float64)
    return None


def estimator_logits(
    est: Any, x: Any, num_classes: int, *, class_columns: np.ndarray | None = None
) -> np.ndarray:
    """Logits [N, K] of a fitted classifier, in class order 0..K−1 (see the module doc).

    A binary margin m becomes logits [0, m] (softmax gives sigmoid(m)); classes a model
    never saw in training get the row's lowest logit plus log(``PROBABILITY_FLOOR``).
    ``class_columns`` gives each of the estimator's ``classes_`` its column (default: the
    class values themselves, which reference models are fitted on).
    """
    final = est
    steps = getattr(est, "steps", None)
    if steps and len(steps) > 1 and callable(getattr(est[:-1], "transform", None)):
        x, final = est[:-1].transform(x), est[-1]
    classes = np.asarray(getattr(final, "classes_", np.arange(num_classes)))
    if class_columns is not None:
        columns = np.asarray(class_columns, dtype=np.int64)
    else:
        try:
            columns = classes.astype(np.int64)
        except (TypeError, ValueError):
            raise InputError(
                f"model.estimator: {type(final).__name__}.classes_ = {list(classes)[:5]} are "
                "not the class indices it was fitted on"
            ) from None
    z = _margins(final, x)
    if z is not None and z.ndim == 1 and len(classes) == 2:
        z = np.stack([np.zeros_like(z), z], axis=1)
    elif z is None or z.ndim != 2 or z.shape[1] != len(classes):
        p = np.asarray(final.predict_proba(x), dtype=np.float64)
        z = np.log(np.clip(p, PROBABILITY_FLOOR, 1.0))
    if len(columns) == num_classes and np.array_equal(columns, np.arange(num_classes)):
        return z
    out = np.empty((z.shape[0], num_classes), dtype=np.float64)
    out[:] = (z.min(axis=1) + np.log(PROBABILITY_FLOOR))[:, None]
    out[:, columns] = z
    return out


def _fit_one(recipe: EstimatorRecipe, x: Any, labels: np.ndarray, rows: np.ndarray,
             model: int, seed: int, threads: int, num_classes: int) -> np.ndarray:
    """Build, seed, fit and score one reference model; logits [N, 1, K] float32."""
    est = _set_params(recipe.build(), recipe_seed(seed, model), threads)
    train = x.iloc[rows] if isinstance(x, pd.DataFrame) else x[rows]
    with threadpool_limits(limits=threads):
        try:
            est.fit(train, labels[rows])
            z = estimator_logits(est, x, num_classes)
        except InputError:
            raise
        except Exception as err:
            raise InputError(
                f"model.estimator = {recipe.name!r}: model {model} failed to train or score: "
                f"{type(err).__name__}: {err}"
            ) from None
    if z.shape != (len(labels), num_classes) or not np.isfinite(z).all():
        raise InputError(
            f"model.estimator = {recipe.name!r}: model {model} gave "
            f"{'non-finite' if z.shape == (len(labels), num_classes) else f'shape {z.shape}'} "
            f"scores; expected {len(labels)} finite rows of {num_classes} classes"
        )
    return z.astype(np.float32)[:, None, :]


def train_estimators(
    recipe: EstimatorRecipe,
    inputs: np.ndarray | pd.DataFrame,
    labels: np.ndarray,
    keep: np.ndarray,
    models: Sequence[int],
    seed: int,
    *,
    workers: int | None = None,
) -> np.ndarray:
    """Fit one estimator per model on its ``keep`` rows; logits [G, N, 1, K].

    ``inputs`` are the encoded features [N, ...] (flattened per record) or the raw
    DataFrame. ``workers`` (default: one per core) processes train the models, each with
    one thread; one worker trains them in this process, one after another.
    """
    if labels.ndim != 1:
        raise InputError(
            "model.estimator: the cohort is multi-label; estimator recipes take one label per "
            "record — audit one finding at a time, or use a module recipe"
        )
    x = inputs if isinstance(inputs, pd.DataFrame) else np.asarray(inputs).reshape(len(inputs), -1)
    num_classes = int(labels.max()) + 1
    keep = np.asarray(keep, dtype=bool)
    models = [int(m) for m in models]
    n_workers, threads = worker_count(workers, len(models))
    recipe.check()
    if n_workers == 1:
        parts = [_fit_one(recipe, x, labels, keep[g], m, seed, threads, num_classes)
                 for g, m in enumerate(models)]
    else:
        with parallel_config(backend="loky", n_jobs=n_workers, inner_max_num_threads=threads):
            parts = Parallel()(
                delayed(_fit_one)(recipe, x, labels, keep[g], m, seed, threads, num_classes)
                for g, m in enumerate(models)
            )
    return np.stack(parts)
