"""The deployed model's outputs on the cohort, and who trained it (the roster).

The deployed (released) model is what ``miaudit audit-model`` examines: its ``[target]``
table names it, and in that audit it is the one target model, scored against the
references. (``miaudit.target`` is a deprecated alias of this module.)

A hospital that released a model can give miaudit its outputs in three ways:

* a predictions file (CSV/TSV/Parquet: a record-id column and one column per class, logits
  or probabilities; or ``.npz`` with arrays ``record_ids`` and ``logits``), read without
  running anything;
* an ONNX file, run with onnxruntime on the cohort's inputs;
* a state dict of a built-in family (``.safetensors`` preferred; ``.pt`` is read with
  ``torch.load(weights_only=True)``, which never runs code stored in the file).

Whatever the source, the result is one array of logits [N, 1, K] in the cohort's record
order, so the attacks see the target exactly as they see a reference model. Probabilities
become logits as log p (softmax(log p) = p), so the true-class probability RMIA reads and
the logit-scaled confidence LiRA reads are the ones the file states. Everything a user
supplies is only read, never written, and every problem is one :class:`InputError` that
names the file, the column or key, and the fix.
"""

from __future__ import annotations

import difflib
import pickle
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort, float_inputs
from miaudit.datasets.tabular import read_table
from miaudit.errors import InputError, shown_ids
from miaudit.models import ModelSpec, build_module, parameter_shapes

__all__ = [
    "PREDICTION_SUFFIXES",
    "STATE_DICT_SUFFIXES",
    "OutputKind",
    "TargetOutputs",
    "as_logits",
    "id_text",
    "match_records",
    "onnx_graph_kind",
    "predict_onnx",
    "predict_state_dict",
    "read_predictions",
    "read_roster",
    "require_file",
    "resolve_kind",
]

OutputKind = Literal["auto", "logits", "probabilities"]

#: Rows of probabilities may be rounded when exported (e.g. 4 decimals in a CSV); a row
#: whose sum is this far from 1 is not a probability distribution.
SUM_TOLERANCE = 1e-3
#: Probabilities computed in float32 (ONNX runtimes) can sit this far outside [0, 1]
#: (1.0000001, −1.2e−7); within it they are probabilities, clipped to [0, 1].
PROBABILITY_SLACK = 1e-6
#: Smallest probability turned into a logit; log(0) would be -inf, which no attack can use.
TINY = np.finfo(np.float64).tiny
#: Rows per onnxruntime / torch call, so a large cohort never needs one huge batch.
CHUNK_ROWS = 8192

PREDICTION_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".parquet", ".pq", ".npz")
STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


@dataclass(frozen=True, eq=False)
class TargetOutputs:
    """The target's outputs on every record of the cohort, as logits [N, 1, K] float64.

    ``estimator`` is the fitted model of a .skops target (its recipe trains the references
    with ``[model] estimator = "target"``), ``inputs`` and ``columns`` what the target read,
    and ``graph`` what an ONNX target's operators say it is ("tree ensemble", "linear
    model", "SVM"; None when they do not say).
    """

    logits: np.ndarray
    kind: Literal["logits", "probabilities"]
    source: str
    estimator: Any = None
    inputs: Literal["encoded", "raw"] = "encoded"
    columns: tuple[str, ...] = ()
    graph: str | None = None

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[-1])


# --------------------------------------------------------------------------- small helpers


def _preview(values: Any, limit: int = 5) -> str:
    items = [str(v) for v in values]
    shown = ", ".join(repr(v) for v in items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def id_text(values: pd.Series | np.ndarray) -> np.ndarray:
    """Ids as text the way cohort readers write them: whole floats without '.0'.

    A column of integer ids with a gap reads as float in pandas (12 → 12.0); the cohort's
    own ids went through the same conversion, so both sides compare as "12".
    """
    series = pd.Series(values)
    missing = series.isna().to_numpy()
    if pd.api.types.is_float_dtype(series):
        x = series.to_numpy(dtype=np.float64, na_value=np.nan)[~missing]
        if np.all(np.mod(x, 1) == 0) and np.all(np.abs(x) < 2**53):
            whole = np.zeros(len(series), dtype=np.int64)
            whole[~missing] = x.astype(np.int64)
            series = pd.Series(whole)
    out = series.astype(str).to_numpy(dtype=object)
    out[missing] = None
    return out


def require_file(path: Path, what: str, key: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"{what} '{path}' not found (working directory: {Path.cwd()}); check {key} in the "
            "config (relative paths are taken from the config's folder)"
        )
    if not path.is_file():
        raise InputError(f"{what} '{path}' is a directory, not a file; point {key} at a file")
    if path.stat().st_size == 0:
        raise InputError(f"{what} '{path}' is empty (0 bytes); export it again")
    return path


def _column(frame: pd.DataFrame, column: str, path: Path, key: str) -> pd.Series:
    names = [str(c) for c in frame.columns]
    if column in names:
        return frame[column]
    close = [n for n in names if n.casefold() == column.casefold()] or difflib.get_close_matches(
        column, names, n=3, cutoff=0.6
    )
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise InputError(
        f"{path}: column {column!r} not found.{hint} The file has columns {_preview(names, 12)}; "
        f"set {key} to the column that holds the ids"
    )


def _read_frame(path: Path, what: str, key: str) -> pd.DataFrame:
    """A table through the cohort reader, with an empty table named for what it is."""
    require_file(path, what, key)
    try:
        return read_table(path)
    except InputError as err:
        if "no data rows" in str(err):
            raise InputError(
                f"{what} '{path}' has a header but no rows; it must list at least one "
                "record or patient"
            ) from None
        raise


# --------------------------------------------------------------------------- roster


def read_roster(path: Path, column: str, cohort: Cohort) -> np.ndarray:
    """[P] bool: the cohort's patients listed in the roster (who trained the target).

    Repeated ids are allowed (a roster of records lists a patient once per record); ids that
    are not patients of the cohort are refused, because a roster that does not match the
    cohort would silently audit the wrong people.
    """
    path = Path(path)
    frame = _read_frame(path, "roster", "target.roster")
    ids = id_text(_column(frame, column, path, "target.roster_column"))
    empty = np.array([v is None for v in ids])
    if empty.any():
        rows = np.flatnonzero(empty) + 1
        raise InputError(
            f"{path}: column {column!r} is empty in {rows.size} row(s) (data rows "
            f"{_preview(rows)}); every row must name a patient of the cohort"
        )
    listed = pd.unique(ids)
    known = {str(p): i for i, p in enumerate(cohort.patient_ids)}
    unknown = [v for v in listed if v not in known]
    if unknown:
        raise InputError(
            f"{path}: {len(unknown)} patient id(s) in column {column!r} are not patients of "
            f"cohort {cohort.name!r}: {_preview(unknown)}; the roster must list the cohort's "
            f"patient ids (e.g. {shown_ids(cohort.patient_ids[:3], 3)}): check "
            "target.roster_column and cohort.patient_id"
        )
    member = np.zeros(cohort.num_patients, dtype=bool)
    member[[known[v] for v in listed]] = True
    return member


# --------------------------------------------------------------------------- kinds


def _row_sums_ok(values: np.ndarray) -> np.ndarray:
    return np.abs(values.sum(axis=1) - 1.0) <= SUM_TOLERANCE


def resolve_kind(values: np.ndarray, kind: OutputKind, where: str, key: str) -> str:
    """Whether ``values`` [N, K] are logits or probabilities, checking an explicit choice.

    ``auto``: with K ≥ 2, every value in [0, 1] (within ``PROBABILITY_SLACK``) and every
    row summing to 1 (within 1e-3) means probabilities, anything else logits; a single column in [0, 1] could be
    either, so it must be named.
    """
    inside_rows = (values >= -PROBABILITY_SLACK) & (values <= 1.0 + PROBABILITY_SLACK)
    inside = bool(inside_rows.all())
    k = values.shape[1]
    if kind == "auto":
        if k == 1:
            if inside:
                raise InputError(
                    f"{where}: a single output column with every value in [0, 1] could be "
                    f"probabilities of class 1 or logits; set {key} = \"probabilities\" or "
                    "\"logits\""
                )
            return "logits"
        return "probabilities" if inside and bool(_row_sums_ok(values).all()) else "logits"
    if kind == "probabilities":
        if not inside:
            bad = np.flatnonzero(~inside_rows.all(axis=1))
            raise InputError(
                f"{where}: {key} = \"probabilities\" but {bad.size} row(s) hold values outside "
                f"[0, 1] (e.g. row {bad[0] + 1}: {values[bad[0]].tolist()}); these look like "
                f"logits: set {key} = \"logits\" (or \"auto\")"
            )
        if k > 1:
            ok = _row_sums_ok(values)
            if not ok.all():
                bad = np.flatnonzero(~ok)
                raise InputError(
                    f"{where}: probabilities must sum to 1 over the {k} classes, but {bad.size} "
                    f"row(s) do not (e.g. row {bad[0] + 1} sums to {values[bad[0]].sum():.4g}); "
                    "export the softmax output of every class, or the logits with "
                    f"{key} = \"logits\""
                )
    return kind


def as_logits(values: np.ndarray, kind: str) -> np.ndarray:
    """[N, K] logits from logits or probabilities (float64).

    K ≥ 2 probabilities: log p (clipped at the smallest float), whose softmax is p again. One
    probability column (class 1 of a binary task) becomes the logit log p − log(1 − p), the
    single binary logit the signals read for K = 1.
    """
    x = np.asarray(values, dtype=np.float64)
    if kind == "logits":
        return x
    p = np.clip(x, TINY, 1.0)
    if x.shape[1] == 1:
        q = np.clip(1.0 - x, TINY, 1.0)
        return np.log(p) - np.log(q)
    return np.log(p)


def _check_values(values: np.ndarray, record_ids: np.ndarray, where: str, names: list[str]) -> None:
    finite = np.isfinite(values)
    if finite.all():
        return
    rows = np.flatnonzero(~finite.all(axis=1))
    cols = np.flatnonzero(~finite.all(axis=0))
    raise InputError(
        f"{where}: {rows.size} record(s) have NaN or infinite outputs in column(s) "
        f"{_preview([names[c] for c in cols])}: records {shown_ids(record_ids[rows], prefix='R-')}; export "
        "the target's outputs for every record again (a missing value cannot be audited)"
    )


def _check_classes(k: int, cohort: Cohort, where: str, names: list[str]) -> None:
    binary_single = k == 1 and cohort.num_classes == 2 and not cohort.multilabel
    if k == cohort.num_classes or binary_single:
        return
    raise InputError(
        f"{where}: {k} output column(s) {_preview(names, 8)} but cohort {cohort.name!r} has "
        f"{cohort.num_classes} classes {list(cohort.class_names)}; give one column per class "
        "(list them in target.columns, in class order) and leave out any other column"
    )


# --------------------------------------------------------------------------- predictions


def match_records(
    record_ids: np.ndarray, cohort: Cohort, where: str, key: str = "target.record_id"
) -> np.ndarray:
    """Row of the predictions for each cohort record [N]; InputError for gaps or strangers."""
    ids = np.asarray(record_ids, dtype=object)
    missing_id = np.array([v is None for v in ids])
    if missing_id.any():
        rows = np.flatnonzero(missing_id) + 1
        raise InputError(
            f"{where}: the record id is empty in {rows.size} row(s) (rows {_preview(rows)}); "
            "every row needs the id of the record it predicts"
        )
    series = pd.Series(ids.astype(str))
    repeated = series.duplicated(keep=False).to_numpy()
    if repeated.any():
        raise InputError(
            f"{where}: record ids repeat (e.g. {series[repeated].iloc[0]!r}, "
            f"{int(repeated.sum())} rows); give exactly one row per record"
        )
    position = pd.Index(series)
    wanted = np.asarray(cohort.record_ids, dtype=object).astype(str)
    rows = position.get_indexer(wanted)
    extra = series[~series.isin(wanted)].to_numpy(dtype=str)
    strangers = (
        f"{extra.size} record id(s) are not records of cohort {cohort.name!r}: "
        f"{_preview(extra)}"
    )
    if (rows < 0).any():
        absent = wanted[rows < 0]
        raise InputError(
            f"{where}: {absent.size} of the cohort's {wanted.size} records have no prediction: "
            f"{_preview(absent)}"
            + (f", and {strangers}" if extra.size else "")
            + f"; export the target's outputs for every record of the cohort (matched on {key})"
        )
    if extra.size:
        raise InputError(
            f"{where}: {strangers}; check {key} (it must hold the cohort's record ids, e.g. "
            f"{_preview(wanted[:3], 3)}) or remove those rows"
        )
    return rows


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], str | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise InputError(
            f"{path}: not a plain-array .npz file ({err}); save it with "
            "np.savez(path, record_ids=ids.astype(str), logits=logits)"
        ) from None
    missing = [k for k in ("record_ids",) if k not in arrays]
    value_key = "logits" if "logits" in arrays else "probabilities" if "probabilities" in arrays else None
    if missing or value_key is None:
        raise InputError(
            f"{path}: needs arrays 'record_ids' and 'logits' (or 'probabilities'), found "
            f"{_preview(sorted(arrays)) or 'none'}; save them with np.savez"
        )
    values = np.asarray(arrays[value_key])
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.number):
        raise InputError(
            f"{path}: array {value_key!r} must be numbers of shape [records, classes], got "
            f"{values.dtype} {values.shape}"
        )
    ids = np.asarray(arrays["record_ids"]).ravel()
    if ids.shape[0] != values.shape[0]:
        raise InputError(
            f"{path}: {ids.shape[0]} record_ids for {values.shape[0]} rows of {value_key!r}; "
            "give one id per row"
        )
    names = [f"{value_key}[:, {j}]" for j in range(values.shape[1])]
    fixed = "probabilities" if value_key == "probabilities" else None
    return id_text(ids), values.astype(np.float64), names, fixed


def _read_columns(
    path: Path, record_id: str, columns: list[str] | None, cohort: Cohort
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    frame = _read_frame(path, "predictions file", "target.predictions")
    ids = id_text(_column(frame, record_id, path, "target.record_id"))
    if columns is not None:
        for c in columns:
            _column(frame, c, path, "target.columns")
        names = list(columns)
    else:
        names = [str(c) for c in frame.columns if str(c) != record_id]
        if set(names) == set(cohort.class_names):
            names = list(cohort.class_names)  # named after the classes: take them in class order
    text = [c for c in names if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]
    if text:
        raise InputError(
            f"{path}: column(s) {_preview(text)} are not numbers; the predictions file must hold "
            f"the record id ({record_id!r}) and one numeric column per class only — list the "
            "class columns in target.columns to leave other columns out"
        )
    values = frame[names].to_numpy(dtype=np.float64, na_value=np.nan)
    return ids, values, names


def read_predictions(
    path: Path,
    cohort: Cohort,
    *,
    record_id: str = "record_id",
    kind: OutputKind = "auto",
    columns: list[str] | None = None,
) -> TargetOutputs:
    """The target's outputs from a predictions file, in the cohort's record order."""
    path = require_file(Path(path), "predictions file", "target.predictions")
    where = str(path)
    if path.name.lower().endswith(".npz"):
        ids, values, names, fixed = _read_npz(path)
        if fixed is not None:
            kind = "probabilities" if kind == "auto" else kind
    else:
        ids, values, names = _read_columns(path, record_id, columns, cohort)
    _check_classes(values.shape[1], cohort, where, names)
    rows = match_records(ids, cohort, where)
    values = values[rows]
    _check_values(values, np.asarray(cohort.record_ids, dtype=object), where, names)
    return _finish(values, kind, cohort, where, f"predictions:{path.name}")


def _finish(values: np.ndarray, kind: OutputKind, cohort: Cohort, where: str, source: str) -> TargetOutputs:
    resolved = resolve_kind(values, kind, where, "target.kind")
    if resolved == "probabilities" and cohort.multilabel:
        raise InputError(
            f"{where}: cohort {cohort.name!r} is multi-label, where per-label probabilities do "
            "not determine the true-label mass the attacks read; give the target's logits and "
            "set target.kind = \"logits\""
        )
    logits = as_logits(values, resolved)
    if not np.isfinite(logits).all():  # pragma: no cover - values were checked finite
        raise InputError(f"{where}: outputs could not be turned into finite logits")
    return TargetOutputs(logits=logits[:, None, :], kind=resolved, source=source)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- ONNX


def _onnx_dims(shape: list[Any]) -> list[int | None]:
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


#: ONNX-ML operators that say what kind of model a graph is (for the references check).
_ONNX_KINDS = (
    ("TreeEnsemble", "tree ensemble"),
    ("LinearClassifier", "linear model"),
    ("SVMClassifier", "SVM"),
)
#: How an ONNX input's element type is fed from a raw column.
_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
               "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(string)": object}


def onnx_graph_kind(path: Path) -> str | None:
    """What an ONNX model's operators say it is ("tree ensemble", …), or None."""
    try:
        import onnx

        ops = {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}
    except Exception:  # no onnx package, or a graph onnx cannot parse (onnxruntime could)
        return None
    for prefix, kind in _ONNX_KINDS:
        if any(op.startswith(prefix) for op in ops):
            return kind
    return None


def _encoded_feed(path: Path, inputs: list[Any], cohort: Cohort) -> tuple[dict[str, np.ndarray], list[int | None]]:
    """The cohort's encoded records as the model's single input."""
    if len(inputs) != 1:
        raise InputError(
            f"{path}: the ONNX model takes {len(inputs)} inputs "
            f"({_preview([i.name for i in inputs])}); miaudit feeds the encoded records as one "
            "input, or with target.inputs = \"raw\" one raw column per input of the same name"
        )
    x = float_inputs(cohort.inputs)  # uint8 pixels as value / 255, as the references see them
    dims = _onnx_dims(list(inputs[0].shape))
    want = list(x.shape[1:])
    if len(dims) != x.ndim or any(d is not None and d != w for d, w in zip(dims[1:], want, strict=False)):
        shown = ["batch" if d is None else d for d in dims]
        raise InputError(
            f"{path}: the ONNX model expects input {inputs[0].name!r} of shape {shown}, but the "
            f"cohort's records have shape [N, {', '.join(map(str, want))}]"
            + (f" ({len(cohort.feature_names)} features after encoding)" if cohort.modality == "table" else "")
            + "; the target must be exported for the same encoded inputs as the cohort "
            "(same features, same order), or for the raw columns with target.inputs = \"raw\""
        )
    return {inputs[0].name: x}, dims


def _raw_feed(path: Path, inputs: list[Any], cohort: Cohort) -> tuple[dict[str, np.ndarray], list[int | None]]:
    """The raw feature columns: one input per column of its name, or all as one matrix."""
    table = cohort.table
    if table is None:
        raise InputError(
            "target.inputs = 'raw': this cohort has no raw columns (only table cohorts read "
            "from a file have them); remove target.inputs"
        )
    columns = [str(c) for c in table.columns]
    feed: dict[str, np.ndarray] = {}
    if len(inputs) == 1 and inputs[0].name not in columns:
        numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
        if len(numeric) != len(columns):
            raise InputError(
                f"{path}: the ONNX model takes one input {inputs[0].name!r}, but the cohort's raw "
                f"columns are not all numeric ({_preview([c for c in columns if c not in map(str, numeric)])}); "
                "export it with one input per raw column (named as the column)"
            )
        dtype = _ONNX_TYPES.get(inputs[0].type, np.float32)
        feed[inputs[0].name] = np.ascontiguousarray(table.to_numpy(dtype=np.float64)).astype(dtype)
        return feed, _onnx_dims(list(inputs[0].shape))
    absent = [i.name for i in inputs if i.name not in columns]
    if absent:
        raise InputError(
            f"{path}: the ONNX model's input(s) {_preview(absent)} are not raw feature columns of "
            f"the cohort ({_preview(columns, 12)}); name each input as its column, or list the "
            "columns in [cohort] features"
        )
    for spec in inputs:
        dtype = _ONNX_TYPES.get(spec.type)
        if dtype is None:
            raise InputError(f"{path}: input {spec.name!r} has type {spec.type}, which miaudit cannot feed")
        column = table[spec.name]
        if dtype is object:
            values = column.astype(str).to_numpy(dtype=object)
        else:
            values = column.to_numpy(dtype=np.float64).astype(dtype)
        feed[spec.name] = values.reshape(-1, 1)
    return feed, [None]


def predict_onnx(
    path: Path, cohort: Cohort, *, kind: OutputKind = "auto", inputs: str | None = None
) -> TargetOutputs:
    """Run an ONNX model on the cohort's inputs.

    ``inputs`` "encoded" (the default) feeds the encoded records (float32, [N, F] for
    tables) as the model's one input; "raw" feeds the raw feature columns, one input per
    column of the same name (as scikit-learn pipelines with their own preprocessing export)
    or all numeric columns as one matrix. The first output that is a float array with one
    row per record is taken as the target's logits or probabilities (``kind``). A model with
    a fixed batch size is fed in batches of that size, the last one padded.
    """
    path = require_file(Path(path), "ONNX model", "target.model")
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError(
            f"{path}: reading an ONNX model needs the onnxruntime package; install it with "
            "`pip install onnxruntime`, or export the model's predictions to a CSV file and set "
            "target.predictions instead"
        ) from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for bad files
        raise InputError(
            f"{path}: not a valid ONNX model ({str(err).splitlines()[0][:200]}); export it again "
            "(e.g. torch.onnx.export) or give its predictions in target.predictions"
        ) from None
    specs = session.get_inputs()
    mode = inputs or "encoded"
    feed, dims = (_raw_feed if mode == "raw" else _encoded_feed)(path, specs, cohort)
    batch = dims[0] or CHUNK_ROWS
    parts: list[np.ndarray] = []
    n = cohort.num_records
    try:
        for start in range(0, n, batch):
            chunk = {k: v[start : start + batch] for k, v in feed.items()}
            size = next(iter(chunk.values())).shape[0]
            if dims[0] is not None and size < batch:
                chunk = {k: np.concatenate([v, np.zeros((batch - size, *v.shape[1:]), v.dtype)])
                         for k, v in chunk.items()}
            outputs = session.run(None, chunk)
            parts.append(_pick_output(outputs, batch if dims[0] is not None else size, path)[:size])
    except InputError:
        raise
    except Exception as err:
        raise InputError(
            f"{path}: the ONNX model failed on the cohort's {mode} inputs "
            f"({str(err).splitlines()[0][:200]}); check that it was exported for the same "
            + ("raw columns" if mode == "raw" else "encoded features")
        ) from None
    values = np.concatenate(parts).astype(np.float64)
    names = [f"output[:, {j}]" for j in range(values.shape[1])]
    _check_classes(values.shape[1], cohort, str(path), names)
    _check_values(values, np.asarray(cohort.record_ids, dtype=object), str(path), names)
    out = _finish(values, kind, cohort, str(path), f"onnx:{path.name}")
    columns = tuple(feed) if mode == "raw" and len(feed) > 1 else ()
    return replace(out, inputs=mode, columns=columns, graph=onnx_graph_kind(path))


def _pick_output(outputs: list[Any], rows: int, path: Path) -> np.ndarray:
    for out in outputs:
        arr = np.asarray(out) if isinstance(out, np.ndarray) else None
        if arr is None or not np.issubdtype(arr.dtype, np.floating):
            continue
        if arr.ndim == 1 and arr.shape[0] == rows:
            return arr[:, None]
        if arr.ndim == 2 and arr.shape[0] == rows:
            return arr
    raise InputError(
        f"{path}: no output of the ONNX model is a float array [records, classes] (outputs: "
        f"{_preview([getattr(o, 'shape', type(o).__name__) for o in outputs])}); export the "
        "model with its logits or class probabilities as an output (for scikit-learn "
        "converters: options={'zipmap': False})"
    )


# --------------------------------------------------------------------------- state dicts


def _load_state(path: Path) -> dict[str, Any]:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise InputError(
                f"{path}: reading .safetensors needs the safetensors package; install it with "
                "`pip install safetensors`"
            ) from None
        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as err:  # SafetensorError and OSError for damaged files
            raise InputError(
                f"{path}: not a readable safetensors file ({str(err).splitlines()[0][:200]}); "
                "save it with safetensors.torch.save_file(model.state_dict(), path)"
            ) from None
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise InputError(
            f"{path}: torch.load(weights_only=True) refuses this file: it stores Python objects, "
            f"not only tensors ({first}). miaudit never unpickles code from a model file: save "
            "the weights alone, e.g. safetensors.torch.save_file(model.state_dict(), "
            "'target.safetensors') or torch.save(model.state_dict(), 'target.pt')"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(
            f"{path}: not a readable PyTorch file ({str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__}); "
            "save the state dict with torch.save(model.state_dict(), path) or as .safetensors"
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(k, str) for k in inner):
                obj = inner
                break
    if not isinstance(obj, dict):
        raise InputError(
            f"{path}: holds a {type(obj).__name__}, not a state dict (a mapping from parameter "
            "names to tensors); save model.state_dict()"
        )
    return obj


def predict_state_dict(path: Path, cohort: Cohort, model: ModelSpec) -> TargetOutputs:
    """Build ``model``'s family, load the state dict and compute its logits on the cohort.

    The state dict must match [model] exactly (names and shapes); a mismatch is listed key
    by key, because a model loaded with the wrong architecture would be audited as another
    model.
    """
    path = require_file(Path(path), "model file", "target.model")
    if cohort.modality != "table":
        raise InputError(
            f"{path}: state dicts are read for the built-in tabular families only; cohort "
            f"{cohort.name!r} holds {cohort.modality} records: export the target to ONNX or "
            "give its predictions in target.predictions"
        )
    import torch

    from miaudit.training.devices import cpu_threads

    state = _load_state(path)
    if state and all(str(k).startswith("module.") for k in state):
        state = {str(k)[len("module.") :]: v for k, v in state.items()}  # saved from DataParallel
    in_features = cohort.inputs.shape[1]
    expected = dict(parameter_shapes(model, in_features, cohort.num_classes))
    found: dict[str, tuple[int, ...]] = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise InputError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor; save model.state_dict()")
        found[str(k)] = tuple(v.shape)
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [f"{k} {found[k]} (expected {expected[k]})" for k in expected if k in found and found[k] != expected[k]]
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append(f"missing {_preview(missing)}")
        if unexpected:
            problems.append(f"unexpected {_preview(unexpected)}")
        if wrong:
            problems.append(f"shape {_preview(wrong, 3)}")
        knobs = ", ".join(f"{k}={v}" for k, v in model.capacity().items())
        raise InputError(
            f"{path}: the state dict does not match [model] family={model.family!r} ({knobs}) "
            f"for {in_features} input features and {cohort.num_classes} classes: "
            f"{'; '.join(problems)}. Set [model] to the target's architecture"
        )
    module = build_module(model, in_features, cohort.num_classes)
    module.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    module.eval()
    x = torch.from_numpy(float_inputs(cohort.inputs))
    parts = []
    with cpu_threads(), torch.no_grad():
        for start in range(0, x.shape[0], CHUNK_ROWS):
            parts.append(module(x[start : start + CHUNK_ROWS]).double().numpy())
    values = np.concatenate(parts)
    names = [f"logit[{j}]" for j in range(values.shape[1])]
    _check_values(values, np.asarray(cohort.record_ids, dtype=object), str(path), names)
    return _finish(values, "logits", cohort, str(path), f"state_dict:{path.name}")
