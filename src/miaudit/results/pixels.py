"""A run's decoded pixels: one uint8 array in ``cache/``, filled chunk by chunk, resumable.

``cache/pixels-KEY.npy`` holds uint8 [N, C, H, W] (KEY: the first 16 hex digits of the
source's content key) and ``cache/pixels-KEY.json`` how many chunks are written. The array
is allocated whole first (a full disk fails there, not midway through a memory map); each
chunk is flushed before the count that names it, so a killed decode resumes at the first
chunk not counted. When all are written the file's SHA-256 is recorded, and a later run
reuses the array only if the hash still matches. Training then reads it as a memory map:
the cohort's pixels are never all in RAM as float32.

``cache/`` is a folder the run owns whole; ``--force`` keeps it, since it is keyed by
content: another cohort or image size gets another key, and the old arrays are removed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.cohort import PixelSource
from miaudit.errors import InputError
from miaudit.results.layout import CACHE_DIR
from miaudit.results.ownership import FILE_MODE, owner_of, sha256
from miaudit.results.store import make_dirs, write_json

__all__ = ["CHUNK", "cached_pixels"]

#: Records decoded between two checkpoints.
CHUNK = 2048


def _names(folder: Path, key: str) -> tuple[Path, Path]:
    stem = f"pixels-{key[:16]}"
    return folder / f"{stem}.npy", folder / f"{stem}.json"


def _state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remove_others(folder: Path, keep: tuple[Path, Path]) -> None:
    """Arrays of another key (the files or settings changed): miaudit's own, no longer used."""
    for path in folder.glob("pixels-*"):
        if path not in keep and path.suffix in (".npy", ".json") and path.is_file():
            path.unlink()


def _allocate(array: Path, shape: tuple[int, ...]) -> np.memmap:
    pixels = np.lib.format.open_memmap(array, mode="w+", dtype=np.uint8, shape=shape)
    os.chmod(array, FILE_MODE)
    fd = os.open(array, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    return pixels


def cached_pixels(run_dir: Path, source: PixelSource, progress: Any = None) -> np.ndarray:
    """uint8 [N, C, H, W] of ``source``, decoded into the run's cache (or read back from it).

    ``progress`` (stage/advance) counts records. Returns a copy-on-write memory map.
    """
    folder = run_dir / CACHE_DIR
    owner = owner_of(folder / "pixels")
    if owner is not None and CACHE_DIR not in owner.dirs:
        raise InputError(
            f"{folder}: a folder miaudit did not make sits where a run keeps its decoded "
            "pixels; move it out of the run folder, or choose another --out"
        )
    make_dirs(folder)
    array, record = _names(folder, source.key)
    _remove_others(folder, (array, record))
    shape = tuple(int(d) for d in source.shape)
    n = shape[0]
    state = _state(record)
    same = state.get("key") == source.key and state.get("shape") == list(shape) and array.is_file()
    if same and state.get("complete") and sha256(array) == state.get("sha256"):
        return np.load(array, mmap_mode="c", allow_pickle=False)
    if progress is not None:
        progress.stage("decoding images", total=n)
    done = int(state.get("done", 0)) if same and not state.get("complete") else 0
    if done:
        pixels = np.lib.format.open_memmap(array, mode="r+")
        if pixels.shape != shape or pixels.dtype != np.uint8:
            done, pixels = 0, _allocate(array, shape)
    else:
        pixels = _allocate(array, shape)
    start = min(done * CHUNK, n)
    if progress is not None:
        progress.advance(start)
    for lo in range(start, n, CHUNK):
        hi = min(n, lo + CHUNK)
        pixels[lo:hi] = source.decode_rows(lo, hi)
        pixels.flush()
        write_json(record, {"key": source.key, "shape": list(shape), "done": lo // CHUNK + 1})
        if progress is not None:
            progress.advance(hi - lo)
    del pixels
    write_json(record, {"key": source.key, "shape": list(shape), "complete": True,
                        "sha256": sha256(array)})
    return np.load(array, mmap_mode="c", allow_pickle=False)
