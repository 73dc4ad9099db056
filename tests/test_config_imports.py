"""The schema is its own torch-free layer: validating a config loads no engine."""

from __future__ import annotations

import json
import subprocess
import sys

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
