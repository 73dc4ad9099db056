"""Images: pixels to float32 in [0, 1], channels, resizing, Pillow and ``.npy`` files.

Pixels become float32 in [0, 1]: 8-bit /255, 16-bit /65535, floats already in [0, 1] as
they are, any other range min-max per image. Resizing (``image_size``) uses Pillow's
bilinear filter with antialiasing, reducing by whole factors with box averaging first, so
shrinking by a whole factor averages exactly the pixels each output pixel covers.
``channels`` repeats gray to RGB or turns RGB to gray with BT.601 luma (Pillow's weights);
unset, every image needs the first image's channels. A ``.npy`` image whose first axis
could be channels is [C, H, W].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from miaudit.datasets.media.files import _check_finite, _detail, _npy
from miaudit.datasets.media.optional import _import_pillow
from miaudit.datasets.media.spec import MediaSpec
from miaudit.errors import InputError

#: File suffixes read with Pillow.
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: ITU-R BT.601 luma weights, as Pillow's RGB → L conversion.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def unit_pixels(values: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]: uint8 /255, uint16 /65535, [0, 1] floats as is, else min-max."""
    if values.dtype == np.bool_:
        return values.astype(np.float32)
    if values.dtype == np.uint8:
        return values.astype(np.float32) / np.float32(255)
    if values.dtype == np.uint16:
        return values.astype(np.float32) / np.float32(65535)
    x = values.astype(np.float64)
    if x.size and np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1:
        return x.astype(np.float32)
    return min_max(x)


def min_max(x: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min) as float32; a constant image becomes zeros."""
    x = np.asarray(x, dtype=np.float64)
    low, high = x.min(), x.max()
    if not high > low:
        return np.zeros(x.shape, dtype=np.float32)
    return ((x - low) / (high - low)).astype(np.float32)


def _chw(array: np.ndarray, what: str) -> np.ndarray:
    """[H,W] / [C,H,W] / [H,W,C] (C in 1, 3) → [C,H,W]."""
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3:
        if array.shape[0] in (1, 3):
            return array
        if array.shape[-1] in (1, 3):
            return np.moveaxis(array, -1, 0)
    raise InputError(
        f"{what}: an image array must be [H, W], [C, H, W] or [H, W, C] with 1 or 3 channels, "
        f"got shape {array.shape}; save one 2-D image (gray or RGB) per record."
    )


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """[C,H,W] → [channels,H,W]: gray repeated to RGB, RGB to gray with BT.601 luma."""
    have = image.shape[0]
    if have == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=0)
    return np.tensordot(LUMA, image, axes=1)[None].astype(np.float32)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[C,H,W] float32 → [C,*size]: bilinear with antialias, whole factors box-averaged first."""
    if tuple(image.shape[1:]) == tuple(size):
        return image
    pil = _import_pillow("image_size")
    height, width = size
    out = np.empty((image.shape[0], height, width), dtype=np.float32)
    for c, plane in enumerate(image):
        resized = pil.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F").resize(
            (width, height), pil.Resampling.BILINEAR, reducing_gap=1.0
        )
        out[c] = np.asarray(resized, dtype=np.float32)
    return out


def _pillow_pixels(path: Path, what: str, draft: tuple[int, int] | None = None) -> np.ndarray:
    """[C,H,W] float32 in [0, 1] from an image file Pillow reads.

    ``draft`` (H, W) lets a JPEG decode at the smallest DCT scale (1/2, 1/4, 1/8) that keeps
    it at least that large: a full-resolution radiograph shrunk to 64×64 need not be decoded
    whole first (give at least twice the final size, so the resize still averages)."""
    pil = _import_pillow(what)
    try:
        with pil.open(path) as image:
            if draft is not None and image.format == "JPEG":
                image.draft(image.mode, (draft[1], draft[0]))
            image.load()
            if getattr(image, "n_frames", 1) > 1:
                raise InputError(
                    f"{what}: holds {image.n_frames} frames; miaudit reads one image per "
                    "record. Save each frame as a record of its own."
                )
            mode = image.mode
            if mode in ("LA", "La"):
                image = image.convert("L")
            elif mode in ("P", "PA", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
                image = image.convert("RGB")
            pixels = np.asarray(image)
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError) as error:
        raise InputError(
            f"{what}: not a readable image ({_detail(error)}); replace the file with a valid "
            f"{path.suffix or 'image'} file or remove its row from the index."
        ) from error
    if mode == "I" and pixels.size and pixels.min() >= 0 and pixels.max() <= 65535:
        pixels = pixels.astype(np.uint16)  # 16-bit files that Pillow opens as 32-bit ints
    layout = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)  # Pillow: H, W, C
    return unit_pixels(layout)


def _npy_pixels(path: Path, what: str) -> np.ndarray:
    array = _npy(path, what)
    _check_finite(array, what)
    return unit_pixels(_chw(array, what))


def _row_loader(stacked: np.ndarray, i: int, what: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        row = np.asarray(stacked[i])
        _check_finite(row, what)
        return unit_pixels(_chw(row, what))

    return load


def assemble_images(
    loaders: Sequence[Callable[[], np.ndarray]], describe: Sequence[str], spec: MediaSpec
) -> np.ndarray:
    """[N,C,H,W] float32 from per-record loaders of [C,H,W] arrays in [0, 1]."""
    out: np.ndarray | None = None
    for i, load in enumerate(loaders):
        image = load()
        if spec.channels is not None:
            image = convert_channels(image, spec.channels)
        elif out is not None and image.shape[0] != out.shape[1]:
            raise InputError(
                f"{describe[i]} has {image.shape[0]} channel(s) but {describe[0]} has "
                f"{out.shape[1]}; set `channels` = 1 (gray) or 3 (RGB) to convert them all."
            )
        if spec.image_size is not None:
            image = resize_image(image, spec.image_size)
        elif out is not None and image.shape[1:] != out.shape[2:]:
            raise InputError(
                f"images differ in size: {describe[0]} is {out.shape[2]}×{out.shape[3]} "
                f"(H×W) but {describe[i]} is {image.shape[1]}×{image.shape[2]}; set "
                "`image_size` = [H, W] to resize every image."
            )
        if out is None:
            out = np.empty((len(loaders), *image.shape), dtype=np.float32)
        out[i] = image
    if out is None:
        raise InputError("the cohort has no records; add rows to the index.")
    return out
