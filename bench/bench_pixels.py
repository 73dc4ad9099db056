"""Decoding a paper dataset's images to the uint8 cache, and training from it.

Two same-process ratios:

* decoding: ``ImageSource.decode_rows`` on its threads against one thread, and with
  Pillow's JPEG draft (decode at 1/2, 1/4 or 1/8 scale first) against a full decode, on
  synthetic greyscale JPEGs the size of CheXpert-small (390×320) and MIMIC-CXR-JPG
  (3056×2544) resized to 64×64;
* training: a WRN group trained from the uint8 pixels (converted batch by batch) against
  the same group trained from the float32 array, which must hold 4 bytes per pixel.

    python bench/bench_pixels.py [--images 200] [--large 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from miaudit.config import ModelSpec, TrainingSpec
from miaudit.datasets.local.decode import ImageSource, read_image
from miaudit.training import train_conv


def _write(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    base = np.linspace(0, 255, size[1], dtype=np.float64)[None, :] * np.ones((size[0], 1))
    for i in range(count):
        pixels = np.clip(base + rng.normal(0, 20, size), 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def _full_decode(path: Path, what: str, size: tuple[int, int]) -> np.ndarray:
    from miaudit.datasets.media.images import _pillow_pixels

    return _pillow_pixels(path, what)  # no draft: the whole JPEG first


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _source(paths: list[Path], workers: int | None, reader=read_image) -> ImageSource:
    """``workers`` None: the default (one thread per core, at most 8)."""
    extra = {} if workers is None else {"workers": workers}
    return ImageSource(tuple(paths), tuple(str(p) for p in paths), (64, 64), 1, reader,
                       "bench", **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--large", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = _write(Path(tmp) / "small", args.images, (390, 320))
        large = _write(Path(tmp) / "large", args.large, (3056, 2544))
        threads = _source(small, None).workers
        print(f"decode {args.images} CheXpert-small-sized JPEGs to 64×64:")
        one = _best(lambda: _source(small, 1).decode_rows(0, len(small)), args.repeats)
        many = _best(lambda: _source(small, threads).decode_rows(0, len(small)), args.repeats)
        print(f"  1 thread {one:.3f} s, {threads} threads {many:.3f} s: ratio {one / many:.2f}")
        print(f"decode {args.large} MIMIC-CXR-sized JPEGs to 64×64 (1 thread):")
        full = _best(lambda: _source(large, 1, _full_decode).decode_rows(0, len(large)), args.repeats)
        draft = _best(lambda: _source(large, 1).decode_rows(0, len(large)), args.repeats)
        print(f"  full decode {full:.3f} s, draft {draft:.3f} s: ratio {full / draft:.2f}")
        pixels = _source(small, threads).decode_rows(0, len(small))
    labels = (pixels[:, 0, :, :32].mean(axis=(1, 2)) > pixels.mean()).astype(np.int64)
    keep = np.random.default_rng(1).random((2, len(labels))) < 0.5
    spec, training = ModelSpec(family="wrn", width=8, blocks=1), TrainingSpec(epochs=2, batch_size=64)
    floats = pixels.astype(np.float32) / np.float32(255)
    u8 = _best(lambda: train_conv(spec, training, pixels, labels, keep, [0, 1], 0), args.repeats)
    f32 = _best(lambda: train_conv(spec, training, floats, labels, keep, [0, 1], 0), args.repeats)
    print(f"train 2 WRNs on {len(labels)} 64×64 images: float32 {f32:.3f} s, uint8 {u8:.3f} s: "
          f"ratio {f32 / u8:.2f} (input bytes {floats.nbytes:,} against {pixels.nbytes:,})")


if __name__ == "__main__":
    main()
