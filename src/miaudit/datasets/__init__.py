"""Cohort sources: the user's tables, built-in real cohorts, and synthetic cohorts."""

from __future__ import annotations

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
    "make_synthetic_ecg",
    "make_synthetic_images",
    "make_synthetic_tabular",
    "read_table",
    "write_ecg_folder",
    "write_image_folder",
    "write_medmnist_npz",
    "write_stacked_npy",
]
