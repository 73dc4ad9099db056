"""Reading one record file safely: error details, ``.npy`` without pickles, gaps, paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from miaudit.errors import InputError


def _detail(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


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


def _check_finite(array: np.ndarray, what: str) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(
            f"{what}: holds NaN or infinite values; fill them in (or drop the record) before "
            "the audit."
        )


def _check_exists(path: Path, what: str) -> None:
    if not path.is_file():
        state = "is a directory, not a file" if path.is_dir() else "not found"
        raise InputError(
            f"{what}: {state}; fix the path in the index, or set `root` to the folder the "
            "paths are relative to."
        )
