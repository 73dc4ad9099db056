"""Each model's random streams (init, order, dropout, augment), seeded from (seed, model, stream).

Each model's randomness comes from its own generators, seeded from (seed, global model
index, stream), and each model walks over its own IN records. Together with per-model
optimiser state this is what makes a model's result independent of which other models
train beside it.
"""

from __future__ import annotations

import torch

from miaudit.seeding import (
    STREAM_AUGMENT,
    STREAM_DROPOUT,
    STREAM_INIT,
    STREAM_ORDER,
    model_seed,
)

__all__ = [
    "STREAM_AUGMENT",
    "STREAM_DROPOUT",
    "STREAM_INIT",
    "STREAM_ORDER",
    "model_generator",
    "model_seed",
]

# the streams and the seed arithmetic live in the torch-free ``miaudit.seeding``


def model_generator(seed: int, model: int, stream: int) -> torch.Generator:
    """A CPU generator for one stream of one model; CPU so draws match on every device."""
    return torch.Generator().manual_seed(model_seed(seed, model, stream))
