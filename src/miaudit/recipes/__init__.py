"""Recipes: whatever trains a group of reference models on their own records.

A recipe takes the models' ``keep`` rows ([G, N] bool), their global indices and the audit
seed, and returns logits [G, N, V, K] for every record. Each model's randomness derives from
(seed, its global index) alone, so the numbers do not depend on grouping, workers or
executor. The ``[model]`` table chooses the kind:

``family = "mlp"`` (built-in; ``miaudit.training``)
    logistic, mlp, tabresnet, wrn, resnet1d, trained by the vectorised engine.

``estimator = "sklearn.ensemble:HistGradientBoostingClassifier"`` (``estimator.py``)
    Any scikit-learn-compatible classifier: a class or a function returning one (e.g. a
    ``Pipeline``), built with ``[model.params]``. Each model is a ``clone`` whose every
    ``random_state`` is its own seed. ``inputs = "raw"`` hands the feature columns as a
    DataFrame, for pipelines with their own preprocessing. XGBoost, LightGBM and CatBoost
    work through their scikit-learn classes (``pip install 'miaudit[gbm]'``).

``module = "my_pkg.nets:build"`` (``module.py``)
    ``build(input_shape, num_classes, **params) -> torch.nn.Module`` mapping a batch
    [B, ...] to logits [B, K], trained with ``[training]`` (Adam, cross-entropy);
    vectorised over models by ``torch.func`` unless the module tracks BatchNorm statistics,
    then one model at a time.

``train_fn = "my_pkg.train:train"`` (``module.py``)
    The user's whole loop: ``train(inputs, labels, keep, models, seed, **params)`` with
    inputs [N, ...] (or the raw DataFrame), labels [N], keep [G, N] bool, models the G
    global indices, seed the audit seed; returns logits [G, N, V, K] (or [G, N, K]).

``command = "python train.py --train {train_ids} --seed {seed} --out {out}"`` (``command.py``)
    Any program, once per model; it writes ``{out}/logits.npy`` [N, V, K] (or [N, K]).

Estimators and commands run in ``[executor] workers`` local processes with one thread
each; a finished command model is kept in the run directory, so a resumed run skips it.
"""

from __future__ import annotations

__all__: list[str] = []
