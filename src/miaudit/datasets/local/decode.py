"""Image files of a local copy decoded to uint8 pixels, and the content key of that decoding.

A paper cohort holds up to ~450k images. They are decoded once to the audit's size and
channels and kept as uint8 [N, C, H, W] (CheXpert at 64×64: 0.9 GB, a quarter of float32);
the conv engine turns each batch into value / 255. The key names what the pixels depend on
(the files' paths, sizes and modification times, the size, channels and decoder version),
so a run's cache (``results.pixels``) is reused only for the same files and settings, and a
run's identity is known before a single image is decoded.

An image that fails to decode stops the audit with its path: a record is never silently
dropped.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from miaudit.datasets.media.dicom import _dicom_pixels
from miaudit.datasets.media.files import _check_exists
from miaudit.datasets.media.images import (
    PILLOW_SUFFIXES,
    _npy_pixels,
    _pillow_pixels,
    convert_channels,
    resize_image,
)
from miaudit.errors import InputError

#: Bumped whenever decoding changes the pixels it gives (it is part of the key).
DECODER_VERSION = "miaudit-pixels-v1"

#: A reader of one file: ``(path, what, size) → [C, H, W] float32 in [0, 1]``.
Reader = Callable[[Path, str, tuple[int, int]], np.ndarray]


def read_image(path: Path, what: str, size: tuple[int, int]) -> np.ndarray:
    """One image file (Pillow formats, DICOM, .npy) as [C, H, W] float32 in [0, 1]."""
    suffix = path.suffix.lower()
    _check_exists(path, what)
    if suffix == ".dcm":
        return _dicom_pixels(path, what)
    if suffix == ".npy":
        return _npy_pixels(path, what)
    if suffix in PILLOW_SUFFIXES:
        return _pillow_pixels(path, what, draft=(2 * size[0], 2 * size[1]))
    raise InputError(
        f"{what}: cannot read {path.suffix or 'a file without a suffix'} as an image; "
        f"miaudit reads {', '.join(PILLOW_SUFFIXES)}, .dcm and .npy."
    )


def to_pixels(image: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """[C, H, W] in [0, 1] → uint8 [channels, *size]: convert, resize, round to whole bytes."""
    image = resize_image(convert_channels(image, channels), size)
    return np.clip(np.rint(image * np.float32(255)), 0, 255).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class ImageSource:
    """The image files of a cohort's records, to be decoded to uint8 [N, C, H, W].

    ``describe[i]`` names record i in an error (file, dataset, record id). ``reader``
    reads one file (default :func:`read_image`); a dataset whose files need their own
    reading (e.g. an ``.npz`` holding the image) passes its own and a ``reader_name`` for
    the key.
    """

    paths: tuple[Path, ...]
    describe: tuple[str, ...]
    size: tuple[int, int]
    channels: int
    reader: Reader = read_image
    reader_name: str = "image"
    workers: int = field(default_factory=lambda: max(1, min(8, os.cpu_count() or 1)))
    _key: str = field(init=False, default="")

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.describe):
            raise ValueError("one description per path")
        object.__setattr__(self, "_key", self._content_key())

    @property
    def key(self) -> str:
        """sha256 hex of what the pixels depend on (files, sizes, times, settings)."""
        return self._key

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), self.channels, *self.size)

    def _content_key(self) -> str:
        digest = hashlib.sha256()
        head = f"{DECODER_VERSION}|{self.reader_name}|{self.size}|{self.channels}|{len(self.paths)}"
        digest.update(head.encode())
        for path, what in zip(self.paths, self.describe, strict=True):
            try:
                stat = path.stat()
            except FileNotFoundError:
                raise InputError(
                    f"{what}: not found; the copy under `root` lacks this file of the official "
                    "layout (download it again, or check `root`)."
                ) from None
            digest.update(f"\x1f{path}\x1e{stat.st_size}\x1e{stat.st_mtime_ns}".encode())
        return digest.hexdigest()

    def decode_one(self, i: int) -> np.ndarray:
        return to_pixels(self.reader(self.paths[i], self.describe[i], self.size),
                         self.size, self.channels)

    def decode_rows(self, lo: int, hi: int) -> np.ndarray:
        """uint8 [hi - lo, C, H, W]: records lo..hi-1, decoded on ``workers`` threads."""
        out = np.empty((hi - lo, self.channels, *self.size), dtype=np.uint8)
        rows: Sequence[int] = range(lo, hi)
        if self.workers <= 1 or hi - lo < 2:
            for i in rows:
                out[i - lo] = self.decode_one(i)
            return out
        with ThreadPoolExecutor(self.workers) as pool:
            for i, pixels in zip(rows, pool.map(self.decode_one, rows), strict=True):
                out[i - lo] = pixels
        return out
