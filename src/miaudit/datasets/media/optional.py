"""The readers' optional packages (pydicom, wfdb, Pillow, openpyxl), imported on first use."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from miaudit.errors import InputError

_IMAGING_EXTRA = "pip install 'miaudit[imaging]'"


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


def import_openpyxl(what: str) -> Any:
    """openpyxl (pandas' reader of .xlsx tables), imported on first use."""
    return _optional("openpyxl", "openpyxl", "Excel tables need", what)
