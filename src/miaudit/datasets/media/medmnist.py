"""MedMNIST ``.npz`` archives: every image its own patient, record ids like ``"val-3"``."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort
from miaudit.datasets.media.files import _detail
from miaudit.datasets.media.images import _row_loader, assemble_images
from miaudit.datasets.media.spec import _INDEX_ONLY, _SIGNAL_ONLY, MediaSpec, _require_fields
from miaudit.datasets.tabular import _listing
from miaudit.errors import InputError


def _load_medmnist(spec: MediaSpec) -> Cohort:
    where = f"file '{spec.path}'"
    _require_fields(
        spec,
        tuple(f for f in _INDEX_ONLY if f != "labels") + _SIGNAL_ONLY,
        where,
        "to a MedMNIST .npz (it has images and labels only; every image is its own patient)",
    )
    if spec.modality == "signal":
        raise InputError(f'{where}: a MedMNIST .npz holds images; set modality = "image".')
    if not spec.path.is_file():
        raise InputError(
            f"{where} not found (working directory: {Path.cwd()}); check the cohort path."
        )
    try:
        archive = np.load(spec.path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise InputError(
            f"{where}: not a readable .npz archive ({_detail(error)}); save it with numpy.savez."
        ) from error
    with archive:
        keys = list(archive.files)
        splits = spec.splits
        if splits == MediaSpec.model_fields["splits"].default:
            splits = [s for s in splits if f"{s}_images" in keys]
        needed = [f"{s}_{part}" for s in splits for part in ("images", "labels")]
        missing = [k for k in needed if k not in keys]
        if not splits or missing:
            shown = _listing(missing) if missing else "'train_images', 'train_labels'"
            raise InputError(
                f"{where}: MedMNIST keys {shown} not found; the archive has "
                f"{_listing(keys) or 'no arrays'}. A MedMNIST .npz holds '<split>_images' and "
                "'<split>_labels'; fix `splits` or the file."
            )
        images, labels, record_ids = [], [], []
        for split in splits:
            split_images = _npz_array(archive, f"{split}_images", where)
            split_labels = _npz_array(archive, f"{split}_labels", where)
            if split_labels.ndim == 1:
                split_labels = split_labels[:, None]
            if split_labels.ndim != 2 or split_labels.shape[0] != split_images.shape[0]:
                raise InputError(
                    f"{where}: '{split}_labels' has shape {split_labels.shape} for "
                    f"{split_images.shape[0]} images in '{split}_images'; it needs one row per image."
                )
            if split_images.ndim not in (3, 4) or (
                split_images.ndim == 4 and split_images.shape[-1] not in (1, 3)
            ):
                raise InputError(
                    f"{where}: '{split}_images' has shape {split_images.shape}; miaudit reads "
                    "2-D MedMNIST images [N, H, W] or [N, H, W, 3] (3-D volumes are not supported)."
                )
            images.append(split_images)
            labels.append(split_labels)
            record_ids.extend(f"{split}-{i}" for i in range(split_images.shape[0]))
    widths = {lab.shape[1] for lab in labels}
    if len(widths) > 1:
        raise InputError(
            f"{where}: the splits' label arrays have different widths {sorted(widths)}; every "
            "'<split>_labels' needs the same columns."
        )
    stacked_labels = np.concatenate(labels)
    label_matrix, class_names = _medmnist_labels(stacked_labels, spec.labels, where)
    describe = [f"{where} image {r}" for r in record_ids]
    all_images = np.concatenate([img if img.ndim == 4 else img[..., None] for img in images])
    loaders = [_row_loader(all_images, i, describe[i]) for i in range(len(record_ids))]
    inputs = assemble_images(loaders, describe, spec)
    ids = np.array(record_ids, dtype=object)
    cohort = Cohort(
        name=spec.name if spec.name is not None else spec.path.name.split(".")[0],
        inputs=inputs,
        labels=label_matrix,
        patient=np.arange(len(ids), dtype=np.int64),
        patient_ids=ids.copy(),
        record_ids=ids,
        attributes=pd.DataFrame(index=pd.RangeIndex(len(ids))),
        class_names=class_names,
        feature_names=("pixels",),
        modality="image",
        source=str(spec.path),
    )
    cohort.validate()
    return cohort


def _npz_array(archive: Any, key: str, where: str) -> np.ndarray:
    try:
        array = archive[key]
    except ValueError as error:
        raise InputError(
            f"{where}: array {key!r} is pickled (object dtype); pickled arrays are refused "
            "because loading them can run code. Save numeric arrays with numpy.savez."
        ) from error
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise InputError(
            f"{where}: array {key!r} cannot be read ({_detail(error)}); save the archive again."
        ) from error
    if array.dtype.kind not in "biuf":
        raise InputError(f"{where}: array {key!r} holds {array.dtype} values; save numbers.")
    return array


def _medmnist_labels(
    labels: np.ndarray, names: list[str] | None, where: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """[N,1] → single-label (classes = sorted values); [N,K>1] 0/1 → multi-label."""
    if labels.dtype.kind == "f" and not np.all(np.mod(labels, 1) == 0):
        raise InputError(f"{where}: labels must be whole numbers (class indices or 0/1).")
    labels = labels.astype(np.int64)
    if labels.shape[1] == 1:
        values = labels[:, 0]
        if names is not None:
            if values.min() < 0 or values.max() >= len(names):
                raise InputError(
                    f"{where}: labels run {values.min()}..{values.max()} but `labels` names "
                    f"{len(names)} classes; give one name per class index 0..{values.max()}."
                )
            return values, tuple(names)
        uniques = np.unique(values)
        return np.searchsorted(uniques, values).astype(np.int64), tuple(str(v) for v in uniques)
    if not np.isin(labels, (0, 1)).all():
        raise InputError(
            f"{where}: labels have {labels.shape[1]} columns, so they are read as multi-label, "
            "but hold values other than 0/1."
        )
    if names is not None and len(names) != labels.shape[1]:
        raise InputError(
            f"{where}: labels have {labels.shape[1]} columns but `labels` names {len(names)}; "
            "give one name per column."
        )
    class_names = (
        tuple(names) if names is not None else tuple(str(j) for j in range(labels.shape[1]))
    )
    return labels, class_names
