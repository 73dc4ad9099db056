"""Configs as TOML: reading a file, validating it with one readable message, writing it back.

Every error names the file and the key.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from miaudit.config.audit import AuditConfig
from miaudit.config.base import Strict
from miaudit.errors import InputError

__all__ = [
    "load_config", "parse_config", "read_config_data", "read_toml", "to_toml", "validation_message",
]


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key; check its spelling against the documented config keys"
        lines.append(f"{loc or '(top level)'}: {msg}")
    return f"{source}: invalid config — " + "; ".join(lines)


def parse_config(data: dict[str, Any], source: str = "config") -> AuditConfig:
    """Validate a config mapping, turning pydantic errors into one readable message."""
    try:
        return AuditConfig.model_validate(data)
    except ValidationError as err:
        raise InputError(_format_validation_error(err, source)) from None


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a mapping, with one clear error for a missing, non-UTF-8 or broken file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found; pass the path of a TOML file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a BOM is not TOML
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start}); save the config as UTF-8") from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{path}: not valid TOML ({err}); fix the syntax at that line") from None


def load_config(path: Path, *, tables: tuple[str, ...] = ()) -> Any:
    """Read and validate a TOML config; relative cohort paths are taken from the config's folder.

    ``tables`` names top-level tables that belong to the caller (e.g. ``sweep``); with it
    the result is ``(config, {name: table})``, without it just the config.
    """
    path = Path(path)
    data = read_config_data(path)
    extra = {name: data.pop(name) for name in tables if name in data}
    config = parse_config(data, str(path))
    return (config, extra) if tables else config


def read_config_data(path: Path) -> dict[str, Any]:
    """A config file's own keys (nothing filled in), its cohort's relative paths taken from
    the config's folder: what the command line then overrides before one validation."""
    path = Path(path)
    data = read_toml(path)
    cohort = data.get("cohort")
    if isinstance(cohort, dict):
        for key in ("path", "root", "array"):
            if isinstance(cohort.get(key), str):
                p = Path(cohort[key]).expanduser()
                cohort[key] = str(p if p.is_absolute() else (path.parent / p).resolve())
    return data


def validation_message(err: ValidationError, source: str) -> str:
    """One line naming each bad key, for schemas defined outside this module."""
    return _format_validation_error(err, source)


def config_data(config: Strict) -> dict[str, Any]:
    """A resolved config as plain data that validates back to the same config."""
    data = config.model_dump(mode="json", exclude_none=True)
    model = getattr(config, "model", None)
    if model is not None and "model" in data:
        data["model"] = model.toml_data()
    return data


def to_toml(config: Strict) -> str:
    """Render a resolved config (audit or audit-model) as TOML (the run keeps it with its results)."""
    return _dump_toml(config_data(config))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot render {type(v)} as TOML")


def _dump_toml(data: dict[str, Any], prefix: str = "") -> str:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    out = []
    if prefix and scalars:
        out.append(f"[{prefix}]")
    out += [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
    if scalars:
        out.append("")
    for k, v in tables.items():
        name = f"{prefix}.{k}" if prefix else k
        out.append(_dump_toml(v, name))
    return "\n".join(out)
