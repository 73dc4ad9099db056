"""Every config and policy key, generated from the schema so that the reference cannot drift.

``docs/CONFIG.md`` is this module's output (``miaudit reference > docs/CONFIG.md``); a test
holds the file equal to it, so a key added to the schema without a regenerated reference fails
the suite. Each table lists a section's keys with their type, default and description (the
field's ``description``, else the first line of the section's docstring names it).
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from miaudit.config import AuditConfig
from miaudit.config.deployed import DeployedConfig
from miaudit.config.sweep import SweepSpec
from miaudit.gate import Policy


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (list, tuple, set):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "table"
    if annotation is type(None):
        return "unset"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return getattr(annotation, "__name__", str(annotation)).replace("NoneType", "unset")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(table)"
    if value is None:
        return "unset"
    try:
        return f"`{json.dumps(value, ensure_ascii=False)}`"
    except TypeError:
        return f"`{value}`"


def _submodel(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _section(model: type[BaseModel], path: str, out: list[str], seen: set[str]) -> None:
    if path in seen:
        return
    seen.add(path)
    doc = inspect.getdoc(model) or ""
    out += [f"### `[{path}]`", "", doc.split("\n\n")[0].replace("\n", " "), ""]
    out += ["| key | type | default | meaning |", "|---|---|---|---|"]
    nested = []
    for name, field in model.model_fields.items():
        sub = _submodel(field.annotation)
        meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
        if sub is not None:
            nested.append((name, sub))
            meaning = meaning or f"see `[{path}.{name}]`"
        out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {meaning} |")
    out.append("")
    for name, sub in nested:
        _section(sub, f"{path}.{name}", out, seen)


def reference() -> str:
    """The Markdown reference of every config and policy key."""
    out = [
        "# Configuration reference",
        "",
        "Generated from miaudit's schema by `miaudit reference`; do not edit by hand. Unknown",
        "keys are errors everywhere. `miaudit audit` reads the audit config, `miaudit sweep` the",
        "same with a `[sweep]` table, `miaudit audit-model` the deployed-model config and",
        "`miaudit gate` a policy.",
        "",
        "## Audit config (`miaudit audit`)",
        "",
    ]
    seen: set[str] = set()
    top = [(n, f) for n, f in AuditConfig.model_fields.items() if _submodel(f.annotation) is None]
    if top:
        out += ["### Top-level keys", "", "Keys outside any table, at the top of the file.", ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for name, field in top:
            meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
            out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {meaning} |")
        out.append("")
    for name, field in AuditConfig.model_fields.items():
        sub = _submodel(field.annotation)
        if sub is not None:
            _section(sub, name, out, seen)
    out += ["## Sweep (`miaudit sweep`: an audit config plus)", ""]
    _section(SweepSpec, "sweep", out, seen)
    out += ["## Deployed-model config (`miaudit audit-model`)", ""]
    seen_deployed: set[str] = set()
    for name, field in DeployedConfig.model_fields.items():
        sub = _submodel(field.annotation)
        if sub is not None and name not in AuditConfig.model_fields:
            _section(sub, name, out, seen_deployed)
        elif sub is not None:
            same = sub is _submodel(AuditConfig.model_fields[name].annotation)
            if not same:
                _section(sub, name, out, seen_deployed)
            else:
                out += [f"`[{name}]`: as in the audit config.", ""]
    out += ["## Release policy (`miaudit gate --policy`)", ""]
    _section(Policy, "policy", out, set())
    return "\n".join(out).rstrip() + "\n"
