"""The entry point: an image or signal cohort from its spec (an index, or a MedMNIST .npz)."""

from __future__ import annotations

from typing import Any

from miaudit.cohort import Cohort
from miaudit.datasets.media.index import _load_index
from miaudit.datasets.media.medmnist import _load_medmnist
from miaudit.datasets.media.spec import MediaSpec, coerce_media_spec


def load_media_cohort(spec: MediaSpec | dict[str, Any]) -> Cohort:
    """Read the spec's index (or .npz) and its records into a validated cohort (module doc)."""
    spec = coerce_media_spec(spec)
    if spec.path.suffix.lower() == ".npz":
        return _load_medmnist(spec)
    return _load_index(spec)
