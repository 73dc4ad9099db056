"""A tiny Fitzpatrick17k copy: ``fitzpatrick17k.csv`` and ``images/<md5hash>.jpg``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ("non-neoplastic", "malignant", "benign")
NINE = {"non-neoplastic": "inflammatory", "malignant": "malignant epidermal",
        "benign": "benign dermal"}
SCALES = [1, 2, 3, 4, 5, 6, -1]
GROUP = {1: "I-II", 2: "I-II", 3: "III-IV", 4: "III-IV", 5: "V-VI", 6: "V-VI", -1: "unknown"}


@dataclass
class Expected:
    record_ids: list[str]
    labels: list[int]
    skin_type: list[str]
    test: list[str]
    images: dict[str, np.ndarray]  # md5hash → [H, W, 3] uint8 as written


def write(root: Path, records: int = 21, seed: int = 0, folder: str = "images",
          download_success: bool = False) -> Expected:
    """``records`` images, one class each in turn; every seventh is '1 Diagnostic' (test)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / folder).mkdir(parents=True, exist_ok=True)
    rows, images = [], {}
    for i in range(records):
        md5 = hashlib.md5(f"fitz-{seed}-{i}".encode()).hexdigest()
        label = CLASSES[i % 3]
        scale = SCALES[i % len(SCALES)]
        pixels = np.full((24, 20, 3), 40 + 60 * (i % 3), dtype=np.uint8)
        pixels[: 4 + i % 12] = rng.integers(0, 255, 3, dtype=np.uint8)
        Image.fromarray(pixels).save(root / folder / f"{md5}.jpg", quality=95)
        images[md5] = pixels
        rows.append({
            "md5hash": md5, "fitzpatrick_scale": scale, "fitzpatrick_centaur": scale,
            "label": "psoriasis", "nine_partition_label": NINE[label],
            "three_partition_label": label,
            "qc": "1 Diagnostic" if i % 7 == 3 else ("3 Wrongly labelled" if i == 5 else np.nan),
            "url": f"https://example.org/{md5}.jpg", "url_alphanum": f"http{md5}jpg",
        })
    frame = pd.DataFrame(rows)
    if download_success:
        frame["download_success"] = [i != 1 for i in range(records)]
    frame.to_csv(root / "fitzpatrick17k.csv", index=False)
    kept = [r for i, r in enumerate(rows) if not download_success or i != 1]
    return Expected(
        record_ids=[r["md5hash"] for r in kept],
        labels=[CLASSES.index(r["three_partition_label"]) for r in kept],
        skin_type=[GROUP[r["fitzpatrick_scale"]] for r in kept],
        test=[r["md5hash"] for r in kept if r["qc"] == "1 Diagnostic"],
        images={r["md5hash"]: images[r["md5hash"]] for r in kept},
    )
