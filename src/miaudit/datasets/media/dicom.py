"""DICOM records: pixel images and ECG waveforms (first multiplex group), read with pydicom.

DICOM pixels are rescaled with RescaleSlope/Intercept and then min-max scaled per image,
because stored DICOM values have no common full scale across devices (12-, 14- or 16-bit
detectors, CT numbers in HU with negative intercepts, vendor windows): dividing by a fixed
maximum would make brightness depend on the scanner rather than the patient. The price is
that absolute intensities (e.g. HU) are lost; with the usual positive slope the rescale
does not change the result, it matters for a negative slope. MONOCHROME1 images are
inverted so that bright means dense in every image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from miaudit.datasets.media.files import _detail
from miaudit.datasets.media.images import min_max
from miaudit.datasets.media.optional import import_pydicom
from miaudit.datasets.media.waveforms import _Signal, _to_millivolts
from miaudit.errors import InputError


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
