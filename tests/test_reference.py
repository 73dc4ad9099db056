"""The configuration reference is generated from the schema, so it cannot drift."""

from __future__ import annotations

from pathlib import Path

from miaudit.config import AuditConfig
from miaudit.config.deployed import DeployedConfig
from miaudit.gate import Policy
from miaudit.reference import reference

DOC = Path(__file__).resolve().parents[1] / "docs" / "CONFIG.md"


def test_docs_config_md_is_the_generated_reference() -> None:
    assert DOC.read_text(encoding="utf-8") == reference(), (
        "docs/CONFIG.md is stale: regenerate it with `miaudit reference > docs/CONFIG.md`"
    )


def test_every_key_of_every_section_is_listed() -> None:
    text = reference()
    for model in (AuditConfig, DeployedConfig):
        for section, field in model.model_fields.items():
            if not hasattr(field.annotation, "model_fields"):  # a top-level key, e.g. preset
                assert f"| `{section}` |" in text, section
                continue
            assert f"[{section}]" in text, section
            sub = field.annotation
            for key in getattr(sub, "model_fields", {}):
                assert f"| `{key}` |" in text, f"{section}.{key}"
    for key in Policy.model_fields:
        assert f"| `{key}` |" in text, key
    for key in ("record_id", "null_permutations", "max_patients_beyond_chance", "column"):
        assert f"| `{key}` |" in text
