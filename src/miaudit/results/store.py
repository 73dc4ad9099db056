"""The run directory's storage: atomic owner-only writes, the lock, the identity, the shards.

Why it is careful: a run costs hours of training on sensitive data. Every file is written to a
temporary name in the same folder and renamed into place, so a crash never leaves a partial
file under a final name; a run is bound to the hash of its training recipe and the fingerprint
of its data, so a resumed run never mixes shards of two experiments; a lock keeps two processes
out of one run; everything is created owner-readable only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from miaudit import __version__
from miaudit.errors import InputError
from miaudit.results import layout as L
from miaudit.results.layout import LOCK as LOCK_FILE
from miaudit.results.layout import RUN as RUN_FILE
from miaudit.results.layout import SHARDS as SHARD_DIR
from miaudit.results.ownership import (
    MANIFEST,
    TEMPORARY,
    Manifest,
    claim,
    owner_of,
    owning,
    sha256,
    start,
)

DIR_MODE = 0o700
FILE_MODE = 0o600


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a temporary file in the same folder, then rename it into place.

    The temporary file is created 0600 by ``mkstemp``; readers never see a partial file.
    """
    path = Path(path)
    owner = owner_of(path)
    if owner is not None:
        owner.check_replace(path)
    make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        digest = None
        if owner is not None:
            digest = sha256(Path(tmp))
            owner.expect(path, digest)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if owner is not None:
        owner.record(path, digest)


def make_dirs(folder: Path) -> None:
    """Create ``folder`` and every missing parent owner-only (``mkdir(mode=)`` sets the last)."""
    missing = []
    f = Path(folder)
    while not f.exists():
        missing.append(f)
        if f.parent == f:
            break
        f = f.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=DIR_MODE)
        os.chmod(d, DIR_MODE)


#: The names a run writes, for adopting a run made before manifests (``ownership``).
_RUN_NAMES = (
    L.RUN, L.CONFIG, L.PLAN, L.RECORDS, L.PATIENTS, L.PATIENTS_CSV, L.MODELS, L.REFERENCES,
    L.CONFOUND, L.SUMMARY, L.REPORT,
)


def _is_run_record(path: Path) -> bool:
    """Whether ``path`` is a miaudit run record (a JSON object naming its identity)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("identity"), dict) and (
        "miaudit_version" in data
    )


def _legacy_files(p: Path) -> list[Path]:
    """The files of a run made before manifests, by the names a run writes."""
    files = [p / n for n in _RUN_NAMES]
    files += sorted((p / L.SHARDS).glob("models-*.npz"))
    files += sorted((p / L.SCORES).glob("*.npy")) + sorted((p / L.SCORES).glob("*.null.npz"))
    return files


def write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


def write_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array, allow_pickle=False))


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda f: frame.to_parquet(f, index=False))


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_text(path, frame.to_csv(index=False))


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read an ``.npz`` without ever unpickling (object arrays are refused)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise InputError(
            f"{path}: unreadable or not a plain-array .npz file ({err}); miaudit did not write "
            "it like this: delete it to have it recomputed, or pass --force to start the run again"
        ) from None


def _shard_name(models: np.ndarray) -> str:
    return f"models-{int(models[0]):05d}-{int(models[-1]):05d}.npz"


class RunStore:
    """One run directory, opened for writing under an exclusive lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._owning: Any = None
        self.manifest: Manifest

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def open(
        cls, path: Path, *, identity: dict[str, Any], force: bool = False
    ) -> Iterator[RunStore]:
        """Open (creating, resuming or, with ``force``, replacing) a run bound to ``identity``.

        ``identity`` holds what the shards depend on (training hash, data fingerprint, model
        count); an existing run with another identity is refused unless ``force`` is given.
        """
        store = cls(path)
        try:
            store._prepare(identity, force)
        except BaseException:
            store._unlock()
            raise
        try:
            yield store
        finally:
            store._unlock()

    def _prepare(self, identity: dict[str, Any], force: bool) -> None:
        p = self.path
        legacy = claim(
            p,
            "run",
            legacy=lambda folder: _is_run_record(folder / RUN_FILE),
            ignore=lambda name: name == LOCK_FILE or TEMPORARY.match(name) is not None,
        )
        make_dirs(p)
        self._lock()
        self.manifest = start(p, "run", _legacy_files(p) if legacy else None)
        if legacy and (p / L.RECIPE_DIR).is_dir():
            self.manifest.own_dir(p / L.RECIPE_DIR)
        self._owning = owning(self.manifest)
        self._owning.__enter__()
        self._refuse_changed_files()
        existing = self.read_identity()
        if existing is not None and not _same_identity(existing, identity):
            if not force:
                self._unlock()
                changed = sorted(
                    k for k in identity if existing.get("identity", {}).get(k) != identity[k]
                )
                raise InputError(
                    f"{p}: holds a run made with a different {', '.join(changed) or 'setup'}; "
                    "its results would be mixed with this one. Use another --out, or pass "
                    "--force to replace that run"
                )
            self._clear()
            existing = None
        elif existing is not None and force:
            self._clear()
            existing = None
        if existing is None:
            record = {
                "identity": identity,
                "miaudit_version": __version__,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            write_json(p / RUN_FILE, record)
        elif existing.get("complete"):
            # results are about to be rewritten: until the end they may mix two runs
            write_json(p / RUN_FILE, {**existing, "complete": False})
        (p / SHARD_DIR).mkdir(exist_ok=True, mode=DIR_MODE)
        if not (p / L.RECIPE_DIR).exists():
            self.manifest.own_dir(p / L.RECIPE_DIR)  # a command recipe's model folders
        if not (p / L.CACHE_DIR).exists():
            self.manifest.own_dir(p / L.CACHE_DIR)  # decoded pixels (results/pixels.py)
        self._remove_stale_temporaries()

    def _refuse_changed_files(self) -> None:
        """Stop before writing anything if a file the run writes is not miaudit's to replace:
        one it wrote and the user changed since, or one the user put under a run's name."""
        theirs = [
            rel for rel in sorted({*self.manifest.files, *_RUN_NAMES} - {RUN_FILE})
            if (self.path / rel).exists() and not self.manifest.owns(self.path / rel)
        ]
        if theirs:
            self._unlock()
            raise InputError(
                f"{self.path}: {', '.join(theirs[:3])}{', …' if len(theirs) > 3 else ''} "
                f"changed since miaudit wrote {'them' if len(theirs) > 1 else 'it'} (or miaudit "
                "never wrote it); a run would replace it. Move it out of the run folder, or "
                "choose another --out — miaudit never replaces a file it did not write"
            )

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files a killed writer left (``atomic_write``'s ``.NAME.*.tmp``).

        Safe under the lock: no other miaudit process writes here. Only temporaries of files
        miaudit writes, in the run folder and the folders it makes, are removed.
        """
        known = {Path(rel).name for rel in self.manifest.files} | set(_RUN_NAMES) | {MANIFEST}
        for folder in (self.path, self.path / SHARD_DIR, self.path / L.SCORES):
            if not folder.is_dir() or folder.is_symlink():
                continue
            ours_by_folder = folder != self.path
            for tmp in folder.glob(".*.tmp"):
                match = TEMPORARY.match(tmp.name)
                if match is None or not tmp.is_file() or tmp.is_symlink():
                    continue
                if ours_by_folder or match.group("name") in known:
                    tmp.unlink()

    def _lock(self) -> None:
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise InputError(
                    f"{self.path}: another miaudit process is using this run directory; wait "
                    "for it to finish or choose another --out"
                ) from None
            raise
        self._lock_fd = fd

    def _unlock(self) -> None:
        owning_block = getattr(self, "_owning", None)
        if owning_block is not None:
            owning_block.__exit__(None, None, None)
            self._owning = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _clear(self) -> None:
        """Remove the files of a previous run: only those miaudit wrote, unchanged (manifest).

        The user's own files in the folder stay where they are. The run record goes last: a
        kill midway leaves it naming the old run, so the next start still refuses (or, with
        --force, clears again) instead of adopting old shards.
        """
        self.manifest.clear(keep=(LOCK_FILE, RUN_FILE, L.CACHE_DIR))
        record = self.path / RUN_FILE
        if record.is_file() and self.manifest.owns(record):
            record.unlink()
            self.manifest.files.pop(RUN_FILE, None)
        self.manifest.save()
        if not (self.path / L.RECIPE_DIR).exists():
            self.manifest.own_dir(self.path / L.RECIPE_DIR)

    def remove_stale(self, path: str, *, keep: set[str]) -> None:
        """Delete the files miaudit wrote at ``path`` (a file, or a folder's files) in an
        earlier scoring and not in ``keep`` (the scores of an attack no longer run), so a
        run's files describe one scoring. Files the user put there stay."""
        for rel in sorted(self.manifest.files):
            if (rel == path or rel.startswith(path + "/")) and rel not in keep:
                stale = self.path / rel
                if stale.is_file() and self.manifest.owns(stale):
                    stale.unlink()
                self.manifest.files.pop(rel, None)
        self.manifest.save()

    # -- identity --------------------------------------------------------------------------
    def read_identity(self) -> dict[str, Any] | None:
        f = self.path / RUN_FILE
        if not f.is_file():
            return None
        try:
            data = json.loads(f.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError(
                f"{f}: damaged run record; pass --force to start this run again"
            ) from None
        if not isinstance(data, dict):
            raise InputError(
                f"{f}: not a miaudit run record (a JSON object, not {type(data).__name__}); "
                "pass --force to start this run again"
            )
        return data

    def update_run_record(self, **fields: Any) -> None:
        record = self.read_identity() or {}
        record.update(fields)
        write_json(self.path / RUN_FILE, record)

    # -- shards ----------------------------------------------------------------------------
    def finished_models(self) -> dict[int, tuple[Path, int]]:
        """Map each trained model index to (shard file, position) from the shards on disk."""
        found: dict[int, tuple[Path, int]] = {}
        for f in sorted((self.path / SHARD_DIR).glob("models-*.npz")):
            try:
                with np.load(f, allow_pickle=False) as z:
                    index = z["model_index"]
            except Exception:  # a damaged shard is retrained, never read as complete
                continue
            for pos, m in enumerate(index.tolist()):
                found.setdefault(int(m), (f, pos))
        return found

    def write_shard(self, models: np.ndarray, logits: np.ndarray) -> Path:
        """Store the logits [G, N, V, K] of the models with global indices ``models``."""
        models = np.asarray(models, dtype=np.int64)
        if logits.shape[0] != len(models):
            raise ValueError("one logits block per model is required")
        path = self.path / SHARD_DIR / _shard_name(models)
        write_npz(path, logits=np.asarray(logits, dtype=np.float32), model_index=models)
        return path

    def load_logits(self, num_models: int) -> np.ndarray:
        """Assemble logits [M, N, V, K] from the shards; every model must be present."""
        found = self.finished_models()
        missing = [m for m in range(num_models) if m not in found]
        if missing:
            raise InputError(
                f"{self.path}: models {missing[:5]} have no logits shard; rerun the audit to "
                "train them"
            )
        out: np.ndarray | None = None
        by_file: dict[Path, list[tuple[int, int]]] = {}
        for m in range(num_models):
            f, pos = found[m]
            by_file.setdefault(f, []).append((m, pos))
        for f, pairs in by_file.items():
            arrays = load_npz(f)
            block = arrays.get("logits")
            if block is None or block.ndim != 4 or block.shape[0] <= max(p for _, p in pairs):
                raise InputError(
                    f"{f}: not a logits shard miaudit wrote (no logits [G, N, V, K] for its "
                    "models); delete it to have those models retrained"
                )
            if out is None:
                out = np.empty((num_models, *block.shape[1:]), dtype=np.float32)
            for m, pos in pairs:
                out[m] = block[pos]
        assert out is not None
        return out

    # -- results ---------------------------------------------------------------------------
    def file(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)


def _same_identity(existing: dict[str, Any], identity: dict[str, Any]) -> bool:
    return existing.get("identity") == json.loads(json.dumps(identity))
