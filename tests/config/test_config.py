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


# -- images and signals -------------------------------------------------------------------


def test_image_and_signal_cohorts_pick_their_cnn_when_no_family_is_given() -> None:
    image = parse_config({"cohort": {"synthetic": {"modality": "image"}}})
    signal = parse_config({"cohort": {"path": "ecg/index.csv", "modality": "signal", "label": "y"}})
    table = parse_config({"cohort": {"path": "t.csv", "label": "y"}})
    assert image.model.family == "wrn" and image.model.width == 16
    assert signal.model.family == "resnet1d"
    assert table.model.family == "mlp" and table.model.width == 128
    npz = parse_config({"cohort": {"path": "chestmnist.npz"}})  # MedMNIST: images, labels inside
    assert npz.cohort.input_modality() == "image" and npz.model.family == "wrn"
    kept = parse_config({"cohort": {"synthetic": {"modality": "image"}}, "model": {"width": 4}})
    assert (kept.model.family, kept.model.width) == ("wrn", 4)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"cohort": {"synthetic": {"modality": "image"}}, "model": {"family": "mlp"}},
         'family = "wrn"'),
        ({"cohort": {"synthetic": {"modality": "signal"}}, "model": {"family": "wrn"}},
         'family = "resnet1d"'),
        ({"model": {"family": "wrn"}}, 'family = "mlp"'),
        ({"views": {"flip": True}}, "tables have one view"),
        ({"cohort": {"synthetic": {"modality": "image"}}, "privacy": {"epsilon": 3.0}},
         "privacy: patient-level DP-SGD"),
        ({"cohort": {"path": "t.csv", "label": "y", "image_size": [8, 8]}},
         'cohort.image_size applies to image/signal cohorts; set cohort.modality'),
        ({"cohort": {"path": "i.csv", "modality": "image", "label": "y", "features": ["a"]}},
         "cohort.features applies to tables only"),
        ({"cohort": {"path": "i.csv", "modality": "image"}}, "needs cohort.label"),
        ({"cohort": {"dataset": "rhc", "modality": "image"}}, "cohort.modality describes a file"),
        ({"cohort": {"synthetic": {"modality": "image", "num_features": 4}}},
         "num_features do not apply to modality 'image'"),
        ({"cohort": {"synthetic": {"num_labels": 3}}}, "multi-label synthetic cohorts"),
    ],
)
def test_modality_mismatches_are_explained(data: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        parse_config(data)


def test_media_paths_are_relative_to_the_config_and_views_change_the_hash(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        '[cohort]\npath = "imgs/index.csv"\nmodality = "image"\nlabel = "finding"\n'
        'root = "imgs"\narray = "imgs/x.npy"\nimage_size = [32, 32]\n[views]\nflip = true\n',
    )
    cfg = load_config(p)
    assert cfg.cohort.path == (tmp_path / "imgs/index.csv").resolve()
    assert cfg.cohort.root == (tmp_path / "imgs").resolve()
    assert cfg.cohort.array == (tmp_path / "imgs/x.npy").resolve()
    again = parse_config(tomllib.loads(to_toml(cfg)))
    assert again.training_hash() == cfg.training_hash()
    shifted = cfg.model_copy(update={"views": cfg.views.model_copy(update={"shift": 2})})
    assert shifted.training_hash() != cfg.training_hash()
    moved = cfg.model_copy(
        update={"cohort": cfg.cohort.model_copy(update={"path": Path("/elsewhere/index.csv")})}
    )
    assert moved.training_hash() == cfg.training_hash()  # where files lie is not the recipe


@pytest.mark.parametrize("modality", ["table", "image", "signal"])
def test_synthetic_configs_survive_the_toml_round_trip(modality: str) -> None:
    cfg = parse_config({"cohort": {"synthetic": {"modality": modality, "num_patients": 40}}})
    again = parse_config(tomllib.loads(to_toml(cfg)))
    assert again == cfg and again.training_hash() == cfg.training_hash()
