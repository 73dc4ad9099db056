"""The registry of the paper's datasets: one adapter per schema name, listed by the CLI."""

from __future__ import annotations

import subprocess
import sys

from miaudit.config.cohort import LOCAL_DATASETS
from miaudit.datasets.local import LOCAL, info, list_local, load_local


def test_every_schema_dataset_has_its_adapter_and_modality():
    assert list(LOCAL) == list(LOCAL_DATASETS)
    for name, modality in LOCAL_DATASETS.items():
        entry = info(name)
        assert entry.name == name and entry.modality == modality
        assert entry.layout and entry.obtain.count("http") >= 1 and entry.test_split
    assert [i.name for i in list_local() if not i.in_paper] == ["ham10000"]


def test_unknown_name_suggests_the_close_one():
    import pytest

    from miaudit.errors import InputError

    with pytest.raises(InputError, match="Did you mean 'ptbxl'"):
        load_local("ptb_xl", None)


def test_datasets_command_lists_them_with_where_to_get_them():
    done = subprocess.run([sys.executable, "-m", "miaudit.cli", "datasets"], capture_output=True,
                          text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # long lines wrap
    assert "from your local copy" in text
    for name in LOCAL_DATASETS:
        entry = info(name)
        assert " ".join(f"{name}: {entry.obtain}".split()) in text
        assert f"root/{entry.layout[0][0]}" in text
    assert "--preset paper" in text


def test_a_large_table_is_read_only_in_the_columns_an_adapter_uses(tmp_path):
    import gzip

    import pytest

    from miaudit.datasets.local.layout import Layout
    from miaudit.errors import InputError

    path = tmp_path / "metadata.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("dicom_id,subject_id,notes,Rows\n007,10,long text,3056\n")
    layout = Layout("mimic_cxr", tmp_path)
    frame = layout.table(path, ["dicom_id", "subject_id"], "ids", also=("ViewPosition",))
    assert list(frame.columns) == ["dicom_id", "subject_id"] and frame["dicom_id"].tolist() == ["007"]
    assert list(layout.table(path, ["dicom_id"], "ids").columns) == ["dicom_id", "subject_id", "notes", "Rows"]
    with pytest.raises(InputError, match=r"'metadata.csv.gz' lacks column\(s\) 'study_id'"):
        layout.table(path, ["dicom_id", "study_id"], "ids", also=())
