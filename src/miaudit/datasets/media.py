"""Image and signal (ECG) cohorts: an index table of record files, a stacked array, or MedMNIST.

A cohort is described by a :class:`MediaSpec` and read once by :func:`load_media_cohort`
into a validated :class:`~miaudit.cohort.Cohort` (``image`` [N, C, H, W] or ``signal``
[N, L, T], float32). The sources:

* an **index** (CSV/TSV/Parquet, one row per record) whose ``path_column`` names each
  record's file, relative to ``root`` (default: the index's folder). Images: ``.png .jpg
  .jpeg .bmp .tif .tiff`` (Pillow), ``.dcm`` (pydicom), ``.npy``. Signals: WFDB records
  (the ``.hea`` file or the record name without suffix), ``.npy``, and DICOM waveforms
  (``.dcm``, first multiplex group);
* an index plus one stacked ``array`` (``.npy`` [N, ...]) whose row i is index row i;
* a MedMNIST ``.npz`` (``train_images``, ``train_labels``, …). MedMNIST carries no patient
  ids, so every image is its own patient; record ids are ``"train-0"``, ``"val-3"``, ….

Pixels become float32 in [0, 1]: 8-bit /255, 16-bit /65535, floats already in [0, 1] as
they are, any other range min-max per image. DICOM pixels are rescaled with
RescaleSlope/Intercept and then min-max scaled per image, because stored DICOM values have
no common full scale across devices (12-, 14- or 16-bit detectors, CT numbers in HU with
negative intercepts, vendor windows): dividing by a fixed maximum would make brightness
depend on the scanner rather than the patient. The price is that absolute intensities
(e.g. HU) are lost; with the usual positive slope the rescale does not change the result,
it matters for a negative slope. MONOCHROME1 images are inverted so that bright means
dense in every image. Resizing (``image_size``) uses Pillow's bilinear filter with
antialiasing, reducing by whole factors with box averaging first, so shrinking by a whole
factor averages exactly the pixels each output pixel covers. ``channels`` repeats gray to
RGB or turns RGB to gray with BT.601 luma (Pillow's weights); unset, every image needs the
first image's channels. A ``.npy`` image whose first axis could be channels is [C, H, W].

Signals are read in physical units (millivolts where the file states V, mV or µV), then
resampled to ``sampling_rate`` with a polyphase filter, cut or zero-padded at the end to
``length`` samples, and (``standardize``, the default) standardised per lead with the mean
and standard deviation over the whole cohort. As for tables, one transform fitted on the
whole cohort is the same function for every reference model, IN or OUT, so it carries no
membership information; per-model statistics would let the preprocessing itself depend
on membership. A ``.npy`` signal is [L, T] (or [T]); its rate is the index's
``sampling_rate`` column, else ``sampling_rate``, and ``leads`` names its rows. WFDB and
DICOM records name their leads, and ``leads`` selects and orders them by name (any case).

Labels: ``label`` names one column. Without ``label_separator`` its sorted values are the
classes (single-label). With a separator (e.g. ``"|"`` for ``"Effusion|Edema"``) each cell
is split into findings (multi-label, classes = the sorted findings); an empty or missing
cell, and the token ``"No Finding"`` (any case), mean no positive label. ``labels`` names
several 0/1 columns instead (multi-label, classes = the column names).
"""

from __future__ import annotations

import difflib
import importlib
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pydantic

from miaudit.cohort import RESERVED_ATTRIBUTE_NAMES, Cohort, attribute_conflicts
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
from miaudit.errors import InputError

#: File suffixes read with Pillow.
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Tokens of a separated label cell that mean "no positive finding" (compared casefolded).
NO_FINDING = ("no finding",)
#: Column of an index that holds each ``.npy`` signal's own sampling rate (Hz).
SAMPLING_RATE_COLUMN = "sampling_rate"
#: Largest denominator of the rational resampling factor up/down.
MAX_RESAMPLE_DENOMINATOR = 1000
#: Unit of a signal lead → factor to millivolts.
TO_MILLIVOLT = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}
#: ITU-R BT.601 luma weights, as Pillow's RGB → L conversion.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

_IMAGING_EXTRA = "pip install 'miaudit[imaging]'"
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


class MediaSpec(pydantic.BaseModel, extra="forbid"):
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


def load_media_cohort(spec: MediaSpec | dict[str, Any]) -> Cohort:
    """Read the spec's index (or .npz) and its records into a validated cohort (module doc)."""
    spec = coerce_media_spec(spec)
    if spec.path.suffix.lower() == ".npz":
        return _load_medmnist(spec)
    return _load_index(spec)


# -- optional packages --------------------------------------------------------------------


def _optional(module: str, package: str, needs: str, what: str) -> Any:
    """``module``, imported on first use: the readers' packages are an optional extra."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise InputError(
            f"{what}: {needs} the {package} package, which is not installed; install it "
            f"with `{_IMAGING_EXTRA}`."
        ) from error


def import_pydicom(what: str) -> Any:
    """pydicom, imported on first use."""
    return _optional("pydicom", "pydicom", "DICOM files need", what)


def import_wfdb(what: str) -> Any:
    """wfdb, imported on first use."""
    wfdb = _optional("wfdb", "wfdb", "WFDB records need", what)
    # wfdb 4.3 calls pandas APIs that pandas 3 deprecates, once per record read.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"wfdb(\.|$)")
    return wfdb


def _import_pillow(what: str) -> Any:
    return _optional("PIL.Image", "Pillow", "reading images needs", what)


# -- pixels -------------------------------------------------------------------------------


def _detail(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def unit_pixels(values: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]: uint8 /255, uint16 /65535, [0, 1] floats as is, else min-max."""
    if values.dtype == np.bool_:
        return values.astype(np.float32)
    if values.dtype == np.uint8:
        return values.astype(np.float32) / np.float32(255)
    if values.dtype == np.uint16:
        return values.astype(np.float32) / np.float32(65535)
    x = values.astype(np.float64)
    if x.size and np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1:
        return x.astype(np.float32)
    return min_max(x)


def min_max(x: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min) as float32; a constant image becomes zeros."""
    x = np.asarray(x, dtype=np.float64)
    low, high = x.min(), x.max()
    if not high > low:
        return np.zeros(x.shape, dtype=np.float32)
    return ((x - low) / (high - low)).astype(np.float32)


def _chw(array: np.ndarray, what: str) -> np.ndarray:
    """[H,W] / [C,H,W] / [H,W,C] (C in 1, 3) → [C,H,W]."""
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3:
        if array.shape[0] in (1, 3):
            return array
        if array.shape[-1] in (1, 3):
            return np.moveaxis(array, -1, 0)
    raise InputError(
        f"{what}: an image array must be [H, W], [C, H, W] or [H, W, C] with 1 or 3 channels, "
        f"got shape {array.shape}; save one 2-D image (gray or RGB) per record."
    )


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """[C,H,W] → [channels,H,W]: gray repeated to RGB, RGB to gray with BT.601 luma."""
    have = image.shape[0]
    if have == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=0)
    return np.tensordot(LUMA, image, axes=1)[None].astype(np.float32)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[C,H,W] float32 → [C,*size]: bilinear with antialias, whole factors box-averaged first."""
    if tuple(image.shape[1:]) == tuple(size):
        return image
    pil = _import_pillow("image_size")
    height, width = size
    out = np.empty((image.shape[0], height, width), dtype=np.float32)
    for c, plane in enumerate(image):
        resized = pil.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F").resize(
            (width, height), pil.Resampling.BILINEAR, reducing_gap=1.0
        )
        out[c] = np.asarray(resized, dtype=np.float32)
    return out


def _pillow_pixels(path: Path, what: str) -> np.ndarray:
    """[C,H,W] float32 in [0, 1] from an image file Pillow reads."""
    pil = _import_pillow(what)
    try:
        with pil.open(path) as image:
            image.load()
            if getattr(image, "n_frames", 1) > 1:
                raise InputError(
                    f"{what}: holds {image.n_frames} frames; miaudit reads one image per "
                    "record. Save each frame as a record of its own."
                )
            mode = image.mode
            if mode in ("LA", "La"):
                image = image.convert("L")
            elif mode in ("P", "PA", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
                image = image.convert("RGB")
            pixels = np.asarray(image)
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError) as error:
        raise InputError(
            f"{what}: not a readable image ({_detail(error)}); replace the file with a valid "
            f"{path.suffix or 'image'} file or remove its row from the index."
        ) from error
    if mode == "I" and pixels.size and pixels.min() >= 0 and pixels.max() <= 65535:
        pixels = pixels.astype(np.uint16)  # 16-bit files that Pillow opens as 32-bit ints
    layout = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)  # Pillow: H, W, C
    return unit_pixels(layout)


def _dicom_pixels(path: Path, what: str) -> np.ndarray:
    """[C,H,W] float32 in [0, 1]: rescaled, min-max per image, MONOCHROME1 inverted."""
    pydicom = import_pydicom(what)
    ds = _read_dicom(pydicom, path, what)
    if "PixelData" not in ds:
        hint = ' It holds a waveform: set modality = "signal".' if "WaveformSequence" in ds else ""
        raise InputError(f"{what}: DICOM file has no pixel data.{hint}")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InputError(
            f"{what}: DICOM file holds {frames} frames; miaudit reads one image per record. "
            "Export each frame (or one chosen slice) as a file of its own."
        )
    try:
        pixels = np.asarray(ds.pixel_array, dtype=np.float64)
    except Exception as error:  # pydicom raises many types for missing codecs / bad data
        raise InputError(
            f"{what}: cannot decode the DICOM pixel data ({_detail(error)}); compressed "
            "transfer syntaxes need a decoder (e.g. `pip install pylibjpeg pylibjpeg-libjpeg`), "
            "or convert the file to uncompressed DICOM."
        ) from error
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    pixels = pixels * slope + intercept
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    image = pixels[None] if samples == 1 else np.moveaxis(pixels, -1, 0)
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise InputError(
            f"{what}: DICOM pixel data has shape {pixels.shape} with SamplesPerPixel = "
            f"{samples}; miaudit reads 2-D gray or RGB images."
        )
    unit = min_max(image)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        unit = np.float32(1) - unit
    return unit


def _read_dicom(pydicom: Any, path: Path, what: str) -> Any:
    try:
        return pydicom.dcmread(path)
    except Exception as error:  # InvalidDicomError, OSError, struct errors on truncation
        raise InputError(
            f"{what}: not a readable DICOM file ({_detail(error)}); replace it with a valid "
            "DICOM file or remove its row from the index."
        ) from error


def _is_pickle_refusal(error: ValueError) -> bool:
    """numpy's ways of saying an array holds Python objects (pickles) it will not load."""
    text = str(error).lower()
    return any(word in text for word in ("pickle", "object arrays", "python objects"))


def _npy(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        if _is_pickle_refusal(error):
            raise InputError(
                f"{what}: the .npy holds a pickled (object) array, and pickled arrays are "
                "refused because loading them can run code; save a numeric array instead."
            ) from error
        raise InputError(
            f"{what}: not a readable .npy file ({_detail(error)}); save it with numpy.save."
        ) from error
    except (OSError, EOFError) as error:
        raise InputError(
            f"{what}: not a readable .npy file ({_detail(error)}); save it with numpy.save."
        ) from error


def _npy_pixels(path: Path, what: str) -> np.ndarray:
    array = _npy(path, what)
    _check_finite(array, what)
    return unit_pixels(_chw(array, what))


def _check_finite(array: np.ndarray, what: str) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(
            f"{what}: holds NaN or infinite values; fill them in (or drop the record) before "
            "the audit."
        )


# -- signals ------------------------------------------------------------------------------


@dataclass
class _Signal:
    """One record: [L, T] float64 values, its own rate (None: unknown) and lead names."""

    data: np.ndarray
    fs: float | None
    names: tuple[str, ...] | None


def _to_millivolts(data: np.ndarray, units: Sequence[str | None]) -> np.ndarray:
    factors = np.array(
        [TO_MILLIVOLT.get(str(u or "").strip().casefold(), 1.0) for u in units], dtype=np.float64
    )
    return data * factors[:, None]


def _wfdb_signal(record: Path, what: str) -> _Signal:
    wfdb = import_wfdb(what)
    try:
        rec = wfdb.rdrecord(str(record), physical=True)
    except Exception as error:  # wfdb raises many types for missing or malformed files
        raise InputError(
            f"{what}: not a readable WFDB record ({_detail(error)}); check that "
            f"'{record.name}.hea' and its signal file(s) exist and are complete."
        ) from error
    if rec.p_signal is None or rec.p_signal.ndim != 2:
        raise InputError(f"{what}: WFDB record has no signal samples; check the record files.")
    data = _to_millivolts(np.asarray(rec.p_signal, dtype=np.float64).T, rec.units or [])
    names = tuple(str(n) for n in rec.sig_name) if rec.sig_name else None
    return _Signal(data, float(rec.fs), names)


def _lead_name(channel: Any, index: int) -> str:
    """'Lead I (Einthoven)' → 'I'; falls back to ChannelLabel, then 'lead<i>'."""
    try:
        meaning = str(channel.ChannelSourceSequence[0].CodeMeaning)
    except (AttributeError, IndexError, KeyError):
        meaning = str(channel.get("ChannelLabel", "") or "")
    meaning = meaning.split("(")[0].strip()
    if meaning.casefold().startswith("lead "):
        meaning = meaning[5:].strip()
    return meaning or f"lead{index}"


def _dicom_signal(path: Path, what: str) -> _Signal:
    pydicom = import_pydicom(what)
    ds = _read_dicom(pydicom, path, what)
    if "WaveformSequence" not in ds or len(ds.WaveformSequence) == 0:
        raise InputError(
            f"{what}: DICOM file has no WaveformSequence (no ECG); for pixel images set "
            'modality = "image".'
        )
    group = ds.WaveformSequence[0]
    try:
        data = np.asarray(ds.waveform_array(0), dtype=np.float64).T
    except Exception as error:  # malformed waveform data
        raise InputError(
            f"{what}: cannot decode the DICOM waveform ({_detail(error)}); export the ECG again."
        ) from error
    channels = list(group.get("ChannelDefinitionSequence", []))
    units: list[str | None] = []
    for channel in channels:
        try:
            units.append(str(channel.ChannelSensitivityUnitsSequence[0].CodeValue))
        except (AttributeError, IndexError, KeyError):
            units.append(None)
    if len(units) == data.shape[0]:
        data = _to_millivolts(data, units)
        names: tuple[str, ...] | None = tuple(_lead_name(c, i) for i, c in enumerate(channels))
    else:
        names = None
    return _Signal(data, float(group.SamplingFrequency), names)


def _npy_signal(path: Path, what: str, fs: float | None) -> _Signal:
    array = _npy(path, what)
    return _array_signal(array, what, fs)


def _array_signal(array: np.ndarray, what: str, fs: float | None) -> _Signal:
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.dtype.kind not in "biuf":
        raise InputError(
            f"{what}: a signal array must be numeric [L, T] (leads × samples) or [T] for one "
            f"lead, got {array.dtype} with shape {array.shape}."
        )
    return _Signal(np.asarray(array, dtype=np.float64), fs, None)


def resample_signal(data: np.ndarray, native: float, target: float) -> np.ndarray:
    """Resample along the last axis from ``native`` Hz to ``target`` Hz (polyphase filter)."""
    if native == target:
        return data
    from scipy.signal import resample_poly

    ratio = Fraction(target / native).limit_denominator(MAX_RESAMPLE_DENOMINATOR)
    if ratio.numerator == 0:
        raise InputError(
            f"sampling_rate = {target} Hz is too far below a record's {native} Hz to resample; "
            "choose a rate closer to the recordings'."
        )
    return resample_poly(data, ratio.numerator, ratio.denominator, axis=-1)


def fit_length(data: np.ndarray, length: int) -> np.ndarray:
    """Keep the first ``length`` samples (cut the end) or zero-pad at the end."""
    have = data.shape[-1]
    if have >= length:
        return data[..., :length]
    pad = [(0, 0)] * (data.ndim - 1) + [(0, length - have)]
    return np.pad(data, pad)


def standardize_leads(inputs: np.ndarray) -> np.ndarray:
    """[N,L,T] → per-lead (x - mean) / std over all records and samples (std 0 → 1)."""
    mean = inputs.mean(axis=(0, 2), dtype=np.float64)
    std = inputs.std(axis=(0, 2), dtype=np.float64)
    std[std == 0] = 1.0
    return ((inputs - mean[None, :, None]) / std[None, :, None]).astype(np.float32)


# -- the index ----------------------------------------------------------------------------


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


def _require_fields(spec: MediaSpec, fields: Sequence[str], where: str, reason: str) -> None:
    """InputError when any of ``fields`` is set (not its default) where it does not apply."""
    given = [f for f in fields if getattr(spec, f) != MediaSpec.model_fields[f].default]
    if given:
        raise InputError(
            f"{where}: {_listing(given)} {'does' if len(given) == 1 else 'do'} not apply "
            f"{reason}; remove {'it' if len(given) == 1 else 'them'} from the cohort spec."
        )


def _close(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


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
            f"{source}: {role} repeats values (e.g. {ids[rows[0]]!r} in data rows "
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
                f"{patient_ids[bad[0]]!r} (data rows {_rows_text(rows)} hold "
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


def _row_loader(stacked: np.ndarray, i: int, what: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        row = np.asarray(stacked[i])
        _check_finite(row, what)
        return unit_pixels(_chw(row, what))

    return load


def _stacked_signal_loader(
    stacked: np.ndarray, i: int, what: str, fs: float | None
) -> Callable[[], _Signal]:
    return lambda: _array_signal(np.asarray(stacked[i]), what, fs)


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


def _check_exists(path: Path, what: str) -> None:
    if not path.is_file():
        state = "is a directory, not a file" if path.is_dir() else "not found"
        raise InputError(
            f"{what}: {state}; fix the path in the index, or set `root` to the folder the "
            "paths are relative to."
        )


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


def _row_rates(frame: pd.DataFrame, spec: MediaSpec, source: str) -> list[float | None]:
    """Each row's own sampling rate for .npy signals: the index column, else the spec's."""
    if SAMPLING_RATE_COLUMN not in frame.columns:
        return [spec.sampling_rate] * len(frame)
    values = pd.to_numeric(frame[SAMPLING_RATE_COLUMN], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    bad = ~(values > 0)
    if bad.any():
        raise InputError(
            f"{source}: column {SAMPLING_RATE_COLUMN!r} must hold positive rates in Hz, but "
            f"data rows {_rows_text(np.flatnonzero(bad))} do not; fill them in."
        )
    return [float(v) for v in values]


def assemble_images(
    loaders: Sequence[Callable[[], np.ndarray]], describe: Sequence[str], spec: MediaSpec
) -> np.ndarray:
    """[N,C,H,W] float32 from per-record loaders of [C,H,W] arrays in [0, 1]."""
    out: np.ndarray | None = None
    for i, load in enumerate(loaders):
        image = load()
        if spec.channels is not None:
            image = convert_channels(image, spec.channels)
        elif out is not None and image.shape[0] != out.shape[1]:
            raise InputError(
                f"{describe[i]} has {image.shape[0]} channel(s) but {describe[0]} has "
                f"{out.shape[1]}; set `channels` = 1 (gray) or 3 (RGB) to convert them all."
            )
        if spec.image_size is not None:
            image = resize_image(image, spec.image_size)
        elif out is not None and image.shape[1:] != out.shape[2:]:
            raise InputError(
                f"images differ in size: {describe[0]} is {out.shape[2]}×{out.shape[3]} "
                f"(H×W) but {describe[i]} is {image.shape[1]}×{image.shape[2]}; set "
                "`image_size` = [H, W] to resize every image."
            )
        if out is None:
            out = np.empty((len(loaders), *image.shape), dtype=np.float32)
        out[i] = image
    if out is None:
        raise InputError("the cohort has no records; add rows to the index.")
    return out


def _select_leads(
    signal: _Signal, what: str, leads: list[str] | None
) -> tuple[np.ndarray, tuple[str, ...] | None]:
    data = signal.data
    if leads is None:
        return data, signal.names
    if signal.names is None:
        if data.shape[0] != len(leads):
            raise InputError(
                f"{what}: has {data.shape[0]} unnamed lead(s), but `leads` names {len(leads)}; "
                "for .npy signals `leads` names the rows in order, so give one name per row."
            )
        return data, tuple(leads)
    position = {n.casefold(): j for j, n in enumerate(signal.names)}
    missing = [lead for lead in leads if lead.casefold() not in position]
    if missing:
        hints = "".join(_close(m, signal.names) for m in missing[:1])
        raise InputError(
            f"{what}: lacks lead(s) {_listing(missing)}; it has {_listing(list(signal.names))}."
            f"{hints} Fix `leads` in the cohort spec."
        )
    return data[[position[lead.casefold()] for lead in leads]], tuple(leads)


def _check_signal(data: np.ndarray, names: tuple[str, ...] | None, what: str) -> None:
    """InputError for gaps (NaN or infinite samples) in the leads that were selected."""
    finite = np.isfinite(data).all(axis=1)
    if not finite.all():
        lead = int(np.flatnonzero(~finite)[0])
        label = repr(names[lead]) if names else f"row {lead}"
        raise InputError(
            f"{what}: lead {label} has NaN or infinite samples (gaps in the recording); "
            "fill them (e.g. interpolate) or drop the record before the audit."
        )


class _LeadCheck:
    """Every record has the first record's lead count, and named records the same names."""

    def __init__(self, describe: Sequence[str]) -> None:
        self.describe = describe
        self.count: int | None = None
        self.names: tuple[str, ...] | None = None
        self.named_at = 0

    def add(self, i: int, data: np.ndarray, names: tuple[str, ...] | None) -> None:
        if self.count is None:
            self.count = data.shape[0]
        elif data.shape[0] != self.count:
            raise InputError(
                f"records have different numbers of leads: {self.describe[0]} has "
                f"{self.count}, {self.describe[i]} has {data.shape[0]}; set `leads` to the "
                "lead names to read from every record."
            )
        if names is None:
            return
        if self.names is None:
            self.names, self.named_at = names, i
        elif [n.casefold() for n in self.names] != [n.casefold() for n in names]:
            raise InputError(
                f"records name their leads differently: {self.describe[self.named_at]} has "
                f"{_listing(list(self.names))}, {self.describe[i]} has {_listing(list(names))}; "
                "set `leads` to select and order the leads by name."
            )


def assemble_signals(
    loaders: Sequence[Callable[[], _Signal]], describe: Sequence[str], spec: MediaSpec
) -> tuple[np.ndarray, tuple[str, ...]]:
    """[N,L,T] float32 and lead names: select leads, resample, fit length, standardise."""
    records: list[np.ndarray] = []
    rates: list[float] = []
    leads = _LeadCheck(describe)
    for i, load in enumerate(loaders):
        signal = load()
        if signal.fs is None:
            raise InputError(
                f"{describe[i]}: a .npy signal has no sampling rate; set `sampling_rate` in "
                f"the cohort spec, or add a {SAMPLING_RATE_COLUMN!r} column (Hz) to the index."
            )
        data, names = _select_leads(signal, describe[i], spec.leads)
        _check_signal(data, names, describe[i])
        leads.add(i, data, names)
        records.append(data)
        rates.append(signal.fs)
    if not records:
        raise InputError("the cohort has no records; add rows to the index.")
    target = spec.sampling_rate
    if target is None:
        differs = [i for i, r in enumerate(rates) if r != rates[0]]
        if differs:
            raise InputError(
                f"records have different sampling rates: {describe[0]} {rates[0]:g} Hz, "
                f"{describe[differs[0]]} {rates[differs[0]]:g} Hz; set `sampling_rate` to "
                "resample every record to one rate."
            )
        target = rates[0]
    records = _resample_all(records, rates, target)
    if spec.length is not None:
        records = [fit_length(r, spec.length) for r in records]
    else:
        sizes = [r.shape[-1] for r in records]
        differs = [i for i, s in enumerate(sizes) if s != sizes[0]]
        if differs:
            raise InputError(
                f"records differ in length (at {target:g} Hz): {describe[0]} has {sizes[0]} "
                f"samples, {describe[differs[0]]} has {sizes[differs[0]]}; set `length` to cut "
                "or zero-pad every record to one number of samples."
            )
    inputs = np.stack(records).astype(np.float32)
    if spec.standardize:
        inputs = standardize_leads(inputs)
    lead_names = leads.names or tuple(f"lead{j}" for j in range(inputs.shape[1]))
    return inputs, lead_names


def _resample_all(records: list[np.ndarray], rates: list[float], target: float) -> list[np.ndarray]:
    """Resample records in groups of equal (rate, length), one filter call per group."""
    groups: dict[tuple[float, int], list[int]] = {}
    for i, (data, rate) in enumerate(zip(records, rates, strict=True)):
        if rate != target:
            groups.setdefault((rate, data.shape[-1]), []).append(i)
    out = list(records)
    for (rate, _), members in groups.items():
        stacked = np.stack([records[i] for i in members])
        resampled = resample_signal(stacked, rate, target)
        for k, i in enumerate(members):
            out[i] = resampled[k]
    return out


# -- MedMNIST -----------------------------------------------------------------------------


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
