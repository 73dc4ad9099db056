"""Each model's random streams (init, order, dropout, augment), seeded from (seed, model, stream).

Each model's randomness comes from its own generators, seeded from (seed, global model
index, stream), and each model walks over its own IN records. Together with per-model
optimiser state this is what makes a model's result independent of which other models
train beside it.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "STREAM_AUGMENT",
    "STREAM_DROPOUT",
    "STREAM_INIT",
    "STREAM_ORDER",
    "model_generator",
    "model_seed",
]

STREAM_INIT = 0
STREAM_ORDER = 1
STREAM_DROPOUT = 2
STREAM_AUGMENT = 3  # which view each record of each batch is trained under (conv families)


def model_seed(seed: int, model: int, stream: int) -> int:
    """A 64-bit seed for one random stream (init, order, dropout, augment) of the model with global index ``model``."""
    state = np.random.SeedSequence([seed, model, stream]).generate_state(2, np.uint32)
    return int(state[0]) | (int(state[1]) << 32)


def model_generator(seed: int, model: int, stream: int) -> torch.Generator:
    """A CPU generator for one stream of one model; CPU so draws match on every device."""
    return torch.Generator().manual_seed(model_seed(seed, model, stream))
