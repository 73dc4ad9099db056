"""The cohort spec: where an image or signal cohort lives and which fields apply to it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pydantic

from miaudit.config.base import Strict
from miaudit.datasets.tabular import _listing
from miaudit.errors import InputError

_INDEX_ONLY = (
    "label",
    "labels",
    "label_separator",
    "patient_id",
    "record_id",
    "attributes",
    "array",
    "path_column",
    "root",
)
_IMAGE_ONLY = ("image_size", "channels")
_SIGNAL_ONLY = ("sampling_rate", "length", "leads", "standardize")


class MediaSpec(Strict):
    """Where an image or signal cohort lives and which index columns mean what."""

    path: Path
    """An index table (.csv/.tsv/.parquet) or a MedMNIST-style .npz."""
    modality: Literal["image", "signal"] | None = None
    """Required for an index; a .npz is always images."""
    name: str | None = None
    """None: the file name without suffixes."""
    path_column: str = "path"
    root: Path | None = None
    """Folder the index's record paths are relative to; None: the index's folder."""
    array: Path | None = None
    """A stacked .npy [N, ...] whose row i is index row i (then no path column is read)."""
    label: str | None = None
    label_separator: str | None = None
    labels: list[str] | None = None
    """Index: several 0/1 label columns. MedMNIST: names of the classes (optional)."""
    patient_id: str | None = None
    """None: each record is its own patient."""
    record_id: str | None = None
    """None: the record's path as written in the index (stacked array: its row number)."""
    attributes: list[str] = []
    splits: list[str] = ["train", "val", "test"]
    """MedMNIST parts to concatenate, in this order (unset: those of these present)."""
    image_size: tuple[pydantic.PositiveInt, pydantic.PositiveInt] | None = None
    channels: Literal[1, 3] | None = None
    sampling_rate: pydantic.PositiveFloat | None = None
    length: pydantic.PositiveInt | None = None
    leads: list[str] | None = None
    standardize: bool = True
    """Signals: standardise each lead with whole-cohort statistics."""


def coerce_media_spec(spec: MediaSpec | dict[str, Any]) -> MediaSpec:
    """A MediaSpec from a spec or a plain dict, with pydantic errors as one InputError."""
    if isinstance(spec, MediaSpec):
        return spec
    try:
        return MediaSpec.model_validate(spec)
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"`{'.'.join(str(p) for p in e['loc']) or 'spec'}`: {e['msg']}" for e in error.errors()
        )
        raise InputError(f"invalid image/signal cohort spec: {problems}.") from error


def _require_fields(spec: MediaSpec, fields: Sequence[str], where: str, reason: str) -> None:
    """InputError when any of ``fields`` is set (not its default) where it does not apply."""
    given = [f for f in fields if getattr(spec, f) != MediaSpec.model_fields[f].default]
    if given:
        raise InputError(
            f"{where}: {_listing(given)} {'does' if len(given) == 1 else 'do'} not apply "
            f"{reason}; remove {'it' if len(given) == 1 else 'them'} from the cohort spec."
        )
