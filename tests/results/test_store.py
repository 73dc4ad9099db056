"""The run directory: atomic files, locking, identity binding, shards and permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from miaudit.errors import InputError
from miaudit.results.store import RunStore, write_text

IDENT = {"training_hash": "a" * 64, "data_fingerprint": "b" * 64, "models": 4}


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_shards_round_trip_and_assemble(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 7, 1, 2)).astype(np.float32)
    with RunStore.open(tmp_path / "run", identity=IDENT) as store:
        store.write_shard(np.array([2, 3]), logits[2:])
        assert sorted(store.finished_models()) == [2, 3]
        with pytest.raises(InputError, match="no logits shard"):
            store.load_logits(4)
        store.write_shard(np.array([0, 1]), logits[:2])
        np.testing.assert_array_equal(store.load_logits(4), logits)


def test_files_are_owner_only_and_no_temp_files_remain(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunStore.open(run, identity=IDENT) as store:
        store.write_shard(np.array([0]), np.zeros((1, 3, 1, 2), np.float32))
        write_text(store.file("note.txt"), "x")
    assert mode(run) == 0o700
    for p in run.rglob("*"):
        assert not p.name.endswith(".tmp")
        if p.is_file():
            assert mode(p) == 0o600, p


def test_damaged_shard_is_not_taken_as_finished(tmp_path: Path) -> None:
    with RunStore.open(tmp_path / "run", identity=IDENT) as store:
        store.write_shard(np.array([0]), np.zeros((1, 3, 1, 2), np.float32))
        (store.path / "shards" / "models-00001-00001.npz").write_bytes(b"PK\x03\x04broken")
        assert sorted(store.finished_models()) == [0]


def test_second_process_is_refused_while_locked(tmp_path: Path) -> None:
    with RunStore.open(tmp_path / "run", identity=IDENT):
        with pytest.raises(InputError, match="another miaudit process"):
            with RunStore.open(tmp_path / "run", identity=IDENT):
                pass


def test_other_identity_is_refused_unless_forced(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunStore.open(run, identity=IDENT) as store:
        store.write_shard(np.array([0]), np.ones((1, 3, 1, 2), np.float32))
    other = {**IDENT, "data_fingerprint": "c" * 64}
    with pytest.raises(InputError, match=r"data_fingerprint.*--force"):
        with RunStore.open(run, identity=other):
            pass
    assert (run / "shards" / "models-00000-00000.npz").is_file()  # nothing lost
    with RunStore.open(run, identity=other, force=True) as store:
        assert store.finished_models() == {}
        assert store.read_identity()["identity"] == other


def test_same_identity_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunStore.open(run, identity=IDENT) as store:
        store.write_shard(np.array([0, 1]), np.ones((2, 3, 1, 2), np.float32))
    with RunStore.open(run, identity=dict(IDENT)) as store:
        assert sorted(store.finished_models()) == [0, 1]


def test_foreign_folder_is_never_touched(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.docx").write_text("precious")
    for force in (False, True):
        with pytest.raises(InputError, match="holds no miaudit run"):
            with RunStore.open(folder, identity=IDENT, force=force):
                pass
    assert os.listdir(folder) == ["thesis.docx"]
