"""The TOML schema: defaults, strictness, clear errors and a faithful round trip."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from miaudit.config import AuditConfig, load_config, parse_config, to_toml
from miaudit.errors import InputError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "audit.toml"
    p.write_text(text)
    return p


def test_defaults_audit_rhc_with_200_models() -> None:
    cfg = AuditConfig()
    assert cfg.cohort.dataset == "rhc"
    assert cfg.audit.models == 200
    assert cfg.audit.attacks[0] == "lira"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, '[cohort]\ndataset = "rhc"\n[model]\nfamily = "mlp"\nwidht = 64\n')
    with pytest.raises(InputError, match=r"model\.widht: unknown key") as e:
        load_config(p)
    assert str(p) in str(e.value)


def test_odd_model_count_explains_fix() -> None:
    with pytest.raises(InputError, match="even"):
        parse_config({"audit": {"models": 51}})


def test_unknown_attack_lists_choices() -> None:
    with pytest.raises(InputError, match="lira_offline"):
        parse_config({"audit": {"attacks": ["lira", "shadow"]}})


def test_cohort_needs_exactly_one_source() -> None:
    with pytest.raises(InputError, match="exactly one"):
        parse_config({"cohort": {"dataset": "rhc", "path": "x.csv", "label": "y"}})
    with pytest.raises(InputError, match="label"):
        parse_config({"cohort": {"path": "x.csv"}})


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not valid TOML"):
        load_config(write(tmp_path, "[cohort\n"))
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('[cohort]\ndataset = "r\xe9"\n'.encode("latin-1"))
    with pytest.raises(InputError, match="UTF-8"):
        load_config(bad)


def test_relative_cohort_path_is_taken_from_the_config_folder(tmp_path: Path) -> None:
    p = write(tmp_path, '[cohort]\npath = "data/visits.csv"\nlabel = "y"\n')
    cfg = load_config(p)
    assert cfg.cohort.path == (tmp_path / "data" / "visits.csv").resolve()


def test_toml_round_trip_and_training_hash() -> None:
    cfg = parse_config(
        {"model": {"family": "mlp", "width": 32}, "audit": {"models": 8, "seed": 3}}
    )
    again = parse_config(tomllib.loads(to_toml(cfg)))
    assert again == cfg
    assert again.training_hash() == cfg.training_hash()
    # attacks and thresholds do not change the trained models; the seed does
    other = cfg.model_copy(update={"audit": cfg.audit.model_copy(update={"attacks": ["loss"]})})
    assert other.training_hash() == cfg.training_hash()
    reseeded = cfg.model_copy(update={"audit": cfg.audit.model_copy(update={"seed": 4})})
    assert reseeded.training_hash() != cfg.training_hash()
