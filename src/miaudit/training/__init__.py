"""The training engine: a group of reference models at once, each on its own records.

``train_group`` (stacked weights for the built-in table families, batched Newton for
binary logistic regression, ``train_conv`` for the image and signal families),
``train_vmap`` (torch.func for any user ``nn.Module``) and ``train_sequential`` (the slow,
obvious reference both are tested against) all return the logits [G, N, V, K] of every
model on every record. A model's initialisation, batch order, dropout and augmentation
come from generators seeded by (seed, its global index), so its result does not depend
on how many models train beside it.
"""

from __future__ import annotations

from miaudit.config import TrainingSpec
from miaudit.training.conv import score_modules, train_conv
from miaudit.training.devices import select_device
from miaudit.training.engine import train_group, train_sequential
from miaudit.training.seeds import model_generator, model_seed
from miaudit.training.vmap import build_user_module, train_vmap

__all__ = [
    "TrainingSpec",
    "build_user_module",
    "model_generator",
    "model_seed",
    "score_modules",
    "select_device",
    "train_conv",
    "train_group",
    "train_sequential",
    "train_vmap",
]
