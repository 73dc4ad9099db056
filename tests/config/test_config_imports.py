"""The schema is its own torch-free layer: validating a config loads no engine."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from types import ModuleType

import pydantic

from miaudit.config.base import Strict

_PROBE = """
import json, sys
import miaudit.config as config
cfg = config.parse_config({
    "cohort": {"synthetic": {"modality": "image", "num_patients": 40}},
    "model": {"width": 8, "blocks": 1},
    "training": {"epochs": 2},
    "views": {"flip": True, "shift": 2},
    "audit": {"models": 8, "attacks": ["lira", "rmia"]},
    "report": {"redact": True},
    "executor": {"kind": "local"},
})
text = config.to_toml(cfg)
deployed = config.parse_deployed_config({
    "cohort": {"dataset": "rhc"},
    "target": {"predictions": "outputs.csv", "roster": "roster.csv"},
    "references": {"models": 4, "attack": "rmia_offline"},
})
sweep = config.SweepSpec(widths=[16, 32], epsilons=["inf", 3])
again = config.parse_config(__import__("tomllib").loads(text))
print(json.dumps({
    "modules": sorted(sys.modules),
    "family": cfg.model.family,
    "same": again.training_hash() == cfg.training_hash(),
    "references": deployed.references.models,
    "budgets": sweep.epsilon_values(),
}))
"""

#: Packages a config must not load: torch and the layers that build on it or read data.
ENGINE = ("torch", "miaudit.training", "miaudit.models", "miaudit.views", "miaudit.datasets")


def test_validating_a_config_imports_no_engine() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
    ).stdout
    probe = json.loads(out.strip().splitlines()[-1])
    loaded = [m for m in probe["modules"] if any(m == e or m.startswith(e + ".") for e in ENGINE)]
    assert loaded == []
    assert probe["family"] == "wrn" and probe["same"]
    assert probe["references"] == 4 and probe["budgets"] == [float("inf"), 3.0]


def _miaudit_modules() -> list[ModuleType]:
    import miaudit

    names = [m.name for m in pkgutil.walk_packages(miaudit.__path__, "miaudit.")]
    return [importlib.import_module(name) for name in names]


def _descendants(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _descendants(sub)
    return found


def test_every_model_that_forbids_unknown_keys_is_strict() -> None:
    forbidding = {
        obj
        for module in _miaudit_modules()
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, pydantic.BaseModel)
        and obj.__module__.startswith("miaudit.")
        and obj.model_config.get("extra") == "forbid"
    }
    strict = {Strict} | {c for c in _descendants(Strict) if c.__module__.startswith("miaudit.")}
    assert forbidding == strict
    # the schema's tables, the readers' specs and the release policy are among them
    names = {c.__name__ for c in strict}
    assert {"AuditConfig", "DeployedConfig", "SweepSpec", "TableSpec", "MediaSpec", "Policy"} <= names
    assert all(c.model_config.get("frozen") for c in strict if c.__module__ == "miaudit.gate")
