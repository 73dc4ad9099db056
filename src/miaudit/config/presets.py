"""Named recipes: ``preset = "paper"`` gives the paper's model and training for its dataset.

Knolle et al. trained WRN-28-2 on 64×64 images, ``resnet1d_128`` on 100 Hz PTB-XL ECGs and a
tabular ResNet (width 300, 6 blocks) on MIMIC-IV-ED, 200 models with each patient IN for
half, with Keras' SGD: momentum, decoupled weight decay, a cosine decay after a linear
warmup and a moving average of the weights (its per-dataset settings below, read from the
paper's code). The preset gives those; a key the user sets in ``[model]``, ``[training]``
or ``[views]`` wins.

Where miaudit departs from the paper's code the README's "The paper's cohorts" lists it:
the paper kept the epoch that scored best on the test set (miaudit keeps the last, so no
test record steers a model) and accumulated two batches of 512 (here one batch of 1,024).
WRN-28-2 is ``wrn`` with width 32 (stages 32/64/128) and 4 blocks per stage (GroupNorm,
as the paper's); ``resnet1d_128`` (three blocks of 128/256/256 filters, kernels 8/5/3) is
nearest to ``resnet1d`` with width 128 and one block per stage (128/256/512, kernel 7).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS", "preset_tables"]

_WRN_28_2 = {"family": "wrn", "width": 32, "blocks": 4}
#: The paper's augmentation 'weak'/'medium' (flips, crops by 12.5 %): a flip and 4-pixel shifts.
_AUGMENTED = {"flip": True, "shift": 4}


def _sgd(epochs: int, batch: int, lr: float, momentum: float, wd: float, warmup: float,
         ema: float) -> dict[str, Any]:
    return {"epochs": epochs, "batch_size": batch, "learning_rate": lr, "optimizer": "sgd",
            "momentum": momentum, "weight_decay": wd, "schedule": "cosine", "warmup": warmup,
            "ema": ema}


#: preset → dataset → the [model], [training] and [views] tables it gives.
PRESETS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "paper": {
        "chexpert": {"model": _WRN_28_2, "training": _sgd(60, 1024, 1.0, 0.9, 1e-4, 0.05, 0.9995),
                     "views": _AUGMENTED},
        "mimic_cxr": {"model": _WRN_28_2, "training": _sgd(60, 1024, 0.25, 0.99, 1e-3, 0.2, 0.95),
                      "views": _AUGMENTED},
        "embed": {"model": _WRN_28_2, "training": _sgd(30, 1024, 0.1, 0.9, 1e-8, 0.1, 0.995)},
        "fairvision": {"model": _WRN_28_2, "training": _sgd(100, 256, 1e-4, 0.9, 1e-6, 0.1, 0.99),
                       "views": _AUGMENTED},
        "fitzpatrick17k": {"model": _WRN_28_2,
                           "training": _sgd(100, 256, 5e-3, 0.9, 1e-4, 0.05, 0.99),
                           "views": _AUGMENTED},
        # not in the paper: its dermatology recipe (Fitzpatrick17k's)
        "ham10000": {"model": _WRN_28_2, "training": _sgd(100, 256, 5e-3, 0.9, 1e-4, 0.05, 0.99),
                     "views": _AUGMENTED},
        "ptbxl": {"model": {"family": "resnet1d", "width": 128, "blocks": 1, "kernel_size": 7},
                  "training": _sgd(100, 1024, 0.25, 0.9, 5e-3, 0.05, 0.995)},
        "mimic_iv_ed": {"model": {"family": "tabresnet", "width": 300, "blocks": 6},
                        "training": _sgd(100, 1024, 0.1, 0.9, 1e-7, 0.05, 0.995)},
    },
}


def preset_tables(preset: str, dataset: str | None) -> dict[str, dict[str, Any]]:
    """The tables ``preset`` gives ``dataset``; ValueError (a config error) if it has none."""
    recipes = PRESETS.get(preset)
    if recipes is None:
        raise ValueError(f"preset: unknown preset {preset!r}; the presets are {', '.join(PRESETS)}")
    if dataset not in recipes:
        raise ValueError(
            f"preset = {preset!r} is defined for the paper's datasets ({', '.join(recipes)}); "
            f"cohort.dataset is {dataset!r}. Remove preset, or set cohort.dataset to one of them"
        )
    return recipes[dataset]
