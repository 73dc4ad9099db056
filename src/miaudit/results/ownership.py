"""What miaudit wrote in a folder, so that it deletes or replaces only that.

A run or sweep folder holds ``manifest.json``: every file miaudit wrote there with the
SHA-256 of what it wrote, and the folders it owns whole (a command recipe's model folders).
A file is miaudit's when the manifest names it and its content still has that hash: a file
the user added, or one they edited since, is never deleted by ``--force`` and never replaced
by a rerun (the rerun stops and names it). A folder that is not empty and holds neither a
manifest nor a miaudit run record is not miaudit's, and is refused.

While a folder is *owned* (:func:`owning`), every :func:`miaudit.results.store.atomic_write`
under it checks and records through its manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from miaudit.errors import InputError
from miaudit.results.layout import MANIFEST

FILE_MODE = 0o600
# atomic_write's temporaries: ".NAME." + mkstemp's 8 random characters + ".tmp"
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")

_ACTIVE: dict[Path, Manifest] = {}
_GUARD = threading.Lock()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Manifest:
    """The files (and whole folders) miaudit wrote in one folder, by path relative to it."""

    def __init__(self, folder: Path, kind: str, files: dict[str, str], dirs: list[str]) -> None:
        self.folder = Path(folder)
        self.kind = kind
        self.files = files
        self.dirs = dirs
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: Path) -> Manifest | None:
        """The folder's manifest; None when it has none. A damaged one is an error."""
        path = Path(folder) / MANIFEST
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
            raise InputError(f"{path}: unreadable ({err}); miaudit did not write it like this") from None
        if not (
            isinstance(data, dict)
            and isinstance(data.get("files"), dict)
            and isinstance(data.get("dirs", []), list)
            and isinstance(data.get("miaudit"), str)
        ):
            raise InputError(
                f"{path}: not a miaudit manifest (a JSON object with 'miaudit' and 'files'); "
                "choose another folder"
            )
        return cls(folder, data["miaudit"], dict(data["files"]), list(data.get("dirs", [])))

    def relative(self, path: Path) -> str:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(self.folder)).as_posix()

    def owns(self, path: Path) -> bool:
        """Whether ``path`` is a file miaudit wrote here, unchanged since (or in an owned folder)."""
        rel = self.relative(path)
        if any(rel == d or rel.startswith(d + "/") for d in self.dirs):
            return True
        digest = self.files.get(rel)
        if digest is None or not path.is_file() or path.is_symlink():
            return False
        return sha256(path) in ([digest] if isinstance(digest, str) else digest)

    def check_replace(self, path: Path) -> None:
        """InputError when ``path`` exists and is not miaudit's to replace."""
        if (path.exists() or path.is_symlink()) and not self.owns(path):
            raise InputError(
                f"{path}: exists and miaudit did not write it (it is not in {self.folder / MANIFEST}, "
                "or it changed since); move it out of this folder and run again — miaudit "
                "never replaces a file it did not write"
            )

    def expect(self, path: Path, digest: str) -> None:
        """Before a file is replaced: accept its old content or the new one, so a kill between
        the replace and :meth:`record` never leaves a file miaudit wrote unrecognised."""
        with self._lock:
            rel = self.relative(path)
            old = self.files.get(rel)
            before = [] if old is None else [old] if isinstance(old, str) else list(old)
            self.files[rel] = [*before, digest]
            self.save()

    def record(self, path: Path, digest: str | None = None) -> None:
        with self._lock:
            self.files[self.relative(path)] = sha256(path) if digest is None else digest
            self.save()

    def own_dir(self, path: Path) -> None:
        """Take a folder miaudit creates as its own, whole (e.g. a command recipe's models)."""
        with self._lock:
            rel = self.relative(path)
            if rel not in self.dirs:
                self.dirs.append(rel)
                self.save()

    def save(self) -> None:
        data = json.dumps(
            {"miaudit": self.kind, "files": dict(sorted(self.files.items())), "dirs": self.dirs},
            indent=1,
        ).encode()
        fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, self.folder / MANIFEST)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def clear(self, keep: tuple[str, ...] = ()) -> list[str]:
        """Delete what miaudit wrote here (unchanged files, owned folders); return what stays.

        ``keep``: relative paths kept even if miaudit wrote them (the lock, the run record,
        which the caller removes last; an owned folder such as the pixel cache). Folders left
        empty by the deletions are removed.
        """
        kept: list[str] = []
        for rel in list(self.dirs):
            if rel in keep:
                continue
            target = self.folder / rel
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            self.dirs.remove(rel)
        for rel in sorted(self.files):
            if rel in keep or rel == MANIFEST or rel.split("/", 1)[0] in keep:
                continue
            target = self.folder / rel
            if target.is_file() and not target.is_symlink() and self.owns(target):
                target.unlink()
                del self.files[rel]
                parent = target.parent
                while parent != self.folder and parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
                    parent = parent.parent
            elif target.exists():
                kept.append(rel)
                del self.files[rel]
            else:
                del self.files[rel]
        self.save()
        return kept


def claim(
    folder: Path,
    kind: str,
    *,
    legacy: Callable[[Path], bool],
    ignore: Callable[[str], bool] = lambda name: False,
) -> bool:
    """Check that ``folder`` may hold a miaudit ``kind``; True when it holds one made before
    manifests (``legacy`` recognises its record), whose files are then adopted.

    A broken symbolic link, a file, or a non-empty folder with neither a manifest nor such a
    record (entries ``ignore`` names aside) is refused: it is not miaudit's.
    """
    if folder.is_symlink() and not folder.exists():
        raise InputError(
            f"{folder}: a symbolic link to {os.readlink(folder)}, which does not exist; choose "
            "another --out, or create the folder it points to"
        )
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a directory; choose another --out")
    if not folder.is_dir():
        return False
    found = Manifest.load(folder)
    old = found is None and legacy(folder)
    theirs = sorted(c.name for c in folder.iterdir() if not ignore(c.name))
    if theirs and found is None and not old:
        raise InputError(
            f"{folder}: folder is not empty and holds no miaudit {kind} (no {MANIFEST}, and "
            f"no {kind} record miaudit wrote; it has {', '.join(theirs[:3])}"
            f"{', …' if len(theirs) > 3 else ''}); choose a new or empty folder for --out "
            "(miaudit never deletes or replaces files it did not create)"
        )
    return old


def start(folder: Path, kind: str, adopt: list[Path] | None = None) -> Manifest:
    """The folder's manifest, created (recording ``adopt``, files of a run made before
    manifests existed) when it has none."""
    found = Manifest.load(folder)
    if found is not None:
        if found.kind != kind:
            raise InputError(
                f"{Path(folder) / MANIFEST}: this folder holds a miaudit {found.kind}, not a "
                f"{kind}; choose another folder"
            )
        return found
    manifest = Manifest(folder, kind, {}, [])
    for path in adopt or []:
        if path.is_file() and not path.is_symlink():
            manifest.files[manifest.relative(path)] = sha256(path)
    manifest.save()
    return manifest


@contextlib.contextmanager
def owning(manifest: Manifest) -> Iterator[Manifest]:
    """Route every atomic write under the manifest's folder through it, for the block."""
    key = Path(os.path.abspath(manifest.folder))
    with _GUARD:
        _ACTIVE[key] = manifest
    try:
        yield manifest
    finally:
        with _GUARD:
            if _ACTIVE.get(key) is manifest:
                del _ACTIVE[key]


def owner_of(path: Path) -> Manifest | None:
    """The active manifest whose folder holds ``path`` (the innermost), if any."""
    p = Path(os.path.abspath(path))
    with _GUARD:
        candidates = [(k, m) for k, m in _ACTIVE.items() if p != k and k in p.parents]
    if not candidates:
        return None
    return max(candidates, key=lambda km: len(km[0].parts))[1]


@contextlib.contextmanager
def owning_run_folder(folder: Path, path: Path) -> Iterator[None]:
    """Write ``path`` under ``folder``'s manifest when it lies inside and none is active yet
    (a report rebuilt from a finished run), so the manifest keeps the file's new hash."""
    inside = Path(os.path.abspath(folder)) in Path(os.path.abspath(path)).parents
    manifest = Manifest.load(folder) if inside and owner_of(path) is None else None
    if manifest is None:
        yield
        return
    with owning(manifest):
        yield
