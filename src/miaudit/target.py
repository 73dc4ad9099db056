"""Deprecated alias of :mod:`miaudit.deployed_model` (kept for imports of ``miaudit.target``).

"Target" is the role of a model whose scores are computed (see the design notes); the
deployed model's outputs and roster live in :mod:`miaudit.deployed_model`: import from there.
"""

from miaudit.deployed_model import *  # noqa: F403
