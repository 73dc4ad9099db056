"""Reading an official distribution under ``root``: its files, their columns, the cohort built.

Every adapter of :mod:`miaudit.datasets.local` goes through these, so a missing or
malformed file is reported the same way for each dataset: the file of the layout that is
missing (and what it should hold), the column it lacks, the rows that hold a value the
dataset's coding does not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort
from miaudit.datasets.local.decode import ImageSource, Reader, read_image
from miaudit.datasets.media.files import _detail
from miaudit.datasets.media.optional import import_openpyxl
from miaudit.datasets.tabular import MISSING, _listing, _patient_index, _rows_text, read_table
from miaudit.errors import InputError, shown_id

#: Image size and the ECG sampling rate of the paper's preprocessing.
PAPER_IMAGE_SIZE = (64, 64)


@dataclass(frozen=True)
class Layout:
    """A dataset's copy under ``root``: finds its files and reads its tables, with messages
    that name the file of the official layout."""

    dataset: str
    root: Path

    def __post_init__(self) -> None:
        root = Path(self.root)
        if not root.is_dir():
            state = "is a file, not a folder" if root.is_file() else "does not exist"
            raise InputError(
                f"{self.dataset}: cohort.root '{root}' {state}; set it to the folder of your "
                f"local copy (see `miaudit datasets` for what {self.dataset} expects there)."
            )

    @property
    def where(self) -> str:
        return f"{self.dataset} under '{self.root}'"

    def file(self, *candidates: str, holds: str) -> Path:
        """The first of ``candidates`` (paths relative to root) that exists, else one error."""
        for candidate in candidates:
            path = Path(self.root) / candidate
            if path.is_file():
                return path
        names = " or ".join(f"'{c}'" for c in candidates)
        raise InputError(
            f"{self.where}: {names} not found; it should hold {holds}. Point cohort.root at "
            "the top folder of the official distribution (see `miaudit datasets`)."
        )

    def optional(self, *candidates: str) -> Path | None:
        """The first of ``candidates`` that exists, or None."""
        for candidate in candidates:
            path = Path(self.root) / candidate
            if path.is_file():
                return path
        return None

    def table(self, path: Path, columns: Sequence[str], holds: str,
              also: Sequence[str] | None = None) -> pd.DataFrame:
        """A CSV of the layout read with every column as text (ids stay as written; blanks
        are missing), checked for ``columns``. With ``also`` only ``columns`` and those of
        ``also`` the file has are read (the large tables: EMBED, MIMIC)."""
        keep = None if also is None else [*columns, *also]
        frame = read_table(path, text_columns=_all_columns(path), columns=keep)
        return self._with_columns(frame, path, columns, holds)

    def workbook(self, path: Path, columns: Sequence[str], holds: str) -> pd.DataFrame:
        """The first sheet of an .xlsx table of the layout, every cell as text, checked for
        ``columns`` (a distribution that ships a table as Excel, e.g. CheXpert's
        demographics)."""
        import_openpyxl(f"{self.where}: '{path.name}'")
        try:
            frame = pd.read_excel(path, dtype=str, engine="openpyxl")
        except Exception as error:  # openpyxl and zipfile raise many types for a damaged file
            raise InputError(
                f"{self.where}: '{path.name}' is not a readable Excel workbook ({_detail(error)}); "
                "download it again, or save it as CSV (UTF-8) under the same name with .csv."
            ) from error
        frame.columns = [str(c).strip() for c in frame.columns]
        return self._with_columns(frame, path, columns, holds)

    def _with_columns(self, frame: pd.DataFrame, path: Path, columns: Sequence[str],
                      holds: str) -> pd.DataFrame:
        """``frame`` read from ``path``, or the error naming the ``columns`` it lacks."""
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(
                f"{self.where}: '{path.relative_to(self.root) if path.is_relative_to(self.root) else path}' "
                f"lacks column(s) {_listing(missing)}; it should hold {holds}. Its columns: "
                f"{_listing(list(frame.columns))}."
            )
        return frame.reset_index(drop=True)

    def bad_values(self, path: Path, column: str, rows: np.ndarray, values: pd.Series,
                   expected: str) -> InputError:
        """The error for rows whose ``column`` holds a value outside the dataset's coding."""
        shown = _listing([str(v) for v in pd.unique(values.iloc[rows].astype(object))], 5)
        return InputError(
            f"{self.where}: '{path.name}' column {column!r} holds {shown} in data rows "
            f"{_rows_text(rows)}; the official coding is {expected}. Check that the file is "
            "the unmodified original."
        )


def _all_columns(path: Path) -> tuple[str, ...]:
    """The header of a CSV (every column is then read as text)."""
    head = pd.read_csv(path, nrows=0, compression="infer")
    return tuple(str(c) for c in head.columns)


def patients(values: pd.Series, where: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Each record's patient index and the patient ids as text, as written in the files."""
    return _patient_index(values, where, column)


def first_per_patient(patient: np.ndarray, values: pd.Series | np.ndarray,
                      order: np.ndarray | None = None) -> np.ndarray:
    """Each record's patient's first value (by ``order``, else record order): a patient
    attribute from a column that can change between a patient's visits (e.g. age)."""
    values = np.asarray(values, dtype=object)
    order = np.arange(len(values)) if order is None else np.asarray(order)
    ranked = np.lexsort((order, patient))
    first = np.empty(int(patient.max()) + 1, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, np.diff(patient[ranked]) != 0])
    first[patient[ranked[starts]]] = ranked[starts]
    return values[first[patient]]


def any_per_patient(patient: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Each record's patient's 'any record has it' (an attribute from a record finding)."""
    hit = np.zeros(int(patient.max()) + 1, dtype=bool)
    np.logical_or.at(hit, patient, np.asarray(flags, dtype=bool))
    return hit[patient]


def text_attribute(values: pd.Series | np.ndarray) -> np.ndarray:
    """Attribute values as text, missing as 'missing' (the tables' convention)."""
    series = pd.Series(np.asarray(values, dtype=object))
    out = series.astype(str).to_numpy(dtype=object)
    out[series.isna().to_numpy() | (series.astype(str).str.strip() == "").to_numpy()] = MISSING
    return out


#: The paper's group for every race its substring rules do not name (and for none recorded).
OTHER_RACE = "Other/Unknown"


def race_groups(values: pd.Series, needles: Sequence[tuple[str, str]]) -> np.ndarray:
    """The paper's race grouping: each (substring, group) in turn, a later match overriding
    an earlier one (so "Black, White" is White), anything unmatched or missing
    :data:`OTHER_RACE`. Case-sensitive, as the notebooks' ``str.contains``."""
    text = pd.Series(values, dtype=object)
    out = np.full(len(text), OTHER_RACE, dtype=object)
    for needle, group in needles:
        out[text.str.contains(needle, regex=False, na=False).to_numpy(dtype=bool)] = group
    return out


def image_cohort(
    name: str,
    *,
    source: str,
    paths: Sequence[Path],
    record_ids: np.ndarray,
    patient: np.ndarray,
    patient_ids: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    attributes: pd.DataFrame,
    holdout: np.ndarray | None,
    channels: int,
    size: tuple[int, int] = PAPER_IMAGE_SIZE,
    reader: Reader = read_image,
    reader_name: str = "image",
) -> Cohort:
    """An image cohort whose pixels are decoded later (a run's cache) or by ``decoded()``.

    Until then ``inputs`` is a read-only placeholder of the final shape, which costs no
    memory; the fingerprint uses the files' content key instead. ``load_local`` validates it.
    """
    describe = tuple(f"file '{p}' ({name} record {shown_id(r, 'R-')})"
                     for p, r in zip(paths, record_ids, strict=True))
    pixels = ImageSource(tuple(Path(p) for p in paths), describe, size, channels, reader, reader_name)
    placeholder = np.broadcast_to(np.zeros((), dtype=np.uint8), pixels.shape)
    cohort = Cohort(
        name=name,
        inputs=placeholder,
        labels=np.ascontiguousarray(labels, dtype=np.int64),
        patient=np.ascontiguousarray(patient, dtype=np.int64),
        patient_ids=np.asarray(patient_ids, dtype=object),
        record_ids=np.asarray(record_ids, dtype=object),
        attributes=attributes.reset_index(drop=True),
        class_names=tuple(class_names),
        feature_names=("pixels",),
        modality="image",
        source=source,
        holdout=None if holdout is None else np.asarray(holdout, dtype=bool),
        inputs_digest=pixels.key,
        pending=pixels,
    )
    return cohort  # validated once, by load_local
