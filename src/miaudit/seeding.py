"""Per-model seeds, derived from (audit seed, global model index, stream); no torch.

A model's randomness depends only on these three numbers, so a model trains to the same
result whichever group, worker or machine trains it. The torch engine draws its generators
from here (``training/seeds.py``), and so do the recipes that run without torch (estimators,
training commands), whose worker processes must stay light.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "STREAM_AUGMENT",
    "STREAM_DROPOUT",
    "STREAM_INIT",
    "STREAM_ORDER",
    "STREAM_RECIPE",
    "model_seed",
    "recipe_seed",
]

STREAM_INIT = 0
STREAM_ORDER = 1
STREAM_DROPOUT = 2
STREAM_AUGMENT = 3  # which view each record of each batch is trained under (conv families)
STREAM_RECIPE = 4  # the one seed handed to a user's estimator, training function or command


def model_seed(seed: int, model: int, stream: int) -> int:
    """A 64-bit seed for one random stream (init, order, dropout, augment) of the model with global index ``model``."""
    state = np.random.SeedSequence([seed, model, stream]).generate_state(2, np.uint32)
    return int(state[0]) | (int(state[1]) << 32)


def recipe_seed(seed: int, model: int) -> int:
    """The seed a user recipe gets for one model: in [0, 2**31), which every library accepts.

    scikit-learn's ``random_state`` takes up to 2**32 − 1, but LightGBM, CatBoost and many
    command-line tools take a signed 32-bit integer.
    """
    return model_seed(seed, model, STREAM_RECIPE) & 0x7FFF_FFFF
