"""Cohort sources: the user's tables, built-in real cohorts, and synthetic cohorts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from miaudit.datasets.builtin import (
    BUILTIN,
    DEFAULT_DATASET,
    BuiltinInfo,
    list_builtin,
    load_builtin,
)
from miaudit.datasets.media.load import load_media_cohort
from miaudit.datasets.media.spec import MediaSpec
from miaudit.datasets.synthetic import Planted, make_synthetic_tabular
from miaudit.datasets.synthetic_media import (
    make_synthetic_ecg,
    make_synthetic_images,
    write_ecg_folder,
    write_image_folder,
    write_medmnist_npz,
    write_stacked_npy,
)
from miaudit.datasets.tabular import TableSpec, cohort_from_frame, load_table_cohort, read_table

if TYPE_CHECKING:
    from miaudit.cohort import Cohort
    from miaudit.config import SyntheticSpec

__all__ = [
    "BUILTIN",
    "DEFAULT_DATASET",
    "BuiltinInfo",
    "MediaSpec",
    "Planted",
    "TableSpec",
    "cohort_from_frame",
    "list_builtin",
    "load_builtin",
    "load_media_cohort",
    "load_table_cohort",
    "make_synthetic",
    "make_synthetic_ecg",
    "make_synthetic_images",
    "make_synthetic_tabular",
    "read_table",
    "write_ecg_folder",
    "write_image_folder",
    "write_medmnist_npz",
    "write_stacked_npy",
]


def make_synthetic(spec: SyntheticSpec) -> tuple[Cohort, Planted]:
    """The synthetic cohort a ``[cohort.synthetic]`` table describes, and its planted cases."""
    common = spec.model_dump(
        include={
            "num_patients",
            "rare_fraction",
            "num_atypical",
            "num_mislabelled",
            "max_records_per_patient",
            "seed",
        }
    )
    if spec.modality == "table":
        return make_synthetic_tabular(num_features=spec.num_features, **common)
    if spec.modality == "image":
        return make_synthetic_images(
            image_size=spec.image_size, channels=spec.channels, num_labels=spec.num_labels,
            **common,
        )
    return make_synthetic_ecg(
        leads=spec.leads, length=spec.length, sampling_rate=spec.sampling_rate,
        num_labels=spec.num_labels, **common,
    )
