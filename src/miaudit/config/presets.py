"""Named recipes: ``preset = "paper"`` gives the paper's model and training for its dataset.

Knolle et al. trained WRN-28-2 on 64×64 images, ``resnet1d_128`` on 100 Hz PTB-XL ECGs and a
tabular ResNet (width 300, 6 blocks) on MIMIC-IV-ED, 200 models with each patient IN for
half. The preset gives those architectures and the paper's epochs, (effective) batch sizes
and augmentation; a key the user sets in ``[model]``, ``[training]`` or ``[views]`` wins.

Where miaudit's engine differs from the paper's Keras code the preset says so here, and
the README's "The paper's cohorts" lists it: the paper trained with SGD (momentum 0.9, a
cosine schedule, an EMA of the weights, the best epoch picked on the test set); miaudit
trains with Adam at 1e-3 and keeps the last epoch, so no test record steers a model.
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

#: preset → dataset → the [model], [training] and [views] tables it gives.
PRESETS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "paper": {
        "chexpert": {"model": _WRN_28_2, "training": {"epochs": 60, "batch_size": 1024},
                     "views": _AUGMENTED},
        "mimic_cxr": {"model": _WRN_28_2, "training": {"epochs": 60, "batch_size": 1024},
                      "views": _AUGMENTED},
        "embed": {"model": _WRN_28_2, "training": {"epochs": 30, "batch_size": 1024}},
        "fairvision": {"model": _WRN_28_2, "training": {"epochs": 100, "batch_size": 256},
                       "views": _AUGMENTED},
        "fitzpatrick17k": {"model": _WRN_28_2, "training": {"epochs": 100, "batch_size": 256},
                           "views": _AUGMENTED},
        # not in the paper: its dermatology recipe (Fitzpatrick17k's)
        "ham10000": {"model": _WRN_28_2, "training": {"epochs": 100, "batch_size": 256},
                     "views": _AUGMENTED},
        "ptbxl": {"model": {"family": "resnet1d", "width": 128, "blocks": 1, "kernel_size": 7},
                  "training": {"epochs": 100, "batch_size": 1024}},
        "mimic_iv_ed": {"model": {"family": "tabresnet", "width": 300, "blocks": 6},
                        "training": {"epochs": 100, "batch_size": 1024}},
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
