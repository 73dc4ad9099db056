"""An index table of records: labels, ids and attributes checked, then each row's file read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.cohort import RESERVED_ATTRIBUTE_NAMES, Cohort, attribute_conflicts
from miaudit.datasets.media.dicom import _dicom_pixels, _dicom_signal
from miaudit.datasets.media.files import _check_exists, _detail, _is_pickle_refusal
from miaudit.datasets.media.images import (
    PILLOW_SUFFIXES,
    _npy_pixels,
    _pillow_pixels,
    _row_loader,
    assemble_images,
)
from miaudit.datasets.media.spec import _IMAGE_ONLY, _SIGNAL_ONLY, MediaSpec, _require_fields
from miaudit.datasets.media.waveforms import (
    _npy_signal,
    _row_rates,
    _Signal,
    _stacked_signal_loader,
    assemble_signals,
)
from miaudit.datasets.media.wfdb import _wfdb_signal
from miaudit.datasets.tabular import (
    TableSpec,
    _as_text,
    _attribute_values,
    _Columns,
    _encode_label,
    _is_numeric,
    _listing,
    _patient_index,
    _rows_text,
    read_table,
)
from miaudit.errors import InputError, shown_id

#: Tokens of a separated label cell that mean "no positive finding" (compared casefolded).
NO_FINDING = ("no finding",)


@dataclass
class _Index:
    """The checked index: everything but the records' values."""

    frame: pd.DataFrame
    source: str
    labels: np.ndarray
    class_names: tuple[str, ...]
    patient: np.ndarray
    patient_ids: np.ndarray
    record_ids: np.ndarray
    attributes: pd.DataFrame


def _multi_hot_from_separated(
    values: pd.Series, column: str, separator: str, source: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Split each cell on ``separator``; empty / missing / 'No Finding' → no positive label."""
    rows: list[list[str]] = []
    for value in values.tolist():
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            rows.append([])
            continue
        tokens = (t.strip() for t in str(value).split(separator))
        rows.append([t for t in tokens if t and t.casefold() not in NO_FINDING])
    classes = sorted({t for row in rows for t in row})
    if len(classes) < 2:
        raise InputError(
            f"{source}: label column {column!r} split on {separator!r} gives "
            f"{len(classes)} finding(s) ({_listing(classes) or 'none'}); multi-label needs at "
            "least 2. Check `label_separator`, or leave it unset for single-label classes."
        )
    position = {c: j for j, c in enumerate(classes)}
    labels = np.zeros((len(rows), len(classes)), dtype=np.int64)
    for i, row in enumerate(rows):
        for token in row:
            labels[i, position[token]] = 1
    return labels, tuple(classes)


def _multi_hot_from_columns(frame: pd.DataFrame, columns: list[str], source: str) -> np.ndarray:
    """[N, K] int64 from 0/1 (or boolean) columns; anything else names the column and rows."""
    blocks = []
    for column in columns:
        values = frame[column]
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if pd.api.types.is_bool_dtype(values):
            numbers = values.to_numpy(dtype=np.float64)
        bad = ~np.isin(numbers, (0.0, 1.0))
        if bad.any():
            rows = np.flatnonzero(bad)
            shown = _listing([str(v) for v in pd.unique(values.iloc[rows].astype(object))], 5)
            raise InputError(
                f"{source}: label column {column!r} must hold 0/1, but data rows "
                f"{_rows_text(rows)} hold {shown}. Map uncertain or missing labels to 0 or 1 "
                "(e.g. -1 → 0) before the audit."
            )
        blocks.append(numbers.astype(np.int64))
    return np.stack(blocks, axis=1)


def _record_ids(frame: pd.DataFrame, spec: MediaSpec, source: str) -> np.ndarray:
    if spec.record_id is not None:
        values, column = frame[spec.record_id], spec.record_id
        missing = values.isna().to_numpy()
        if missing.any():
            raise InputError(
                f"{source}: record id column {column!r} is empty in data rows "
                f"{_rows_text(np.flatnonzero(missing))}; fill it in or leave `record_id` unset."
            )
        ids, role, fix = (
            _as_text(values),
            f"record id column {column!r}",
            "record ids must be unique",
        )
    elif spec.array is None:
        ids = _path_text(frame, spec, source)
        role = f"path column {spec.path_column!r}"
        fix = "list each record file once, or set `record_id` to a column of unique ids"
    else:
        return np.array([str(i) for i in range(len(frame))], dtype=object)
    repeated = pd.Series(ids).duplicated(keep=False).to_numpy()
    if repeated.any():
        rows = np.flatnonzero(repeated)
        same = rows[ids[rows] == ids[rows[0]]]
        raise InputError(
            f"{source}: {role} repeats values (e.g. {shown_id(ids[rows[0]], 'R-')} in data rows "
            f"{_rows_text(same)}); {fix}."
        )
    return ids


def _path_text(frame: pd.DataFrame, spec: MediaSpec, source: str) -> np.ndarray:
    values = frame[spec.path_column]
    missing = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        raise InputError(
            f"{source}: path column {spec.path_column!r} is empty in data rows "
            f"{_rows_text(np.flatnonzero(missing))}; give every record its file or drop those rows."
        )
    return values.astype(str).str.strip().to_numpy(dtype=object)


def _check_attributes(
    frame: pd.DataFrame, spec: MediaSpec, patient: np.ndarray, patient_ids: np.ndarray, source: str
) -> pd.DataFrame:
    """Attribute frame (numeric stays numeric), checked constant within each patient."""
    for column in spec.attributes:
        if column in RESERVED_ATTRIBUTE_NAMES:
            raise InputError(
                f"{source}: attribute {column!r} clashes with a column miaudit adds to the "
                "patient table; rename that column in the index."
            )
        if column in (spec.label, spec.path_column) or column in (spec.labels or []):
            raise InputError(
                f"{source}: {column!r} is listed in `attributes` but is a label or path column; "
                "subgroups are patient attributes. Remove it from `attributes`."
            )
    repeated = sorted({c for c in spec.attributes if spec.attributes.count(c) > 1})
    if repeated:
        raise InputError(f"{source}: `attributes` lists {_listing(repeated)} more than once.")
    num_patients = len(patient_ids)
    for column in spec.attributes:
        conflicts = attribute_conflicts(patient, frame[column], num_patients)
        if conflicts.any():
            bad = np.flatnonzero(conflicts)
            rows = np.flatnonzero(patient == bad[0])
            values = pd.unique(frame[column].iloc[rows].astype(object))
            raise InputError(
                f"{source}: attribute {column!r} differs between records of patient "
                f"{shown_id(patient_ids[bad[0]])} (data rows {_rows_text(rows)} hold "
                f"{_listing([str(v) for v in values], 5)}; {bad.size} patient(s) in all). "
                f"Attributes describe patients: give each patient one value, or remove "
                f"{column!r} from `attributes`."
            )
    table = pd.DataFrame(
        {c: _attribute_values(frame[c]) for c in spec.attributes}, index=pd.RangeIndex(len(frame))
    )
    for column in spec.attributes:
        if not _is_numeric(frame[column]):
            table[column] = table[column].astype(str)
    return table


def _read_index(spec: MediaSpec) -> _Index:
    """Read and check the index table: labels, ids and attributes, before any record is read."""
    frame = read_table(spec.path).reset_index(drop=True)
    source = f"index '{spec.path}'"
    cols = _Columns(frame, source)
    if spec.array is None:
        cols.require(spec.path_column, "path_column")
    if (spec.label is None) == (spec.labels is None):
        raise InputError(
            f"{source}: set exactly one of `label` (one column) or `labels` (several 0/1 "
            f"columns); the index has columns {_listing(cols.names)}."
        )
    if spec.label is not None:
        cols.require(spec.label, "label")
        if spec.label_separator:
            labels, class_names = _multi_hot_from_separated(
                frame[spec.label], spec.label, spec.label_separator, source
            )
        else:
            labels, class_names = _encode_label(
                frame[spec.label], TableSpec(path=spec.path, label=spec.label), source
            )
    else:
        names = list(spec.labels or [])
        if spec.label_separator:
            raise InputError(
                f"{source}: `label_separator` splits one `label` column; with `labels` "
                "(several 0/1 columns) remove it."
            )
        if len(names) < 2 or len(set(names)) != len(names):
            raise InputError(
                f"{source}: `labels` needs at least 2 distinct 0/1 columns, got "
                f"{names}; for one column use `label`."
            )
        columns = [cols.require(c, "labels") for c in names]
        labels, class_names = _multi_hot_from_columns(frame, columns, source), tuple(columns)
    if spec.patient_id is not None:
        cols.require(spec.patient_id, "patient_id")
    if spec.record_id is not None:
        cols.require(spec.record_id, "record_id")
    for column in spec.attributes:
        cols.require(column, "attributes")
    record_ids = _record_ids(frame, spec, source)
    if spec.patient_id is None:
        patient = np.arange(len(frame), dtype=np.int64)
        patient_ids = record_ids.copy()
    else:
        patient, patient_ids = _patient_index(frame[spec.patient_id], source, spec.patient_id)
    attributes = _check_attributes(frame, spec, patient, patient_ids, source)
    return _Index(frame, source, labels, class_names, patient, patient_ids, record_ids, attributes)


def _load_index(spec: MediaSpec) -> Cohort:
    where = f"index '{spec.path}'"
    if spec.modality is None:
        raise InputError(
            f'{where}: set `modality` to "image" or "signal" so the records are read as '
            "images [C, H, W] or signals [leads, samples]."
        )
    _require_fields(spec, ("splits",), where, "to an index (only to a MedMNIST .npz)")
    if spec.modality == "image":
        _require_fields(spec, _SIGNAL_ONLY, where, "to images")
    else:
        _require_fields(spec, _IMAGE_ONLY, where, "to signals")
    index = _read_index(spec)
    n = len(index.frame)
    stacked: np.ndarray | None = None
    paths: list[Path] = []
    if spec.array is not None:
        stacked = _stacked_array(spec.array, spec.path, n)
        describe = [f"array '{spec.array}' row {i} ({where}, data row {i + 1})" for i in range(n)]
    else:
        root = spec.root if spec.root is not None else spec.path.parent
        texts = _path_text(index.frame, spec, index.source)
        paths = [Path(t) if Path(t).is_absolute() else root / t for t in texts]
        describe = [f"file '{p}' ({where}, data row {i + 1})" for i, p in enumerate(paths)]
    feature_names: tuple[str, ...]
    if spec.modality == "image":
        image_loaders = (
            [_row_loader(stacked, i, describe[i]) for i in range(n)]
            if stacked is not None
            else [_file_image_loader(p, describe[i]) for i, p in enumerate(paths)]
        )
        inputs = assemble_images(image_loaders, describe, spec)
        feature_names = ("pixels",)
    else:
        rates = _row_rates(index.frame, spec, index.source)
        signal_loaders = (
            [_stacked_signal_loader(stacked, i, describe[i], rates[i]) for i in range(n)]
            if stacked is not None
            else [_file_signal_loader(p, describe[i], rates[i]) for i, p in enumerate(paths)]
        )
        inputs, feature_names = assemble_signals(signal_loaders, describe, spec)
    cohort = Cohort(
        name=spec.name if spec.name is not None else spec.path.name.split(".")[0],
        inputs=inputs,
        labels=index.labels,
        patient=index.patient,
        patient_ids=index.patient_ids,
        record_ids=index.record_ids,
        attributes=index.attributes,
        class_names=index.class_names,
        feature_names=feature_names,
        modality=spec.modality,
        source=str(spec.path),
    )
    cohort.validate()
    return cohort


def _stacked_array(array_path: Path, index_path: Path, rows: int) -> np.ndarray:
    what = f"array '{array_path}'"
    if not array_path.is_file():
        raise InputError(
            f"{what} not found (working directory: {Path.cwd()}); check `array` in the cohort spec."
        )
    if array_path.suffix.lower() != ".npy":
        raise InputError(f"{what}: `array` must be a .npy file saved with numpy.save.")
    try:
        array = np.load(array_path, allow_pickle=False, mmap_mode="r")
    except ValueError as error:
        if _is_pickle_refusal(error):
            raise InputError(
                f"{what}: holds a pickled (object) array, and pickled arrays are refused "
                "because loading them can run code; save a numeric array instead."
            ) from error
        raise InputError(f"{what}: not a readable .npy file ({_detail(error)}).") from error
    except OSError as error:
        raise InputError(f"{what}: not a readable .npy file ({_detail(error)}).") from error
    if array.ndim < 2 or array.shape[0] != rows:
        raise InputError(
            f"{what}: has shape {array.shape}, but the index '{index_path}' has {rows} rows; "
            "the array needs one row per index row, in the same order."
        )
    if array.dtype.kind not in "biuf":
        raise InputError(f"{what}: holds {array.dtype} values; save a numeric array.")
    return array


def _file_image_loader(path: Path, what: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        suffix = path.suffix.lower()
        if suffix not in (*PILLOW_SUFFIXES, ".dcm", ".npy"):
            raise InputError(
                f"{what}: cannot read {path.suffix or 'a file without a suffix'} as an image; "
                f"miaudit reads {', '.join(PILLOW_SUFFIXES)}, .dcm and .npy."
            )
        _check_exists(path, what)
        if suffix == ".dcm":
            return _dicom_pixels(path, what)
        if suffix == ".npy":
            return _npy_pixels(path, what)
        return _pillow_pixels(path, what)

    return load


def _file_signal_loader(path: Path, what: str, fs: float | None) -> Callable[[], _Signal]:
    def load() -> _Signal:
        suffix = path.suffix.lower()
        if suffix == ".npy":
            _check_exists(path, what)
            return _npy_signal(path, what, fs)
        if suffix == ".dcm":
            _check_exists(path, what)
            return _dicom_signal(path, what)
        record = path.with_suffix("") if suffix == ".hea" else path
        header = Path(f"{record}.hea")
        if suffix in (".hea", "") or header.is_file():
            _check_exists(header, what)
            return _wfdb_signal(record, what)
        raise InputError(
            f"{what}: cannot read {path.suffix} as a signal; miaudit reads WFDB records (the "
            ".hea file or the record name), .npy arrays and DICOM waveforms (.dcm)."
        )

    return load
