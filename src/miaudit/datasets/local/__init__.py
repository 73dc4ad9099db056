"""The paper's cohorts read from the user's local copy of each dataset's official layout.

Knolle et al. (Nature, 2026) audited seven clinical datasets that are public for research
under a data use agreement. Each adapter here reads one dataset's official distribution
from ``[cohort] root`` and builds the cohort the paper used: its records, patient ids,
labels, subgroup attributes and test split (held out of every model: it serves the
diagnostic AUROC), with images at 64×64 and ECGs at 100 Hz. ``[cohort] dataset = NAME``
with ``root`` selects one; ``preset = "paper"`` adds the paper's recipe
(:mod:`miaudit.config.presets`).

Image pixels are decoded once into a uint8 cache in the run folder (``results.pixels``);
the adapters read only the tables and list the files.

One module per dataset, each with ``INFO`` (what ``miaudit datasets`` shows) and
``load(root) -> Cohort``; ``layout`` holds what they share, ``decode`` the image decoding.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from miaudit.cohort import Cohort
from miaudit.config.cohort import LOCAL_DATASETS
from miaudit.datasets.builtin import unknown_dataset
from miaudit.errors import InputError

__all__ = ["LOCAL", "LocalInfo", "info", "is_local", "list_local", "load_local"]


@dataclass(frozen=True)
class LocalInfo:
    """What ``miaudit datasets`` and the README say about a dataset read from a local copy."""

    name: str
    title: str
    modality: str  # "image", "signal" or "table"
    obtain: str  # where to request it (and the agreement it needs)
    layout: tuple[tuple[str, str], ...]  # (path under root, what it holds)
    patient_id: str
    task: str
    subgroups: tuple[str, ...]
    test_split: str
    in_paper: bool = True


#: Dataset name → its adapter module (imported when used); the names and their modalities
#: are the schema's (``config.cohort.LOCAL_DATASETS``), so a config is checked without data.
LOCAL: dict[str, str] = {name: f"{__name__}.{name}" for name in LOCAL_DATASETS}


def is_local(name: str) -> bool:
    """Whether ``name`` is a dataset read from the user's local copy."""
    return name in LOCAL


def _module(name: str):
    if name not in LOCAL:
        raise unknown_dataset(name)
    return importlib.import_module(LOCAL[name])


def info(name: str) -> LocalInfo:
    """The listing entry of one local dataset."""
    return _module(name).INFO


def list_local() -> list[LocalInfo]:
    """Every local dataset, in the paper's order (then those the paper did not audit)."""
    return [info(name) for name in LOCAL]


def load_local(name: str, root: Path | None, *, decode: bool = True) -> Cohort:
    """The paper's cohort of ``name`` from the copy under ``root``, validated.

    ``decode=False`` leaves image pixels pending (``cohort.pending``) for a run to decode
    into its cache; by default they are decoded into memory.
    """
    module = _module(name)
    if root is None:
        raise InputError(
            f"dataset {name!r} is read from your local copy: set cohort.root (or --root) to "
            f"its folder. {module.INFO.title}: {module.INFO.obtain}"
        )
    cohort = module.load(Path(root).expanduser())
    cohort.validate()
    return cohort if not decode else cohort.decoded()
