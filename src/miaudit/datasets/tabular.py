"""CSV and Parquet cohorts: read a table, encode its features, and check it.

Encoding is fitted once on the whole cohort and applied to every record alike:

* numeric features: missing values → the column median plus a ``<col>:missing`` 0/1
  column; then standardised with the cohort's mean and standard deviation;
* categorical features: one-hot, with ``missing`` as a level of its own;
* constant columns (after encoding) are dropped.

Why fitting on the whole cohort carries no membership information: every reference
model sees the same transform, whether a patient is IN or OUT of its training half, so
the transform is the same function for all M models and cannot differ between IN and
OUT. Fitting it per model on the IN half would make the preprocessing itself depend on
membership, and the audit would partly measure the preprocessing, not the training.
"""

from __future__ import annotations

import codecs
import difflib
import gzip
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pydantic

from miaudit.cohort import Cohort
from miaudit.config.base import Strict
from miaudit.errors import InputError, shown_id

#: The level name given to missing values of categorical features and attributes.
MISSING = "missing"

_TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t"}
#: A numeric label with more distinct values than this is a count or measurement, not a class.
MAX_NUMERIC_CLASSES = 20
#: Column names that say "identifier": id, subject_id, visit-id, mrn, uuid, PatientID.
ID_NAME = re.compile(
    r"(?i:(^|[_\s.-])(id|mrn|uuid|guid|identifier)$|^(id|mrn|uuid|guid)([_\s.-]|$))|[a-z](Id|ID)$"
)
_PARQUET_SUFFIXES = (".parquet", ".pq")


class TableSpec(Strict):
    """Which columns of a table are the label, ids, features and subgroup attributes."""

    path: Path
    label: str
    patient_id: str | None = None
    """None: each row is its own patient."""
    record_id: str | None = None
    """None: records are named by their row number (0-based)."""
    features: list[str] | None = None
    """None: every column except the label, the ids and ``exclude`` (attributes included)."""
    exclude: list[str] = []
    attributes: list[str] = []
    positive: str | None = None
    """The label value that is class 1; with more than two values, the rest become class 0."""
    categorical: list[str] | None = None
    """Numeric columns to one-hot as well; text, boolean and category columns always are."""
    max_categories: int = pydantic.Field(50, ge=2)

    @pydantic.field_validator("positive", mode="before")
    @classmethod
    def _positive_as_text(cls, value: Any) -> Any:
        """Accept ``positive = 1`` in a config as well as ``positive = "1"``."""
        if isinstance(value, bool):
            return str(value)
        if isinstance(value, int | float):
            return _value_text(value)
        return value


# -- reading ------------------------------------------------------------------------------


def _table_kind(path: Path) -> tuple[str, bool]:
    """('csv'|'tsv'|'parquet', gzipped) from the file name, or InputError."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    suffix = suffixes[-2] if gz and len(suffixes) >= 2 else (suffixes[-1] if suffixes else "")
    if suffix in _TEXT_SUFFIXES:
        return suffix[1:], gz
    if suffix in _PARQUET_SUFFIXES and not gz:
        return "parquet", False
    raise InputError(
        f"file '{path}': cannot read {''.join(path.suffixes) or 'a file without a suffix'}; "
        "miaudit reads .csv, .tsv (optionally .gz) and .parquet tables. Export the table "
        "to one of these and point the cohort path at it."
    )


def _open_bytes(path: Path, gz: bool) -> IO[bytes]:
    return gzip.open(path, "rb") if gz else open(path, "rb")


def first_invalid_utf8(path: Path, gz: bool = False) -> tuple[int, int, bytes] | None:
    """(byte offset, line number, offending bytes) of the first invalid UTF-8, or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    lines = 1
    with _open_bytes(path, gz) as handle:
        while True:
            chunk = handle.read(1 << 20)
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                buffer = error.object
                bad_at = offset - pending + error.start
                line = lines + buffer[: error.start].count(b"\n")
                return bad_at, line, bytes(buffer[error.start : error.end])
            if not chunk:
                return None
            lines += chunk.count(b"\n")
            offset += len(chunk)


def read_table(
    path: str | Path, text_columns: Sequence[str] = (), columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read a .csv/.tsv(.gz) or .parquet file, turning every failure into one clear message.

    ``text_columns`` (the id columns) are read as written: "007" stays "007", never 7.
    ``columns``: read only those of them the file has (a large table's other columns are
    never held in memory).
    """
    path = Path(path)
    kind, gz = _table_kind(path)
    if not path.exists():
        raise InputError(
            f"file '{path}' not found (working directory: {Path.cwd()}); check the cohort "
            "path in the config."
        )
    if not path.is_file():
        raise InputError(
            f"'{path}' is a directory, not a table file; point the cohort path at a file."
        )
    if path.stat().st_size == 0:
        raise InputError(f"file '{path}' is empty (0 bytes); export the table again.")
    if kind == "parquet":
        frame = _read_parquet(path)
        if columns is not None:
            frame = frame[[c for c in frame.columns if str(c) in set(columns)]]
    else:
        frame = _read_text(path, _TEXT_SUFFIXES[f".{kind}"], gz, tuple(text_columns), columns)
    if frame.shape[1] == 0:
        raise InputError(f"file '{path}' has no columns; export the table again with a header row.")
    if len(frame) == 0:
        raise InputError(
            f"file '{path}' has a header ({frame.shape[1]} columns) but no data rows; "
            "export the table again with its records."
        )
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several unrelated types for bad files
        raise InputError(
            f"file '{path}' is not a readable Parquet file ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no detail'}); write it again "
            "with pandas.DataFrame.to_parquet or pyarrow."
        ) from error


def _read_text(path: Path, sep: str, gz: bool, text_columns: tuple[str, ...] = (),
               columns: Sequence[str] | None = None) -> pd.DataFrame:
    compression = "gzip" if gz else None
    wanted = None if columns is None else set(columns)
    what = "tab-separated" if sep == "\t" else "comma-separated"
    try:
        frame = pd.read_csv(
            path,
            sep=sep,
            encoding="utf-8",
            low_memory=False,
            compression=compression,
            dtype=dict.fromkeys(text_columns, str) or None,
            keep_default_na=True,
            usecols=None if wanted is None else (lambda c: c in wanted),
        )
        header = pd.read_csv(
            path,
            sep=sep,
            encoding="utf-8",
            header=None,
            nrows=1,
            dtype=str,
            compression=compression,
        )
    except UnicodeDecodeError as error:
        found = first_invalid_utf8(path, gz)
        where = (
            f"byte 0x{found[2][:1].hex()} at byte offset {found[0]} (line {found[1]})"
            if found
            else "an invalid byte"
        )
        raise InputError(
            f"file '{path}' is not UTF-8 text: {where}. Save it as UTF-8 (e.g. "
            f"`iconv -f latin1 -t utf-8 '{path.name}' > fixed{''.join(path.suffixes)}`, or "
            "'CSV UTF-8' in a spreadsheet program)."
        ) from error
    except pd.errors.EmptyDataError as error:
        raise InputError(
            f"file '{path}' is empty (no header row); export the table again."
        ) from error
    except pd.errors.ParserError as error:
        detail = str(error).strip().splitlines()[-1]
        raise InputError(
            f"file '{path}' could not be parsed as {what} text ({detail}); check the "
            "delimiter and quoting of that line."
        ) from error
    except (OSError, EOFError, zlib.error) as error:
        if gz:
            raise InputError(
                f"file '{path}' is not a complete gzip file ({error}); compress it again with "
                "gzip, or remove the .gz suffix if it is plain text."
            ) from error
        raise InputError(
            f"file '{path}' cannot be read ({getattr(error, 'strerror', None) or error}); "
            "check that it exists and that you may read it."
        ) from error
    names = [str(v) for v in header.iloc[0].tolist()] if len(header) else []
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(
            f"file '{path}': column names repeat in the header: {_listing(repeated)}; give "
            "every column its own name."
        )
    return frame


# -- encoding -----------------------------------------------------------------------------


def _listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def _rows_text(rows: np.ndarray, limit: int = 5) -> str:
    """Data row numbers as a user counts them (1 = first row below the header)."""
    shown = ", ".join(str(r + 1) for r in rows[:limit])
    return shown + (f" (and {rows.size - limit} more)" if rows.size > limit else "")


def _value_text(value: Any) -> str:
    """Text of a label/id/category value; integral floats print without '.0'."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


class _Columns:
    """Column lookups that fail with the file, the role, and close matches."""

    def __init__(self, frame: pd.DataFrame, source: str) -> None:
        self.names = [str(c) for c in frame.columns]
        self.source = source

    def require(self, column: str, role: str) -> str:
        if column in self.names:
            return column
        hint = ""
        folded = [n for n in self.names if n.casefold() == column.casefold()]
        close = folded or difflib.get_close_matches(column, self.names, n=3, cutoff=0.6)
        if close:
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?"
        if len(self.names) == 1 and any(s in self.names[0] for s in (";", ",", "\t", "|")):
            hint += (
                f" The file has a single column {self.names[0]!r}: its delimiter does not match "
                "the suffix (.csv is comma-separated, .tsv tab-separated)."
            )
        raise InputError(
            f"{self.source}: column {column!r} ({role}) not found.{hint} The table has "
            f"{len(self.names)} columns: {_listing(self.names)}. Fix `{role}` in the cohort spec."
        )


def _encode_label(
    values: pd.Series, spec: TableSpec, source: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """int64 class index per record and the class names (sorted values, or other/positive)."""
    column = spec.label
    missing = values.isna().to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        raise InputError(
            f"{source}: label column {column!r} is empty in {rows.size} row(s): data rows "
            f"{_rows_text(rows)}. Fill in the label or drop those rows."
        )
    if pd.api.types.is_float_dtype(values) and not np.all(np.mod(values.to_numpy(float), 1) == 0):
        raise InputError(
            f"{source}: label column {column!r} holds non-integer numbers (e.g. "
            f"{values[np.mod(values.to_numpy(float), 1) != 0].iloc[0]}); miaudit audits "
            "classifiers: use a class column, or bin this one into classes first."
        )
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(np.float64)
        uniques = np.unique(numbers)
        if uniques.size > MAX_NUMERIC_CLASSES and spec.positive is None:
            raise InputError(
                f"{source}: label column {column!r} holds {uniques.size} different numbers "
                f"({_listing([_value_text(v) for v in uniques[:4]], 4)}, …), which reads as a "
                "count or a measurement, not a class. Use a binary or categorical column, bin "
                "this one into classes first, or set `positive = VALUE` to audit one value "
                "against all others."
            )
        names = [_value_text(v) for v in uniques]
        index = np.searchsorted(uniques, numbers)
    else:
        text = values.astype(str).to_numpy(dtype=object)
        names_arr, index = _sorted_codes(text)
        names = [str(n) for n in names_arr]
        folded: dict[str, list[str]] = {}
        for name in names:
            folded.setdefault(name.strip().casefold(), []).append(name)
        alike = [group for group in folded.values() if len(group) > 1]
        if alike:
            raise InputError(
                f"{source}: label column {column!r} writes one class in several ways: "
                f"{_listing(alike[0])} differ only in case or spaces, and would be "
                f"{len(alike[0])} classes. Write each class one way in the data."
            )
    index = np.asarray(index, dtype=np.int64)
    if spec.positive is not None:
        if spec.positive not in names:
            raise InputError(
                f"{source}: positive = {spec.positive!r} is not a value of label column "
                f"{column!r}, which holds {_listing(names)}. Set `positive` to one of them."
            )
        hit = index == names.index(spec.positive)
        index = hit.astype(np.int64)
        others = [n for n in names if n != spec.positive]
        negative = others[0] if len(others) == 1 else f"not {spec.positive}"
        names = [negative, spec.positive]
    if len(names) < 2 or np.unique(index).size < 2:
        raise InputError(
            f"{source}: label column {column!r} has a single class ({names[0]!r} in every "
            "row); an audit needs at least two classes. Check the label column and the rows."
        )
    return index, tuple(names)


def _patient_index(values: pd.Series, source: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Patient index per record (order of first appearance) and the patient ids as text."""
    missing = values.isna().to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        raise InputError(
            f"{source}: patient id column {column!r} is empty in {rows.size} row(s): data "
            f"rows {_rows_text(rows)}. Every record needs its patient's id."
        )
    codes, uniques = pd.factorize(values, sort=False)
    ids = _as_text(pd.Series(uniques))
    return codes.astype(np.int64), ids


def _record_ids(frame: pd.DataFrame, spec: TableSpec, source: str) -> np.ndarray:
    if spec.record_id is None:
        return np.array([str(i) for i in range(len(frame))], dtype=object)
    values = frame[spec.record_id]
    missing = values.isna().to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        raise InputError(
            f"{source}: record id column {spec.record_id!r} is empty in data rows "
            f"{_rows_text(rows)}; fill it in or leave `record_id` unset to use row numbers."
        )
    ids = _as_text(values)
    repeated = pd.Series(ids).duplicated(keep=False).to_numpy()
    if repeated.any():
        rows = np.flatnonzero(repeated)
        raise InputError(
            f"{source}: record id column {spec.record_id!r} repeats values (e.g. "
            f"{shown_id(ids[rows[0]], 'R-')} in data rows {_rows_text(rows[ids[rows] == ids[rows[0]]])}); "
            "record ids must be unique."
        )
    return ids


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _encode_numeric(
    values: pd.Series, column: str, source: str
) -> tuple[list[np.ndarray], list[str]]:
    """Median-impute (+ missing indicator) and standardise with whole-cohort statistics."""
    x = values.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(x)
    if infinite.any():
        rows = np.flatnonzero(infinite)
        raise InputError(
            f"{source}: feature column {column!r} has infinite values in data rows "
            f"{_rows_text(rows)}; replace them with a number or leave the cells empty (missing)."
        )
    missing = np.isnan(x)
    blocks: list[np.ndarray] = []
    names: list[str] = []
    if missing.all():
        return blocks, names
    if missing.any():
        x = np.where(missing, np.median(x[~missing]), x)
    with np.errstate(over="ignore", invalid="ignore"):
        std = x.std()
    if not np.isfinite(std):
        row = int(np.argmax(np.abs(x)))
        raise InputError(
            f"{source}: feature column {column!r} holds values too large to standardise (e.g. "
            f"{x[row]:.3g} in data row {row + 1}); fix the value or rescale the column (other "
            "units) so that its values stay below about 1e150."
        )
    if std > 0:
        blocks.append((x - x.mean()) / std)
        names.append(column)
    if missing.any():
        blocks.append(missing.astype(np.float64))
        names.append(f"{column}:{MISSING}")
    return blocks, names


def _as_text(values: pd.Series) -> np.ndarray:
    """Values as an object array of text; whole floats print without '.0' (ids, levels)."""
    missing = values.isna().to_numpy()
    if pd.api.types.is_float_dtype(values):
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)[~missing]
        if np.all(np.mod(x, 1) == 0) and np.all(np.abs(x) < 2**53):
            whole = np.zeros(len(values), dtype=np.int64)
            whole[~missing] = x.astype(np.int64)
            values = pd.Series(whole)
    return values.astype(str).to_numpy(dtype=object)


def _category_text(values: pd.Series) -> np.ndarray:
    """Values as text with missing → 'missing'."""
    text = _as_text(values)
    text[values.isna().to_numpy()] = MISSING
    return text


def _sorted_codes(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(levels sorted as text, code per value): np.unique's answer via hashing, not sorting N."""
    codes, uniques = pd.factorize(text)
    uniques = np.asarray(uniques, dtype=object)
    order = np.argsort(uniques.astype(str), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return uniques[order], rank[codes].astype(np.int64)


def _encode_categorical(
    values: pd.Series, column: str, source: str, max_categories: int
) -> tuple[list[np.ndarray], list[str]]:
    """One-hot, levels sorted as text, 'missing' a level of its own; constant → nothing."""
    text = _category_text(values)
    levels, codes = _sorted_codes(text)
    if levels.size > max_categories:
        hint = ""
        present = values.dropna()
        numeric = pd.to_numeric(present.astype(str), errors="coerce")
        if len(present) and numeric.notna().mean() >= 0.9:
            odd = present[numeric.isna().to_numpy()].astype(str).unique()[:3]
            hint = (
                f" Most of its values are numbers; the cells {_listing(list(odd))} keep it "
                "from being read as numeric: clean them (or leave them empty)."
            )
        raise InputError(
            f"{source}: categorical feature column {column!r} has {levels.size} distinct values "
            f"(more than max_categories = {max_categories}), which looks like an identifier "
            f"or free text.{hint} If it identifies patients set `patient_id = {column!r}` "
            "(or `record_id` for records); otherwise add it to `exclude`, or raise "
            "`max_categories`."
        )
    if levels.size < 2:
        return [], []
    onehot = codes[:, None] == np.arange(levels.size)[None, :]
    return list(onehot.T.astype(np.float64)), [f"{column}={level}" for level in levels]


def _attribute_values(values: pd.Series) -> np.ndarray:
    """Numeric attributes stay numeric (the disparity module bins them); others become text."""
    if _is_numeric(values):
        if pd.api.types.is_integer_dtype(values) and not values.isna().any():
            return values.to_numpy(dtype=np.int64)
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return _category_text(values)


def _identifier_reason(name: str, values: pd.Series) -> str | None:
    """Why a column looks like an identifier (named like one, or whole numbers unique per
    row), or None."""
    if ID_NAME.search(name):
        return "named like an identifier"
    present = values.dropna()
    if len(present) >= 20 and pd.api.types.is_integer_dtype(present) and present.is_unique:
        return "whole numbers, a different one in every row"
    return None


def _feature_columns(cols: _Columns, spec: TableSpec, frame: pd.DataFrame) -> list[str]:
    ids = {c for c in (spec.patient_id, spec.record_id) if c is not None}
    for column in spec.exclude:
        cols.require(column, "exclude")
    if spec.features is None:
        dropped = {spec.label, *ids, *spec.exclude}
        chosen = [c for c in cols.names if c not in dropped]
        for column in chosen:
            why = _identifier_reason(column, frame[column])
            if why is not None:
                raise InputError(
                    f"{cols.source}: column {column!r} looks like an identifier ({why}), and "
                    "an identifier is never a feature. If it names patients set "
                    f"`patient_id = {column!r}` (records of one patient then go IN or OUT "
                    f"together), if it names records set `record_id = {column!r}`, otherwise "
                    "add it to `exclude`; to use it as a feature after all, list it in "
                    "`features`."
                )
        return chosen
    features = [cols.require(c, "features") for c in spec.features]
    repeated = sorted({c for c in features if features.count(c) > 1})
    if repeated:
        raise InputError(
            f"{cols.source}: `features` names {_listing(repeated)} more than once; list each column once."
        )
    if spec.label in features:
        raise InputError(
            f"{cols.source}: the label column {spec.label!r} is listed in `features`; it would "
            "hand the model the answer. Remove it from `features`."
        )
    clash = sorted(ids & set(features))
    if clash:
        raise InputError(
            f"{cols.source}: id column(s) {_listing(clash)} listed in `features`; identifiers "
            "are not features. Remove them from `features`."
        )
    clash = sorted(set(spec.exclude) & set(features))
    if clash:
        raise InputError(
            f"{cols.source}: {_listing(clash)} listed in both `features` and `exclude`; keep "
            "each column in one of them."
        )
    return features


def coerce_spec(spec: TableSpec | dict[str, Any], source: str = "") -> TableSpec:
    """A TableSpec from a spec or a plain dict, with pydantic errors as one InputError."""
    if isinstance(spec, TableSpec):
        return spec
    try:
        return TableSpec.model_validate(spec)
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"`{'.'.join(str(p) for p in e['loc']) or 'spec'}`: {e['msg']}" for e in error.errors()
        )
        where = f"{source}: " if source else ""
        raise InputError(f"{where}invalid cohort spec: {problems}.") from error


def cohort_from_frame(
    df: pd.DataFrame,
    spec: TableSpec | dict[str, Any],
    *,
    name: str | None = None,
    source: str | None = None,
) -> Cohort:
    """Encode a table into a validated :class:`Cohort` following ``spec`` (see the module doc)."""
    if isinstance(spec, dict) and "path" not in spec:
        spec = {**spec, "path": source or name or "table"}
    spec = coerce_spec(spec, source or "")
    source = source if source is not None else str(spec.path)
    name = name if name is not None else spec.path.name.split(".")[0]
    df = df.copy()
    df.columns = [str(c) for c in df.columns]
    df = df.reset_index(drop=True)
    if len(df) == 0:
        raise InputError(
            f"{source}: the table has no rows; point the cohort at a table with records."
        )
    cols = _Columns(df, source)

    cols.require(spec.label, "label")
    if spec.patient_id is not None:
        cols.require(spec.patient_id, "patient_id")
    if spec.record_id is not None:
        cols.require(spec.record_id, "record_id")
    attributes = [cols.require(c, "attributes") for c in spec.attributes]
    forced = {cols.require(c, "categorical") for c in spec.categorical or []}
    features = _feature_columns(cols, spec, df)
    if spec.label in attributes:
        raise InputError(
            f"{source}: the label column {spec.label!r} is listed in `attributes`; subgroups "
            "are defined by patient attributes, not by the label. Remove it."
        )

    labels, class_names = _encode_label(df[spec.label], spec, source)
    record_ids = _record_ids(df, spec, source)
    if spec.patient_id is None:
        patient = np.arange(len(df), dtype=np.int64)
        patient_ids = record_ids.copy()
    else:
        patient, patient_ids = _patient_index(df[spec.patient_id], source, spec.patient_id)

    blocks: list[np.ndarray] = []
    feature_names: list[str] = []
    for column in features:
        values = df[column]
        if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(
            values
        ):
            raise InputError(
                f"{source}: feature column {column!r} holds dates or durations; turn it into a "
                "number (e.g. days since admission) or add it to `exclude`."
            )
        if _is_numeric(values) and column not in forced:
            new_blocks, new_names = _encode_numeric(values, column, source)
        else:
            new_blocks, new_names = _encode_categorical(values, column, source, spec.max_categories)
        blocks.extend(new_blocks)
        feature_names.extend(new_names)
    if not blocks:
        raise InputError(
            f"{source}: no usable feature columns (all {len(features)} are constant or empty); "
            "list the columns that describe the records in `features`."
        )
    inputs = np.stack(blocks, axis=1).astype(np.float32)

    attribute_frame = pd.DataFrame(
        {c: _attribute_values(df[c]) for c in attributes}, index=pd.RangeIndex(len(df))
    )
    for c in attributes:
        if not _is_numeric(df[c]):
            attribute_frame[c] = attribute_frame[c].astype(str)
    cohort = Cohort(
        name=name,
        inputs=inputs,
        labels=labels,
        patient=patient,
        patient_ids=patient_ids,
        record_ids=record_ids,
        attributes=attribute_frame,
        class_names=class_names,
        feature_names=tuple(feature_names),
        modality="table",
        source=source,
        table=df[features].reset_index(drop=True),
    )
    cohort.validate()
    return cohort


def load_table_cohort(spec: TableSpec | dict[str, Any]) -> Cohort:
    """Read the spec's file and encode it into a validated cohort named after the file."""
    spec = coerce_spec(spec)
    ids = [c for c in (spec.patient_id, spec.record_id) if c is not None]
    frame = read_table(spec.path, ids)
    return cohort_from_frame(frame, spec, name=spec.path.name.split(".")[0], source=str(spec.path))
