"""The cohort: records, labels, patients and subgroup attributes, checked once.

Everything downstream (plan, training, scoring, disparity) indexes these arrays, so a
cohort is validated at the edge and then trusted: every record belongs to exactly one
patient, every patient has at least one record, and subgroup attributes describe patients
(constant across a patient's records), because exposure is reported per patient.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd

from miaudit.errors import InputError, shown_id, shown_ids

#: modality → number of dimensions of ``inputs`` ([N, F], [N, C, H, W], [N, L, T]).
MODALITY_NDIM: dict[str, int] = {"table": 2, "image": 4, "signal": 3}

#: Column names that :meth:`Cohort.patient_attributes` adds; attributes may not use them.
RESERVED_ATTRIBUTE_NAMES = ("patient_id", "records")


def _preview(items: Iterable[object], limit: int = 5) -> str:
    """Comma-separated first ``limit`` items and how many more, for error messages."""
    values = [str(v) for v in items]
    shown = ", ".join(repr(v) for v in values[:limit])
    if len(values) > limit:
        shown += f" (and {len(values) - limit} more)"
    return shown


def first_record_of_patient(patient: np.ndarray, num_patients: int) -> np.ndarray:
    """[P] index of each patient's first record (in record order); needs every patient present."""
    order = np.argsort(patient, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(patient[order]) != 0])
    first = order[starts]
    if first.size != num_patients:
        raise ValueError("every patient index 0..P-1 must have at least one record")
    return first


def attribute_conflicts(patient: np.ndarray, column: pd.Series, num_patients: int) -> np.ndarray:
    """[P] bool: True where the column takes more than one value among the patient's records.

    Missing values count as a value of their own, so a patient with one missing and one
    present value is a conflict too.
    """
    codes, _ = pd.factorize(column, use_na_sentinel=False)
    low = np.full(num_patients, np.iinfo(np.int64).max, dtype=np.int64)
    high = np.full(num_patients, -1, dtype=np.int64)
    np.minimum.at(low, patient, codes)
    np.maximum.at(high, patient, codes)
    return (high >= 0) & (low != high)


def float_inputs(inputs: np.ndarray) -> np.ndarray:
    """float32 inputs: uint8 pixels (a decoded image cohort) read as value / 255, so every
    recipe that does not stream batches itself gets the same numbers the conv engine does."""
    if inputs.dtype == np.uint8:
        return inputs.astype(np.float32) / np.float32(255)
    return np.ascontiguousarray(inputs, dtype=np.float32)


class PixelSource(Protocol):
    """Image files a cohort decodes once into uint8 [N, C, H, W] pixels
    (``datasets.local.decode.ImageSource``; a run caches them, ``results.pixels``)."""

    @property
    def key(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    def decode_rows(self, lo: int, hi: int) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class Cohort:
    """Records with labels, the patient each belongs to, and patient-level subgroup attributes."""

    name: str
    inputs: np.ndarray
    labels: np.ndarray
    patient: np.ndarray
    patient_ids: np.ndarray
    record_ids: np.ndarray
    attributes: pd.DataFrame
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    modality: str = "table"
    source: str = ""
    #: The feature columns as read, before encoding (table cohorts): what a user's own
    #: ``Pipeline`` preprocesses itself (``[model] inputs = "raw"``). Never ids or labels.
    table: pd.DataFrame | None = None
    #: [N] bool: the records of the dataset's official test split. Their patients are held
    #: out of every model and serve the diagnostic AUROC (a local copy of a paper cohort).
    holdout: np.ndarray | None = None
    #: Stands in for the pixels in :meth:`fingerprint` when they are decoded from files
    #: (the source's content key), so a run's identity is known before they are decoded.
    inputs_digest: str | None = None
    #: Image files not decoded yet: ``inputs`` is a placeholder of the right shape until
    #: :meth:`decoded` reads them (into a run's cache folder, or memory).
    pending: PixelSource | None = None

    # -- sizes ---------------------------------------------------------------------------
    @property
    def num_records(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def num_patients(self) -> int:
        return len(self.patient_ids)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2

    def decoded(self, pixels: np.ndarray | None = None) -> Cohort:
        """This cohort with its pixels: ``pixels`` (a run's cache) or decoded into memory."""
        if self.pending is None:
            return self
        if pixels is None:
            pixels = self.pending.decode_rows(0, self.num_records)
        if pixels.shape != self.inputs.shape or pixels.dtype != np.uint8:
            raise ValueError(f"decoded pixels {pixels.dtype}{pixels.shape} for {self.inputs.shape}")
        return replace(self, inputs=pixels, pending=None)

    def holdout_patients(self) -> np.ndarray | None:
        """[P] bool: patients with a record in the official test split (None: no split)."""
        if self.holdout is None:
            return None
        held = np.zeros(self.num_patients, dtype=bool)
        held[self.patient[np.asarray(self.holdout, dtype=bool)]] = True
        return held

    # -- derived views -------------------------------------------------------------------
    def records_per_patient(self) -> np.ndarray:
        """[P] number of records of each patient."""
        return np.bincount(self.patient, minlength=self.num_patients)

    def patient_attributes(self) -> pd.DataFrame:
        """One row per patient (index = patient index): patient_id, the attributes, records.

        Attributes are constant within a patient (checked by :meth:`validate`), so each
        patient's first record speaks for the patient. Numeric attributes stay numeric.
        """
        first = first_record_of_patient(self.patient, self.num_patients)
        table = self.attributes.iloc[first].reset_index(drop=True)
        table.insert(0, "patient_id", pd.Series(self.patient_ids, dtype=str))
        table["records"] = self.records_per_patient()
        return table

    def fingerprint(self) -> str:
        """sha256 hex of the content, so a run can tell whether it is looking at the same data."""
        digest = hashlib.sha256()

        def add(tag: str, payload: bytes) -> None:
            digest.update(tag.encode())
            digest.update(len(payload).to_bytes(8, "little"))
            digest.update(payload)

        def add_strings(tag: str, values: Iterable[object]) -> None:
            text = ("\x00NA" if _is_missing(v) else str(v) for v in values)
            add(tag, "\x1f".join(text).encode())

        add("miaudit-cohort-v1", self.modality.encode())
        arrays: list[tuple[str, np.ndarray]] = [("labels", self.labels), ("patient", self.patient)]
        if self.inputs_digest is None:
            arrays.insert(0, ("inputs", self.inputs))
        else:
            shape = f"{self.inputs.dtype.str}{self.inputs.shape}"
            add("inputs-digest", f"{shape}{self.inputs_digest}".encode())
        if self.holdout is not None:
            arrays.append(("holdout", np.asarray(self.holdout, dtype=bool)))
        for tag, array in arrays:
            array = np.ascontiguousarray(array)
            add(tag, f"{array.dtype.str}{array.shape}".encode() + array.tobytes())
        add_strings("patient_ids", self.patient_ids)
        add_strings("record_ids", self.record_ids)
        add_strings("class_names", self.class_names)
        add_strings("feature_names", self.feature_names)
        for column in self.attributes.columns:
            values = self.attributes[column]
            if _is_numeric(values):
                add(
                    f"attr:{column}:num",
                    values.to_numpy(dtype=np.float64, na_value=np.nan).tobytes(),
                )
            else:
                add_strings(f"attr:{column}:str", values)
        return digest.hexdigest()

    # -- validation ----------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`InputError` with one actionable message if the cohort is inconsistent."""
        where = f"cohort {self.name!r}" + (f" ({self.source})" if self.source else "")
        self._validate_inputs(where)
        self._validate_labels(where)
        self._validate_patients(where)
        self._validate_attributes(where)

    def _validate_inputs(self, where: str) -> None:
        if self.modality not in MODALITY_NDIM:
            raise InputError(
                f"{where}: unknown modality {self.modality!r}; use one of "
                f"{', '.join(MODALITY_NDIM)}."
            )
        inputs = self.inputs
        pixels = self.modality == "image" and isinstance(inputs, np.ndarray) and inputs.dtype == np.uint8
        if not isinstance(inputs, np.ndarray) or not (inputs.dtype == np.float32 or pixels):
            kind = inputs.dtype if isinstance(inputs, np.ndarray) else type(inputs).__name__
            raise InputError(
                f"{where}: inputs must be a float32 numpy array (images also uint8 pixels), got "
                f"{kind}; convert with np.asarray(x, dtype=np.float32)."
            )
        ndim = MODALITY_NDIM[self.modality]
        if inputs.ndim != ndim:
            raise InputError(
                f"{where}: {self.modality} inputs need {ndim} dimensions, got shape "
                f"{inputs.shape}; reshape the records or set the right modality."
            )
        n = inputs.shape[0]
        if n < 2:
            raise InputError(f"{where}: has {n} record(s); an audit needs at least 2 patients.")
        if self.modality == "table" and len(self.feature_names) != inputs.shape[1]:
            raise InputError(
                f"{where}: {len(self.feature_names)} feature names for {inputs.shape[1]} "
                "input columns; pass one name per column."
            )
        if self.holdout is not None:
            held = np.asarray(self.holdout)
            if held.dtype != bool or held.shape != (n,):
                raise InputError(f"{where}: holdout must be [N] bool, got {held.dtype} {held.shape}.")
            if held.all():
                raise InputError(
                    f"{where}: every record is in the official test split; no model could train."
                )
        if pixels:
            return  # whole bytes are always finite (and a placeholder is not read)
        finite = np.isfinite(inputs.reshape(n, -1)).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            detail = ""
            if self.modality == "table":
                cols = np.flatnonzero(~np.isfinite(inputs[bad]).all(axis=0))
                detail = f" in features {_preview(self.feature_names[c] for c in cols)}"
            raise InputError(
                f"{where}: {bad.size} record(s) have NaN or infinite inputs{detail}: records "
                f"{shown_ids(self.record_ids[bad], prefix='R-')}; impute or drop them before the audit."
            )

    def _validate_labels(self, where: str) -> None:
        labels, n, k = self.labels, self.num_records, self.num_classes
        if k < 2:
            raise InputError(
                f"{where}: needs at least 2 class names, got {list(self.class_names)}."
            )
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64:
            kind = labels.dtype if isinstance(labels, np.ndarray) else type(labels).__name__
            raise InputError(f"{where}: labels must be an int64 numpy array, got {kind}.")
        if labels.ndim == 1:
            if labels.shape[0] != n:
                raise InputError(f"{where}: {labels.shape[0]} labels for {n} records.")
            bad = np.flatnonzero((labels < 0) | (labels >= k))
            if bad.size:
                raise InputError(
                    f"{where}: labels must lie in 0..{k - 1} (one per class name); records "
                    f"{shown_ids(self.record_ids[bad], prefix='R-')} have {_preview(labels[bad])}."
                )
            if np.unique(labels).size < 2:
                raise InputError(
                    f"{where}: every record has class {self.class_names[labels[0]]!r}; an "
                    "audit needs at least 2 classes present. Check the label column."
                )
        elif labels.ndim == 2:
            if labels.shape != (n, k):
                raise InputError(
                    f"{where}: multi-label labels must have shape (records, classes) = "
                    f"({n}, {k}), got {labels.shape}."
                )
            if not np.isin(labels, (0, 1)).all():
                raise InputError(f"{where}: multi-label labels must be 0/1 (multi-hot).")
            if labels.min() == labels.max():
                raise InputError(
                    f"{where}: every multi-label entry is {labels.min()}; an audit needs both "
                    "positive and negative labels."
                )
        else:
            raise InputError(f"{where}: labels must be [N] or [N, K], got shape {labels.shape}.")

    def _validate_patients(self, where: str) -> None:
        n, patient = self.num_records, self.patient
        if (
            not isinstance(patient, np.ndarray)
            or patient.dtype != np.int64
            or patient.shape != (n,)
        ):
            shape = getattr(patient, "shape", None)
            dtype = getattr(patient, "dtype", type(patient).__name__)
            raise InputError(
                f"{where}: patient must be an int64 array with one entry per record ({n}), "
                f"got dtype {dtype} and shape {shape}."
            )
        p = self.num_patients
        if len(self.record_ids) != n:
            raise InputError(f"{where}: {len(self.record_ids)} record ids for {n} records.")
        if patient.min() < 0 or patient.max() >= p:
            raise InputError(
                f"{where}: patient indices must lie in 0..{p - 1} (one per patient id), got "
                f"{patient.min()}..{patient.max()}."
            )
        empty = np.flatnonzero(np.bincount(patient, minlength=p) == 0)
        if empty.size:
            raise InputError(
                f"{where}: patients {shown_ids(self.patient_ids[empty])} have no records; "
                "patient indices must be contiguous 0..P-1 (use pd.factorize on the ids)."
            )
        if p < 2:
            raise InputError(f"{where}: has 1 patient; an audit needs at least 2 patients.")
        for label, ids in (("patient", self.patient_ids), ("record", self.record_ids)):
            duplicated = pd.Series(ids).duplicated()
            if duplicated.any():
                raise InputError(
                    f"{where}: {label} ids must be unique; repeated: "
                    f"{shown_ids(pd.unique(np.asarray(ids)[duplicated.to_numpy()]), prefix=label[0].upper() + '-')}."
                )

    def _validate_attributes(self, where: str) -> None:
        attributes, n = self.attributes, self.num_records
        if not isinstance(attributes, pd.DataFrame) or len(attributes) != n:
            rows = len(attributes) if isinstance(attributes, pd.DataFrame) else "no DataFrame"
            raise InputError(f"{where}: attributes must be a DataFrame with {n} rows, got {rows}.")
        if (
            not isinstance(attributes.index, pd.RangeIndex)
            or attributes.index.start != 0
            or attributes.index.step != 1
        ):
            raise InputError(
                f"{where}: attributes need a 0..N-1 RangeIndex; call reset_index(drop=True)."
            )
        for column in attributes.columns:
            if column in RESERVED_ATTRIBUTE_NAMES:
                raise InputError(
                    f"{where}: attribute {column!r} clashes with a column miaudit adds to the "
                    "patient table; rename the attribute."
                )
        if attributes.columns.duplicated().any():
            dup = attributes.columns[attributes.columns.duplicated()]
            raise InputError(f"{where}: attribute columns repeat: {_preview(dup)}.")
        ids = {
            "patient id": np.asarray(self.patient_ids, dtype=object).astype(str)[self.patient],
            "record id": np.asarray(self.record_ids, dtype=object).astype(str),
        }
        for column in attributes.columns:
            values = attributes[column].astype(str).to_numpy()
            for what, id_values in ids.items():
                if n and np.array_equal(values, id_values):
                    raise InputError(
                        f"{where}: attribute {column!r} holds the {what} of every record; an "
                        "identifier is not a subgroup and would be written in clear where the "
                        f"run's ids are pseudonymised: remove {column!r} from the attributes."
                    )
        for column in attributes.columns:
            conflicts = attribute_conflicts(self.patient, attributes[column], self.num_patients)
            if conflicts.any():
                bad = np.flatnonzero(conflicts)
                rows = np.flatnonzero(self.patient == bad[0])
                values = pd.unique(attributes[column].iloc[rows].astype(object))
                raise InputError(
                    f"{where}: attribute {column!r} differs between records of the same patient "
                    f"({bad.size} patient(s), e.g. {shown_id(self.patient_ids[bad[0]])} has "
                    f"{_preview(values)}). Attributes describe patients: give each patient one "
                    f"value (e.g. the first record's) or remove {column!r} from the attributes."
                )


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _is_numeric(values: pd.Series) -> bool:
    """Numeric but not boolean: the disparity module bins these instead of grouping them."""
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
