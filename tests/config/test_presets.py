"""``preset = "paper"``: the paper's recipe for its dataset, under the user's own keys."""

from __future__ import annotations

import pytest

from miaudit.config import parse_config
from miaudit.config.cohort import LOCAL_DATASETS
from miaudit.config.presets import PRESETS
from miaudit.errors import InputError
from miaudit.runner import load_cohort


def _config(dataset: str, **tables):
    return parse_config({"cohort": {"dataset": dataset, "root": "/data/copy"}, "preset": "paper",
                         **tables}, "test")


def test_every_paper_dataset_has_its_recipe():
    assert set(PRESETS["paper"]) == set(LOCAL_DATASETS)
    for dataset, modality in LOCAL_DATASETS.items():
        family = _config(dataset).model.family
        assert family == {"image": "wrn", "signal": "resnet1d", "table": "tabresnet"}[modality]


@pytest.mark.parametrize(
    ("dataset", "model", "training", "flip"),
    [
        ("chexpert", {"family": "wrn", "width": 32, "blocks": 4},
         {"epochs": 60, "batch_size": 1024, "optimizer": "sgd", "learning_rate": 1.0, "momentum": 0.9,
          "weight_decay": 1e-4, "schedule": "cosine", "warmup": 0.05, "ema": 0.9995}, True),
        ("embed", {"family": "wrn", "width": 32, "blocks": 4}, {"epochs": 30, "batch_size": 1024}, False),
        ("fitzpatrick17k", {"family": "wrn", "width": 32, "blocks": 4}, {"epochs": 100, "batch_size": 256}, True),
        ("ptbxl", {"family": "resnet1d", "width": 128, "blocks": 1},
         {"epochs": 100, "batch_size": 1024, "learning_rate": 0.25, "weight_decay": 5e-3, "ema": 0.995}, False),
        ("mimic_iv_ed", {"family": "tabresnet", "width": 300, "blocks": 6}, {"epochs": 100, "batch_size": 1024},
         False),
    ],
)
def test_the_papers_recipe(dataset, model, training, flip):
    config = _config(dataset)
    assert {k: getattr(config.model, k) for k in model} == model
    assert {k: getattr(config.training, k) for k in training} == training
    assert config.views.flip is flip


def test_the_users_keys_win_and_the_hash_is_the_recipes():
    mine = _config("ptbxl", model={"width": 64}, training={"epochs": 3})
    assert (mine.model.family, mine.model.width, mine.model.blocks) == ("resnet1d", 64, 1)
    assert (mine.training.epochs, mine.training.batch_size) == (3, 1024)
    spelled = parse_config({"cohort": {"dataset": "ptbxl", "root": "/elsewhere"},
                            "model": {"family": "resnet1d", "width": 64, "blocks": 1, "kernel_size": 7},
                            "training": {"epochs": 3, "batch_size": 1024, "optimizer": "sgd",
                                         "learning_rate": 0.25, "weight_decay": 5e-3,
                                         "schedule": "cosine", "warmup": 0.05, "ema": 0.995}},
                           "test")
    assert mine.training_hash() == spelled.training_hash()  # the preset is its tables, nothing more


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"cohort": {"dataset": "rhc"}, "preset": "paper"}, "preset = 'paper' is defined for the paper's datasets"),
        ({"cohort": {"dataset": "ptbxl"}, "preset": "fast"}, "preset"),
        ({"cohort": {"dataset": "ptbxl"}, "model": {"family": "mlp"}}, "does not take"),
        ({"cohort": {"synthetic": {}, "root": "/x"}}, "cohort.root describes a file given by cohort.path"),
    ],
)
def test_config_errors(data, match):
    with pytest.raises(InputError, match=match):
        parse_config(data, "test")


def test_root_belongs_to_the_paper_datasets(tmp_path):
    config = parse_config({"cohort": {"dataset": "rhc", "root": str(tmp_path)}}, "test")
    with pytest.raises(InputError, match=r"cohort.root: the built-in cohort 'rhc' ships with its package"):
        load_cohort(config.cohort)
    config = parse_config({"cohort": {"dataset": "ptbxl"}}, "test")
    with pytest.raises(InputError, match=r"set cohort.root \(or --root\) to its folder"):
        load_cohort(config.cohort)
