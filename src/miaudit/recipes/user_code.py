"""Resolve the user's code named in a config: ``"package.module:Name"`` or ``"file.py:Name"``.

The code is the user's own, named by the user; it is imported, never unpickled from a file.
A module that is not importable from the installed packages is looked up in the current
folder too, where a user's project usually is when running ``miaudit``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from miaudit.errors import InputError

__all__ = ["resolve"]

_FILES: dict[str, Any] = {}


def _from_file(path: Path, key: str, spec: str) -> Any:
    name = f"miaudit_user_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    loader = importlib.util.spec_from_file_location(name, path)
    if loader is None or loader.loader is None:
        raise InputError(f"{key} = {spec!r}: {path} cannot be imported as Python code")
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    try:
        loader.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise InputError(f"{key} = {spec!r}: importing {path} failed: {type(err).__name__}: {err}") from None
    return module


def _import(module_name: str, key: str, spec: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        here = os.getcwd()
        if err.name is not None and module_name.split(".")[0] == err.name.split(".")[0] and here not in sys.path:
            sys.path.insert(0, here)
            try:
                return importlib.import_module(module_name)
            except ModuleNotFoundError:
                pass
        raise InputError(
            f"{key} = {spec!r}: no module named {module_name!r} (looked in the installed "
            f"packages and in {here}); install your package, run miaudit from its folder, "
            "or give the file as 'path/to/file.py:Name'"
        ) from None
    except Exception as err:
        raise InputError(
            f"{key} = {spec!r}: importing {module_name!r} failed: {type(err).__name__}: {err}"
        ) from None


def resolve(spec: str, key: str) -> Any:
    """The object ``spec`` names; ``key`` (e.g. ``model.estimator``) is named in any error."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise InputError(
            f"{key} = {spec!r}: give it as 'package.module:Name' or 'path/to/file.py:Name'"
        )
    if where.endswith(".py"):
        path = Path(where).expanduser()
        if not path.is_file():
            raise InputError(f"{key} = {spec!r}: {path} is not a file; check the path")
        module = _from_file(path, key, spec)
    else:
        module = _import(where, key, spec)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InputError(
                f"{key} = {spec!r}: {where} has no {part!r}; check the name after ':'"
            ) from None
    return obj
